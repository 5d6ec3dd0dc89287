"""The journal's record of entry quarantines (bot/execution/quarantine.py; a mixin of Journal, store.py).

An entry given up as "not found" after an ambiguous outcome may still execute (exchange-facts A2: 5XX =
status UNKNOWN), so its symbol takes no entry until its fate is certain. That hold must outlive the process:
a restart (crash, SIGKILL, deploy) inside the window that forgot it would let the new process enter the
symbol while the unknown order can still execute (the netting of issue 11's late_execution drill). One row
per quarantined client id:

quarantines  client_id PK ("t7-entry"), trade_id, symbol, started_ns, until_ns (when its final look-up by
             client id is due; wall-clock ns, the engine's clock), ended_ns (NULL while open), end_reason
             ("executed late: trade reopened", "final look-up after the quarantine: not found", ...)

Start and end are each one transaction; the start is written right after the trade's ABORTED row, in the
same synchronous step (a kill between the two: `unrecorded_quarantines` finds the entry from its leg). A
journal made before this table gains it at open (CREATE TABLE IF NOT EXISTS in store.SCHEMA: the journal has
no schema version, every change so far is additive).
"""

from __future__ import annotations

import sqlite3
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

__all__ = ["QUARANTINES_SCHEMA", "QuarantineRows"]

QUARANTINES_SCHEMA = """
CREATE TABLE IF NOT EXISTS quarantines (
    client_id TEXT PRIMARY KEY, trade_id TEXT NOT NULL, symbol TEXT NOT NULL, started_ns INTEGER NOT NULL,
    until_ns INTEGER NOT NULL, ended_ns INTEGER, end_reason TEXT);
"""


class QuarantineRows:
    if TYPE_CHECKING:
        _db: sqlite3.Connection
        def _tx(self, precedes_order: bool = False) -> AbstractContextManager[sqlite3.Connection]: ...

    def quarantine_start(self, ts_ns: int, symbol: str, client_id: str, trade_id: str, until_ns: int) -> None:
        """`client_id`'s fate is unknown from `ts_ns`; its final look-up is due at `until_ns`. The same id
        quarantined again (it reopened and was given up once more) opens its row again."""
        with self._tx() as db:
            db.execute("INSERT INTO quarantines(client_id, trade_id, symbol, started_ns, until_ns) VALUES (?,?,?,?,?) "
                       "ON CONFLICT(client_id) DO UPDATE SET trade_id=excluded.trade_id, symbol=excluded.symbol, "
                       "started_ns=excluded.started_ns, until_ns=excluded.until_ns, ended_ns=NULL, end_reason=NULL",
                       (client_id, trade_id, symbol, ts_ns, until_ns))

    def quarantine_end(self, ts_ns: int, client_id: str, reason: str) -> bool:
        """`client_id`'s fate is certain. False when it had no open row (already ended, or never started)."""
        with self._tx() as db:
            cur = db.execute("UPDATE quarantines SET ended_ns=?, end_reason=? WHERE client_id=? AND ended_ns IS NULL",
                             (ts_ns, reason, client_id))
        return cur.rowcount > 0

    def unrecorded_quarantines(self, since_ns: int) -> list[dict[str, Any]]:
        """Entries given up as "not found" after an ambiguous outcome (the leg REJECTED with code "unknown" or
        "not-found", TradeMachine.on_rejected) of ABORTED trades, ended since `since_ns`, that have no
        quarantine row at all: a kill between the trade's ABORTED row and its quarantine's start.
        client_id, trade_id, symbol, ended_ns (the leg's last change), oldest first."""
        return [dict(r) for r in self._db.execute(
            "SELECT l.client_id, l.trade_id, l.symbol, l.updated_ns AS ended_ns FROM legs l "
            "JOIN trades t ON t.trade_id = l.trade_id WHERE l.role='entry' AND l.status='REJECTED' "
            "AND (l.reason LIKE 'unknown:%' OR l.reason LIKE 'not-found:%') AND t.state='ABORTED' "
            "AND l.updated_ns >= ? AND l.client_id NOT IN (SELECT client_id FROM quarantines) "
            "ORDER BY l.updated_ns", (since_ns,))]

    def open_quarantines(self) -> list[dict[str, Any]]:
        """The quarantines not ended, oldest first (what a restart must hold again)."""
        return [dict(r) for r in self._db.execute(
            "SELECT * FROM quarantines WHERE ended_ns IS NULL ORDER BY started_ns, rowid")]
