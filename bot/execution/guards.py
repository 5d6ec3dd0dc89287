"""The engine's guards (a mixin of ExecutionEngine, split out of engine.py to keep it small): what happens
when an input cannot be applied, and what a shutdown may not leave behind (issue 11 items 1 and 4).

- Every input (order update, price, timer, operator flatten) is applied inside an error boundary: what it
  raises is counted (`stats["errors"]`), logged with the trade id, and reconciliation is requested through
  `on_reconcile_needed(symbol, reason)`; it never reaches the TaskGroup (that would end the process).
- A fill for a trade that already ended (an order executed after its look-ups said "not found", a second
  exit) is not given to its machine (an ended trade has no legal move: IllegalTransition): the fill is
  journaled and reconciliation, which gives a position of no trade its stop, is asked for at once.
  One exception: the entry of an ABORTED trade that was reported "not found" and executed after all
  reopens its trade (ABORTED -> ENTERING, then the fill as usual: its own stop at once, journal == exchange);
  reconciliation is asked for as well.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bot.execution.actions import LegRole, TradeState
from bot.venues.ports import OrderUpdate

if TYPE_CHECKING:
    from bot.execution.trade import TradeMachine

__all__ = ["EngineGuards"]


class EngineGuards:
    if TYPE_CHECKING:
        journal: Any
        log: Any
        trades: dict[str, TradeMachine]
        risk: Any
        on_reconcile_needed: Callable[[str, str], None] | None
        stats: dict[str, int]
        _late_lots: dict[str, int]

        clock: Callable[[], int]

    def request_reconcile(self, symbol: str, reason: str) -> None:
        """Ask the app's reconciliation loop for a pass now (engine.on_reconcile_needed)."""
        self.stats["reconcile_requests"] += 1
        self.log.warning("reconcile_requested", symbol=symbol, reason=reason)
        cb = self.on_reconcile_needed
        if cb is not None:
            try:
                cb(symbol, reason)
            except Exception as e:  # a hook must never take an order task down
                self.log.error("reconcile_hook_failed", error=f"{type(e).__name__}: {e}")

    def _late_fill(self, m: TradeMachine, u: OrderUpdate) -> bool:
        """A fill for a trade that already ended (an order that executed after its look-ups said "not
        found", a second exit): the position it makes belongs to no trade. The machine cannot take it (an
        ended trade has no legal move); the fill is journaled (with an order event saying why) and
        reconciliation, which gives a position of no trade its stop, is asked for at once."""
        leg = m.legs.get(u.client_id) or (m.legs.get(u.parent_id) if u.parent_id else None)
        if leg is None or u.filled_lots <= leg.filled_lots:
            return False
        if m.state is TradeState.ABORTED and leg.role is LegRole.ENTRY and not m.opened:
            return False  # the entry executed after all: on_update reopens the trade (engine._reopen)
        prev = self._late_lots.get(leg.client_id, leg.filled_lots)
        if u.filled_lots <= prev:
            return True  # a late fill already handed over (a replay)
        self._late_lots[leg.client_id] = u.filled_lots
        self.stats["late_fills"] += 1
        now = self.clock()
        lots = u.filled_lots - prev
        price = u.last_fill_price if u.last_fill_lots == lots and u.last_fill_price > 0 else u.avg_price
        # the fill is the venue's fact: journaled (no row lost) under the trade whose order it was
        lim = m.lim
        self.journal.fill(u.ts_event_ns or now, m.tid, leg.client_id, leg.role.value, u.side.value, lim.qty(lots),
                          price, u.fee, u.is_maker, u.trade_id, u.status.value, lim.qty(u.filled_lots), u.avg_price)
        why = f"fill of {lots} lots at {price} after the trade ended {m.state.value}"
        self.journal.order_event(now, m.tid, leg.client_id, u.status.value, reason=why,
                                 venue_order_id=u.venue_order_id or None)
        self.log.error("fill_on_ended_trade", trade_id=m.tid, client_id=u.client_id, symbol=m.plan.symbol,
                       side=u.side.value, lots=lots, price=price, state=m.state.value)
        self.request_reconcile(m.plan.symbol, f"{m.tid}: {why}")
        return True

    def _count_symbol(self, symbol: str) -> None:
        """The gate's open notional of `symbol` from the trades still live there (one trade per symbol is the
        rule, POSITION_OPEN). Called when one of them ends or reopens: an entry that executed after it was
        reported "not found" reopens its trade while the symbol's next trade may be live too (issue 11 late
        execution); the end of either must not free the symbol while the other still holds or enters it (a
        new trade there would net into that position, one-way mode), and a reopen with nothing filled yet
        (its NEW) must not free it either."""
        notional = sum(m.lim.step * (m.pos_lots or m.plan.planned_lots) * (m.avg_entry or m.lim.px(m.plan.ref_ticks))
                       for m in self.trades.values() if m.plan.symbol == symbol and not m.is_final)
        self.risk.gate.on_position(symbol, notional)

    def _failed(self, m: TradeMachine | None, what: str, e: Exception) -> None:
        self.stats["errors"] += 1
        self.log.error("engine_input_failed", trade_id=m.tid if m is not None else "", what=what,
                       error=f"{type(e).__name__}: {e}")
        if m is not None:
            self.request_reconcile(m.plan.symbol, f"{m.tid}: {what} raised {type(e).__name__}")

    def unprotected(self) -> list[dict[str, Any]]:
        """Trades holding a position without a stop the venue confirmed (symbol, side, qty, what is missing):
        what a shutdown may not leave behind."""
        out = []
        for m in self.trades.values():
            if m.pos_lots <= 0:
                continue
            stop = m.stop_leg
            if stop is not None and stop.confirmed and not stop.done:
                continue
            missing = "stop not placed" if stop is None else (
                f"stop {stop.client_id} {stop.status.value.lower()}" if stop.done else
                f"stop {stop.client_id} not confirmed by the venue")
            out.append({"trade_id": m.tid, "symbol": m.plan.symbol, "side": m.plan.side,
                        "qty": m.lim.qty(m.pos_lots), "state": m.state.value, "missing": missing})
        return out
