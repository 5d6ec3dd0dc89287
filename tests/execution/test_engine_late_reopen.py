"""An entry that executes after it was reported "not found" while the symbol's next trade is live (issue 11,
late execution; seen in `scalper drill --only late_execution`): t1's entry answers "status unknown", the
look-up says not found, t1 ABORTS; t2 enters the same symbol; then t1's order reaches the book (NEW, then
its fill) and reopens t1. Two trades of the bot share one position (one-way mode).

The gate's one-trade-per-symbol count (POSITION_OPEN) must hold the symbol while either is live: on main,
t1's reopen with nothing filled yet (its NEW) and t2's close each freed the symbol, so a third trade (in the
drill: the opposite side) opened there and netted into t1's position (its stop refused -2022, its exits
refused, both closed "outside the bot"). Engine on the scripted fake gateway; ~0.1 s.

These run with the quarantine off (`execution.unknown_entry_quarantine_ms = 0`): by default t2 is denied
until t1's fate is certain (test_engine_quarantine.py); the mechanism below it must hold on its own (two
trades of one symbol also arise when the quarantine was off or lost, e.g. a restart during it).
"""

from __future__ import annotations

from pathlib import Path

from bot.domain.types import CloseReason, OrderKind, OrderStatus
from bot.execution.actions import TradeState
from bot.risk import Denial, DenyReason
from bot.venues.errors import AmbiguousOutcome
from bot.venues.ports import OrderRequest
from tests.execution.harness import LIVE, Clock, intent, running
from tests.execution.restore_harness import Life, Venue
from tests.execution.test_engine_protect import rig_of, until

OFF = {"unknown_entry_quarantine_ms": 0}
SHORT = {"side": "short", "stop": 500_500, "targets": ((499_000, 0.5), (498_000, 0.5))}


async def test_a_late_entry_beside_a_live_trade_keeps_the_symbol_counted_until_both_end(tmp_path: Path) -> None:
    rig, gw, asked = rig_of(tmp_path, execution=OFF)
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


async def test_the_reconciliation_the_reopen_asks_for_keeps_the_other_trades_stop(tmp_path: Path) -> None:
    """The drill's chain in process: engine + Recovery over the fake venue (restore_harness). On main the
    pass cancelled t2's stop and targets (t1 taken as the position's only owner) and t2's machine took the
    CANCELED as its own cancel: half the position had no stop until t2's next event."""
    venue = Venue(Clock())

    def lost(req: OrderRequest) -> None:  # t1's entry: "status unknown", not at the venue (yet)
        if req.client_id == "t1-entry":
            raise AmbiguousOutcome("503 status unknown")

    venue.on_submit = lost
    life = Life(tmp_path, venue, execution=OFF)
    await life.start()
    eng, rec = life.engine, life.recovery
    try:
        assert await eng.submit_intent(intent(), LIVE) == "t1"
        await until("t1 aborted", lambda: "t1" not in eng.trades)
        venue.on_submit = None
        assert await eng.submit_intent(intent(setup="b"), LIVE) == "t2"
        await until("t2 sent", lambda: "t2-entry" in venue.orders)
        venue.fill("t2-entry", 300, 50_000.0)
        await until("t2 protected", lambda: eng.trades["t2"].state is TradeState.PROTECTED)
        req = next(q for q in venue.sent if q.client_id == "t1-entry")  # t1's order executes after all
        venue.orders["t1-entry"], venue.filled["t1-entry"], venue.avg["t1-entry"] = req, 0, 0.0
        venue._emit("t1-entry", OrderStatus.NEW)
        venue.fill("t1-entry", 500, 50_010.0)
        await until("t1 protected", lambda: "t1" in eng.trades and eng.trades["t1"].state is TradeState.PROTECTED)
        await life.settle()
        await rec.reconcile()  # the pass the reopen asked for
        await life.settle()
        assert venue.cancelled == []  # main: t2-sl, t2-tp1, t2-tp2
        stops = [(c, q.qty_lots) for c, q in venue.orders.items()
                 if q.kind is OrderKind.STOP_MARKET and not venue.status[c].is_final]
        assert sorted(stops) == [("t1-sl", 500), ("t2-sl", 300)]
        assert sum(n for _, n in stops) == venue.position["BTCUSDT"] == 800  # the whole position covered
        assert eng.trades["t1"].state is eng.trades["t2"].state is TradeState.PROTECTED
    finally:
        await venue.close()
        await life.crash()
