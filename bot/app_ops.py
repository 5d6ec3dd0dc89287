"""The operator's side of the App: controls from the ops endpoint (halt/resume/flatten, per symbol too),
and the twice-a-second housekeeping that feeds the runtime state (/health, /status, /metrics), the
alerts (stop-outs, halts, feed loss, once per transition) and the terminal view.

A mixin of `bot.app.App`, which owns every attribute used here; kept apart so the composition root stays
about building and running the bot.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bot.domain.types import CloseReason
from bot.execution.recovery import RECONCILING
from bot.ops.legs import publish as publish_legs
from bot.ui.terminal import TerminalView

if TYPE_CHECKING:
    from bot.execution.engine import ExecutionEngine
    from bot.execution.recovery import Recovery
    from bot.journal import Journal
    from bot.ops.alerts import Alerts
    from bot.ops.state import RuntimeState
    from bot.pipeline import Pipeline
    from bot.settings import Settings

__all__ = ["OperatorControls"]


class OperatorControls:
    settings: Settings
    state: RuntimeState
    alerts: Alerts
    engine: ExecutionEngine | None
    journal: Journal | None
    pipeline: Pipeline | None
    recovery: Recovery | None
    view: bool
    log: Any
    _closed_seen: int
    _feed_status: dict[str, str]
    _symbols_alerted: set[str]
    _trading_alerted: str
    _stream_gate: Callable[[], None]  # bot.app_watch: entries halted while the user stream is down / in doubt

    # ------------------------------------------------------------------ controls (ops endpoint)
    def _halt(self, reason: str, symbol: str | None = None) -> dict[str, Any]:
        """No new entries; with `symbol`, on that symbol only (the trading state is untouched)."""
        assert self.engine is not None
        now = time.time_ns()
        if symbol is not None:
            self._known_symbol(symbol)
            self.engine.risk.gate.halt_symbol(symbol, reason, now)
            self.engine._journal_gate(now)
            self._sync_ops_state(now)
            self._alert_transitions()
            return {"symbol": symbol, "halted": True}
        self.engine.risk.gate.halt(reason, now)
        self.state.set_trading_state("HALTED", reason, now)
        self._alert_transitions()
        return {"state": "HALTED"}

    def _resume(self, reason: str, symbol: str | None = None) -> dict[str, Any]:
        """Trading ACTIVE and every symbol halt lifted; with `symbol`, only that symbol's halt. Refused while
        the start-up/reconnect reconciliation holds trading (the exchange and the journal do not agree yet)
        and while a loss limit holds it: resume keeps the day's loss and drawdown baselines (it would halt
        again at once); `_reset_limits` starts fresh ones, confirmed and journaled."""
        assert self.engine is not None
        now = time.time_ns()
        gate = self.engine.risk.gate
        self._refuse_while_reconciling("resume")
        if symbol is not None:
            self._known_symbol(symbol)
            lifted = gate.lift_symbol(symbol, reason, now)
            self.engine._journal_gate(now)
            self._sync_ops_state(now)
            self._alert_transitions()
            return {"symbol": symbol, "lifted": lifted}
        if gate.state.value == "HALTED" and gate.halt_code.value in ("DAILY_LOSS_LIMIT", "MAX_DRAWDOWN"):
            from bot.ops.server import ControlError

            raise ControlError(f"trading is HALTED by a loss limit ({gate.state_reason}); resume keeps the day's "
                               "baselines, so it would halt again: `scalper reset-limits --yes` starts fresh ones")
        for sym in list(gate.halted_symbols):  # journaled one by one
            gate.lift_symbol(sym, reason, now)
        gate.resume(reason, now)
        self.engine._journal_gate(now)
        self.state.set_trading_state("ACTIVE", reason, now)
        self._sync_ops_state(now)
        self._alert_transitions()
        return {"state": "ACTIVE"}

    def _reset_limits(self, reason: str) -> dict[str, Any]:
        """Fresh daily-loss and drawdown baselines from the current equity, loss streak cleared; a halt by
        those limits is lifted (any other halt stays). Journaled as a state change (entity 'limits')."""
        assert self.engine is not None
        now = time.time_ns()
        gate = self.engine.risk.gate
        self._refuse_while_reconciling("reset-limits")
        gate.reset_limits(reason, now)
        self.engine._journal_gate(now)
        self.state.set_trading_state(gate.state.value, gate.state_reason, now)
        self._sync_ops_state(now)
        self._alert_transitions()
        self.log.warning("limits_reset", reason=reason, day_start_equity=gate.day_start_equity,
                         state=gate.state.value)
        return {"state": gate.state.value, "day_start_equity": gate.day_start_equity}

    def _refuse_while_reconciling(self, action: str) -> None:
        assert self.engine is not None
        gate = self.engine.risk.gate
        if gate.state.value == "HALTED" and gate.state_reason == RECONCILING:
            from bot.ops.server import ControlError

            raise ControlError(f"{action} refused: trading is HALTED while the exchange and the journal are "
                               "reconciled; it resumes by itself when they agree (`scalper status`)")

    def _known_symbol(self, symbol: str) -> None:
        if symbol not in self.settings.venue.symbols:
            from bot.ops.server import ControlError

            raise ControlError(f"unknown symbol {symbol!r}; this bot trades {', '.join(self.settings.venue.symbols)}")

    async def _flatten(self, reason: str) -> dict[str, Any]:
        assert self.engine is not None
        self._halt(reason)
        n = len(self.engine.trades)
        self.engine.flatten_all(CloseReason.MANUAL)
        return {"flattening": n}


    def _report_closed(self) -> None:
        """One canonical log line per closed trade, and the runtime state's PnL."""
        engine = self.engine
        if engine is None:
            return
        closed = engine.closed
        for tc in closed[self._closed_seen:]:
            self.state.on_trade_closed(tc.reason.value, tc.pnl, tc.fees)
            if tc.reason is CloseReason.STOP_LOSS and self.journal is not None:
                rows = self.journal.rows("trades", "trade_id = ?", (tc.trade_id,))
                row = rows[0] if rows else {}
                self.alerts.stop_out(tc.symbol, str(row.get("side", "")), trade_id=tc.trade_id,
                                     stop_price=float(row.get("stop_price") or 0.0),
                                     exit_price=float(row.get("exit_price") or 0.0), pnl_quote=tc.pnl,
                                     r_multiple=tc.r_multiple)
            self.log.info("trade_closed", trade_id=tc.trade_id, symbol=tc.symbol, setup=tc.setup,
                          reason=tc.reason.value, pnl=round(tc.pnl, 4), fees=round(tc.fees, 4),
                          r_multiple=round(tc.r_multiple, 3))
        self._closed_seen = len(closed)

    async def _housekeeping(self) -> None:
        """Twice a second: closed trades, positions and PnL into the runtime state; redraw the view."""
        view = TerminalView() if self.view else None
        assert self.engine is not None and self.journal is not None and self.pipeline is not None
        while True:
            self._report_closed()
            now = time.time_ns()
            gate = self.engine.risk.gate
            if gate.state.value != self.state.trading_state:
                self.state.set_trading_state(gate.state.value, gate.state_reason, now)
            self._stream_gate()  # again each tick: an operator's resume does not outlast a doubt
            self._sync_ops_state(now)
            self._alert_transitions()
            with contextlib.suppress(Exception):
                acct = await self.engine.refresh_account()
                self.state.set_unrealized_pnl(sum(p.unrealized_pnl for p in acct.positions))
                held = set()
                for p in acct.positions:
                    if p.qty_lots:
                        held.add(p.symbol)
                        inst = self.pipeline.instruments.get(p.symbol)
                        qty = inst.lots_to_qty(abs(p.qty_lots)) if inst else float(abs(p.qty_lots))
                        self.state.set_position(p.symbol, side="long" if p.qty_lots > 0 else "short", qty=qty,
                                                entry_price=p.entry_price, unrealized_pnl_quote=p.unrealized_pnl)
                for sym in list(self.state.positions):
                    if sym not in held:
                        self.state.clear_position(sym)
            if view is not None:
                view.show(self.state.status(now), self._books(), self._last_trades())  # sized to the terminal
            await asyncio.sleep(0.5)

    def _sync_ops_state(self, now: int) -> None:
        """The gate's per-symbol halts and the reconciliation's counters into the runtime state."""
        assert self.engine is not None
        self.state.set_symbol_halts(self.engine.risk.gate.symbol_halts())
        publish_legs(self.state, self.engine.trades.values())  # stops, targets, resting orders (bot.ops.legs)
        rec = self.recovery
        if rec is not None:
            w = getattr(self, "watch_stats", {})  # bot.app_watch's counters
            self.state.set_reconcile(runs=rec.runs, failures=rec.failures, failures_total=rec.failures_total,
                                     last_ok_ns=rec.last_ok_ns, last_failed_ns=rec.last_failed_ns,
                                     last_error=rec.last_error, actions={
                                         **rec.stats, "stream_misses": rec.missed_total,
                                         "position_mismatches": w.get("position_mismatches", 0),
                                         "inflight_checks": w.get("inflight_checks", 0),
                                         "stream_reconnects": w.get("reconnects_asked", 0)})

    def _alert_transitions(self) -> None:
        """Halts/resumes (of trading and of single symbols) and feed loss/restore, once per transition (the
        alerts rate-limit per kind too)."""
        st = self.state
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
        assert self.pipeline is not None
        for sym, sync in self.pipeline.syncs.items():
            status = sync.health.status.value
            before = self._feed_status.get(sym)
            if before == "LIVE" and status in ("STALE", "SYNCING", "CROSSED"):
                self.alerts.feed_lost(sym, f"{status}: {sync.health.reason}")
            elif before in ("STALE", "SYNCING", "CROSSED") and status == "LIVE":
                self.alerts.feed_restored(sym)
            self._feed_status[sym] = status

    def _books(self) -> dict[str, dict[str, Any]]:
        assert self.pipeline is not None
        out: dict[str, dict[str, Any]] = {}
        for sym, sync in self.pipeline.syncs.items():
            b = sync.book
            inst = b.instrument
            bb, ba = b.best_bid_ticks, b.best_ask_ticks
            out[sym] = {"bid": inst.ticks_to_price(bb) if bb is not None else None,
                        "ask": inst.ticks_to_price(ba) if ba is not None else None,
                        "spread_ticks": b.spread_ticks(), "imbalance": b.imbalance(10),
                        "price_decimals": inst.price_decimals}
        return out

    def _last_trades(self) -> list[dict[str, Any]]:
        assert self.journal is not None
        from bot.cli.trades import REPORT_FIELDS

        rows = [r for r in self.journal.trades(closed_only=True)][-8:]
        return [{k: r.get(k) for k in ("setup", "symbol", *REPORT_FIELDS)} for r in reversed(rows)]
