"""An entry that executes after it was reported "not found" while the symbol's next trade is live (issue 11,
late execution; seen in `scalper drill --only late_execution`): t1's entry answers "status unknown", the
look-up says not found, t1 ABORTS; t2 enters the same symbol; then t1's order reaches the book (NEW, then
its fill) and reopens t1. Two trades of the bot share one position (one-way mode).

The gate's one-trade-per-symbol count (POSITION_OPEN) must hold the symbol while either is live: on main,
t1's reopen with nothing filled yet (its NEW) and t2's close each freed the symbol, so a third trade (in the
drill: the opposite side) opened there and netted into t1's position (its stop refused -2022, its exits
refused, both closed "outside the bot"). Engine on the scripted fake gateway; ~0.1 s.
"""

from __future__ import annotations

from pathlib import Path

from bot.domain.types import CloseReason, OrderStatus
from bot.execution.actions import TradeState
from bot.risk import Denial, DenyReason
from bot.venues.errors import AmbiguousOutcome
from tests.execution.harness import LIVE, intent, running
from tests.execution.test_engine_protect import rig_of, until

SHORT = {"side": "short", "stop": 500_500, "targets": ((499_000, 0.5), (498_000, 0.5))}


async def test_a_late_entry_beside_a_live_trade_keeps_the_symbol_counted_until_both_end(tmp_path: Path) -> None:
    rig, gw, asked = rig_of(tmp_path)
    async with running(rig) as r:
        eng, gate = r.engine, r.rm.gate
        gw.script["t1-entry"] = [AmbiguousOutcome("timeout")]  # and the look-up finds nothing: ABORTED
        assert await eng.submit_intent(intent(), LIVE) == "t1"
        await until("t1 aborted", lambda: "t1" not in eng.trades)
        assert gate.open_notional == {}
        assert await eng.submit_intent(intent(setup="b"), LIVE) == "t2"  # the symbol's next trade
        await until("t2 sent", lambda: "t2-entry" in gw.orders)
        gw.fill("t2-entry", 500, 50_000.0)
        await until("t2 protected", lambda: eng.trades["t2"].state is TradeState.PROTECTED)
        # t1's order reaches the book after all: resting first (NEW), its fill a moment later
        req = next(q for q in gw.sent if q.client_id == "t1-entry")
        gw.orders["t1-entry"], gw.filled["t1-entry"], gw.avg["t1-entry"] = req, 0, 0.0
        gw._emit("t1-entry", OrderStatus.NEW)
        await until("t1 reopened", lambda: "t1" in eng.trades)
        assert "BTCUSDT" in gate.open_notional  # main: the reopen's NEW (0 lots) freed the symbol
        d = eng.on_intent(intent(**SHORT, setup="c"), LIVE)
        assert isinstance(d, Denial) and d.reason is DenyReason.POSITION_OPEN
        gw.fill("t1-entry", 500, 50_010.0)
        await until("t1 protected", lambda: eng.trades["t1"].state is TradeState.PROTECTED)
        # each trade its own stop for its own size
        stops = [(q.client_id, q.qty_lots) for q in gw.sent if "-sl" in q.client_id]
        assert ("t1-sl", 500) in stops and ("t2-sl", 500) in stops
        # t2 ends: t1 still holds the symbol
        eng._apply(eng.trades["t2"], eng.trades["t2"].flatten(CloseReason.MANUAL, r.clock()))
        await until("t2 exit sent", lambda: "t2-exit" in gw.orders)
        gw.fill("t2-exit", 500, 50_000.0)
        await until("t2 closed", lambda: "t2" not in eng.trades)
        assert r.rows("trades", trade_id="t2")[0]["state"] == "CLOSED"
        assert gate.open_notional.get("BTCUSDT", 0) > 0  # main: popped by t2's close
        d = eng.on_intent(intent(**SHORT, setup="d"), LIVE)
        assert isinstance(d, Denial) and d.reason is DenyReason.POSITION_OPEN
        # and once t1 ends as well, the symbol is free again
        eng._apply(eng.trades["t1"], eng.trades["t1"].flatten(CloseReason.MANUAL, r.clock()))
        await until("t1 exit sent", lambda: "t1-exit" in gw.orders)
        gw.fill("t1-exit", 500, 50_000.0)
        await until("t1 closed", lambda: "t1" not in eng.trades)
        assert gate.open_notional == {}
        assert any("executed after it was reported not found" in why for _, why in asked)
        assert eng.stats["errors"] == 0
