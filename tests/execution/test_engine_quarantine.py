"""An entry of unknown fate quarantines its symbol (issue 11, late execution; bot/execution/quarantine.py).

t1's entry answers "status unknown" and its look-up finds nothing: t1 ABORTS, but the order may still
execute. Until its fate is certain no entry on the symbol, either side (ENTRY_OUTCOME_UNKNOWN, journaled
as a denial): an opposite-side trade would net against t1's late fill (one-way mode). It ends when t1's
order executes (t1 reopens and is protected as before) or when the quarantine has passed and a final
look-up by client id still says "not found" (a failed look-up keeps it). Engine on the scripted fake
gateway, the quarantine's timer fired with the explicit clock; ~0.1 s each.
"""

from __future__ import annotations

from pathlib import Path

from bot.domain.types import CloseReason, OrderStatus
from bot.execution.actions import TradeState
from bot.risk import Denial, DenyReason
from bot.venues.errors import AmbiguousOutcome, VenueUnavailable
from tests.execution.harness import LIVE, MS, intent, running
from tests.execution.test_engine_protect import rig_of, until

SHORT = {"side": "short", "stop": 500_500, "targets": ((499_000, 0.5), (498_000, 0.5))}
Q_MS = 10_000  # the default execution.unknown_entry_quarantine_ms


def denied(d: object) -> DenyReason | None:
    return d.reason if isinstance(d, Denial) else None


async def test_opposite_side_denied_while_unknown_then_the_late_fill_reopens_and_protects(tmp_path: Path) -> None:
    rig, gw, _ = rig_of(tmp_path)
    assert rig.cfg.unknown_entry_quarantine_ms == Q_MS
    async with running(rig) as r:
        eng, gate = r.engine, r.rm.gate
        gw.script["t1-entry"] = [AmbiguousOutcome("503 -1007 execution status unknown")]
        assert await eng.submit_intent(intent(), LIVE) == "t1"
        await until("t1 aborted", lambda: "t1" not in eng.trades)
        assert gw.fetches == ["t1-entry"] and gate.open_notional == {}
        # the opposite side (the drill's netting) and the same side: both denied, journaled with the reason
        assert denied(eng.on_intent(intent(**SHORT, setup="b"), LIVE)) is DenyReason.ENTRY_OUTCOME_UNKNOWN
        r.clock.t += 2_000 * MS
        assert denied(eng.on_intent(intent(setup="c"), LIVE)) is DenyReason.ENTRY_OUTCOME_UNKNOWN
        rows = r.rows("denials", reason="ENTRY_OUTCOME_UNKNOWN")
        assert [(x["setup"], x["side"]) for x in rows] == [("b", "short"), ("c", "long")]
        assert "t1-entry may still execute" in rows[1]["detail"] and "8.0 s" in rows[1]["detail"]
        assert [x["to_state"] for x in r.rows("state_changes", entity="quarantine")] == ["QUARANTINED"]
        # t1's order reaches the book 3 s after it was sent and fills: reopened, protected, quarantine over
        r.clock.t += 1_000 * MS
        req = next(q for q in gw.sent if q.client_id == "t1-entry")
        gw.orders["t1-entry"], gw.status["t1-entry"], gw.filled["t1-entry"], gw.avg["t1-entry"] = (
            req, OrderStatus.NEW, 0, 0.0)
        gw.fill("t1-entry", 500, 50_010.0)
        await until("t1 protected", lambda: "t1" in eng.trades and eng.trades["t1"].state is TradeState.PROTECTED)
        assert ("t1-sl", 500) in [(q.client_id, q.qty_lots) for q in gw.sent if "-sl" in q.client_id]
        assert gate.quarantined == {}
        assert denied(eng.on_intent(intent(**SHORT, setup="d"), LIVE)) is DenyReason.POSITION_OPEN
        # the quarantine's timer is spent: no final look-up for an order whose fate is known
        r.clock.t += Q_MS * MS
        assert eng.fire_due() == 0 and gw.fetches == ["t1-entry"]
        # the same side after t1 ends: the symbol is free again
        eng._apply(eng.trades["t1"], eng.trades["t1"].flatten(CloseReason.MANUAL, r.clock()))
        await until("t1 exit sent", lambda: "t1-exit" in gw.orders)
        gw.fill("t1-exit", 500, 50_000.0)
        await until("t1 closed", lambda: "t1" not in eng.trades)
        assert await eng.submit_intent(intent(setup="e"), LIVE) == "t2"
        assert eng.stats["errors"] == 0


async def test_after_the_quarantine_a_final_lookup_not_found_frees_the_symbol(tmp_path: Path) -> None:
    rig, gw, _ = rig_of(tmp_path)
    async with running(rig) as r:
        eng, gate = r.engine, r.rm.gate
        gw.script["t1-entry"] = [AmbiguousOutcome("timeout")]
        assert await eng.submit_intent(intent(), LIVE) == "t1"
        await until("t1 aborted", lambda: "t1" not in eng.trades)
        r.clock.t += (Q_MS - 1) * MS
        assert eng.fire_due() == 0  # not yet
        assert denied(eng.on_intent(intent(**SHORT), LIVE)) is DenyReason.ENTRY_OUTCOME_UNKNOWN
        gw.fetch_fail = [VenueUnavailable("503")]  # the first final look-up fails: still unknown, retried
        r.clock.t += 1 * MS
        assert eng.fire_due() == 1
        await until("final look-up retried", lambda: gw.fetches.count("t1-entry") == 3)
        await until("released", lambda: gate.quarantined == {})
        assert r.rows("state_changes", entity="quarantine")[-1]["reason"] == (
            "t1-entry: final look-up after the quarantine: not found")
        assert await eng.submit_intent(intent(**SHORT, setup="b"), LIVE) == "t2"  # free at last
        assert r.rows("trades", trade_id="t1")[0]["state"] == "ABORTED"


async def test_the_final_lookup_finds_it_executed_and_adopts_it(tmp_path: Path) -> None:
    rig, gw, _ = rig_of(tmp_path)
    async with running(rig) as r:
        eng, gate = r.engine, r.rm.gate
        gw.script["t1-entry"] = [AmbiguousOutcome("timeout")]
        assert await eng.submit_intent(intent(), LIVE) == "t1"
        await until("t1 aborted", lambda: "t1" not in eng.trades)
        # executed at the venue, its stream update lost: only the final look-up can tell
        req = next(q for q in gw.sent if q.client_id == "t1-entry")
        gw.orders["t1-entry"], gw.status["t1-entry"], gw.filled["t1-entry"], gw.avg["t1-entry"] = (
            req, OrderStatus.FILLED, 500, 50_010.0)
        gw.position["BTCUSDT"] = 500
        r.clock.t += Q_MS * MS
        assert eng.fire_due() == 1
        await until("t1 protected", lambda: "t1" in eng.trades and eng.trades["t1"].state is TradeState.PROTECTED)
        assert eng.trades["t1"].pos_lots == 500 and gate.quarantined == {}
        assert denied(eng.on_intent(intent(**SHORT, setup="b"), LIVE)) is DenyReason.POSITION_OPEN
        assert eng.stats["errors"] == 0


async def test_an_entry_reconciliation_gave_up_as_not_found_quarantines_too_a_venue_no_does_not(tmp_path: Path) -> None:
    rig, gw, _ = rig_of(tmp_path)
    async with running(rig) as r:
        eng, gate = r.engine, r.rm.gate
        assert await eng.submit_intent(intent(), LIVE) == "t1"
        await until("t1 sent", lambda: "t1-entry" in gw.orders)
        m = eng.trades["t1"]  # reconciliation: the venue does not have it (recovery.py, code "not-found")
        eng.act(m, m.on_rejected("t1-entry", "not-found", "not found at the venue", r.clock()))
        assert "t1" not in eng.trades and set(gate.quarantined["BTCUSDT"]) == {"t1-entry"}
        gate.release("BTCUSDT", "t1-entry", "test", r.clock())
        assert await eng.submit_intent(intent(setup="b"), LIVE) == "t2"
        await until("t2 sent", lambda: "t2-entry" in gw.orders)
        m = eng.trades["t2"]  # a plain venue refusal: its fate is certain, nothing to wait for
        eng.act(m, m.on_rejected("t2-entry", -2019, "Margin is insufficient.", r.clock()))
        assert "t2" not in eng.trades and gate.quarantined == {}
        assert await eng.submit_intent(intent(**SHORT, setup="c"), LIVE) == "t3"
