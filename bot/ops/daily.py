"""The daily summary alert: once a day (ops.alerts.daily_summary_hour_utc), the last 24 h from the journal.

    daily = DailySummary(journal, alerts)
    tg.create_task(daily.run())            # sleeps until alerts.next_daily_summary_ns(now), sends, repeats
    day_summary(data, since_ns, until_ns)  # the pure part: plain journal rows in, a flat dict out

The summary (scalars only, so every sink renders it): trades closed in the window (by exit time), wins,
win_rate, pnl_quote (net of fees, as journaled), fees_quote, funding_quote (every funding payment in the
window, attributed or not; negative = paid), net_pnl_quote = pnl + funding, r_total, avg_r,
max_drawdown_quote (of the window's cumulative PnL, in exit order), best/worst setup by PnL, halts (the
gate or a symbol going HALTED) and the last halt reason.

The loop is off the trading path (a task of the app's TaskGroup): it sleeps in chunks of at most an
hour, so a wall-clock step (NTP) delays the summary by no more than that, and a journal error is logged,
never raised into the TaskGroup.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from bot.journal.store import Journal
from bot.logging import get_logger
from bot.ops.alerts import Alerts

__all__ = ["DailySummary", "day_summary"]

DAY_NS = 86_400 * 1_000_000_000
_MAX_SLEEP_S = 3600.0


def _utc(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%dT%H:%MZ")


def day_summary(data: dict[str, list[dict[str, Any]]], since_ns: int, until_ns: int) -> dict[str, Any]:
    """Summary of [since_ns, until_ns) from journal rows: data["trades"], data["funding"],
    data["state_changes"] (rows outside the window are ignored, so whole tables may be passed)."""
    closed = sorted((t for t in data.get("trades", [])
                     if t.get("pnl") is not None and t.get("exit_ts_ns") is not None
                     and since_ns <= t["exit_ts_ns"] < until_ns), key=lambda t: t["exit_ts_ns"])
    pnls = [float(t["pnl"]) for t in closed]
    rs = [float(t["r_multiple"]) for t in closed if t.get("r_multiple") is not None]
    funding = sum(float(f["amount_quote"]) for f in data.get("funding", []) if since_ns <= f["ts_ns"] < until_ns)
    peak = cum = dd = 0.0
    for p in pnls:
        cum += p
        peak = max(peak, cum)
        dd = max(dd, peak - cum)
    by_setup: dict[str, float] = {}
    for t in closed:
        by_setup[t["setup"]] = by_setup.get(t["setup"], 0.0) + float(t["pnl"])
    ranked = sorted(by_setup.items(), key=lambda kv: (kv[1], kv[0]))
    halts = sorted((c for c in data.get("state_changes", [])
                    if c["to_state"] == "HALTED" and c["entity"] in ("gate", "symbol")
                    and since_ns <= c["ts_ns"] < until_ns), key=lambda c: c["ts_ns"])
    wins = sum(1 for p in pnls if p > 0)
    return {
        "since_utc": _utc(since_ns),
        "until_utc": _utc(until_ns),
        "trades": len(closed),
        "wins": wins,
        "win_rate": round(wins / len(closed), 4) if closed else None,
        "pnl_quote": round(sum(pnls), 6),
        "fees_quote": round(sum(float(t.get("fees") or 0.0) for t in closed), 6),
        "funding_quote": round(funding, 6),
        "net_pnl_quote": round(sum(pnls) + funding, 6),
        "r_total": round(sum(rs), 4),
        "avg_r": round(sum(rs) / len(rs), 4) if rs else None,
        "max_drawdown_quote": round(dd, 6),
        "best_setup": ranked[-1][0] if ranked else None,
        "best_setup_pnl_quote": round(ranked[-1][1], 6) if ranked else None,
        "worst_setup": ranked[0][0] if ranked else None,
        "worst_setup_pnl_quote": round(ranked[0][1], 6) if ranked else None,
        "halts": len(halts),
        "last_halt_reason": halts[-1]["reason"] if halts else None,
    }


class DailySummary:
    def __init__(self, journal: Journal, alerts: Alerts, *, clock_ns: Callable[[], int] = time.time_ns,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep, window_ns: int = DAY_NS) -> None:
        self.journal = journal
        self.alerts = alerts
        self.clock_ns = clock_ns
        self.sleep = sleep
        self.window_ns = window_ns
        self.sent = 0
        self.last: dict[str, Any] | None = None
        self.log = get_logger("ops.daily")

    def build(self, until_ns: int) -> dict[str, Any]:
        since = until_ns - self.window_ns
        j = self.journal
        window = (since, until_ns)
        data = {
            "trades": j.rows("trades", "exit_ts_ns >= ? AND exit_ts_ns < ?", window),
            "funding": j.rows("funding", "ts_ns >= ? AND ts_ns < ?", window),
            "state_changes": j.rows("state_changes", "ts_ns >= ? AND ts_ns < ? AND to_state = 'HALTED'", window),
        }
        return day_summary(data, since, until_ns)

    async def run(self) -> None:
        """Until cancelled: at each summary time, the last `window_ns` to the alerts (nothing when off)."""
        while True:
            now = self.clock_ns()
            at = self.alerts.next_daily_summary_ns(now)
            if at is None:
                return
            while now < at:
                await self.sleep(min(_MAX_SLEEP_S, (at - now) / 1e9))
                now = self.clock_ns()
            try:
                summary = self.build(at)
            except (sqlite3.Error, KeyError, TypeError, ValueError) as e:
                self.log.error("daily_summary_failed", error=f"{type(e).__name__}: {e}")
                continue
            self.last = summary
            self.sent += 1
            self.alerts.daily_summary(summary)
