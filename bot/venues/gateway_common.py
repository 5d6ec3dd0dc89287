"""What the live ccxt gateways (Binance USD-M, Bybit v5) share: their life cycle around the user stream and
the clock resync, and the queues the stream publishes into.

`LiveGateway.__init__` sets the common state; the venue's `start()` loads markets, measures the clock, builds
`self.user_stream` and calls `_autorun()`. The background task (user stream + clock loop) reports its death
through `updates()`, which raises: the engine must not keep trading on a venue it no longer hears from.

Positions from the stream (ACCOUNT_UPDATE, Bybit `position`) are kept as the latest snapshot per symbol
(bounded by the number of symbols, whatever the message rate) and handed to `position_updates()`, whose
consumer (the app) compares them with the engine's trades.

Fills from the order's own answer (`ack_fill`): Binance answers `newOrderRespType=RESULT` with executedQty,
avgPrice and status (exchange-facts A2/A3). When that answer says an order (a market entry, an exit) filled
and the user stream has not delivered the fill `ack_fill_grace_ms` later, the exact fills are fetched
(GET userTrades: trade ids, prices, fees) and published as if the stream had sent them; the translator drops
a trade id it has seen, and the trade machine applies a fill only as far as its cumulative quantity grows,
so a stream that delivers the same fill later changes nothing. When the fills cannot be listed, the answer
itself is published (cumulative quantity and average price, no fee).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp

from bot.domain.instrument import Instrument
from bot.domain.orders import BalanceUpdate, FundingPayment, OrderUpdate, PositionSnapshot
from bot.logging import get_logger
from bot.settings.core import VenueSection
from bot.venues.clock import ClockSync
from bot.venues.errors import RateLimited, VenueUnavailable
from bot.venues.ports import GatewayCapabilities

__all__ = ["LiveGateway"]


class LiveGateway:
    name = "live"
    capabilities = GatewayCapabilities(stream_missed_hook=True)
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
        self._positions: dict[str, PositionSnapshot] = {}  # latest per symbol, not yet consumed
        self._positions_ready = asyncio.Event()
        self._stream_filled: OrderedDict[str, int] = OrderedDict()  # venue order id -> lots the stream reported
        self._ack_tasks: set[asyncio.Task[None]] = set()
        self.ack_fill_grace_ms = venue.ack_fill_grace_ms
        self.ack_fills = {"checked": 0, "fetched": 0, "from_answer": 0, "stream_first": 0}
        # (symbol, detail): a fill the stream did not deliver in time (the app puts the stream in doubt)
        self.on_stream_missed: Callable[[str, str], None] | None = None
        self._funding: asyncio.Queue[FundingPayment] = asyncio.Queue()
        # the wallet balance from the user stream (Binance ACCOUNT_UPDATE); the app shows it (bot.ops.live)
        self.on_balance: Callable[[BalanceUpdate], None] | None = None
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
        for t in list(self._ack_tasks):
            t.cancel()
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
    def publish(self, item: OrderUpdate | PositionSnapshot | FundingPayment | BalanceUpdate) -> None:
        """Called by the user stream (and its REST catch-up)."""
        if isinstance(item, OrderUpdate):
            if item.filled_lots and item.venue_order_id:
                key = item.venue_order_id
                self._stream_filled[key] = max(self._stream_filled.get(key, 0), item.filled_lots)
                self._stream_filled.move_to_end(key)
                if len(self._stream_filled) > 4096:
                    self._stream_filled.popitem(last=False)
            self._updates.put_nowait(item)
        elif isinstance(item, FundingPayment):
            self._funding.put_nowait(item)
        elif isinstance(item, BalanceUpdate):
            if self.on_balance is not None:
                self.on_balance(item)
        else:
            self._positions[item.symbol] = item  # the latest only: an older snapshot of it is moot
            self._positions_ready.set()

    def ack_fill(self, u: OrderUpdate, fetch_fills: Callable[[OrderUpdate], Awaitable[int]] | None) -> None:
        """The order's own answer says it filled (`u`, cumulative): make sure the engine hears of it even
        when the user stream does not (see the module docstring). `fetch_fills(u)` publishes the exact fills
        (returns how many); None: publish the answer itself."""
        if u.filled_lots <= 0 or not u.venue_order_id:
            return
        task = asyncio.get_running_loop().create_task(self._ack_fill(u, fetch_fills))
        self._ack_tasks.add(task)
        task.add_done_callback(self._ack_tasks.discard)

    async def _ack_fill(self, u: OrderUpdate, fetch_fills: Callable[[OrderUpdate], Awaitable[int]] | None) -> None:
        await asyncio.sleep(self.ack_fill_grace_ms / 1000.0)
        self.ack_fills["checked"] += 1
        if self._stream_filled.get(u.venue_order_id, 0) >= u.filled_lots:
            self.ack_fills["stream_first"] += 1
            return
        self._log.warning("fill known from the order's answer only; the user stream did not deliver it",
                          client_id=u.client_id, filled_lots=u.filled_lots, grace_ms=self.ack_fill_grace_ms)
        if self.on_stream_missed is not None:
            self.on_stream_missed(u.symbol, f"{u.client_id} filled per its answer, not delivered by the user "
                                            f"stream within {self.ack_fill_grace_ms} ms")
        if fetch_fills is not None:
            try:
                await fetch_fills(u)
                self.ack_fills["fetched"] += 1
            except (VenueUnavailable, RateLimited) as e:
                self._log.warning("fills of an answered order not listed; using the answer", error=str(e))
            if self._stream_filled.get(u.venue_order_id, 0) >= u.filled_lots:
                return
        self.ack_fills["from_answer"] += 1
        self.publish(u)

    async def updates(self) -> AsyncIterator[OrderUpdate]:
        while True:
            u = await self._updates.get()
            if u is None:
                raise VenueUnavailable(f"{self.stream_name} died: {self._failure!r}") from self._failure
            yield u

    async def position_updates(self) -> AsyncIterator[PositionSnapshot]:
        """The latest snapshot of every symbol that changed since the last one was taken."""
        while True:
            await self._positions_ready.wait()
            self._positions_ready.clear()
            got, self._positions = self._positions, {}
            for snap in got.values():
                yield snap
