"""The trading pipeline: market events -> book sync -> signals -> risk + execution, for any source.

One object serves every way the bot meets a market, so live, paper and sim run the same code:
- `on_raw(raw, recv_ns)`: a raw message (the in-process simulator's generator, a recorded session):
  parsed and sequenced by the market session (bot.market.session), one `BinanceBookSync` per symbol;
- `on_synced(ev, sync, now_ns)`: an event a venue feed has already sequenced into its own book
  (`BinanceMarketFeed` / `BybitMarketFeed` call back after the book update).

After every depth event that changed the book, the signal layer is asked for intents; each goes to
the execution engine (`on_intent`) with the market view the risk gate needs. Every method is synchronous
(issue 12): the app calls it in the feed's own step, no task per market event; the only tasks an event
can start are the engine's order sends. The open trades follow the mid
(trailing, no-progress). The RuntimeState (ops endpoints, terminal view) is told about message rates,
denials and the event-to-decision latency (receive time of the triggering message -> intent handled).

Each intent leaves stamped with its latency trail (EntryIntent.stamped): the triggering message's
exchange event time and receive time, and the clock right after the signal engine returned it; the
engine journals them with the trade, the report breaks the path down (bot.journal.report).

`keep_warm(interval_s)` (execution.warm_interval_ms; the app runs it as a task, replays never do): every
interval, the engine runs an entry's path on the next symbol that could take one (a LIVE book, no open trade)
up to the venue's signature and drops it (bot/execution/warm.py), so a real entry finds its code in the CPU
caches. It runs between market messages, never inside one's step.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bot.domain.events import DepthDiff, DepthSnapshot, FundingInfo, Trade
from bot.market.health import BookStatus
from bot.market.session import DepthUpdate, MarketSession, Sync
from bot.risk import MarketView

if TYPE_CHECKING:
    from bot.domain.instrument import Instrument
    from bot.domain.types import EntryIntent
    from bot.execution.engine import ExecutionEngine
    from bot.ops.state import RuntimeState
    from bot.signals import SignalEngine

__all__ = ["Pipeline"]


class Pipeline:
    def __init__(self, instruments: dict[str, Instrument], signals: SignalEngine, engine: ExecutionEngine | None,
                 state: RuntimeState | None = None, *, depth_bps: float = 200.0,
                 clock: Callable[[], int] | None = None, max_book_age_ms: float = 500.0) -> None:
        self.instruments = instruments
        self.signals = signals
        self.engine = engine
        self.state = state
        self.depth_bps = depth_bps
        self.clock = clock
        self.max_book_age_ms = max_book_age_ms  # market.max_book_age_ms: entries need a fresh book
        if state is not None:
            state.book_max_age_ms = max_book_age_ms
        # raw messages (in-process sim, replays) go through one market session; venue feeds that keep
        # their own syncs register them in the same dict (app.py)
        self.session = MarketSession(instruments, depth_bps, book_tickers=False, on_new_sync=self._new_book)
        self.syncs: dict[str, Sync] = self.session.syncs
        self.next_funding_ns: dict[str, int] = {}
        self.funding_rate_bps: dict[str, float] = {}  # the next funding's rate (markPrice "r"), for the cost gate
        self.warming = True  # keep_warm warms while this is set (the bench's A/B turns it off)
        self._warm_turn = 0  # round robin over the symbols
        self.malformed = 0
        self.intents = 0
        self.denials = 0

    # ------------------------------------------------------------------ raw messages (sim, replay)
    def _new_book(self, symbol: str, sync: Sync) -> None:
        if self.state is not None:
            self.state.track_book(symbol, sync.health, sync.stats)

    def on_raw(self, raw: bytes, recv_ns: int) -> None:
        """One raw message through the market session (bot.market.session: parse -> sequence -> book,
        its own error boundary per message, issue 11): a malformed one (bad JSON, bad values, levels the
        book cannot apply: that symbol then resyncs) is counted and skipped. Only the decoding and
        sequencing are inside it: what the signals and the engine do with a good event is theirs."""
        ses = self.session
        before = ses.malformed
        outs = ses.feed(raw, recv_ns)
        if ses.malformed != before:
            self._malformed(ses.last_error, recv_ns)
        for out in outs:
            if type(out) is DepthUpdate:
                if type(out.event) is DepthSnapshot and not out.sync.health.is_live:
                    continue  # applied, waiting for the diff that bridges it
                self.on_synced(out.event, out.sync, recv_ns)
            else:
                self.on_synced(out, self.syncs.get(out.symbol), recv_ns)

    def _malformed(self, error: str, recv_ns: int) -> None:
        self.malformed += 1
        if self.state is not None:
            self.state.on_error("market.parse", error[:200], recv_ns)

    # ------------------------------------------------------------------ sequenced events (all sources)
    def on_synced(self, ev: Any, sync: Sync | None, now_ns: int) -> None:
        state = self.state
        if isinstance(ev, DepthDiff | DepthSnapshot):
            if state is not None:
                state.on_message(ev.symbol, "depth", now_ns)
            if sync is None or sync.book.bbo() is None:
                return
            intents = self.signals.on_depth(ev.symbol, sync.book, sync.health.status, ev.ts_event_ns, now_ns)
            if intents:
                intents = self._stamp(intents, ev, now_ns)
            engine = self.engine
            if engine is not None:
                mid = sync.book.mid_ticks()
                if mid is not None and engine.trades:
                    engine.on_price(ev.symbol, int(mid))
                    bid, ask = sync.book.best_bid_ticks, sync.book.best_ask_ticks
                    if bid is not None and ask is not None:
                        engine.on_touch(ev.symbol, bid, ask)  # a resting maker entry follows the touch
                elif mid is not None:
                    engine.mark(ev.symbol, int(mid))  # the minute before a trade, for its price path
            if intents:
                self._submit(intents, sync, ev.ts_recv_ns)
        elif isinstance(ev, Trade):
            if state is not None:
                state.on_message(ev.symbol, "trade", now_ns)
            intents = self.signals.on_trade(ev, now_ns)
            if intents and sync is not None and sync.book.bbo() is not None:
                self._submit(self._stamp(intents, ev, now_ns), sync, ev.ts_recv_ns)
        elif isinstance(ev, FundingInfo):
            if state is not None:
                state.on_message(ev.symbol, "mark", now_ns)
            if ev.next_funding_ns:
                self.next_funding_ns[ev.symbol] = ev.next_funding_ns
            if ev.funding_rate is not None:
                self.funding_rate_bps[ev.symbol] = ev.funding_rate * 1e4
            self.signals.on_funding(ev, now_ns)

    def _stamp(self, intents: list[EntryIntent], ev: Any, now_ns: int) -> list[EntryIntent]:
        """The latency trail: exchange event time and receive time of `ev`, and now (signal emitted)."""
        signal_ns = self.clock() if self.clock is not None else now_ns
        recv_ns = ev.ts_recv_ns or now_ns
        return [i.stamped(ev.ts_event_ns, recv_ns, signal_ns) for i in intents]

    def _view(self, sync: Sync, bid: int, ask: int, now_ns: int) -> MarketView:
        """What the risk gate reads of the symbol's market at `now_ns`."""
        return MarketView(book_live=sync.health.status is BookStatus.LIVE,
                          spread_bps=(ask - bid) / ((ask + bid) / 2) * 1e4,
                          next_funding_ns=self.next_funding_ns.get(sync.symbol, 0),
                          book_age_ms=sync.health.age_ms(now_ns), max_book_age_ms=self.max_book_age_ms,
                          funding_rate_bps=self.funding_rate_bps.get(sync.symbol, 0.0), book=sync.book)

    def warm_next(self, now_ns: int) -> str:
        """One warm-up (bot/execution/warm.py) on the next symbol, in turn, whose book is LIVE and that has no
        open trade (a symbol with one takes no entry: nothing there to keep warm). What it reached, or "idle"."""
        engine = self.engine
        if engine is None or not engine.warm_ok:
            return "idle"
        syms = list(self.syncs)
        held = engine.risk.gate.open_notional
        for i in range(len(syms)):
            sync = self.syncs[syms[(self._warm_turn + i) % len(syms)]]
            if sync.health.status is not BookStatus.LIVE or sync.symbol in held:
                continue
            self._warm_turn += i + 1
            bid, ask = sync.book.best_bid_ticks, sync.book.best_ask_ticks
            if bid is None or ask is None:
                continue
            return engine.warm_entry(sync.symbol, self._view(sync, bid, ask, now_ns), bid, ask, now_ns)
        return "idle"

    async def keep_warm(self, interval_s: float) -> None:
        """`warm_next` every `interval_s` while `warming`. Why a timer and not the market messages: the path goes
        cold within milliseconds idle on this kind of host, and one symbol's depth stream is 100-250 ms apart.
        Below 1 ms it spins: a warm-up at every turn of the event loop (`sleep(0)`; libuv's timers count whole
        milliseconds anyway), so the loop never sleeps and one core stays busy: the lowest latency, for an
        operator who gives the bot a core of its own (docs/architecture.md "Entry path latency")."""
        clock = self.clock
        wait_s = 0.0 if interval_s < 0.001 else interval_s
        while True:
            await asyncio.sleep(wait_s)
            if self.warming:
                self.warm_next(clock() if clock is not None else 0)

    def _submit(self, intents: list[EntryIntent], sync: Sync, recv_ns: int) -> None:
        self.intents += len(intents)
        engine = self.engine
        if engine is None:
            return
        book = sync.book
        bid, ask = book.best_bid_ticks, book.best_ask_ticks
        assert bid is not None and ask is not None
        now_ns = self.clock() if self.clock is not None else recv_ns
        view = self._view(sync, bid, ask, now_ns)
        for intent in intents:
            res = engine.on_intent(intent, view)
            if self.state is not None:
                now = self.clock() if self.clock is not None else intent.ts_ns
                self.state.observe_latency("event_to_decision", max(0, now - recv_ns))
                if not isinstance(res, str):
                    self.denials += 1
                    self.state.on_denial(res.reason.value)
