"""What a strategy plug-in sees and returns: `MarketView` (read-only, one per symbol), `Candidate`,
`QuoteBar`, `Profile`. Public through `bot.strategy`; docs/strategies.md is the contract.

The view holds no data of its own: every read goes to the symbol's live feature objects
(`SymbolFeatures`: book features, trade flow, time bars, volume profile, funding) and converts ticks
and lots to quote prices and base quantities on the way out. Nothing is copied per call and nothing
is computed until a plug-in asks for it. Two reads keep a little state of their own, made the first
time a plug-in asks and updated only while someone asks:
- `ofi(w)` / `trade_imbalance(w)` for a window that is not one of `signals.ofi_windows_ms` /
  `flow_windows_ms`: an extra rolling window, fed by the engine from then on (it fills over `w`);
- `ema/rsi/atr(bar_s, n)` for a period other than the configured ones: an extra indicator, seeded
  from the bars kept (`signals.bars_kept`) and advanced by the bars closed since the last call.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple, overload

from bot.signals.bars import ATR, EMA, RSI, Bar, BarSeries
from bot.signals.rolling import RollingFlow, RollingSum

if TYPE_CHECKING:
    from bot.market.book import OrderBook
    from bot.signals.features import SymbolFeatures

__all__ = ["Bars", "Candidate", "MarketView", "Profile", "QuoteBar"]

_S = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Candidate:
    """A plug-in's proposal. Prices in quote units (floats); never a quantity (risk sizes it).

    side: "long" | "short". stop: the structural stop level (the engine adds `stop_buffer_bps` beyond
    it, keeps it at least `min_stop_bps` from the entry and drops the candidate when it lies farther
    than `max_stop_bps`). target: a structural target or None (it replaces the first take-profit tier
    when it lies >= 0.5 R away on the winning side). tag: a free label, carried on the intent.
    features: numbers worth journaling with the trade (optional).
    stop_ticks / target_ticks: the same levels in (fractional) ticks of the instrument; when given they
    are used instead of stop / target (exact for strategies that work in ticks, as the built-ins do).
    """

    side: str
    stop: float
    target: float | None = None
    tag: str = ""
    features: Mapping[str, float] | None = None
    stop_ticks: float | None = None
    target_ticks: float | None = None


class Profile(NamedTuple):
    """Volume-profile levels (quote prices): point of control, value-area high, value-area low."""

    poc: float
    vah: float
    val: float


class QuoteBar:
    """One closed time bar in quote units, read through to the underlying tick/lot bar."""

    __slots__ = ("_b", "_iv", "_step", "_tick")

    def __init__(self, b: Bar, tick: float, step: float, interval_ns: int) -> None:
        self._b, self._tick, self._step, self._iv = b, tick, step, interval_ns

    @property
    def open(self) -> float:
        return self._b.open * self._tick

    @property
    def high(self) -> float:
        return self._b.high * self._tick

    @property
    def low(self) -> float:
        return self._b.low * self._tick

    @property
    def close(self) -> float:
        return self._b.close * self._tick

    @property
    def volume(self) -> float:
        """Traded base quantity (e.g. BTC) in the bar."""
        return self._b.volume * self._step

    @property
    def buy_volume(self) -> float:
        return self._b.buy_lots * self._step

    @property
    def sell_volume(self) -> float:
        return self._b.sell_lots * self._step

    @property
    def trades(self) -> int:
        return self._b.trades

    @property
    def t_start_ns(self) -> int:
        return self._b.t_start_ns

    @property
    def t_end_ns(self) -> int:
        return self._b.t_start_ns + self._iv

    def __repr__(self) -> str:
        return (f"QuoteBar(t_end_ns={self.t_end_ns} o={self.open:g} h={self.high:g} l={self.low:g} "
                f"c={self.close:g} v={self.volume:g})")


class Bars(Sequence[QuoteBar]):
    """The closed bars of one interval, oldest first (`bars[-1]` is the last closed bar). A live view of
    the kept bars: it grows as bars close; index it, slice it, take len(); items are made on access."""

    __slots__ = ("_d", "_iv", "_step", "_tick")

    def __init__(self, d: deque[Bar], tick: float, step: float, interval_ns: int) -> None:
        self._d, self._tick, self._step, self._iv = d, tick, step, interval_ns

    def __len__(self) -> int:
        return len(self._d)

    @overload
    def __getitem__(self, i: int) -> QuoteBar: ...
    @overload
    def __getitem__(self, i: slice) -> list[QuoteBar]: ...
    def __getitem__(self, i: int | slice) -> QuoteBar | list[QuoteBar]:
        d = self._d
        if isinstance(i, slice):
            return [QuoteBar(d[k], self._tick, self._step, self._iv) for k in range(*i.indices(len(d)))]
        return QuoteBar(d[i], self._tick, self._step, self._iv)


class _Extra:
    """An indicator of a period the series does not keep, advanced lazily from its closed bars."""

    __slots__ = ("ind", "kind", "seen")

    def __init__(self, kind: str, n: int) -> None:
        self.kind = kind
        self.ind: EMA | RSI | ATR = EMA(n) if kind == "ema" else RSI(n) if kind == "rsi" else ATR(n)
        self.seen = 0  # series.closed already fed

    def value(self, s: BarSeries) -> float | None:
        new = s.closed - self.seen
        if new > 0:
            bars = s.bars
            ind = self.ind
            for k in range(max(0, len(bars) - new), len(bars)):
                b = bars[k]
                if isinstance(ind, ATR):
                    ind.update(float(b.high), float(b.low), float(b.close))
                else:
                    ind.update(float(b.close))
            self.seen = s.closed
        return self.ind.value


def _ns(window_s: float) -> int:
    if not isinstance(window_s, int | float) or not math.isfinite(window_s) or window_s <= 0:
        raise ValueError(f"window_s must be a number of seconds > 0, got {window_s!r}")
    return round(window_s * _S)


class MarketView:
    """Read-only market state of one symbol for `propose(view)`; docs/strategies.md lists the units.

    Prices are floats in quote units (USDT), quantities in base units; None where not yet known.
    `now_ns` is the exchange event time of the event that triggered the call: the clock every window
    of the signal layer runs on (replay and live agree), not the wall clock.
    """

    __slots__ = ("_bars", "_book", "_extra", "_f", "_flow_extra", "_flow_idx", "_now", "_ofi_extra", "_ofi_idx",
                 "_step", "_tick")

    def __init__(self, f: SymbolFeatures) -> None:
        self._f = f
        self._tick = f.instrument.tick
        self._step = f.instrument.step
        self._now = 0
        self._book: OrderBook | None = None
        self._ofi_idx = {ms * 1_000_000: i for i, ms in enumerate(f.cfg.ofi_windows_ms)}
        self._flow_idx = {ms * 1_000_000: i for i, ms in enumerate(f.cfg.flow_windows_ms)}
        self._ofi_extra: dict[int, RollingSum] = {}  # fed by the engine (feed_depth) once asked for
        self._flow_extra: dict[int, RollingFlow] = {}
        self._bars: dict[int, tuple[Bars, BarSeries]] = {}
        self._extra: dict[tuple[str, int, int], _Extra] = {}

    # ---- fed by the engine (not part of the plug-in API) -------------------------------------
    def _feed_depth(self, ts_ns: int, e_lots: int) -> None:
        for w in self._ofi_extra.values():
            w.add(ts_ns, e_lots)

    def _feed_trade(self, ts_ns: int, lots: int, buy: bool) -> None:
        for w in self._flow_extra.values():
            if buy:
                w.add(ts_ns, lots, 0)
            else:
                w.add(ts_ns, 0, lots)

    # ---- identity and clock --------------------------------------------------------------------
    @property
    def symbol(self) -> str:
        return self._f.symbol

    @property
    def now_ns(self) -> int:
        return self._now

    @property
    def tick_size(self) -> float:
        return self._tick

    @property
    def step_size(self) -> float:
        return self._step

    @property
    def features(self) -> SymbolFeatures:
        """The raw per-symbol feature objects (ticks and lots; bot/signals/features.py). For the
        built-in setups and power users: not part of the stable contract."""
        return self._f

    # ---- top of book -----------------------------------------------------------------------------
    @property
    def best_bid(self) -> float | None:
        bf = self._f.book
        return bf.bid_ticks * self._tick if bf.valid else None

    @property
    def best_ask(self) -> float | None:
        bf = self._f.book
        return bf.ask_ticks * self._tick if bf.valid else None

    @property
    def mid(self) -> float | None:
        bf = self._f.book
        return (bf.bid_ticks + bf.ask_ticks) * 0.5 * self._tick if bf.valid else None

    @property
    def spread(self) -> float | None:
        bf = self._f.book
        return (bf.ask_ticks - bf.bid_ticks) * self._tick if bf.valid else None

    @property
    def microprice(self) -> float | None:
        bf = self._f.book
        return bf.microprice_ticks * self._tick if bf.valid else None

    @property
    def bid_size(self) -> float | None:
        bf = self._f.book
        return bf.bid_lots * self._step if bf.valid else None

    @property
    def ask_size(self) -> float | None:
        bf = self._f.book
        return bf.ask_lots * self._step if bf.valid else None

    def imbalance(self, levels: int = 10) -> float | None:
        """(bid qty - ask qty) / (bid qty + ask qty) over the top `levels` of each side, in [-1, 1]."""
        f = self._f
        if not f.book.valid:
            return None
        if levels == f.cfg.imbalance_levels and f.cfg.imbalance_decay == 1.0:
            return f.book.imbalance  # already computed for this event
        book = self._book
        return book.imbalance(levels) if book is not None else None

    # ---- order flow ------------------------------------------------------------------------------
    def ofi(self, window_s: float) -> float:
        """Cont-Kukanov-Stoikov order-flow imbalance summed over the last `window_s` seconds, in base
        quantity (> 0: bids building / asks leaving)."""
        w = _ns(window_s)
        i = self._ofi_idx.get(w)
        if i is not None:
            return self._f.book.ofi(i, self._now) * self._step
        rs = self._ofi_extra.get(w)
        if rs is None:
            rs = self._ofi_extra[w] = RollingSum(w)
        rs.expire(self._now)
        return rs.total * self._step

    def trade_imbalance(self, window_s: float) -> float:
        """(aggressive buy qty - aggressive sell qty) / total over the last `window_s` seconds, in
        [-1, 1]; 0.0 without trades."""
        w = _ns(window_s)
        i = self._flow_idx.get(w)
        if i is not None:
            return self._f.flow.window(i, self._now).imbalance
        rf = self._flow_extra.get(w)
        if rf is None:
            rf = self._flow_extra[w] = RollingFlow(w)
        rf.expire(self._now)
        return rf.imbalance

    @property
    def last_price(self) -> float | None:
        fl = self._f.flow
        return fl.last_price_ticks * self._tick if fl.trades_total else None

    # ---- bars and indicators -----------------------------------------------------------------------
    def _series(self, bar_s: float) -> tuple[Bars, BarSeries]:
        ms = round(bar_s * 1000)
        got = self._bars.get(ms)
        if got is None:
            tb = self._f.bars.get(ms)
            if tb is None:
                raise ValueError(f"no {bar_s:g} s bars: add {ms} to signals.bar_intervals_ms "
                                 f"(now {list(self._f.cfg.bar_intervals_ms)})")
            got = self._bars[ms] = (Bars(tb.series.bars, self._tick, self._step, tb.interval_ns), tb.series)
        return got

    def bars(self, bar_s: float) -> Bars:
        """Closed time bars of `bar_s` seconds (an interval of signals.bar_intervals_ms), oldest first."""
        return self._series(bar_s)[0]

    def _ind(self, kind: str, bar_s: float, n: int) -> float | None:
        _, s = self._series(bar_s)
        if kind == "ema":
            if n == s.ema_fast.n:
                return s.ema_fast.value
            if n == s.ema_slow.n:
                return s.ema_slow.value
        elif kind == "rsi":
            if n == s.rsi.n:
                return s.rsi.value
        elif n == s.atr.n:
            return s.atr.value
        if n < 1:
            raise ValueError(f"{kind} period must be >= 1, got {n}")
        key = (kind, round(bar_s * 1000), n)
        ex = self._extra.get(key)
        if ex is None:
            ex = self._extra[key] = _Extra(kind, n)
        return ex.value(s)

    def ema(self, bar_s: float, n: int) -> float | None:
        """EMA(n) of the closes of `bar_s` bars (alpha 2/(n+1)), a quote price."""
        v = self._ind("ema", bar_s, n)
        return v * self._tick if v is not None else None

    def rsi(self, bar_s: float, n: int = 14) -> float | None:
        """Wilder RSI(n) of the closes of `bar_s` bars, 0..100; None until n changes were seen."""
        return self._ind("rsi", bar_s, n)

    def atr(self, bar_s: float, n: int = 14) -> float | None:
        """Wilder ATR(n) of `bar_s` bars, in quote price units."""
        v = self._ind("atr", bar_s, n)
        return v * self._tick if v is not None else None

    def profile(self) -> Profile | None:
        """Rolling volume profile (signals.profile_window_s, up to the last print): POC, VAH, VAL."""
        p = self._f.profile
        lv = p.levels() if p is not None else None
        if lv is None:
            return None
        t = self._tick
        return Profile(lv.poc_ticks * t, lv.vah_ticks * t, lv.val_ticks * t)

    # ---- funding / context -------------------------------------------------------------------------
    @property
    def funding_rate(self) -> float | None:
        """The venue's current funding rate per interval (0.0001 = 0.01 %)."""
        return self._f.funding.funding_rate

    @property
    def next_funding_ns(self) -> int | None:
        return self._f.funding.next_funding_ns

    @property
    def mark_price(self) -> float | None:
        return self._f.funding.mark_price

    def __repr__(self) -> str:
        return f"MarketView({self.symbol} now_ns={self._now} bid={self.best_bid} ask={self.best_ask})"
