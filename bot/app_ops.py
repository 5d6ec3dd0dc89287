"""The operator's controls of the App (halt/resume/flatten/reset-limits from the ops endpoint, per symbol
too) and the terminal view's data. What feeds the runtime state (/health, /status, /metrics) and the alerts is
the operator component, bot.ops.live.OpsFeed, reacting to the engine's change events.

A mixin of `bot.app.App`, which owns every attribute used here; kept apart so the composition root stays
about building and running the bot.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bot.domain.types import CloseReason
from bot.execution.recovery import RECONCILING
from bot.ui.terminal import TerminalView

if TYPE_CHECKING:
    from bot.execution.engine import ExecutionEngine
    from bot.execution.recovery import Recovery
    from bot.journal import Journal
    from bot.ops.alerts import Alerts
    from bot.ops.live import OpsFeed
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
    ops_feed: OpsFeed | None
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
        self._stream_gate()  # an operator's resume does not outlast a user-stream doubt (bot.app_watch)
        self.engine._journal_gate(now)
        self.state.set_trading_state(gate.state.value, gate.state_reason, now)
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


    async def _housekeeping(self) -> None:
        """The operator side (bot.ops.live.OpsFeed): reacts to the engine's change events; its slow tick
        (1 s) redraws the view, checks the books' health and the account."""
        assert self.ops_feed is not None
        if self.view:
            view = TerminalView()
            # sized to the terminal each time (bot.ui.terminal)
            self.ops_feed.draw = lambda: view.show(self.state.status(time.time_ns()), self._books(),
                                                   self._last_trades())
        await self.ops_feed.run()

    def _sync_ops_state(self, now: int) -> None:
        if self.ops_feed is not None:
            self.ops_feed.sync(now)

    def _alert_transitions(self) -> None:
        """Halts/resumes (of trading and of single symbols), once per transition (bot.ops.live)."""
        if self.ops_feed is not None:
            self.ops_feed.sync(time.time_ns())

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
