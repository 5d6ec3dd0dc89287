"""Fill alerts from the journal: every fill row the engine commits becomes one `Alerts.fill`.

    fills = FillAlerts(journal, alerts)       # starts after the fills already journaled (no replay)
    tg.create_task(fills.run())               # or fills.poll() from a loop that already exists

The engine journals each fill before it acts on it, so the journal is the one place that sees every
fill of every leg (entry, add, stop, tp, exit) without a hook in the execution path. Polling the
indexed rowid twice a second costs one small SELECT; the alert itself is a synchronous O(1) enqueue
(rate-limited per kind by Alerts).
"""

from __future__ import annotations

import asyncio

from bot.journal.store import Journal
from bot.logging import get_logger
from bot.ops.alerts import Alerts

__all__ = ["FillAlerts"]


class FillAlerts:
    def __init__(self, journal: Journal, alerts: Alerts, *, interval_s: float = 0.5) -> None:
        self.journal = journal
        self.alerts = alerts
        self.interval_s = interval_s
        rows = journal.rows("fills", "id = (SELECT MAX(id) FROM fills)")
        self.last_id = int(rows[0]["id"]) if rows else 0
        self._symbol: dict[str, str] = {}  # trade id -> symbol
        self.alerted = 0
        self.log = get_logger("ops.fills")

    def poll(self) -> int:
        """Alert the fills journaled since the last call; returns how many."""
        rows = self.journal.rows("fills", "id > ?", (self.last_id,))
        for f in rows:
            self.last_id = int(f["id"])
            tid = f["trade_id"]
            sym = self._symbol.get(tid)
            if sym is None:
                t = self.journal.rows("trades", "trade_id = ?", (tid,))
                sym = self._symbol[tid] = str(t[0]["symbol"]) if t else "?"
            self.alerts.fill(sym, f["side"], float(f["qty"]), float(f["price"]), trade_id=tid, leg=f["role"],
                             client_id=f["client_id"], fee_quote=float(f["fee"]), is_maker=bool(f["is_maker"]))
            self.alerted += 1
        if len(self._symbol) > 4096:
            self._symbol.clear()
        return len(rows)

    async def run(self) -> None:
        while True:
            try:
                self.poll()
            except Exception as e:  # never take the bot down for an alert
                self.log.error("fill_alerts_failed", error=f"{type(e).__name__}: {e}")
            await asyncio.sleep(self.interval_s)
