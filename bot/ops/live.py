"""The operator side of a running bot: a component that reacts to the engine's change events.

    feed = OpsFeed(state, alerts, engine, venue="binance-usdm")   # subscribes to engine.observers
    feed.syncs = pipeline.syncs; feed.recovery = recovery; ...     # what the slow tick reads
    tg.create_task(feed.run())                                      # the slow tick (1 s) and the view

What each engine action does (`on_action`, synchronous, O(legs of one symbol)):
- `Submit`: counts `scalper_orders_total{kind=<leg role>,result="sent"}` and remembers when the request was
  handed over; the first venue answer for that client id (an `OrderEvent`: REST ack, stream update or
  rejection) is observed as `scalper_order_ack_seconds`. Every later status change of the order counts
  once under its result (`ack`, `partially_filled`, `filled`, `triggered`, `canceled`, `expired`,
  `rejected`, `denied` by our own gate).
- Any action of a trade: the symbol's position (side, qty, average entry, the stop price and whether the
  venue confirmed it, the take-profit prices) and its resting orders are rebuilt from the engine's picture
  into the runtime state (`/status` `positions` and `open_orders`, the views), once per event-loop turn
  (`flush`, scheduled with call_soon: off the decision path, one rebuild for a batch of actions).
- `FillRecord` / `TradeClosed`: the canonical trade log lines (`trade_entry` per entry fill, `trade_exit`
  per exit fill, `trade_close` per close, the fields of `TRADE_FIELDS`; README "Trade log lines"); a close
  also feeds the realised PnL and fees, and a stop-out alerts.
- A trade state change, a close or a symbol halt: the trading state, symbol halts and reconciliation
  counters are synced and their transitions alerted (halts and resumes once per transition).

A gateway that declares `capabilities.order_transport` (Binance, Bybit) is tracked at construction: its
order transport snapshot is read live by /status and /metrics (no event, no tick).

The slow tick (`run`, every `tick_s`) does only what has no event of its own: a book's health (its sync
owns it), the unrealised PnL from the last price, the slow REST account check (`account_check_s`; equity is
also refreshed after every closed trade), the terminal view. A failure in a handler or a tick is logged
(`ops_failed`), counted in `/status` `last_errors` and alerted; the bot goes on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, cast

from bot.domain.types import CloseReason, OrderStatus
from bot.execution.actions import (
    FillRecord,
    HaltSymbol,
    LegRole,
    OrderEvent,
    Schedule,
    StateChanged,
    Submit,
    TradeClosed,
    Unschedule,
)
from bot.execution.recovery import RECONCILING
from bot.logging import get_logger
from bot.ops.legs import publish as publish_legs
from bot.venues.ports import OrderTransportReport

if TYPE_CHECKING:
    from bot.execution.actions import Action
    from bot.execution.engine import ExecutionEngine
    from bot.execution.trade import TradeMachine
    from bot.ops.alerts import Alerts
    from bot.ops.state import RuntimeState

__all__ = ["TRADE_FIELDS", "OpsFeed"]

# The canonical trade lines `trade_entry`, `trade_exit`, `trade_close` (the log's `event`) carry these fields,
# in this order, on every venue (None where a field does not apply). leg: the order's role (entry, add, stop,
# tp, exit); qty/price/fee: this fill;
# position_qty: the position after it; stop_price: the trade's current stop; pnl/fees/r/reason: on close.
TRADE_FIELDS = ("venue", "trade_id", "symbol", "setup", "side", "leg", "client_id", "qty", "price",
                "fee", "position_qty", "avg_entry", "stop_price", "reason", "pnl", "fees", "r")
_ENTRY_ROLES = (LegRole.ENTRY, LegRole.ADD)
_QUIET = (Schedule, Unschedule)  # deadlines: nothing the operator sees changes
_GATE = (StateChanged, TradeClosed, HaltSymbol)  # what can move the gate's state or a symbol halt
_LIVE = (OrderStatus.PENDING_NEW, OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED, OrderStatus.TRIGGERED)


def _result(a: OrderEvent) -> str:
    if a.status is OrderStatus.CANCELED and a.reason.startswith("denied"):
        return "denied"
    return "ack" if a.status is OrderStatus.NEW else a.status.value.lower()


class OpsFeed:
    def __init__(self, state: RuntimeState, alerts: Alerts, engine: ExecutionEngine, *, venue: str = "",
                 tick_s: float = 1.0, account_check_s: float = 60.0,
                 clock: Callable[[], int] = time.time_ns) -> None:
        self.state = state
        self.alerts = alerts
        self.engine = engine
        self.venue = venue
        self.tick_s = tick_s
        self.account_check_s = account_check_s
        self.clock = clock
        self.log = get_logger("ops")
        self.syncs: Mapping[str, Any] = {}  # symbol -> book sync (its .health): feed loss/restore alerts
        self.recovery: Any = None  # bot.execution.recovery.Recovery: its counters into /status
        self.watch_stats: Mapping[str, int] = {}  # bot.app_watch's counters
        self.draw: Callable[[], None] | None = None  # the terminal view, when attached to one
        self._dirty: set[str] = set()  # symbols whose position / resting orders need a rebuild (flush)
        self._flush_soon = False
        self._sent_ns: dict[str, int] = {}  # client id -> perf_counter_ns when handed to the gateway
        self._order_status: dict[str, OrderStatus] = {}  # client id -> last status counted
        self._feed_status: dict[str, str] = {}
        self._symbols_alerted: set[str] = set()
        self._trading_alerted = "ACTIVE"
        self._account_at = time.monotonic()
        self._last_account: Any = None
        self.failures = 0
        engine.observers.append(self.on_action)
        gw = engine.gw
        if gw.capabilities.order_transport:  # REST or the order websocket: /status, /metrics, read live
            state.track_order_transport(gw.name, cast(OrderTransportReport, gw).order_transport_state)

    # ------------------------------------------------------------------ engine change events
    def on_action(self, m: TradeMachine, a: Action) -> None:
        """One action the engine carried out. Never raises into the engine: a failure is logged and alerted."""
        if isinstance(a, _QUIET):
            return
        try:
            if isinstance(a, Submit):
                self._submitted(a)
            elif isinstance(a, OrderEvent):
                self._order_event(m, a)
            elif isinstance(a, FillRecord):
                self._fill(m, a)
            elif isinstance(a, TradeClosed):
                self._closed(m, a)
            self._dirty.add(m.plan.symbol)
            if not self._flush_soon:  # once per loop turn, off the decision path: a batch of actions -> one rebuild
                self._flush_soon = True
                asyncio.get_running_loop().call_soon(self.flush)
            if isinstance(a, _GATE):
                self.sync(self.clock())
        except Exception as e:
            self.failed(f"engine event {type(a).__name__} of {m.tid}", e)

    def flush(self) -> None:
        """The positions and resting orders of the symbols whose trades changed since the last flush."""
        self._flush_soon = False
        dirty, self._dirty = self._dirty, set()
        for sym in dirty:
            try:
                self.refresh_symbol(sym)
            except Exception as e:
                self.failed(f"position of {sym}", e)
        try:  # stops, targets and every resting order of the live trades (bot.ops.legs: the web view's too)
            publish_legs(self.state, self.engine.trades.values())
        except Exception as e:
            self.failed("resting orders", e)

    def _submitted(self, a: Submit) -> None:
        leg = a.leg
        if leg.done:  # refused by our own gate before it left: counted as "denied" by its OrderEvent
            return
        self.state.on_order(leg.role.value, "sent")
        self._sent_ns[leg.client_id] = time.perf_counter_ns()
        self._order_status[leg.client_id] = OrderStatus.PENDING_NEW

    def _order_event(self, m: TradeMachine, a: OrderEvent) -> None:
        self._answered(m, a.client_id, a.status, _result(a), denied=a.reason.startswith("denied"))

    def _answered(self, m: TradeMachine, cid: str, status: OrderStatus, result: str, denied: bool = False) -> None:
        """A status of an order from the venue (an OrderEvent, or the status a fill left it in)."""
        sent = self._sent_ns.pop(cid, None)
        if sent is not None and not denied:
            # the venue's first answer (REST ack, stream update, fill or rejection) after the hand-over
            self.state.observe_latency("order_ack", time.perf_counter_ns() - sent)
        if self._order_status.get(cid) is status:
            return  # the same status told twice (the REST answer and the stream): counted once
        leg = m.legs.get(cid)
        self.state.on_order(leg.role.value if leg is not None else "unknown", result)
        if status.is_final:
            self._order_status.pop(cid, None)
        else:
            self._order_status[cid] = status

    def _fill(self, m: TradeMachine, a: FillRecord) -> None:
        self._answered(m, a.client_id, a.status, a.status.value.lower())
        self._trade_line(m, "entry" if a.role in _ENTRY_ROLES else "exit", leg=a.role.value,
                         client_id=a.client_id, qty=m.lim.qty(a.lots), price=a.price, fee=round(a.fee, 6))

    def _closed(self, m: TradeMachine, a: TradeClosed) -> None:
        self.state.on_trade_closed(a.reason.value, a.pnl, a.fees)
        self._trade_line(m, "close", reason=a.reason.value, pnl=round(a.pnl, 4), fees=round(a.fees, 4),
                         r=round(a.r_multiple, 3), price=round(m.exit_value / m.exit_lots, 10) if m.exit_lots else None,
                         qty=m.lim.qty(m.max_pos_lots))
        if a.reason is CloseReason.STOP_LOSS:
            self.alerts.stop_out(a.symbol, m.plan.side, trade_id=a.trade_id, stop_price=m.lim.px(m.stop_ticks),
                                 exit_price=m.exit_value / m.exit_lots if m.exit_lots else 0.0, pnl_quote=a.pnl,
                                 r_multiple=a.r_multiple)

    def _trade_line(self, m: TradeMachine, event: str, **fields: Any) -> None:
        """One canonical `trade_<event>` line: every field of TRADE_FIELDS, in order, None where it does not apply."""
        base: dict[str, Any] = {
            "venue": self.venue, "trade_id": m.tid, "symbol": m.plan.symbol,
            "setup": m.plan.setup, "side": m.plan.side, "position_qty": m.lim.qty(m.pos_lots),
            "avg_entry": round(m.avg_entry, 10) if m.avg_entry else None,
            "stop_price": m.lim.px(m.stop_ticks) if m.stop_ticks else None}
        base.update(fields)
        self.log.info(f"trade_{event}", **{k: base.get(k) for k in TRADE_FIELDS})

    # ------------------------------------------------------------------ the engine's picture -> the state
    def refresh_symbol(self, symbol: str) -> None:
        """The symbol's position, rebuilt from the engine's live trades (its stops and targets, and every
        resting order, come with `publish_legs` in `flush`)."""
        st = self.state
        qty, value, upnl = 0.0, 0.0, 0.0
        side = ""
        stops: list[dict[str, Any]] = []
        targets: list[float] = []
        trade_ids: list[str] = []
        for m in self.engine.trades.values():
            if m.plan.symbol != symbol or not m.pos_lots:
                continue
            lim = m.lim
            trade_ids.append(m.tid)
            side = m.plan.side
            q = lim.qty(m.pos_lots)
            qty += q
            value += m.avg_entry * q
            if m.last_ticks:
                upnl += m.sign * (m.last_ticks * lim.tick - m.avg_entry) * q
            stop = m.stop_leg
            stops.append({"trade_id": m.tid, "price": lim.px(m.stop_ticks),
                          "status": stop.status.value if stop is not None else None,
                          "confirmed": bool(stop is not None and stop.confirmed and not stop.done)})
            targets.extend(lim.px(leg.req.price_ticks) for leg in m.legs.values()
                           if leg.role is LegRole.TP and leg.status in _LIVE and leg.req.price_ticks is not None)
        if not qty:
            st.clear_position(symbol)
            return
        # several trades on one symbol: the stop nearest the market is the one that fires first
        nearest = max if side == "long" else min
        st.set_position(symbol, side=side, qty=round(qty, 12), entry_price=round(value / qty, 10),
                        stop_price=nearest(s["price"] for s in stops), unrealized_pnl_quote=round(upnl, 6),
                        stops=stops, targets=sorted(targets), trade_ids=trade_ids,
                        stop_confirmed=all(s["confirmed"] for s in stops))

    def open_positions(self) -> list[dict[str, Any]]:
        """What a shutdown leaves open: per live trade holding a position, its stop and whether the venue
        confirmed it (the `shutdown_complete` line)."""
        out = []
        for m in self.engine.trades.values():
            if not m.pos_lots:
                continue
            stop = m.stop_leg
            out.append({"trade_id": m.tid, "symbol": m.plan.symbol, "side": m.plan.side,
                        "qty": m.lim.qty(m.pos_lots), "stop_price": m.lim.px(m.stop_ticks),
                        "stop_client_id": stop.client_id if stop is not None else None,
                        "stop_status": stop.status.value if stop is not None else "none"})
        return out

    # ------------------------------------------------------------------ gate, halts, reconciliation
    def sync(self, now: int) -> None:
        """The gate's trading state and symbol halts and the reconciliation's counters into the state, and
        their transitions alerted (once each)."""
        st, gate = self.state, self.engine.risk.gate
        if gate.state.value != st.trading_state:
            st.set_trading_state(gate.state.value, gate.state_reason, now)
        st.set_symbol_halts(gate.symbol_halts())
        st.quarantined_symbols = {sym: dict(held) for sym, held in gate.quarantined.items()}
        eng = self.engine  # the entry path kept warm (bot/execution/warm.py)
        st.entry_warm = {"on": eng.warm_ok, "warm_ups": eng.stats["warmups"], "last": eng.warm_last}
        rec = self.recovery
        if rec is not None:
            w = self.watch_stats
            st.set_reconcile(runs=rec.runs, failures=rec.failures, failures_total=rec.failures_total,
                             last_ok_ns=rec.last_ok_ns, last_failed_ns=rec.last_failed_ns,
                             last_error=rec.last_error, actions={
                                 **rec.stats, "stream_misses": rec.missed_total,
                                 "position_mismatches": w.get("position_mismatches", 0),
                                 "inflight_checks": w.get("inflight_checks", 0),
                                 "stream_reconnects": w.get("reconnects_asked", 0)})
        for sym, h in st.halted_symbols.items():
            if sym not in self._symbols_alerted:
                self.alerts.symbol_halt(sym, h["reason"])
        for sym in self._symbols_alerted - st.halted_symbols.keys():
            self.alerts.symbol_resume(sym)
        self._symbols_alerted = set(st.halted_symbols)
        if st.trading_state == "HALTED" and st.trading_reason == RECONCILING:
            pass  # routine at every start; a failing reconciliation alerts on its own
        elif st.trading_state != self._trading_alerted:
            if st.trading_state == "HALTED":
                self.alerts.halt(st.trading_reason)
            elif self._trading_alerted == "HALTED":
                self.alerts.resume(st.trading_reason)
            self._trading_alerted = st.trading_state

    def _books(self) -> None:
        for sym, sync in self.syncs.items():
            status = sync.health.status.value
            before = self._feed_status.get(sym)
            if before == "LIVE" and status in ("STALE", "SYNCING", "CROSSED"):
                self.alerts.feed_lost(sym, f"{status}: {sync.health.reason}")
            elif before in ("STALE", "SYNCING", "CROSSED") and status == "LIVE":
                self.alerts.feed_restored(sym)
            self._feed_status[sym] = status

    # ------------------------------------------------------------------ account
    def on_account(self, acct: Any) -> None:
        """An account snapshot (REST after a close, the slow check): balance, equity, free margin."""
        self.state.set_account(equity=acct.equity, available=acct.available, wallet_balance=acct.wallet_balance,
                               now_ns=self.clock(), source="rest")

    def on_balance(self, b: Any) -> None:
        """The wallet from the user stream (bot.domain.orders.BalanceUpdate, Binance ACCOUNT_UPDATE): balance
        and equity (wallet + the open positions' unrealised PnL) move with every fill between REST checks;
        free margin stays the REST snapshot's. Other assets than the account's are ignored."""
        acct = self.state.account
        asset = self.state.info.get("quote_asset", "USDT")
        if b.asset != asset or not acct:
            return
        self.state.set_account(equity=b.wallet_balance + self.state.unrealized_pnl_quote,
                               available=acct["available"], wallet_balance=b.wallet_balance, now_ns=self.clock(),
                               source="user stream")

    async def check_account(self) -> None:
        """The slow REST check of the account, when nothing else fetched it for `account_check_s` (the
        engine refreshes it after every closed trade, reconciliation with each pass)."""
        self._account_at = time.monotonic()
        acct = self._last_account = await self.engine.refresh_account()
        self.on_account(acct)

    # ------------------------------------------------------------------ the slow tick
    def failed(self, what: str, e: BaseException) -> None:
        self.failures += 1
        msg = f"{what}: {type(e).__name__}: {e}"
        self.log.error("ops_failed", what=what, error=f"{type(e).__name__}: {e}")
        self.state.on_error("ops", msg, self.clock())
        self.alerts.error("ops", msg)

    async def tick(self) -> None:
        now = self.clock()
        self.sync(now)
        self._books()
        for sym in {m.plan.symbol for m in self.engine.trades.values()} | set(self.state.positions):
            self.refresh_symbol(sym)  # the unrealised PnL follows the last price
        acct = self.engine.account
        if acct is not None and acct is not self._last_account:  # fetched since (a close, a reconciliation)
            self._last_account = acct
            self._account_at = time.monotonic()
            self.on_account(acct)
        if self.account_check_s and time.monotonic() - self._account_at >= self.account_check_s:
            await self.check_account()
        if self.draw is not None:
            self.draw()

    async def run(self) -> None:
        """Every `tick_s` until cancelled; a failing tick is logged and alerted, the next one runs."""
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                self.failed("ops tick", e)
            await asyncio.sleep(self.tick_s)
