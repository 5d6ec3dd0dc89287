"""Test support: loopback servers replaying recorded data, and a bounded polling helper."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["until"]


async def until(cond: Callable[[], bool], limit_s: float = 10.0, poll_s: float = 0.005) -> None:
    """Wait until `cond()` holds, at most `limit_s` (TimeoutError otherwise). Polling, because the
    conditions are on plain counters of sync objects, which have no events to await."""
    async with asyncio.timeout(limit_s):
        while not cond():  # noqa: ASYNC110 - see docstring
            await asyncio.sleep(poll_s)
