"""The journal: SQLite in WAL mode, one transaction per state change. Nothing is ever lost or half-written:
every method below is exactly one transaction (BEGIN IMMEDIATE … COMMIT), so after a crash the file holds
every change that returned, and none of the one that was in flight.

Schema (prices in the quote asset as REAL, quantities in base units as REAL, times in ns since the epoch):

config        id, ts_ns, hash (sha256 of the effective config JSON), body (the JSON, secrets redacted)
trades        trade_id PK ("t42"), symbol, setup, side ('long'|'short'), state (TradeState),
              intent_ts_ns, intent_price (the setup's reference price), planned_qty, planned_stop_price,
              risk_budget (money the trade may lose), leverage, features (JSON of the intent's features),
              entry_ts_ns, entry_price (first entry fill's average), qty (largest position held),
              stop_price (initial protective stop), stop_confirm_ms (first entry fill -> stop acknowledged),
              max_open_risk (max over time of position × distance to the live stop, + fees), exit_ts_ns,
              exit_price (average of the exit fills), exit_reason (CloseReason), pnl (net of fees), fees,
              r_multiple (pnl / risk_budget), mae/mfe (ticks, R), funding_quote (sum of the funding
              rows attributed to the trade, signed as the venue reports: negative = paid; NULL = none),
              event_ts_ns / recv_ts_ns / signal_ts_ns (the triggering market message's exchange time,
              our receive time, the signal engine's emission time), created_ns, updated_ns
legs          client_id PK ("t42-entry", "t42-sl", "t42-sl.2", "t42-tp1", "t42-add2", "t42-exit"), trade_id,
              role (entry|add|stop|tp|exit), symbol, side (BUY|SELL), kind (OrderKind), qty,
              intended_price (the price we mean to get: limit price, trigger price, or the reference price
              of a market order), price, trigger_price, reduce_only, time_in_force, working_type,
              status (OrderStatus; PENDING_NEW when written before sending), filled_qty, avg_price,
              venue_order_id, reason, created_ns, updated_ns
order_events  id, ts_ns, trade_id, client_id, status, filled_qty, avg_price, reason: one row per order
              state change (planned, acknowledged, partially filled, triggered, cancelled, …)
fills         id, ts_ns, trade_id, client_id, role, side, qty, price, fee, is_maker, venue_trade_id
state_changes id, ts_ns, entity ('trade' | 'gate' | 'symbol' | 'limits'), entity_id, from_state, to_state, reason
denials       id, ts_ns, symbol, setup, side, reason (DenyReason), detail: our own risk said no
rejections    id, ts_ns, trade_id, client_id, code, message: the venue said no (kept apart from denials)
reserved_ids  name ('trade'), upto: the highest trade number handed out or about to be (the engine reserves a
              block ahead, so an entry sent before its trade row is written never lends its id to a later trade,
              and a restart knows which ids' entries to look up: bot.execution.recovery_lost; such a trade is
              journaled with setup 'recovered')
funding       id, ts_ns (venue time), recv_ns, symbol ('' when the venue does not say), asset, amount_quote
              (signed as the venue reports: negative = paid), trade_id (the trade holding a position on the
              symbol at ts_ns, else NULL), venue_ref UNIQUE (idempotency key: a replay is not counted twice)
runs          run_id INTEGER PK (1, 2, …), started_ns, mode ('live'|'paper'|'sim'|'backtest'|…), label: one row
              per `scalper run` / `scalper backtest` into this journal (begin_run). trades, config and funding
              carry the run_id of the run that wrote them (NULL in journals from before runs existed), so
              reports keep runs apart.
quarantines   client_id PK, trade_id, symbol, started_ns, until_ns, ended_ns, end_reason: entries of unknown
              fate whose symbol takes no entry until their fate is certain (bot/journal/quarantines.py)
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from bot.journal.checkpoint import WalCheckpointer
from bot.journal.quarantines import QUARANTINES_SCHEMA, QuarantineRows

__all__ = ["SCHEMA", "TRADE_FIELDS", "Journal", "owner_only"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS config (
    id INTEGER PRIMARY KEY, ts_ns INTEGER NOT NULL, hash TEXT NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS trades (
    trade_id TEXT PRIMARY KEY, symbol TEXT NOT NULL, setup TEXT NOT NULL, side TEXT NOT NULL,
    state TEXT NOT NULL, intent_ts_ns INTEGER, intent_price REAL, planned_qty REAL, planned_stop_price REAL,
    risk_budget REAL, leverage INTEGER, features TEXT,
    entry_ts_ns INTEGER, entry_price REAL, qty REAL, stop_price REAL, stop_confirm_ms REAL,
    max_open_risk REAL, exit_ts_ns INTEGER, exit_price REAL, exit_reason TEXT, pnl REAL, fees REAL,
    r_multiple REAL, mae_ticks REAL, mfe_ticks REAL, mae_r REAL, mfe_r REAL, funding_quote REAL,
    event_ts_ns INTEGER, recv_ts_ns INTEGER, signal_ts_ns INTEGER,
    created_ns INTEGER NOT NULL, updated_ns INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS legs (
    client_id TEXT PRIMARY KEY, trade_id TEXT NOT NULL REFERENCES trades(trade_id), role TEXT NOT NULL,
    symbol TEXT NOT NULL, side TEXT NOT NULL, kind TEXT NOT NULL, qty REAL NOT NULL,
    intended_price REAL, price REAL, trigger_price REAL, reduce_only INTEGER NOT NULL DEFAULT 0,
    time_in_force TEXT, working_type TEXT, status TEXT NOT NULL, filled_qty REAL NOT NULL DEFAULT 0,
    avg_price REAL NOT NULL DEFAULT 0, venue_order_id TEXT, reason TEXT,
    created_ns INTEGER NOT NULL, updated_ns INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS legs_trade ON legs(trade_id);
CREATE TABLE IF NOT EXISTS order_events (
    id INTEGER PRIMARY KEY, ts_ns INTEGER NOT NULL, trade_id TEXT NOT NULL, client_id TEXT NOT NULL,
    status TEXT NOT NULL, filled_qty REAL, avg_price REAL, reason TEXT);
CREATE INDEX IF NOT EXISTS order_events_trade ON order_events(trade_id);
CREATE TABLE IF NOT EXISTS fills (
    id INTEGER PRIMARY KEY, ts_ns INTEGER NOT NULL, trade_id TEXT NOT NULL, client_id TEXT NOT NULL,
    role TEXT NOT NULL, side TEXT NOT NULL, qty REAL NOT NULL, price REAL NOT NULL, fee REAL NOT NULL,
    is_maker INTEGER NOT NULL, venue_trade_id TEXT);
CREATE INDEX IF NOT EXISTS fills_trade ON fills(trade_id);
CREATE TABLE IF NOT EXISTS state_changes (
    id INTEGER PRIMARY KEY, ts_ns INTEGER NOT NULL, entity TEXT NOT NULL, entity_id TEXT NOT NULL,
    from_state TEXT, to_state TEXT NOT NULL, reason TEXT);
CREATE TABLE IF NOT EXISTS denials (
    id INTEGER PRIMARY KEY, ts_ns INTEGER NOT NULL, symbol TEXT, setup TEXT, side TEXT,
    reason TEXT NOT NULL, detail TEXT);
CREATE TABLE IF NOT EXISTS rejections (
    id INTEGER PRIMARY KEY, ts_ns INTEGER NOT NULL, trade_id TEXT, client_id TEXT, code TEXT, message TEXT);
CREATE TABLE IF NOT EXISTS funding (
    id INTEGER PRIMARY KEY, ts_ns INTEGER NOT NULL, recv_ns INTEGER, symbol TEXT NOT NULL, asset TEXT NOT NULL,
    amount_quote REAL NOT NULL, trade_id TEXT, venue_ref TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS runs (
    run_id INTEGER PRIMARY KEY, started_ns INTEGER NOT NULL, mode TEXT NOT NULL, label TEXT);
CREATE TABLE IF NOT EXISTS reserved_ids (name TEXT PRIMARY KEY, upto INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS marks (ts_ns INTEGER NOT NULL, symbol TEXT NOT NULL, price REAL NOT NULL);
CREATE INDEX IF NOT EXISTS marks_symbol_ts ON marks(symbol, ts_ns);
""" + QUARANTINES_SCHEMA

# The trade report's fields (`scalper trades`, `scalper backtest --json`), in order.
TRADE_FIELDS = (
    "trade_id",
    "setup",
    "symbol",
    "side",
    "entry_ts_ns",
    "entry_price",
    "qty",
    "stop_price",
    "stop_confirm_ms",
    "max_open_risk",
    "exit_ts_ns",
    "exit_price",
    "exit_reason",
    "pnl",
    "fees",
    "r_multiple",
)

# Columns added after the first schema: older journals gain them (NULL for their old trades).
_ADDED_COLS = (("mae_ticks", "REAL"), ("mfe_ticks", "REAL"), ("mae_r", "REAL"), ("mfe_r", "REAL"),
               ("funding_quote", "REAL"), ("event_ts_ns", "INTEGER"), ("recv_ts_ns", "INTEGER"),
               ("signal_ts_ns", "INTEGER"))
# Tables whose rows carry the run that wrote them (added to older journals; NULL for their old rows).
_RUN_TABLES = ("trades", "config", "funding")
_TABLES = ("config", "trades", "legs", "order_events", "fills", "state_changes", "denials", "rejections", "funding",
           "runs", "marks", "quarantines")
# A position older than this is not a scalper trade's: funding is never attributed to such a stale row.
_FUNDING_LOOKBACK_NS = 7 * 86_400 * 1_000_000_000
_FUNDING_SLACK_NS = 60 * 1_000_000_000  # exit_ts_ns is our clock, funding time the venue's



def owner_only(path: str) -> None:
    """chmod 0600 the journal and its -wal/-shm where others could read them (a journal made before);
    a file of another user (a read-only `scalper trades` on it) is left as it is."""
    for p in (path, path + "-wal", path + "-shm"):
        with contextlib.suppress(OSError):
            if os.stat(p).st_mode & 0o077:
                os.chmod(p, 0o600)


# Columns a trade row is written with at creation only, or by the journal itself: never updated.
_TRADE_KEYS = frozenset(("trade_id", "symbol", "setup", "side", "created_ns", "updated_ns"))
_LEG_COLS = (
    "client_id",
    "trade_id",
    "role",
    "symbol",
    "side",
    "kind",
    "qty",
    "intended_price",
    "price",
    "trigger_price",
    "reduce_only",
    "time_in_force",
    "working_type",
    "status",
)

_REDUCE_ONLY = _LEG_COLS.index("reduce_only")
# Commits without a background checkpoint in between (the thread checkpoints at most once a second) that make
# a burst: ~1000 WAL frames, SQLite's own autocheckpoint threshold. In a tight loop of entries a WAL left to
# grow for a second slowed every commit (open_trade p90 0.23 vs 0.15 ms).
_BURST_COMMITS = 100
_LEG_UPSERT = (
    f"INSERT INTO legs({', '.join(_LEG_COLS)}, created_ns, updated_ns) "
    f"VALUES ({', '.join('?' * len(_LEG_COLS))}, ?, ?) "
    "ON CONFLICT(client_id) DO UPDATE SET qty=excluded.qty, intended_price=excluded.intended_price, "
    "price=excluded.price, trigger_price=excluded.trigger_price, status=excluded.status, "
    "updated_ns=excluded.updated_ns"
)


class Journal(QuarantineRows):
    def __init__(self, path: str, synchronous: str = "NORMAL", busy_timeout_ms: int = 2000) -> None:
        self.path = path
        # Owner-only (0600): the journal holds the account's trades. Created under umask 077; SQLite gives
        # the -wal/-shm files the database file's mode; files from before are narrowed below.
        old_umask = os.umask(0o077)
        try:
            # isolation_level=None: we issue BEGIN/COMMIT ourselves, one transaction per state change.
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.row_factory = sqlite3.Row
            self._db.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            if path != ":memory:":
                mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                if mode.lower() != "wal":
                    raise RuntimeError(f"journal {path}: WAL mode refused ({mode})")
        finally:
            os.umask(old_umask)
        if path != ":memory:":
            owner_only(path)
        if synchronous not in ("NORMAL", "FULL"):
            raise ValueError("synchronous must be NORMAL or FULL")
        self._db.execute(f"PRAGMA synchronous={synchronous}")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(SCHEMA)
        # Journals written before a column existed gain it (NULL for their old trades); new tables come
        # from the CREATE TABLE IF NOT EXISTS above.
        have = {r[1] for r in self._db.execute("PRAGMA table_info(trades)")}
        for col, sql_type in _ADDED_COLS:
            if col not in have:
                self._db.execute(f"ALTER TABLE trades ADD COLUMN {col} {sql_type}")
        for table in _RUN_TABLES:
            if "run_id" not in {r[1] for r in self._db.execute(f"PRAGMA table_info({table})")}:
                self._db.execute(f"ALTER TABLE {table} ADD COLUMN run_id INTEGER")
        have.add("run_id")
        self.run_id: int | None = None  # begin_run: the rows written from then on carry it
        # the updatable trade columns, from the table itself (one list: the schema)
        self._trade_cols = frozenset(have.union(c for c, _ in _ADDED_COLS)) - _TRADE_KEYS
        # INSERT INTO trades(...) per set of columns (the SQL text is also the statement cache's key)
        self._trade_sql: dict[tuple[str, ...], tuple[list[str], str]] = {}
        self._ckpt: WalCheckpointer | None = None
        self._ckpt_seen = 0  # the checkpointer's count when `_commits` was last reset
        self._commits = 0
        if path != ":memory:":
            # checkpoints in a thread of their own (checkpoint.py): never inside a commit on the entry path
            self._db.execute("PRAGMA wal_autocheckpoint=0")
            self._ckpt = WalCheckpointer(path, busy_timeout_ms=busy_timeout_ms)
            weakref.finalize(self, self._ckpt.stop)  # a journal dropped without close() ends its thread

    def close(self) -> None:
        if self._ckpt is not None:
            self._ckpt.close()
        self._db.close()  # the last connection: SQLite checkpoints the WAL and removes it

    @contextmanager
    def _tx(self, precedes_order: bool = False) -> Iterator[sqlite3.Connection]:
        """One transaction. `precedes_order`: an order waits for this commit (the entry path)."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        ckpt = self._ckpt
        if ckpt is not None:
            if ckpt.checkpoints != self._ckpt_seen:  # the thread checkpointed: count commits from there
                self._ckpt_seen, self._commits = ckpt.checkpoints, 0
            self._commits += 1
            if not precedes_order and (ckpt.overflow or self._commits >= _BURST_COMMITS):
                # a burst the background checkpoints (checkpoint.py) do not keep up with: copy the WAL
                # back here, after a commit no order waits on
                ckpt.overflow, self._commits = False, 0
                db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    # -- writes: each one transaction -------------------------------------------------------------------
    def begin_run(self, ts_ns: int, mode: str, label: str = "") -> int:
        """A new run (`scalper run`, `scalper backtest`) into this journal: the trades, config and funding
        rows written from now on carry its run_id, so a report of one run never mixes in another's."""
        with self._tx() as db:
            cur = db.execute("INSERT INTO runs(started_ns, mode, label) VALUES (?,?,?)", (ts_ns, mode, label))
        self.run_id = int(cur.lastrowid or 0)
        return self.run_id

    def record_config(self, ts_ns: int, config_hash: str, body: str) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO config(ts_ns, hash, body, run_id) VALUES (?,?,?,?)",
                       (ts_ns, config_hash, body, self.run_id))

    def open_trade(self, ts_ns: int, trade: dict[str, Any], legs: list[dict[str, Any]], state: str,
                   reason: str = "", states: list[tuple[str | None, str, str]] | None = None) -> None:
        """The trade and its planned legs, before any order is sent (durable intent), in one transaction.
        `states`: the state changes this write records, oldest first (default: None -> `state`)."""
        changes = states or [(None, state, reason)]
        row = {**trade, "state": changes[-1][1]}
        if self.run_id is not None:
            row["run_id"] = self.run_id
        key = tuple(row)
        cached = self._trade_sql.get(key)
        if cached is None:
            cols = list(dict.fromkeys(["trade_id", "symbol", "setup", "side",
                                       *sorted(k for k in row if k in self._trade_cols)]))
            cached = self._trade_sql[key] = (cols, f"INSERT INTO trades({', '.join(cols)}, created_ns, updated_ns) "
                                                   f"VALUES ({', '.join('?' * len(cols))}, ?, ?)")
        cols, sql = cached
        tid = trade["trade_id"]
        with self._tx(precedes_order=True) as db:
            db.execute(sql, (*[row.get(c) for c in cols], ts_ns, ts_ns))
            db.executemany("INSERT INTO state_changes(ts_ns, entity, entity_id, from_state, to_state, reason) "
                           "VALUES (?,?,?,?,?,?)", [(ts_ns, "trade", tid, f, t, r) for f, t, r in changes])
            self._insert_legs(db, ts_ns, legs)

    def _insert_legs(self, db: sqlite3.Connection, ts_ns: int, legs: list[dict[str, Any]]) -> None:
        # A leg planned up front (the first stop, the TP tiers) is written again, at its real size, when it is
        # sent: same client id, so the row is updated (and the change is an order_events row).
        if not legs:
            return
        rows = []
        for leg in legs:
            vals = [leg.get(c) for c in _LEG_COLS]
            vals[_REDUCE_ONLY] = int(bool(vals[_REDUCE_ONLY]))
            vals += (ts_ns, ts_ns)
            rows.append(vals)
        db.executemany(_LEG_UPSERT, rows)
        db.executemany(
            "INSERT INTO order_events(ts_ns, trade_id, client_id, status, filled_qty, avg_price, reason) "
            "VALUES (?,?,?,?,?,?,?)",
            [(ts_ns, leg["trade_id"], leg["client_id"], leg["status"], 0.0, 0.0, leg.get("reason", "planned"))
             for leg in legs],
        )

    def add_leg(self, ts_ns: int, leg: dict[str, Any]) -> None:
        """A leg planned after the trade opened (a resized stop, a scale-in, a flattening order)."""
        with self._tx(precedes_order=True) as db:
            self._insert_legs(db, ts_ns, [leg])

    def order_event(
        self,
        ts_ns: int,
        trade_id: str,
        client_id: str,
        status: str,
        filled_qty: float | None = None,
        avg_price: float | None = None,
        reason: str = "",
        venue_order_id: str | None = None,
    ) -> None:
        with self._tx() as db:
            self._order_event(db, ts_ns, trade_id, client_id, status, filled_qty, avg_price, reason, venue_order_id)

    def _order_event(
        self,
        db: sqlite3.Connection,
        ts_ns: int,
        trade_id: str,
        client_id: str,
        status: str,
        filled_qty: float | None,
        avg_price: float | None,
        reason: str,
        venue_order_id: str | None,
    ) -> None:
        db.execute(
            "UPDATE legs SET status=?, filled_qty=COALESCE(?, filled_qty), avg_price=COALESCE(?, avg_price), "
            "venue_order_id=COALESCE(?, venue_order_id), reason=CASE WHEN ?='' THEN reason ELSE ? END, "
            "updated_ns=? WHERE client_id=?",
            (status, filled_qty, avg_price, venue_order_id or None, reason, reason, ts_ns, client_id),
        )
        db.execute(
            "INSERT INTO order_events(ts_ns, trade_id, client_id, status, filled_qty, avg_price, reason) "
            "VALUES (?,?,?,?,?,?,?)",
            (ts_ns, trade_id, client_id, status, filled_qty, avg_price, reason),
        )

    def fill(
        self,
        ts_ns: int,
        trade_id: str,
        client_id: str,
        role: str,
        side: str,
        qty: float,
        price: float,
        fee: float,
        is_maker: bool,
        venue_trade_id: str,
        status: str,
        filled_qty: float,
        avg_price: float,
    ) -> None:
        """One fill and the order state it leaves, in one transaction."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO fills(ts_ns, trade_id, client_id, role, side, qty, price, fee, is_maker, "
                "venue_trade_id) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (ts_ns, trade_id, client_id, role, side, qty, price, fee, int(is_maker), venue_trade_id),
            )
            self._order_event(db, ts_ns, trade_id, client_id, status, filled_qty, avg_price, "fill", None)

    def trade_state(
        self,
        ts_ns: int,
        trade_id: str,
        from_state: str,
        to_state: str,
        reason: str = "",
        fields: dict[str, Any] | None = None,
    ) -> None:
        """A trade's state change (with the report fields it settles), in one transaction."""
        with self._tx() as db:
            self._update_trade(db, ts_ns, trade_id, {**(fields or {}), "state": to_state})
            db.execute(
                "INSERT INTO state_changes(ts_ns, entity, entity_id, from_state, to_state, reason) "
                "VALUES (?,?,?,?,?,?)",
                (ts_ns, "trade", trade_id, from_state, to_state, reason),
            )

    def update_trade(self, ts_ns: int, trade_id: str, fields: dict[str, Any]) -> None:
        with self._tx() as db:
            self._update_trade(db, ts_ns, trade_id, fields)

    def _update_trade(self, db: sqlite3.Connection, ts_ns: int, trade_id: str, fields: dict[str, Any]) -> None:
        bad = set(fields) - self._trade_cols
        if bad:
            raise KeyError(f"unknown trade columns: {sorted(bad)}")
        cols = sorted(fields)
        db.execute(
            f"UPDATE trades SET {', '.join(f'{c}=?' for c in cols)}, updated_ns=? WHERE trade_id=?",
            (*[fields[c] for c in cols], ts_ns, trade_id),
        )

    def state_change(
        self, ts_ns: int, entity: str, entity_id: str, from_state: str | None, to_state: str, reason: str = ""
    ) -> None:
        """A state change of something other than a trade: the gate ('gate'), a symbol ('symbol')."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO state_changes(ts_ns, entity, entity_id, from_state, to_state, reason) "
                "VALUES (?,?,?,?,?,?)",
                (ts_ns, entity, entity_id, from_state, to_state, reason),
            )

    def denial(self, ts_ns: int, symbol: str, setup: str, side: str, reason: str, detail: str = "") -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO denials(ts_ns, symbol, setup, side, reason, detail) VALUES (?,?,?,?,?,?)",
                (ts_ns, symbol, setup, side, reason, detail),
            )

    def rejection(self, ts_ns: int, trade_id: str, client_id: str, code: str, message: str) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO rejections(ts_ns, trade_id, client_id, code, message) VALUES (?,?,?,?,?)",
                (ts_ns, trade_id, client_id, code, message),
            )

    def funding(self, ts_ns: int, symbol: str, amount_quote: float, venue_ref: str, *, asset: str = "USDT",
                recv_ns: int | None = None, trade_id: str | None = None) -> tuple[bool, str | None]:
        """One funding payment (signed as the venue reports: negative = paid), in one transaction with the
        running sum on the trade it is attributed to. Returns (inserted, trade id); a `venue_ref` already
        journaled (a reconnect replay, a REST catch-up) is not inserted again and changes nothing.

        Attribution (unless `trade_id` is given): the trade whose fills (venue time, as `ts_ns`) leave a
        position open on `symbol` at `ts_ns`. Binance does not name the symbol of a cross-margin funding
        fee (A4: B only, no P); then the payment goes to the one trade holding a position on any symbol,
        and to none when there are several or none."""
        with self._tx() as db:
            dup = db.execute("SELECT trade_id FROM funding WHERE venue_ref=?", (venue_ref,)).fetchone()
            if dup is not None:
                return False, dup[0]
            tid = trade_id if trade_id is not None else self._holder(db, symbol, ts_ns)
            db.execute("INSERT INTO funding(ts_ns, recv_ns, symbol, asset, amount_quote, trade_id, venue_ref, run_id) "
                       "VALUES (?,?,?,?,?,?,?,?)", (ts_ns, recv_ns, symbol, asset, amount_quote, tid, venue_ref,
                                                    self.run_id))
            if tid is not None:
                db.execute("UPDATE trades SET funding_quote=COALESCE(funding_quote, 0)+? WHERE trade_id=?",
                           (amount_quote, tid))
        return True, tid

    @staticmethod
    def _holder(db: sqlite3.Connection, symbol: str, ts_ns: int) -> str | None:
        sql = ("SELECT f.trade_id, MAX(f.ts_ns) AS last FROM fills f JOIN trades t ON t.trade_id = f.trade_id "
               "WHERE f.ts_ns <= ? AND t.created_ns >= ? AND (t.exit_ts_ns IS NULL OR t.exit_ts_ns >= ?)"
               + (" AND t.symbol = ?" if symbol else "") +
               " GROUP BY f.trade_id HAVING SUM(CASE WHEN f.role IN ('entry', 'add') THEN f.qty ELSE -f.qty END)"
               " > 1e-9 ORDER BY last DESC")
        params: tuple[Any, ...] = (ts_ns, ts_ns - _FUNDING_LOOKBACK_NS, ts_ns - _FUNDING_SLACK_NS)
        rows = db.execute(sql, (*params, symbol) if symbol else params).fetchall()
        if not rows or (not symbol and len(rows) > 1):
            return None
        return str(rows[0][0])

    def marks(self, rows: list[tuple[int, str, float]]) -> None:
        """(ts_ns, symbol, price) around trades (bot.execution.marks): the report's price path."""
        with self._tx() as db:
            db.executemany("INSERT INTO marks (ts_ns, symbol, price) VALUES (?, ?, ?)", rows)

    def reserve_trade_ids(self, upto: int) -> None:
        """Trade numbers up to `upto` may be in use from now on (never lowered), in one transaction."""
        with self._tx() as db:
            db.execute("INSERT INTO reserved_ids(name, upto) VALUES ('trade', ?) "
                       "ON CONFLICT(name) DO UPDATE SET upto=MAX(upto, excluded.upto)", (int(upto),))

    def reserved_trade_ids(self) -> int:
        row = self._db.execute("SELECT upto FROM reserved_ids WHERE name='trade'").fetchone()
        return int(row[0]) if row else 0

    def last_trade_number(self) -> int:
        """The highest trade number with a row ("t42" -> 42; 0 for none)."""
        row = self._db.execute("SELECT MAX(CAST(SUBSTR(trade_id, 2) AS INTEGER)) FROM trades "
                               "WHERE trade_id GLOB 't[0-9]*'").fetchone()
        return int(row[0] or 0)

    def verified_trade_ids(self) -> int:
        """Trade numbers up to this one are recorded or were looked up at the venue after a start
        (bot.execution.recovery_lost); the reserved ones after it may have been sent and never recorded.
        A journal from before this row: its last trade's number."""
        row = self._db.execute("SELECT upto FROM reserved_ids WHERE name='trade_verified'").fetchone()
        return int(row[0]) if row else self.last_trade_number()

    def verify_trade_ids(self, upto: int) -> None:
        """Trade numbers up to `upto` need no look-up after a restart any more (never lowered)."""
        with self._tx() as db:
            db.execute("INSERT INTO reserved_ids(name, upto) VALUES ('trade_verified', ?) "
                       "ON CONFLICT(name) DO UPDATE SET upto=MAX(upto, excluded.upto)", (int(upto),))

    def trade_numbers(self, lo: int, hi: int) -> set[int]:
        """The numbers of the trades with a row, from `lo` to `hi` included."""
        return {int(r[0]) for r in self._db.execute(
            "SELECT CAST(SUBSTR(trade_id, 2) AS INTEGER) FROM trades WHERE trade_id GLOB 't[0-9]*' AND "
            "CAST(SUBSTR(trade_id, 2) AS INTEGER) BETWEEN ? AND ?", (lo, hi))}

    def record_recovered(self, ts_ns: int, trade: dict[str, Any], legs: list[dict[str, Any]],
                         fills: list[dict[str, Any]], states: list[tuple[str | None, str, str]]) -> None:
        """A trade whose entry was sent and never recorded (a crash between the send and the record), rebuilt
        from the venue (bot.execution.recovery_lost): the trade, its legs as the venue reports them, their
        fills and its state changes, in ONE transaction (another crash leaves all of it or none)."""
        row = {k: v for k, v in trade.items() if k in self._trade_cols or k in ("trade_id", "symbol", "setup", "side")}
        row["state"] = states[-1][1]
        if self.run_id is not None:
            row["run_id"] = self.run_id
        cols = list(row)
        tid = trade["trade_id"]
        with self._tx() as db:
            db.execute(f"INSERT INTO trades({', '.join(cols)}, created_ns, updated_ns) "
                       f"VALUES ({', '.join('?' * len(cols))}, ?, ?)", (*row.values(), ts_ns, ts_ns))
            db.executemany("INSERT INTO state_changes(ts_ns, entity, entity_id, from_state, to_state, reason) "
                           "VALUES (?,?,?,?,?,?)", [(ts_ns, "trade", tid, f, t, r) for f, t, r in states])
            self._insert_legs(db, ts_ns, legs)
            for leg in legs:  # what the venue reports of it (the upsert above writes the request's columns)
                self._order_event(db, ts_ns, tid, leg["client_id"], leg["status"], leg.get("filled_qty"),
                                  leg.get("avg_price"), "found at the venue", leg.get("venue_order_id"))
            db.executemany(
                "INSERT INTO fills(ts_ns, trade_id, client_id, role, side, qty, price, fee, is_maker, "
                "venue_trade_id) VALUES (?,?,?,?,?,?,?,?,?,?)",
                [(f["ts_ns"], tid, f["client_id"], f["role"], f["side"], f["qty"], f["price"], f["fee"],
                  int(bool(f["is_maker"])), f.get("venue_trade_id") or "") for f in fills])

    def count_trades(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM trades").fetchone()[0])

    # -- reads ------------------------------------------------------------------------------------------
    def rows(self, table: str, where: str = "", params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        if table not in _TABLES:
            raise ValueError(f"no table {table!r}")
        sql = f"SELECT * FROM {table}" + (f" WHERE {where}" if where else "") + " ORDER BY rowid"
        return [dict(r) for r in self._db.execute(sql, params)]

    def trades(self, closed_only: bool = False) -> list[dict[str, Any]]:
        """The report fields of every trade (TRADE_FIELDS), oldest first."""
        sql = f"SELECT {', '.join(TRADE_FIELDS)}, state FROM trades"
        if closed_only:
            sql += " WHERE state='CLOSED'"
        return [dict(r) for r in self._db.execute(sql + " ORDER BY created_ns, rowid")]
