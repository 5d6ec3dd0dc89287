"""Shadow mode's journal tables: the paper side kept apart from the real trades.

`shadow_orders`: one row per order the bot sent in shadow mode (and per residual close of the paper
account): when it was sent (`ts_ns`, our clock, stamped just before both sends), what it was, and how each
side answered (`demo_outcome`, `paper_outcome`: "accepted" or "refused: <error>").
`shadow_fills`: the paper account's fills (price, qty, fee, maker/taker, venue time of the fill). The demo
account's fills are the journal's own `fills` table, as for any live run: the trades, legs and fills tables
and every report of the real trades are unchanged by shadow mode.

`ShadowStore` buffers rows in memory (the mirror records them on the order path) and writes them in one
transaction per `flush()` (the mirror's 0.25 s housekeeping, and at shutdown). `load_shadow(path)` reads
them back with the rows the divergence report needs (bot/journal/shadow_report.py).
"""

from __future__ import annotations

import sqlite3
from typing import Any

from bot.journal.store import Journal

__all__ = ["SHADOW_SCHEMA", "ShadowStore", "load_shadow"]

SHADOW_SCHEMA = """
CREATE TABLE IF NOT EXISTS shadow_orders (
    id INTEGER PRIMARY KEY, run_id INTEGER, ts_ns INTEGER NOT NULL, trade_id TEXT NOT NULL,
    client_id TEXT NOT NULL, role TEXT NOT NULL, symbol TEXT NOT NULL, side TEXT NOT NULL, kind TEXT NOT NULL,
    qty REAL NOT NULL, price REAL, trigger_price REAL, reduce_only INTEGER NOT NULL DEFAULT 0,
    demo_outcome TEXT, paper_outcome TEXT);
CREATE INDEX IF NOT EXISTS shadow_orders_trade ON shadow_orders(trade_id);
CREATE TABLE IF NOT EXISTS shadow_fills (
    id INTEGER PRIMARY KEY, run_id INTEGER, ts_ns INTEGER NOT NULL, trade_id TEXT NOT NULL,
    client_id TEXT NOT NULL, role TEXT NOT NULL, symbol TEXT NOT NULL, side TEXT NOT NULL, qty REAL NOT NULL,
    price REAL NOT NULL, fee REAL NOT NULL, is_maker INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS shadow_fills_trade ON shadow_fills(trade_id);
"""
_ORDER_COLS = ("run_id", "ts_ns", "trade_id", "client_id", "role", "symbol", "side", "kind", "qty", "price",
               "trigger_price", "reduce_only", "demo_outcome", "paper_outcome")
_FILL_COLS = ("run_id", "ts_ns", "trade_id", "client_id", "role", "symbol", "side", "qty", "price", "fee",
              "is_maker")


class ShadowStore:
    """The mirror's sink (bot/venues/shadow/mirror.py ShadowSink) on the run's journal."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        journal._db.executescript(SHADOW_SCHEMA)
        self._orders: list[dict[str, Any]] = []
        self._fills: list[dict[str, Any]] = []

    def order(self, row: dict[str, Any]) -> None:
        self._orders.append(row)

    def fill(self, row: dict[str, Any]) -> None:
        self._fills.append(row)

    def flush(self) -> None:
        if not (self._orders or self._fills):
            return
        orders, self._orders = self._orders, []
        fills, self._fills = self._fills, []
        run_id = self.journal.run_id
        # the journal's own transaction (not one an order waits on): checkpointing stays in step
        with self.journal._tx() as db:
            for table, cols, rows in (("shadow_orders", _ORDER_COLS, orders), ("shadow_fills", _FILL_COLS, fills)):
                if rows:
                    db.executemany(f"INSERT INTO {table}({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                                   [tuple(run_id if c == "run_id" else r.get(c) for c in cols) for r in rows])


def load_shadow(path: str) -> dict[str, list[dict[str, Any]]]:
    """The rows the divergence report reads (read-only): shadow_orders, shadow_fills, and the journal's
    trades, legs, fills and runs. Empty shadow lists for a journal that never ran in shadow mode."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    db.row_factory = sqlite3.Row
    try:
        have = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        out: dict[str, list[dict[str, Any]]] = {}
        for table in ("shadow_orders", "shadow_fills", "trades", "legs", "fills", "runs"):
            out[table] = ([dict(r) for r in db.execute(f"SELECT * FROM {table} ORDER BY rowid")]
                          if table in have else [])
        return out
    finally:
        db.close()
