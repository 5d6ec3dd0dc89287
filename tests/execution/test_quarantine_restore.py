"""A restart holds the entry quarantines the journal left open (bot/execution/quarantine_restore.py).

t1's entry answers "status unknown" and its look-up finds nothing: t1 ABORTS and BTCUSDT is quarantined
(bot/execution/quarantine.py), journaled (bot/journal/quarantines.py). The bot dies inside the window. The next
life, before any entry, holds the symbol again with the same rules: denied ENTRY_OUTCOME_UNKNOWN until the
order executed (its trade reopens and is protected) or, past the journaled deadline, a look-up by client id
says not found. Pure decisions first, then the engine + Recovery on the fake venue that outlives the bot
(tests/execution/restore_harness.py), explicit clock, a real journal file; ~0.1 s each.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from bot.domain.types import OrderKind, OrderStatus, Side
from bot.execution.quarantine_restore import Verdict, after_lookup, on_restore
from bot.execution.reconcile import PlaceStop, Unowned
from bot.risk import Denial, DenyReason
from bot.venues.errors import AmbiguousOutcome
from bot.venues.ports import OrderAck, OrderRequest, OrderUpdate
from tests.execution.harness import LIVE, MS, Clock, S, intent
from tests.execution.restore_harness import Life, Venue

Q_MS = 10_000  # execution.unknown_entry_quarantine_ms (the default)
T = 1_000_000_000_000


def _u(status: OrderStatus, filled: int = 0) -> OrderUpdate:
    return OrderUpdate("t1-entry", "v1", "BTCUSDT", Side.BUY, OrderKind.LIMIT, status, 500, filled,
                       50_000.0 if filled else 0.0)


def test_the_journal_alone_ends_a_quarantine_only_when_its_trade_went_on() -> None:
    assert on_restore("ABORTED")[0] is Verdict.LOOK_UP
    for state in ("ENTERING", "PROTECTING", "PROTECTED", "EXITING", "CLOSED"):  # its reopen was journaled
        verdict, why = on_restore(state)
        assert verdict is Verdict.RELEASE and state in why
    assert on_restore(None)[0] is Verdict.HOLD


def test_the_restart_look_up_releases_only_on_certainty() -> None:
    assert after_lookup(_u(OrderStatus.FILLED, 500), T + 5 * S, T)[0] is Verdict.REOPEN
    assert after_lookup(_u(OrderStatus.NEW), T + 5 * S, T)[0] is Verdict.REOPEN  # resting: it can fill
    assert after_lookup(_u(OrderStatus.PARTIALLY_FILLED, 100), T, T + S)[0] is Verdict.REOPEN
    assert after_lookup(_u(OrderStatus.EXPIRED), T + 5 * S, T)[0] is Verdict.RELEASE  # ended with nothing filled
    assert after_lookup(_u(OrderStatus.CANCELED), T + 5 * S, T)[0] is Verdict.RELEASE
    # not found: before the deadline it may still reach the book (held); from the deadline on it is the final
    # look-up of the live rule
    assert after_lookup(None, T + 5 * S, T)[0] is Verdict.HOLD
    verdict, why = after_lookup(None, T, T)
    assert verdict is Verdict.RELEASE and "not found" in why


class LateVenue(Venue):
    """The venue answers t1's entry "status unknown" without placing it (the loopback's late_execute)."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(clock)
        self.unknown: set[str] = {"t1-entry"}
        self.fetches: list[str] = []

    async def submit(self, req: OrderRequest) -> OrderAck:
        if req.client_id in self.unknown:
            self.sent.append(req)
            raise AmbiguousOutcome("503 -1007 execution status unknown")
        return await super().submit(req)

    async def fetch_order(self, symbol: str, client_id: str, conditional: bool = False) -> OrderUpdate | None:
        self.fetches.append(client_id)
        return await super().fetch_order(symbol, client_id, conditional)

    async def execute_late(self, cid: str, lots: int, price: float) -> None:
        """The order reaches the book now and fills (its stream update is lost: the bot is down)."""
        req = next(r for r in self.sent if r.client_id == cid)
        self.unknown.discard(cid)
        await Venue.submit(self, req)
        self.fill(cid, lots, price)
        self.missed()


def denied(d: object) -> DenyReason | None:
    return d.reason if isinstance(d, Denial) else None


async def quarantined_then_killed(tmp: Path, venue: LateVenue) -> None:
    life = Life(tmp, venue)
    await life.start()
    assert await life.engine.submit_intent(intent(), LIVE) == "t1"
    await life.settle()
    assert "t1" not in life.engine.trades and life.trade()["state"] == "ABORTED"
    (q,) = life.journal.open_quarantines()
    assert (q["client_id"], q["trade_id"], q["symbol"], q["until_ns"]) == (
        "t1-entry", "t1", "BTCUSDT", venue.clock() + Q_MS * MS)
    await life.crash()  # SIGKILL inside the window: nothing of the process's memory survives


async def test_restarted_inside_the_window_it_denies_entries_until_the_final_look_up_says_not_found(
        tmp_path: Path) -> None:
    venue = LateVenue(Clock())
    await quarantined_then_killed(tmp_path, venue)
    t_q = venue.clock()
    venue.clock.advance_ms(3_000)  # down for 3 s
    life = Life(tmp_path, venue)
    await life.start()
    gate = life.rm.gate
    assert gate.quarantined == {"BTCUSDT": {"t1-entry": t_q + Q_MS * MS}}  # before any entry could be made
    assert venue.fetches == ["t1-entry", "t1-entry"]  # live's look-up, then the restart's: not found yet
    assert await life.recovery.reconcile() == []  # nothing at the venue: nothing for reconciliation either
    life.recovery.allow_entries(venue.clock())
    d = await life.engine.submit_intent(intent(side="short", stop=500_500, targets=((499_000, 1.0),)), LIVE)
    assert denied(d) is DenyReason.ENTRY_OUTCOME_UNKNOWN and "t1-entry may still execute" in d.detail  # type: ignore[union-attr]
    assert [r["reason"] for r in life.rows("denials")] == ["ENTRY_OUTCOME_UNKNOWN"]
    assert "restored after a restart" in life.rows("state_changes", entity="quarantine")[-1]["reason"]
    # the journaled deadline, not a fresh one: the final look-up is due 7 s after the restart
    venue.clock.advance_ms(Q_MS - 3_000 - 1)
    assert life.engine.fire_due() == 0
    venue.clock.advance_ms(1)
    assert life.engine.fire_due() == 1
    await life.settle()
    assert gate.quarantined == {} and venue.fetches.count("t1-entry") == 3
    (row,) = life.rows("quarantines")
    assert row["ended_ns"] == venue.clock() and row["end_reason"] == "final look-up after the quarantine: not found"
    tid = await life.engine.submit_intent(intent(setup="b"), LIVE)  # free at last (ids go on after the reserved)
    assert isinstance(tid, str) and tid != "t1", tid
    assert life.trade()["state"] == "ABORTED"
    await life.crash()


async def test_executed_while_the_bot_was_down_the_restart_reopens_and_protects_it_before_reconciling(
        tmp_path: Path) -> None:
    venue = LateVenue(Clock())
    await quarantined_then_killed(tmp_path, venue)
    venue.clock.advance_ms(2_000)
    await venue.execute_late("t1-entry", 500, 50_000.0)  # the order reached the book while nobody listened
    venue.clock.advance_ms(1_000)
    life = Life(tmp_path, venue)
    await life.start()
    await life.settle()
    m = life.engine.trades["t1"]  # the same trade, reopened as live (engine._reopen), not a new one
    assert m.pos_lots == 500 and life.trade()["state"] in ("PROTECTING", "PROTECTED")
    assert [(r.client_id, r.qty_lots) for r in venue.sent if r.client_id.startswith("t1-sl")] == [("t1-sl", 500)]
    assert life.rm.gate.quarantined == {}
    (row,) = life.rows("quarantines")
    assert row["end_reason"] == "executed late: trade reopened"
    # the first pass finds the position owned by t1 with its stop: no "position of no known trade" stop or halt
    actions = await life.recovery.reconcile()
    assert not [a for a in actions if isinstance(a, Unowned) or (isinstance(a, PlaceStop) and not a.trade_id)]
    assert not [r for r in venue.sent if r.client_id.startswith("recon-")]
    assert life.rm.gate.halted_symbols == {}
    life.recovery.allow_entries(venue.clock())
    d = await life.engine.submit_intent(intent(side="short", stop=500_500, targets=((499_000, 1.0),)), LIVE)
    assert denied(d) is DenyReason.POSITION_OPEN
    await life.crash()


async def test_past_its_deadline_a_failed_look_up_keeps_it_and_the_retry_decides(tmp_path: Path) -> None:
    venue = LateVenue(Clock())
    await quarantined_then_killed(tmp_path, venue)
    venue.clock.advance_ms(60_000)  # down for a minute: the deadline has passed, the final look-up has not run
    life = Life(tmp_path, venue)
    await life.engine.refresh_account()
    venue.down = True
    await life.recovery.adopt()  # the restart's look-up fails: held, never released on a guess
    assert set(life.rm.gate.quarantined) == {"BTCUSDT"} and len(life.journal.open_quarantines()) == 1
    venue.down = False
    assert life.engine.fire_due() == 1  # the due final look-up, at once
    await life.settle()
    assert life.rm.gate.quarantined == {} and life.journal.open_quarantines() == []
    life.journal.close()


async def test_a_trade_the_journal_shows_reopened_ends_its_quarantine_without_a_look_up(tmp_path: Path) -> None:
    venue = LateVenue(Clock())
    await quarantined_then_killed(tmp_path, venue)
    life = Life(tmp_path, venue)
    # as after a kill between the reopen's journal rows and the quarantine's end row
    life.journal.trade_state(venue.clock(), "t1", "ABORTED", "ENTERING", "t1-entry executed after it was reported "
                             "not found")
    n = len(venue.fetches)
    await life.start()
    assert life.rm.gate.quarantined == {} and life.journal.open_quarantines() == []
    assert "ENTERING" in life.rows("quarantines")[0]["end_reason"] and len(venue.fetches) == n
    await life.crash()


async def test_killed_between_the_abort_and_the_quarantine_row_the_restart_finds_it_from_the_leg(
        tmp_path: Path) -> None:
    venue = LateVenue(Clock())
    await quarantined_then_killed(tmp_path, venue)
    with sqlite3.connect(tmp_path / "journal.sqlite") as db:  # the row the kill prevented
        (until,) = db.execute("SELECT until_ns FROM quarantines").fetchone()
        db.execute("DELETE FROM quarantines")
    venue.clock.advance_ms(2_000)
    life = Life(tmp_path, venue)
    await life.start()
    assert life.rm.gate.quarantined == {"BTCUSDT": {"t1-entry": until}}  # the deadline it had
    (q,) = life.journal.open_quarantines()
    assert (q["client_id"], q["trade_id"], q["until_ns"]) == ("t1-entry", "t1", until)
    await life.crash()
