"""What the live ccxt gateways (Binance USD-M, Bybit v5) share: their life cycle around the user stream and
the clock resync, and the queues the stream publishes into.

`LiveGateway.__init__` sets the common state; the venue's `start()` loads markets, measures the clock, builds
`self.user_stream` and calls `_autorun()`. The background task (user stream + clock loop) reports its death
through `updates()`, which raises: the engine must not keep trading on a venue it no longer hears from.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp

from bot.domain.instrument import Instrument
from bot.logging import get_logger
from bot.settings.core import VenueSection
from bot.venues.binance_usdm.clock import ClockSync
from bot.venues.errors import RateLimited, VenueUnavailable
from bot.venues.ports import FundingPayment, OrderUpdate, PositionSnapshot

__all__ = ["LiveGateway"]


class LiveGateway:
    name = "live"
    stream_name = "user stream"  # in the error `updates()` raises when the stream died
    log_name = "gateway"
    ex: Any
    user_stream: Any

    def __init__(self, venue: VenueSection, *, session: aiohttp.ClientSession | None,
                 wall_s: Callable[[], float] = time.time) -> None:
        self.venue = venue
        self.symbols = venue.symbols
        self._wall_s = wall_s
        self._session = session
        self._own_session = session is None
        self.ex = None
        self.user_stream = None
        self.clock = ClockSync(venue.recv_window_ms, venue.clock_max_offset_frac)
        self._instruments: dict[str, Instrument] = {}
        self._ccxt_symbol: dict[str, str] = {}
        self._task: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None
        self._updates: asyncio.Queue[OrderUpdate | None] = asyncio.Queue()
        self._positions: asyncio.Queue[PositionSnapshot] = asyncio.Queue()
        self._funding: asyncio.Queue[FundingPayment] = asyncio.Queue()
        self._clock_lock = asyncio.Lock()
        self._log = get_logger(self.log_name, env=venue.environment)

    # ------------------------------------------------------------------------------------ life cycle
    def _autorun(self) -> None:
        self._task = asyncio.create_task(self.run(), name=f"{self.name}-gateway")
        self._task.add_done_callback(self._on_task_done)

    async def run(self) -> None:
        assert self.user_stream is not None
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.user_stream.run())
            tg.create_task(self._clock_loop())

    def _on_task_done(self, t: asyncio.Task[None]) -> None:
        if not t.cancelled() and t.exception() is not None:
            self._failure = t.exception()
            self._log.error("gateway background task died", error=repr(self._failure))
            self._updates.put_nowait(None)  # wakes updates(), which raises

    async def sync_clock(self, samples: int = 3) -> None:
        raise NotImplementedError

    async def _clock_loop(self) -> None:
        while True:
            await asyncio.sleep(self.venue.clock_resync_s)
            try:
                await self.sync_clock()
            except (VenueUnavailable, RateLimited) as e:
                self._log.warning("clock resync failed", error=str(e))

    async def _close_stream(self) -> None:
        """Venue-specific farewell of the user stream (Binance deletes its listenKey)."""

    async def close(self) -> None:
        if self._task is not None:
            if not self._task.done():  # a task that died already reported it (log + updates() raising)
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            self._task = None
        if self.user_stream is not None and self.ex is not None:
            await self._close_stream()
        if self.ex is not None:
            await self.ex.close()  # does not close a session it was given (C4)
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    def instrument(self, symbol: str) -> Instrument:
        return self._instruments[symbol]

    @property
    def instruments(self) -> dict[str, Instrument]:
        return dict(self._instruments)

    # ------------------------------------------------------------------------------------ stream output
    def publish(self, item: OrderUpdate | PositionSnapshot | FundingPayment) -> None:
        """Called by the user stream (and its REST catch-up)."""
        if isinstance(item, OrderUpdate):
            self._updates.put_nowait(item)
        elif isinstance(item, FundingPayment):
            self._funding.put_nowait(item)
        else:
            self._positions.put_nowait(item)

    async def updates(self) -> AsyncIterator[OrderUpdate]:
        while True:
            u = await self._updates.get()
            if u is None:
                raise VenueUnavailable(f"{self.stream_name} died: {self._failure!r}") from self._failure
            yield u

    async def position_updates(self) -> AsyncIterator[PositionSnapshot]:
        while True:
            yield await self._positions.get()
