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
Bar setups are evaluated when their bar closes; the absorption setup on every depth event (O(1)).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING

from bot.domain.events import FundingInfo, Trade
from bot.domain.instrument import Instrument
from bot.domain.types import EntryIntent
from bot.market.book import OrderBook
from bot.market.health import BookStatus
from bot.signals import setups as st
from bot.signals.features import SymbolFeatures

if TYPE_CHECKING:  # settings (pydantic) stay out of the core's imports
    from bot.settings.signals import SignalsSection

__all__ = ["EngineStats", "SignalEngine"]

_S = 1_000_000_000
_LIVE = BookStatus.LIVE
_BAR_SETUPS = ("momentum", "breakout_fade", "rsi_snapback")


class EngineStats:
    __slots__ = ("candidates", "intents", "vetoes")

    def __init__(self) -> None:
        self.candidates: Counter[str] = Counter()  # per setup, before the gates
        self.intents: Counter[str] = Counter()  # per setup
        self.vetoes: Counter[str] = Counter()  # per gate

    def as_dict(self) -> dict[str, dict[str, int]]:
        return {"candidates": dict(self.candidates), "intents": dict(self.intents), "vetoes": dict(self.vetoes)}


class _Sym:
    __slots__ = ("absorb_lots", "bar_seen", "f", "last_fire_ns", "status")

    def __init__(self, f: SymbolFeatures) -> None:
        self.f = f
        self.status = BookStatus.SYNCING
        self.last_fire_ns: dict[str, int] = {}
        self.bar_seen: dict[str, int] = {}  # setup -> closed-bar count already evaluated
        self.absorb_lots = 0.0


class SignalEngine:
    def __init__(self, settings: SignalsSection, instruments: Mapping[str, Instrument]) -> None:
        self.cfg = settings
        self.instruments = dict(instruments)
        self.stats = EngineStats()
        self._syms: dict[str, _Sym] = {}
        self._btc_mid: float | None = None
        c = settings
        self._bar_setups = [(name, getattr(c, name), getattr(st, name)) for name in _BAR_SETUPS
                            if getattr(c, name).enabled]
        self._absorption = c.absorption if c.absorption.enabled else None

    # ------------------------------------------------------------------ state
    def _sym(self, symbol: str, instrument: Instrument | None = None) -> _Sym | None:
        s = self._syms.get(symbol)
        if s is None:
            inst = instrument or self.instruments.get(symbol)
            if inst is None:
                return None
            s = self._syms[symbol] = _Sym(SymbolFeatures(self.cfg, inst))
        return s

    def features(self, symbol: str) -> SymbolFeatures | None:
        s = self._syms.get(symbol)
        return s.f if s is not None else None

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
        f.on_depth(book, ts_event_ns, btc if symbol != self.cfg.btc_symbol else None)
        if symbol == self.cfg.btc_symbol and f.book.valid:
            self._btc_mid = f.book.mid_ticks * f.instrument.tick
        out: list[EntryIntent] = []
        for tb in f.bars.values():
            if ts_event_ns - tb._start_ns >= tb.interval_ns:
                tb.advance(ts_event_ns)
        if self._bar_setups:
            self._eval_bars(s, ts_event_ns, now_ns, out)
        ab = self._absorption
        if ab is not None:
            if not s.absorb_lots:
                s.absorb_lots = f.quote_to_lots(ab.min_absorbed_quote)
            cand = st.absorption(f, ab, ts_event_ns, s.absorb_lots)
            if cand is not None:
                self._emit(s, "absorption", ab, cand, ts_event_ns, now_ns, out)
        return out

    def on_trade(self, trade: Trade, now_ns: int) -> list[EntryIntent]:
        s = self._sym(trade.symbol)
        if s is None:
            return []
        closed, _large = s.f.on_trade(trade.ts_event_ns, trade.price, trade.qty, not trade.buyer_is_maker)
        if not closed or not self._bar_setups:
            return []
        out: list[EntryIntent] = []
        self._eval_bars(s, trade.ts_event_ns, now_ns, out)
        return out

    def on_funding(self, info: FundingInfo, now_ns: int) -> list[EntryIntent]:
        s = self._sym(info.symbol)
        if s is not None:
            s.f.on_funding(info.mark_price, info.index_price, info.funding_rate, info.next_funding_ns,
                           info.ts_event_ns)
        return []

    # ------------------------------------------------------------------ setups
    def _eval_bars(self, s: _Sym, ts_ns: int, now_ns: int, out: list[EntryIntent]) -> None:
        f = s.f
        seen = s.bar_seen
        for name, cfg, fn in self._bar_setups:
            closed = f.bars[cfg.bar_ms].series.closed
            if seen.get(name, 0) == closed:
                continue
            seen[name] = closed
            cand = fn(f, cfg, ts_ns)
            if cand is not None:
                self._emit(s, name, cfg, cand, ts_ns, now_ns, out)

    def _emit(self, s: _Sym, name: str, cfg: object, cand: st.Candidate, ts_ns: int, now_ns: int,
              out: list[EntryIntent]) -> None:
        stats = self.stats
        stats.candidates[name] += 1
        f = s.f
        last = s.last_fire_ns.get(name)
        if last is not None and ts_ns - last < cfg.cooldown_s * _S:  # type: ignore[attr-defined]
            stats.vetoes["cooldown"] += 1
            return
        reason = self._gate(s, cand.side, ts_ns)
        if reason:
            stats.vetoes[reason] += 1
            return
        intent = st.build_intent(name, cfg, f, cand, now_ns)  # type: ignore[arg-type]
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
        ttf = f.funding.seconds_to_funding(ts_ns)
        if ttf is not None and 0 <= ttf < c.no_entry_before_funding_s:
            return "funding"
        if f.symbol != c.btc_symbol:
            mv = f.btc.btc_move_bps()
            if mv is not None and (mv <= -c.btc_veto_move_bps if side == "long" else mv >= c.btc_veto_move_bps):
                return "btc_veto"
        return ""
