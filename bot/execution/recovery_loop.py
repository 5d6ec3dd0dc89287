"""When reconciliation passes run (bot.execution.recovery.Recovery.run): asked, on a timer, spaced in a burst,
retried with capped jittered backoff after a failure. Split from recovery.py, which keeps what a pass does."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from bot.venues.errors import VenueError
from bot.venues.ws import backoff_delay_s

if TYPE_CHECKING:
    from bot.execution.recovery import Recovery

__all__ = ["ReconcileIncomplete", "run_passes"]

_BURST = 3  # passes asked in a burst that run at once before `min_gap_ms` spaces them


class ReconcileIncomplete(RuntimeError):
    """Some step failed at the venue: retry (with backoff) and keep entries halted meanwhile."""


async def run_passes(rec: Recovery, wanted: asyncio.Event, on_done: Callable[[int], None], *,
                 timeout_s: float = 30.0, min_backoff_ms: int = 250, max_backoff_ms: int = 10_000,
                 interval_ms: int = 0, min_gap_ms: int = 0) -> None:
    """Reconcile now, whenever `wanted` is set (the user stream after every catch-up, a position that
    differs from the bot's, the in-flight check, the engine's `on_reconcile_needed`) and every
    `interval_ms` (0: only when asked); a failed pass alerts and is retried with capped jittered
    backoff. `on_done(runs)` after each complete pass. An isolated event gets its pass at once; a burst
    (each pass costs REST weight) gets `_BURST` passes, then one per `min_gap_ms` (at most `_BURST` in any
    `_BURST * min_gap_ms`: 1 s -> 9 weight/s worst case with 2 symbols); a pass deferred by busy symbols
    is retried at once only a few times in a row, then left to the timer (a symbol that trades all the
    time must not turn the timer into a loop)."""
    wanted.set()
    deferred_in_row = 0
    started: deque[float] = deque(maxlen=_BURST)  # monotonic start times of the last passes
    while True:
        if interval_ms > 0:
            try:
                await asyncio.wait_for(wanted.wait(), interval_ms / 1000.0)
            except TimeoutError:
                rec.reasons.append("timer")
        else:
            await wanted.wait()
        if min_gap_ms > 0 and len(started) == _BURST:
            wait_s = started[0] + _BURST * min_gap_ms / 1000.0 - time.monotonic()
            if wait_s > 0:
                await asyncio.sleep(wait_s)
        wanted.clear()
        started.append(time.monotonic())
        try:
            await asyncio.wait_for(rec.reconcile(), timeout_s)
        except (VenueError, ReconcileIncomplete, TimeoutError) as e:
            rec.failures += 1
            rec.failures_total += 1
            rec.last_failed_ns, rec.last_error = rec.engine.clock(), f"{type(e).__name__}: {e}"[:300]
            rec.alert("error", f"reconciliation failed ({rec.failures} in a row), retrying: "
                               f"{type(e).__name__}: {e}")
            wanted.set()
            await asyncio.sleep(backoff_delay_s(rec.failures, min_backoff_ms, max_backoff_ms))
            continue
        if rec.deferred:  # busy symbols: again shortly, on a fresh picture
            deferred_in_row += 1
            if deferred_in_row <= 3 or not rec.last_ok_ns or interval_ms <= 0:
                wanted.set()
            await asyncio.sleep(0.2)
            continue
        deferred_in_row = 0
        rec.failures = 0
        rec.last_ok_ns = rec.engine.clock()
        on_done(rec.runs)
