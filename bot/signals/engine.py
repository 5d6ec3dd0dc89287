"""`SignalEngine`: the one object the app, the paper trader and the backtest feed.

    engine = SignalEngine(settings.signals, instruments)          # instruments: {symbol: Instrument}
    intents = engine.on_depth(symbol, book, health_status, ts_event_ns, now_ns)   # after each applied
                                                                   # depth event (book = the live DOM)
    intents = engine.on_trade(trade, now_ns)                       # bot.domain.events.Trade
    intents = engine.on_funding(info, now_ns)                      # bot.domain.events.FundingInfo -> []

Each returns a (usually empty) list of `EntryIntent` (prices in ticks of the symbol's instrument,
`ts_ns` = the `now_ns` passed in, `features` = the values that triggered it). Feature windows run on
exchange event time (`ts_event_ns`, `Trade.ts_event_ns`); `now_ns` is only stamped on intents.

Gates common to every setup (an intent is dropped, and counted in `stats.vetoes[reason]`):
- the symbol's last book health is not LIVE ("not_live");
- the spread is wider than `max_spread_ticks` ("spread");
- less than `no_entry_before_funding_s` before the next funding ("funding");
- for a symbol other than `btc_symbol`: BTC moved against the trade by >= `btc_veto_move_bps` over
  `btc_veto_window_s` ("btc_veto": a BTC drop vetoes alt longs, a BTC jump alt shorts);
- the setup fired on this symbol less than its `cooldown_s` ago ("cooldown").

Every setup is a strategy plug-in (`propose(view) -> Candidate | None`, docs/strategies.md): the four
built-ins (setups.py) first, then the user's `[signals.plugins.NAME]` in config order, all through the
same gates and `build_intent`. A plug-in is called once per closed bar of its `bar_s` (on the event
that closed it), or after every applied depth event of a LIVE book / every print (`trigger`), at most
every `min_interval_ms` of exchange time. Bar setups are evaluated when their bar closes; the
absorption setup on every depth event (O(1)).

A plug-in that raises, or returns something that is not a valid Candidate, is disabled for the run:
the engine logs it, keeps it in `failures` and hands a `PluginFailed` to `on_failure` (the app turns
it into an alert); every other setup goes on.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from bot.domain.events import FundingInfo, Trade
from bot.domain.instrument import Instrument
from bot.domain.types import EntryIntent
from bot.market.book import OrderBook
from bot.market.health import BookStatus
from bot.signals import setups as st
from bot.signals.clock import EventClock
from bot.signals.features import SymbolFeatures
from bot.signals.plugins import Plugin, PluginFailed, load_plugins, make_plugin
from bot.signals.view import Candidate, MarketView

if TYPE_CHECKING:  # settings (pydantic) stay out of the core's imports
    from bot.settings.signals import SignalsSection

__all__ = ["EngineStats", "SignalEngine"]

_S = 1_000_000_000
_LIVE = BookStatus.LIVE


class EngineStats:
    __slots__ = ("candidates", "clocks", "disabled", "intents", "vetoes")

    def __init__(self) -> None:
        self.clocks: dict[str, EventClock] = {}  # per symbol: its event clock (jumps back counted there)
        self.candidates: Counter[str] = Counter()  # per setup, before the gates
        self.intents: Counter[str] = Counter()  # per setup
        self.vetoes: Counter[str] = Counter()  # per gate
        self.disabled: dict[str, str] = {}  # strategy disabled for the run -> its error

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"candidates": dict(self.candidates), "intents": dict(self.intents),
                             "vetoes": dict(self.vetoes)}
        if self.disabled:
            d["disabled"] = dict(self.disabled)
        back = {s: c.backwards for s, c in self.clocks.items() if c.backwards}
        if back:  # the venue clock jumped back (clock.py): windows re-based, counted per symbol
            d["clock_backwards"] = back
        return d


class _Sym:
    __slots__ = ("bar_seen", "f", "last_fire_ns", "status", "view")

    def __init__(self, f: SymbolFeatures) -> None:
        self.f = f
        self.view = MarketView(f)
        self.status = BookStatus.SYNCING
        self.last_fire_ns: dict[str, int] = {}
        self.bar_seen: dict[str, int] = {}  # setup -> closed-bar count already evaluated


class SignalEngine:
    def __init__(self, settings: SignalsSection, instruments: Mapping[str, Instrument]) -> None:
        self.cfg = settings
        self.instruments = dict(instruments)
        self.stats = EngineStats()
        self._syms: dict[str, _Sym] = {}
        self._btc_mid: float | None = None
        c = settings
        plugins = [make_plugin(name, cls(getattr(c, name)), getattr(c, name), c.bar_intervals_ms, builtin=True)
                   for name, cls in st.BUILTINS.items() if getattr(c, name).enabled]
        self.user_plugins = load_plugins(c)  # ConfigError (one line) on a bad table
        if c.plugin_defaults.enabled:
            plugins += self.user_plugins
        self.plugins = plugins
        self._index()
        self.failures: list[PluginFailed] = []
        self.on_failure: Callable[[PluginFailed], object] | None = None  # the app: an alert

    def _index(self) -> None:
        ps = self.plugins
        self._bar_plugins = [p for p in ps if p.bar_ms]
        self._book_plugins = [p for p in ps if p.bar_ms or p.on_book]  # in order: bar ones checked for a close
        self._trade_plugins = [p for p in ps if p.on_trade]

    def time_limits_s(self) -> dict[str, float]:
        """setup -> time_limit_s of every strategy (the restart's recovery needs them by name)."""
        return {p.name: float(p.cfg.time_limit_s) for p in self.plugins}

    # ------------------------------------------------------------------ state
    def _sym(self, symbol: str, instrument: Instrument | None = None) -> _Sym | None:
        s = self._syms.get(symbol)
        if s is None:
            inst = instrument or self.instruments.get(symbol)
            if inst is None:
                return None
            s = self._syms[symbol] = _Sym(SymbolFeatures(self.cfg, inst))
            self.stats.clocks[symbol] = s.f.clock
        return s

    def features(self, symbol: str) -> SymbolFeatures | None:
        s = self._syms.get(symbol)
        return s.f if s is not None else None

    def view(self, symbol: str) -> MarketView | None:
        s = self._syms.get(symbol)
        return s.view if s is not None else None

    # ------------------------------------------------------------------ inputs
    def on_depth(self, symbol: str, book: OrderBook, health_status: BookStatus, ts_event_ns: int,
                 now_ns: int) -> list[EntryIntent]:
        s = self._sym(symbol, book.instrument)
        if s is None:
            return []
        s.status = health_status
        f = s.f
        if health_status is not _LIVE:
            f.book.reset()  # never pair an e_n across a resync
            return []
        btc = self._btc_mid
        view = s.view
        cum0 = f.book.ofi_cum
        f.on_depth(book, ts_event_ns, btc if symbol != self.cfg.btc_symbol else None)
        ts_event_ns = f.clock.last_ns  # the clock's time from here on (a venue clock going back: clock.py)
        if view._ofi_extra and f.book.ofi_cum != cum0:
            view._feed_depth(ts_event_ns, f.book.ofi_cum - cum0)
        if symbol == self.cfg.btc_symbol and f.book.valid:
            self._btc_mid = f.book.mid_ticks * f.instrument.tick
        out: list[EntryIntent] = []
        for tb in f.bars.values():
            if ts_event_ns - tb._start_ns >= tb.interval_ns:
                tb.advance(ts_event_ns)
        view._book = book
        plugins = self._book_plugins
        if plugins:
            view._now = ts_event_ns
            seen = s.bar_seen
            for p in plugins:
                if p.bar_ms:
                    closed = f.bars[p.bar_ms].series.closed
                    if seen.get(p.name, 0) == closed:
                        continue
                    seen[p.name] = closed
                elif p.min_interval_ns and not self._due(p, symbol, ts_event_ns):
                    continue
                self._call(s, p, ts_event_ns, now_ns, out)
        return out

    def on_trade(self, trade: Trade, now_ns: int) -> list[EntryIntent]:
        s = self._sym(trade.symbol)
        if s is None:
            return []
        f = s.f
        closed, _large = f.on_trade(trade.ts_event_ns, trade.price, trade.qty, not trade.buyer_is_maker)
        ts = f.clock.last_ns  # the clock's time (clock.py)
        view = s.view
        if view._flow_extra:
            view._feed_trade(ts, f.flow.last_lots, f.flow.last_buy)
        bar_ps = self._bar_plugins if closed else ()
        trade_ps = self._trade_plugins
        if not bar_ps and not trade_ps:
            return []
        out: list[EntryIntent] = []
        view._now = ts
        if bar_ps:
            seen = s.bar_seen
            for p in bar_ps:
                n = f.bars[p.bar_ms].series.closed
                if seen.get(p.name, 0) == n:
                    continue
                seen[p.name] = n
                self._call(s, p, ts, now_ns, out)
        for p in trade_ps:
            if p.min_interval_ns and not self._due(p, trade.symbol, ts):
                continue
            self._call(s, p, ts, now_ns, out)
        return out

    def on_funding(self, info: FundingInfo, now_ns: int) -> list[EntryIntent]:
        s = self._sym(info.symbol)
        if s is not None:
            s.f.on_funding(info.mark_price, info.index_price, info.funding_rate, info.next_funding_ns,
                           info.ts_event_ns)
        return []

    # ------------------------------------------------------------------ strategies
    @staticmethod
    def _due(p: Plugin, symbol: str, ts_ns: int) -> bool:
        last = p.last_call_ns.get(symbol)
        if last is not None and 0 <= ts_ns - last < p.min_interval_ns:
            return False
        p.last_call_ns[symbol] = ts_ns
        return True

    def _call(self, s: _Sym, p: Plugin, ts_ns: int, now_ns: int, out: list[EntryIntent]) -> None:
        try:
            cand = p.propose(s.view)
            if cand is None:
                return
            if p.builtin:
                stop_t, tgt_t, feats = cand.stop_ticks, cand.target_ticks, dict(cand.features)
            else:
                stop_t, tgt_t, feats = _checked(cand, s.f.instrument)
        except Exception as e:  # a strategy's bug must not stop the bot: disable it for the run
            self._disable(p, s.f.symbol, ts_ns, e)
            return
        self._emit(s, p, cand.side, stop_t, tgt_t, feats, cand.tag, ts_ns, now_ns, out)  # type: ignore[arg-type]

    def _disable(self, p: Plugin, symbol: str, ts_ns: int, e: BaseException) -> None:
        from bot.logging import get_logger

        text = " ".join(str(e).split())
        ev = PluginFailed(p.name, symbol, ts_ns, f"{type(e).__name__}: {text}" if text else type(e).__name__)
        self.plugins = [q for q in self.plugins if q is not p]
        self._index()
        self.failures.append(ev)
        self.stats.disabled[p.name] = ev.error
        get_logger("signals").error("strategy_disabled", strategy=p.name, symbol=symbol, error=ev.error,
                                    ts_event_ns=ts_ns)
        if self.on_failure is not None:
            self.on_failure(ev)

    def _emit(self, s: _Sym, p: Plugin, side: str, stop_ticks: float, target_ticks: float | None,
              feats: dict[str, float], tag: str, ts_ns: int, now_ns: int, out: list[EntryIntent]) -> None:
        stats = self.stats
        name = p.name
        cfg = p.cfg
        stats.candidates[name] += 1
        f = s.f
        last = s.last_fire_ns.get(name)
        if last is not None and ts_ns - last < cfg.cooldown_s * _S:
            stats.vetoes["cooldown"] += 1
            return
        reason = self._gate(s, side, ts_ns)
        if reason:
            stats.vetoes[reason] += 1
            return
        intent = st.build_intent(name, cfg, f, side, stop_ticks, target_ticks, feats, now_ns, tag)
        if intent is None:
            stats.vetoes["stop_too_wide"] += 1
            return
        s.last_fire_ns[name] = ts_ns
        stats.intents[name] += 1
        out.append(intent)

    def _gate(self, s: _Sym, side: str, ts_ns: int) -> str:
        f = s.f
        c = self.cfg
        if s.status is not _LIVE or not f.book.valid:
            return "not_live"
        if f.book.spread_ticks > c.max_spread_ticks:
            return "spread"
        ttf = f.funding.seconds_to_funding(f.clock.raw_ns)  # absolute venue times: the venue's own clock
        if ttf is not None and 0 <= ttf < c.no_entry_before_funding_s:
            return "funding"
        if f.symbol != c.btc_symbol:
            mv = f.btc.btc_move_bps()
            if mv is not None and (mv <= -c.btc_veto_move_bps if side == "long" else mv >= c.btc_veto_move_bps):
                return "btc_veto"
        return ""


def _finite(x: object, what: str) -> float:
    if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
        raise ValueError(f"Candidate.{what} must be a finite number, got {x!r}")
    return float(x)


def _ticks(price: float, inv_tick: float) -> float:
    """A quote price in ticks; a price on the tick grid gives its exact integer (no 0.1 * 10 drift)."""
    t = price * inv_tick
    r = round(t)
    return float(r) if abs(t - r) < 1e-6 else t


def _checked(cand: object, inst: Instrument) -> tuple[float, float | None, dict[str, float]]:
    """A user plug-in's return value, validated: (stop in ticks, target in ticks or None, features)."""
    if not isinstance(cand, Candidate):
        raise TypeError(f"propose() must return a bot.strategy.Candidate or None, got {type(cand).__name__}")
    if cand.side not in ("long", "short"):
        raise ValueError(f"Candidate.side must be 'long' or 'short', got {cand.side!r}")
    if not isinstance(cand.tag, str):
        raise TypeError(f"Candidate.tag must be a str, got {type(cand.tag).__name__}")
    inv = 1.0 / inst.tick
    stop = (_finite(cand.stop_ticks, "stop_ticks") if cand.stop_ticks is not None
            else _ticks(_finite(cand.stop, "stop"), inv))
    if cand.target_ticks is not None:
        tgt: float | None = _finite(cand.target_ticks, "target_ticks")
    elif cand.target is not None:
        tgt = _ticks(_finite(cand.target, "target"), inv)
    else:
        tgt = None
    if stop <= 0 or (tgt is not None and tgt <= 0):
        raise ValueError(f"Candidate prices must be > 0 (stop {cand.stop!r}, target {cand.target!r})")
    feats = {str(k): _finite(v, f"features[{k!r}]") for k, v in (cand.features or {}).items()}
    return stop, tgt, feats
