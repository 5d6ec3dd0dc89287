"""The independent watcher: polls the loopback exchange's `GET /_sim/state` (every ~50 ms) and measures,
per symbol, the longest time a position existed without an exchange-side stop covering it.

It trusts nothing the bot says: only the exchange's positions and open algo orders. A position is
covered when its closing-side STOP_MARKET algo orders (Binance's conditional orders, exchange-facts A3)
either include a closePosition one or are reduce-only with quantities adding up to at least the
position (stops for parts of a position -- e.g. one for the bot's size and one for a size added by
hand -- together protect all of it). A position only partly covered counts as naked: the rest of it has
no stop.

The measurement is conservative: an interval starts at the first poll that sees the position naked and
ends at the first poll that sees it covered or flat, so it over-states the real gap by at most one poll
period plus a request's latency (`max_poll_gap_s` in the result says how large that was).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

__all__ = ["NakedTracker", "Watcher", "covered", "position_amounts"]


def position_amounts(state: dict[str, Any]) -> dict[str, float]:
    """symbol -> signed position size (one-way mode: one row per symbol)."""
    out: dict[str, float] = {}
    for p in state.get("positions", []):
        amt = float(p.get("positionAmt") or 0.0)
        out[p["symbol"]] = out.get(p["symbol"], 0.0) + amt
    return out


def covered(amount: float, symbol: str, algos: list[dict[str, Any]]) -> bool:
    """True if the exchange holds stops for all of `amount` (signed) on `symbol`."""
    if amount == 0:
        return True
    closing = "SELL" if amount > 0 else "BUY"
    total = 0.0
    for a in algos:
        if a.get("symbol") != symbol or a.get("side") != closing or a.get("orderType") != "STOP_MARKET":
            continue
        if a.get("algoStatus", "NEW") not in ("NEW",):
            continue  # a triggered or finished algo order protects nothing any more
        if a.get("closePosition"):
            return True
        if a.get("reduceOnly"):
            total += float(a.get("quantity") or 0.0)
    return total >= abs(amount) - 1e-12


@dataclass
class NakedTracker:
    """Sans-I/O: feed it exchange states with the monotonic time they were seen."""

    naked_since_s: dict[str, float] = field(default_factory=dict)
    max_naked_s: dict[str, float] = field(default_factory=dict)
    intervals: list[tuple[str, float, float]] = field(default_factory=list)  # (symbol, start, end)
    samples: int = 0
    last_s: float | None = None
    max_poll_gap_s: float = 0.0

    def observe(self, state: dict[str, Any], now_s: float) -> None:
        self.samples += 1
        if self.last_s is not None:
            self.max_poll_gap_s = max(self.max_poll_gap_s, now_s - self.last_s)
        self.last_s = now_s
        algos = state.get("open_algo_orders", [])
        amounts = position_amounts(state)
        for sym in set(amounts) | set(self.naked_since_s):
            amt = amounts.get(sym, 0.0)
            if covered(amt, sym, algos):
                start = self.naked_since_s.pop(sym, None)
                if start is not None:
                    self._close(sym, start, now_s)
            else:
                self.naked_since_s.setdefault(sym, now_s)

    def _close(self, sym: str, start: float, end: float) -> None:
        self.intervals.append((sym, start, end))
        self.max_naked_s[sym] = max(self.max_naked_s.get(sym, 0.0), end - start)

    def finish(self, now_s: float) -> None:
        """A position still naked at the end counts until now."""
        for sym, start in list(self.naked_since_s.items()):
            self._close(sym, start, now_s)
        self.naked_since_s.clear()

    def worst(self) -> tuple[str, float]:
        if not self.max_naked_s:
            return "", 0.0
        sym = max(self.max_naked_s, key=lambda s: self.max_naked_s[s])
        return sym, self.max_naked_s[sym]


class Watcher:
    """Polls `<base>/_sim/state` on its own task until `stop()`."""

    def __init__(self, base: str, period_s: float = 0.05, alive: Any = None) -> None:
        self.base = base
        self.alive = alive  # () -> bool: is the bot process running (for `dead_since_ms`)
        self.dead_since_ms: int | None = None  # exchange time the bot was first seen gone (None: running)
        self.period_s = period_s
        self.tracker = NakedTracker()
        self.last_state: dict[str, Any] | None = None
        self.errors = 0
        self._task: asyncio.Task[None] | None = None
        self._http: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
        self._task = asyncio.create_task(self._run(), name="drill-watcher")

    async def _run(self) -> None:
        assert self._http is not None
        while True:
            try:
                async with self._http.get(f"{self.base}/_sim/state") as r:
                    state = await r.json()
                self.last_state = state
                self.tracker.observe(state, time.monotonic())
                if self.alive is not None:
                    if self.alive():
                        self.dead_since_ms = None
                    elif self.dead_since_ms is None:
                        self.dead_since_ms = int(state["time"])
            except (aiohttp.ClientError, TimeoutError, ValueError):
                self.errors += 1  # the exchange busy or gone: the open interval simply keeps growing
            await asyncio.sleep(self.period_s)

    async def stop(self) -> NakedTracker:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._http is not None:
            await self._http.close()
        self.tracker.finish(time.monotonic())
        return self.tracker
