"""The journal's quarantines table (bot/journal/quarantines.py): start, end, what a restart reads back, and a
journal made before the table gaining it. Real SQLite file; milliseconds."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from bot.journal import Journal

S = 1_000_000_000
T0 = 1_721_347_200 * S


def test_start_end_round_trip_and_only_open_ones_are_read_back(tmp_path: Path) -> None:
    path = str(tmp_path / "j.sqlite")
    j = Journal(path)
    j.quarantine_start(T0, "BTCUSDT", "t1-entry", "t1", T0 + 10 * S)
    j.quarantine_start(T0 + S, "ETHUSDT", "t2-entry", "t2", T0 + 11 * S)
    assert j.quarantine_end(T0 + 2 * S, "t2-entry", "executed late: trade reopened")
    assert not j.quarantine_end(T0 + 3 * S, "t2-entry", "again")  # already ended: nothing changes
    assert not j.quarantine_end(T0 + 3 * S, "t9-entry", "never started")
    j.close()
    j = Journal(path)  # what a restarted process reads
    got = [(q["client_id"], q["trade_id"], q["symbol"], q["started_ns"], q["until_ns"]) for q in j.open_quarantines()]
    assert got == [("t1-entry", "t1", "BTCUSDT", T0, T0 + 10 * S)]
    (ended,) = j.rows("quarantines", "client_id=?", ("t2-entry",))
    assert (ended["ended_ns"], ended["end_reason"]) == (T0 + 2 * S, "executed late: trade reopened")
    # the same id quarantined again (reopened, then given up once more): open again with its new deadline
    j.quarantine_start(T0 + 5 * S, "ETHUSDT", "t2-entry", "t2", T0 + 15 * S)
    assert [(q["client_id"], q["until_ns"]) for q in j.open_quarantines()] == [
        ("t1-entry", T0 + 10 * S), ("t2-entry", T0 + 15 * S)]
    j.close()


def test_a_journal_from_before_the_table_gains_it(tmp_path: Path) -> None:
    path = str(tmp_path / "old.sqlite")
    Journal(path).close()
    with sqlite3.connect(path) as db:  # as a journal written before quarantines existed
        db.execute("DROP TABLE quarantines")
    with sqlite3.connect(path) as db:
        assert not db.execute("SELECT name FROM sqlite_master WHERE name='quarantines'").fetchall()
    j = Journal(path)
    assert j.open_quarantines() == []
    j.quarantine_start(T0, "BTCUSDT", "t1-entry", "t1", T0 + 10 * S)
    assert len(j.open_quarantines()) == 1
    j.close()
