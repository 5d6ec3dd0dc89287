"""The execution engine around the pure trade lifecycle (bot.execution.trade).

Two halves (issue 12 item 1, docs/architecture.md "One synchronous decision path"):
- the decision path, synchronous (no await): `on_intent` (risk, plan, journal, start the send), `on_update`,
  `on_price`, `fire_due`, `flatten_all`, `act`, each with an explicit or clock `now_ns`. The pipeline calls
  them in the market data's own step; nothing there waits for a loop turn.
- the async driver: `run()` consumes `gateway.updates()` and fires deadlines from a heap of timers (a task
  sleeping until the earliest one, woken when an earlier one is added: no polling); the order tasks
  (sending.py) await the venue. With a simulated clock the caller calls `fire_due()` as it advances time.

It takes entry intents, asks risk (gate + sizing), sends through an `ExecutionGateway` and journals the
trade and its planned legs in the same synchronous step, right after the entry's hand-off (the one write
that follows its order: tick-to-order does not wait for a commit; a crash in between is covered by restart
reconciliation and reserved trade ids, see on_intent).

Every other action of the machine is journaled before it is acted on: a later Submit's leg row (with its
intended price) is committed before `gateway.submit` is awaited. Orders go out as tasks owned by the engine's
TaskGroup, so a slow acknowledgement never stalls the update stream or the timers: the stop-confirm
deadline fires whatever the gateway does. An entry to a gateway that allows it (`eager_submit`) is
started eagerly (eager.py): the gateway's synchronous part runs before the caller goes on.

Denied (our gate) and rejected (the venue, OrderRejected) are journaled apart: `denials` / `rejections`.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

from bot.domain.types import CloseReason, EntryIntent, OrderKind, OrderStatus
from bot.execution.actions import (
    Action,
    Cancel,
    FillRecord,
    HaltSymbol,
    LegRole,
    OrderEvent,
    Schedule,
    StateChanged,
    Submit,
    TradeClosed,
    TradeState,
    Unschedule,
)
from bot.execution.guards import EngineGuards
from bot.execution.marks import MarkSampler
from bot.execution.planner import entry_terms, plan_trade, scale_in
from bot.execution.quarantine import QUARANTINE_END, EntryQuarantine
from bot.execution.sending import EntryHandOff, OrderSending
from bot.execution.trade import TradeMachine, entry_request
from bot.execution.warm import warm_entry
from bot.journal import Journal
from bot.logging import get_logger
from bot.risk import Denial, DenyReason, MarketView, RiskManager
from bot.risk.limits import Limits
from bot.venues.errors import AmbiguousOutcome, OrderRejected, RateLimited, VenueError, VenueUnavailable
from bot.venues.ports import AccountSnapshot, ExecutionGateway, OrderUpdate

if TYPE_CHECKING:
    from bot.settings.execution import ExecutionSection
    from bot.settings.risk import RiskSection

__all__ = ["ExecutionEngine"]

_PLANNED, _ENTERING = TradeState.PLANNED.value, TradeState.ENTERING.value
_RESTING = (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED)
_ID_BLOCK = 20  # trade ids reserved ahead per journal write (a restart skips at most this many)


class ExecutionEngine(EngineGuards, EntryQuarantine, OrderSending):
    def __init__(self, gateway: ExecutionGateway, risk: RiskManager, journal: Journal, cfg: ExecutionSection,
                 risk_cfg: RiskSection, *, clock: Callable[[], int] = time.time_ns) -> None:
        self.gw = gateway
        self.risk = risk
        self.journal = journal
        self.cfg = cfg
        self.risk_cfg = risk_cfg
        self.clock = clock
        self.log = get_logger("execution")
        self.trades: dict[str, TradeMachine] = {}  # live trades
        self.closed: list[TradeClosed] = []
        # ended trades stay reachable for late updates (cancel confirmations after an OCO), newest kept
        self._ended: dict[str, TradeMachine] = {}
        self._by_client: dict[str, str] = {}
        self._late_lots: dict[str, int] = {}  # client id -> cumulative lots of fills after its trade ended
        self._timers: list[tuple[int, int, str, Any]] = []
        self._seq = 0
        self._wake = asyncio.Event()
        self._tg: asyncio.TaskGroup | None = None
        self._pending: set[asyncio.Task[None]] = set()
        self.inflight: set[str] = set()  # client ids whose submit has not returned yet
        # symbol -> count of journaled changes of its trades: a reconciliation whose picture spans a change
        # of a symbol decides nothing for it (bot.execution.recovery)
        self.activity: dict[str, int] = {}
        # Trade ids ("t42", the prefix of every client id) are reserved in the journal a block ahead of use,
        # so an entry sent before its record (on_intent) never lends its id to a later trade after a crash.
        self._next_id = max(journal.count_trades(), journal.reserved_trade_ids()) + 1
        # the numbers a crashed run may have sent an entry under without its record (bot.execution.recovery_lost)
        self.unrecorded_ids = range(journal.verified_trade_ids() + 1, self._next_id)
        self._reserved_id = 0
        self._reserve_ids(self._next_id - 1 + _ID_BLOCK)
        self._leverage: dict[str, int] = {}
        # trade id -> [adverse, favourable] excursion in ticks from the first entry fill (MAE/MFE)
        self._excursion: dict[str, list[float]] = {}
        self.marks = MarkSampler()  # the price path around each trade, for the journal (the report's chart)
        self._ticks: dict[str, float] = {}  # symbol -> tick size (-1: unknown to the venue)
        self.account: AccountSnapshot | None = None
        # hooks for the bench and the live view: (name, ns) of the entry path; set by the caller
        self.on_entry_sent: Callable[[str, int], None] | None = None
        # (symbol, reason): the engine's picture may differ from the venue's (a look-up failed, a fill for
        # a trade that already ended, an input that raised); the app sets it to start a reconciliation pass
        self.on_reconcile_needed: Callable[[str, str], None] | None = None
        # change events for the operator side (bot.ops.live.OpsFeed): each is called with (machine, action)
        # for every action the engine carries out, after it was carried out; an observer must not raise
        self.observers: list[Callable[[TradeMachine, Action], None]] = []
        self.stats = dict.fromkeys(("errors", "late_fills", "lookup_retries", "protective_retries",
                                    "protective_resends", "reconcile_requests", "foreign_updates", "warmups"), 0)
        self.warm_ok = True  # warming the entry path (warm.py) until a warm-up raises (or the app turns it off)
        self.warm_last = ""  # how far the last warm-up went (warm.py), for /status

    # -- lifecycle --------------------------------------------------------------------------------------
    async def refresh_account(self) -> AccountSnapshot:
        return self.set_account(await self.gw.account())

    def set_account(self, acct: AccountSnapshot) -> AccountSnapshot:
        """A fresh account snapshot (REST after a close, a reconciliation pass, the slow check): sizing and the
        gate's drawdown follow it."""
        self.account = acct
        now = self.clock()
        self.risk.gate.on_equity(acct.equity, now)
        self._journal_gate(now)
        return acct

    async def run(self, timers: bool = True) -> None:
        """Consume the gateway's updates (and, with a real clock, fire deadlines) until cancelled."""
        if self.account is None:
            await self.refresh_account()
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            tg.create_task(self._updates_loop())
            if timers:
                tg.create_task(self._timer_loop())

    async def _updates_loop(self) -> None:
        async for u in self.gw.updates():
            self.on_update(u)  # its own error boundary: one bad update never ends the loop

    async def _timer_loop(self) -> None:
        while True:
            self.fire_due()
            delay = (self._timers[0][0] - self.clock()) / 1e9 if self._timers else None
            self._wake.clear()
            if delay is None or delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)

    def fire_due(self, now_ns: int | None = None) -> int:
        """Fire every deadline due at `now_ns` (the clock by default). Returns how many fired."""
        now = self.clock() if now_ns is None else now_ns
        fired = 0
        while self._timers and self._timers[0][0] <= now:
            at, _, tid, timer = heapq.heappop(self._timers)
            if timer is QUARANTINE_END:  # an entry of unknown fate: its final look-up (quarantine.py)
                fired += self._quarantine_due(tid)
                continue
            m = self.trades.get(tid)
            if m is not None and m.deadlines.get(timer) == at:  # else stale: moved or cleared since
                fired += 1
                try:
                    self._apply(m, m.on_timer(timer, now))
                except Exception as e:
                    self._failed(m, f"timer {timer.value}", e)
        return fired

    def _reserve_ids(self, upto: int) -> None:
        self.journal.reserve_trade_ids(upto)
        self._reserved_id = upto

    def next_deadline_ns(self) -> int | None:
        return self._timers[0][0] if self._timers else None

    async def drain(self, timeout_s: float = 5.0) -> None:
        """Wait until every order task in flight is done (tests, backtests, shutdown)."""
        async with asyncio.timeout(timeout_s):
            while self._pending:
                await asyncio.gather(*list(self._pending), return_exceptions=True)

    # -- inputs -----------------------------------------------------------------------------------------
    async def submit_intent(self, intent: EntryIntent, market: MarketView) -> str | Denial:
        """`on_intent` for a caller that may come before the first account snapshot (tests, tools): fetches
        it first. The market path calls `on_intent` itself, synchronously."""
        if self.account is None:
            await self.refresh_account()
        return self.on_intent(intent, market)

    def on_intent(self, intent: EntryIntent, market: MarketView, now_ns: int | None = None) -> str | Denial:
        """Risk, plan, send, journal: synchronous (the decision path has no await). The entry is handed to
        the gateway (eagerly, as a task of the engine: sending.py) and its durable record committed right
        after, in the same step (a symbol whose leverage must be set first: in the task that sets it, _open).
        Returns the trade id, or the Denial."""
        now = self.clock() if now_ns is None else now_ns
        acct = self.account
        if acct is None:  # sizing needs equity and free margin: nothing is sized against a guess
            self.journal.denial(now, intent.symbol, intent.setup, intent.side, "INSUFFICIENT_MARGIN",
                                "no account snapshot yet")
            return Denial(DenyReason.INSUFFICIENT_MARGIN, "no account snapshot yet")
        inst = self.gw.instrument(intent.symbol)
        terms = entry_terms(intent, self.cfg)
        decision = self.risk.assess(intent, inst, market, equity=acct.equity, free_margin=acct.available,
                                    now_ns=now, entry_ticks=terms.sizing_ticks, entry_is_maker=terms.is_maker,
                                    market_entry=terms.kind is OrderKind.MARKET)
        if isinstance(decision, Denial):
            self.journal.denial(now, intent.symbol, intent.setup, intent.side, decision.reason.value,
                                decision.detail)
            return decision
        tid_n = self._next_id
        tid = f"t{tid_n}"
        self._next_id += 1
        if tid_n > self._reserved_id:  # ids are reserved durably before use (see _reserve_ids)
            self._reserve_ids(tid_n)
        hot = self._leverage.get(intent.symbol) == decision.leverage
        sent: EntryHandOff | None = None
        if hot and self.gw.capabilities.eager_submit:
            # Send first, plan after: the entry's request needs only the terms, the first increment's size
            # and the client id; the order's own gate check (rate windows, halts) is the one its Submit would
            # make. The rest (take-profit tiers, the machine, its bookkeeping) follows the hand-off in this
            # same synchronous step, before any answer can be applied (those come in later loop turns): the
            # stop still goes on the first fill exactly as before.
            first = scale_in(decision.qty_lots, terms, inst, self.cfg, abs(terms.sizing_ticks - intent.stop_ticks))
            req = entry_request(tid, intent.symbol, 1 if intent.side == "long" else -1, terms, first[0][0],
                                intent.stop_ticks, self.cfg)
            denied = self.risk.gate.check_order(now, False, intent.symbol)
            sent = EntryHandOff(req, denied, None if denied is not None else self._hand_off(req))
        try:
            plan = plan_trade(tid, intent, inst, decision.qty_lots, terms, self.cfg, decision.risk_budget,
                              decision.leverage, costs=decision.cost)  # tiers that do not pay are dropped
            fees = self.risk.fees(intent.symbol)  # the venue's rates when read at start-up (bot/app_fees.py)
            m = TradeMachine(plan, inst, self.cfg, taker_fee_bps=fees.taker_bps, maker_fee_bps=fees.maker_bps)
        except Exception:
            if sent is not None and sent.task is not None:
                # the entry is out and no machine follows it: reconciliation finds what it did (an unknown
                # position gets its stop) as after a crash between the send and the record
                self.request_reconcile(intent.symbol, f"{tid}: planning failed after the entry was sent")
            raise
        self.trades[tid] = m
        self.activity[intent.symbol] = self.activity.get(intent.symbol, 0) + 1
        self.risk.gate.on_position(intent.symbol, decision.notional)
        if hot:
            # The hot path: nothing awaited before the entry goes out. The machine's first step is pure; the
            # durable intent (trade, planned legs, entry PENDING_NEW, PLANNED -> ENTERING) is ONE transaction,
            # committed right AFTER the entry is handed to the transport, in this same synchronous step (no
            # update of the entry can be applied before it: those come in later loop turns). A crash between
            # the two leaves an order the journal does not know: its trade id was reserved, so the restart looks
            # "<tid>-entry" up and journals the trade from the venue (recovery_lost.py), and the id is never
            # reused. The drill: tests/test_drill_send_before_record.py.
            # The record's rows are built in it too (after the send): nothing on the hot path needs them.
            actions = m.start(now, entry=sent.req if sent is not None else None)

            def record() -> None:
                self.journal.open_trade(now, *self._trade_rows(m, intent), _ENTERING, states=[
                    (None, _PLANNED, "intent accepted"), (_PLANNED, _ENTERING, "entry sent")])

            self._apply(m, actions, prejournaled=True, record=record, sent=sent)
            if self._reserved_id - tid_n < _ID_BLOCK // 4:  # after the send: the next block, off the hot path
                self._reserve_ids(tid_n + _ID_BLOCK)
        else:
            # a leverage change is a venue round trip: do it, then the entry, in a task of its own so the
            # caller (a market-data loop that also drives a simulated venue) never waits on the venue. The
            # entry then goes as on the hot path, sent then recorded (_open); nothing is journaled before it
            # (a crash meanwhile sent nothing; the id stays reserved)
            self._spawn(self._open(m, intent, decision.leverage))
        return tid

    def warm_entry(self, symbol: str, market: MarketView, bid_ticks: int, ask_ticks: int,
                   now_ns: int | None = None) -> str:
        """An entry's path on `symbol` up to the venue's signature, dropped (warm.py: keeps it in the CPU
        caches; changes nothing). Alternates long and short. A warm-up that raises turns warming off."""
        if not self.warm_ok:
            return "off"
        n = self.stats["warmups"] = self.stats["warmups"] + 1
        try:
            got = self.warm_last = warm_entry(self, symbol, market, bid_ticks, ask_ticks, "long" if n % 2 else "short",
                                              self.clock() if now_ns is None else now_ns)
            return got
        except Exception as e:  # never into the market data's step: the decision path goes on without it
            self.warm_ok = False
            self.warm_last = f"failed: {type(e).__name__}"
            self.log.warning("warm_up_failed_disabled", symbol=symbol, error=f"{type(e).__name__}: {e}")
            return "off"

    def _trade_rows(self, m: TradeMachine, intent: EntryIntent) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The journal rows of a new trade: the trade, and its planned legs (the entry PENDING_NEW)."""
        plan, lim, tid = m.plan, m.lim, m.tid
        legs = [self._leg_row(tid, cid, role._value_, req, intended, lim, "PLANNED")
                for cid, role, req, intended in m.planned_legs()]
        legs[0]["status"] = "PENDING_NEW"
        row = {
            "trade_id": tid, "symbol": intent.symbol, "setup": intent.setup, "side": intent.side,
            "intent_ts_ns": intent.ts_ns, "intent_price": lim.px(intent.price_ticks),
            "planned_qty": lim.qty(plan.planned_lots), "planned_stop_price": lim.px(plan.stop_ticks),
            "risk_budget": plan.risk_budget, "leverage": plan.leverage,
            "features": orjson.dumps(plan.features).decode(),
            # latency trail of the triggering message (0 = not stamped), for the report's breakdown
            "event_ts_ns": intent.ts_event_ns or None, "recv_ts_ns": intent.ts_recv_ns or None,
            "signal_ts_ns": intent.ts_signal_ns or None,
        }
        return row, legs

    async def _open(self, m: TradeMachine, intent: EntryIntent, leverage: int) -> None:
        try:
            await self.gw.set_leverage(m.plan.symbol, leverage)
            self._leverage[m.plan.symbol] = leverage
        except (OrderRejected, AmbiguousOutcome, VenueUnavailable, RateLimited) as e:
            self.log.warning("set_leverage_failed", symbol=m.plan.symbol, leverage=leverage, error=str(e))
        now = self.clock()

        def record() -> None:  # as on_intent's hot path: the trade's one record, right after the entry's send
            self.journal.open_trade(now, *self._trade_rows(m, intent), _ENTERING, states=[
                (None, _PLANNED, "intent accepted"), (_PLANNED, _ENTERING, "entry sent")])

        self._apply(m, m.start(now), prejournaled=True, record=record)

    def on_update(self, u: OrderUpdate, now_ns: int | None = None) -> None:
        """One order update of the venue, inside its own error boundary (counted, logged with the trade id,
        reconciliation requested; never raised into the TaskGroup)."""
        tid = self._by_client.get(u.client_id) or self._by_client.get(u.parent_id)
        m = (self.trades.get(tid) or self._ended.get(tid)) if tid else None
        if m is None:
            return
        if u.symbol and u.symbol != m.plan.symbol:
            # the same client id on another symbol is not this trade's order: an order of an older journal on
            # the same account (ids restart at t1 with a fresh journal; Bybit's execution catch-up by symbol
            # returned an earlier t1-entry on ETHUSDT into BTCUSDT's t1). Applying it would corrupt the trade.
            self.stats["foreign_updates"] += 1
            self.log.warning("update_of_another_symbol", trade_id=m.tid, client_id=u.client_id,
                             trade_symbol=m.plan.symbol, update_symbol=u.symbol, status=u.status.value)
            return
        try:
            if m.is_final and self._late_fill(m, u):
                return
            if m.state is TradeState.ABORTED and (u.filled_lots > 0 or u.status in _RESTING):
                self._reopen(m, u)
            self._apply(m, m.on_update(u, self.clock() if now_ns is None else now_ns))
        except Exception as e:
            self._failed(m, f"update of {u.client_id} ({u.status.value})", e)

    def _reopen(self, m: TradeMachine, u: OrderUpdate) -> None:
        """An ABORTED trade's entry executed after all (issue 11, late matching): live again, counted by the
        gate, its fill applied next by the caller; reconciliation asked to compare as well."""
        actions = m.reopen_late(u.client_id, self.clock())
        if not actions:
            return
        self._ended.pop(m.tid, None)
        self.trades[m.tid] = m
        self.stats["late_fills"] += 1
        self.log.error("entry_executed_late", trade_id=m.tid, client_id=u.client_id, symbol=m.plan.symbol,
                       lots=u.filled_lots)
        self._apply(m, actions)
        self._count_symbol(m.plan.symbol)  # with any other trade live there (guards.py)
        self._release_quarantine(m, "executed late: trade reopened")  # its fate is known (quarantine.py)
        self.request_reconcile(m.plan.symbol, f"{m.tid}: entry executed after it was reported not found")

    def on_price(self, symbol: str, ticks: int, now_ns: int | None = None) -> None:
        """Mark (or last) price of a symbol, in ticks: trailing, scale-in triggers, progress."""
        now = self.clock() if now_ns is None else now_ns
        tick = 0.0
        for m in list(self.trades.values()):
            if m.plan.symbol == symbol:
                tick = m.lim.tick
                if m.pos_lots and m.first_entry:
                    move = m.sign * (ticks - m.first_entry / m.lim.tick)
                    ex = self._excursion.get(m.tid)
                    if ex is None:
                        self._excursion[m.tid] = [min(0.0, move), max(0.0, move)]
                    elif move < ex[0]:
                        ex[0] = move
                    elif move > ex[1]:
                        ex[1] = move
                try:
                    self._apply(m, m.on_price(ticks, now))
                except Exception as e:
                    self._failed(m, f"price {ticks}", e)
        self._mark(symbol, ticks, tick, now)

    def mark(self, symbol: str, ticks: int, now_ns: int | None = None) -> None:
        """The price of a symbol with no trade of ours (callers skip on_price then): kept for the minute
        before a trade's path (bot.execution.marks), nothing journaled."""
        self._mark(symbol, ticks, 0.0, self.clock() if now_ns is None else now_ns)

    def _mark(self, symbol: str, ticks: int, tick: float, now: int) -> None:
        """One mark a second around trades (bot.execution.marks); batched into the journal."""
        marks = self.marks
        if not tick:  # no trade of ours on the symbol: its tick from the venue's instrument, once
            tick = self._ticks.get(symbol, 0.0)
            if not tick:
                try:
                    tick = self._ticks[symbol] = float(self.gw.instrument(symbol).tick_size)
                except Exception:  # an unknown symbol (a test double): no path for it
                    self._ticks[symbol] = -1.0
                    return
            if tick < 0:
                return
            marks.sample(symbol, ticks * tick, now, False)
        else:
            marks.sample(symbol, ticks * tick, now, True)
        if marks.flush_due(now):
            try:
                self.journal.marks(marks.take())
            except Exception as e:  # a report aid: never stops trading
                self.log.warning("marks_not_journaled", error=str(e))

    def on_touch(self, symbol: str, bid_ticks: int, ask_ticks: int, now_ns: int | None = None) -> None:
        """Best bid/ask of a symbol: a resting maker entry follows the touch (bot.execution.entry_styles)."""
        if self.cfg.entry == "taker":
            return
        now = self.clock() if now_ns is None else now_ns
        for m in list(self.trades.values()):
            if m.plan.symbol == symbol and m.state is TradeState.ENTERING:
                try:
                    self._apply(m, m.on_touch(bid_ticks, ask_ticks, now))
                except Exception as e:
                    self._failed(m, f"touch {bid_ticks}/{ask_ticks}", e)

    def flatten_all(self, reason: CloseReason = CloseReason.MANUAL) -> None:
        """Flatten every live trade; a trade already EXITING gets a new exit when none is live (trade.py)."""
        now = self.clock()
        for m in list(self.trades.values()):
            try:
                self._apply(m, m.flatten(reason, now))
            except Exception as e:
                self._failed(m, "flatten", e)

    # -- restart (bot.execution.recovery) ----------------------------------------------------------------
    def adopt(self, m: TradeMachine) -> None:
        """Take over a machine rebuilt from the journal (bot.execution.restore): its legs' updates route to it,
        the gate counts its position, and new trade ids continue after it."""
        self.trades[m.tid] = m
        for cid in m.legs:
            self._by_client[cid] = m.tid
        if m.pos_lots:
            self.risk.gate.on_position(m.plan.symbol, m.pos_lots * m.lim.step * m.avg_entry)
        if m.tid[1:].isdigit():
            self._next_id = max(self._next_id, int(m.tid[1:]) + 1)

    def route(self, client_id: str, trade_id: str) -> None:
        """Updates of `client_id` (a leg the engine did not send itself) go to `trade_id`."""
        self._by_client[client_id] = trade_id

    def act(self, m: TradeMachine, actions: list[Action]) -> None:
        """Carry out actions of a machine produced outside the engine's own inputs (restore, reconcile)."""
        self._apply(m, actions)

    # -- actions ----------------------------------------------------------------------------------------
    def _leg_row(self, tid: str, cid: str, role: str, req: Any, intended: int, lim: Limits,
                 status: str) -> dict[str, Any]:
        # the enums' `_value_` is what `.value` returns, without its descriptor (~0.2 us each, 16 per trade)
        return {
            "client_id": cid, "trade_id": tid, "role": role, "symbol": req.symbol, "side": req.side._value_,
            "kind": req.kind._value_, "qty": lim.qty(req.qty_lots),
            "intended_price": lim.px(intended) if intended else None,
            "price": lim.px(req.price_ticks) if req.price_ticks is not None else None,
            "trigger_price": lim.px(req.trigger_ticks) if req.trigger_ticks is not None else None,
            "reduce_only": req.reduce_only, "time_in_force": req.time_in_force._value_,
            "working_type": req.working_type._value_, "status": status,
        }

    def _apply(self, m: TradeMachine, actions: list[Action], prejournaled: bool = False,
               record: Callable[[], None] | None = None, sent: EntryHandOff | None = None) -> None:
        """Carry out the machine's actions in order. `prejournaled`: the first state change and the entry's
        leg row are written with the trade (on_intent's single transaction), by `record`, which the entry's
        Submit calls right after the hand-off (or before its denial is journaled). `sent`: the entry was
        already checked and handed to the gateway by on_intent (sending.py `_hand_off`)."""
        j = self.journal
        if actions:
            self.activity[m.plan.symbol] = self.activity.get(m.plan.symbol, 0) + 1
        for a in actions:
            now = self.clock()
            if isinstance(a, Submit):
                entry = prejournaled and a.leg.role is LegRole.ENTRY
                self._submit(m, a, now, journaled=entry, record=record if entry else None,
                             sent=sent if entry else None)
            elif isinstance(a, Cancel):
                self._spawn(self._cancel(m, a))
            elif isinstance(a, Schedule):
                self._seq += 1
                heapq.heappush(self._timers, (a.at_ns, self._seq, a.trade_id, a.timer))
                if self._timers[0][2:] == (a.trade_id, a.timer):
                    self._wake.set()
            elif isinstance(a, Unschedule):
                pass  # the machine ignores a deadline it no longer holds (lazy deletion from the heap)
            elif isinstance(a, StateChanged):
                if prejournaled and a.old is TradeState.PLANNED and a.new is TradeState.ENTERING:
                    continue
                j.trade_state(now, a.trade_id, a.old.value, a.new.value, a.reason, a.fields)
                if a.new is TradeState.ABORTED:
                    self._end(m)
                    self._count_symbol(m.plan.symbol)  # 0 unless another trade is live there (guards.py)
                    self._quarantine_if_unknown(m, now)  # an entry "not found" may still execute (quarantine.py)
            elif isinstance(a, OrderEvent):
                j.order_event(now, a.trade_id, a.client_id, a.status.value, reason=a.reason,
                              venue_order_id=a.venue_order_id or None)
            elif isinstance(a, FillRecord):
                lim = m.lim
                j.fill(a.ts_ns, a.trade_id, a.client_id, a.role.value, a.side, lim.qty(a.lots), a.price,
                       a.fee, a.is_maker, a.venue_trade_id, a.status.value, lim.qty(a.filled_lots), a.avg_price)
            elif isinstance(a, HaltSymbol):
                self.risk.gate.halt_symbol(a.symbol, a.reason, now)
                self._journal_gate(now)
                self.log.error("symbol_halted", symbol=a.symbol, reason=a.reason)
            elif isinstance(a, TradeClosed):
                self._end(m)
                self.closed.append(a)
                self.risk.gate.on_trade_closed(a.symbol, a.setup, a.pnl, a.reason, now)
                self._count_symbol(a.symbol)  # another trade still live there keeps it counted (guards.py)
                self._spawn(self._after_close())  # the trade's log line: the operator side (bot.ops.live)
            for obs in self.observers:
                obs(m, a)

    def _end(self, m: TradeMachine) -> None:
        self.trades.pop(m.tid, None)
        ex = self._excursion.pop(m.tid, None)
        if ex is not None and m.first_entry:
            r_ticks = abs(m.first_entry / m.lim.tick - m.plan.stop_ticks)
            fields: dict[str, Any] = {"mae_ticks": round(-ex[0], 2), "mfe_ticks": round(ex[1], 2)}
            if r_ticks > 0:
                fields.update(mae_r=round(-ex[0] / r_ticks, 4), mfe_r=round(ex[1] / r_ticks, 4))
            self.journal.update_trade(self.clock(), m.tid, fields)
        self._ended[m.tid] = m
        if len(self._ended) > 256:
            old = next(iter(self._ended))
            gone = self._ended.pop(old)
            for cid in gone.legs:
                self._by_client.pop(cid, None)

    async def _after_close(self) -> None:
        try:
            await self.refresh_account()
        except VenueError as e:  # the next close (or the caller) refreshes it; never into the TaskGroup
            self.log.warning("account_refresh_failed", error=f"{type(e).__name__}: {e}")

    def _journal_gate(self, now: int) -> None:
        for ts, entity, eid, old, new, reason in self.risk.gate.drain_state_changes():
            self.journal.state_change(ts or now, entity, eid, old, new, reason)
