"""`PaperGateway`: the simulator's order entry behind the `ExecutionGateway` port, on live market data.

It is `SimGateway` (bot/venues/sim/gateway.py) with two differences that live data need:

- The exchange's clock is the wall clock (`clock`, default `time.time_ns`), not the time of the last
  market event: a request leaves at `clock()` and is matched when its latency has passed
  (`order_latency_ms` + jitter of the [sim] section), against the book as it is then. On a busy book the
  next market event carries it (requests due by an event's time are processed before that event,
  SimExchange.on_event); on a quiet one `run_clock` wakes at its arrival time.
- `on_market_event(ev)` is the tap the paper feed calls with every parsed event the bot's DOM gets,
  before the bot sees it (on a venue the matching happens before the market data go out).

By construction it cannot reach a venue: it is built from a `SimExchange` and a clock, takes no key,
and this module imports no HTTP/websocket client (tests/test_paper_gateway.py checks both). There is
no user stream: order updates come from the local matching engine (`updates()`), as in the simulator.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

from bot.venues.sim.exchange import SimExchange
from bot.venues.sim.gateway import SimGateway

__all__ = ["PaperGateway"]


class PaperGateway(SimGateway):
    name = "paper"
    user_stream = None  # no private stream: fills come from the local engine (the app checks this)

    def __init__(self, exchange: SimExchange, clock: Callable[[], int] = time.time_ns) -> None:
        super().__init__(exchange)
        self.clock = clock
        self._wake = asyncio.Event()  # a request was scheduled: run_clock looks at its arrival time
        self.market_events = 0

    def on_market_event(self, ev: Any) -> None:
        """One parsed public event (depth diff/snapshot, trade, bookTicker, mark price) into the engine."""
        self.market_events += 1
        self.ex.on_event(ev, self.clock())

    async def _request(self, fn: str, *args: Any, **kw: Any) -> object:
        # Bring the exchange to now first: the request leaves at the wall-clock time, not at the time
        # of the last market event (which can be seconds old on a quiet book).
        self.ex.advance_to(self.clock())
        self._wake.set()
        return await super()._request(fn, *args, **kw)

    async def run_clock(self) -> None:
        """Until cancelled: process requests in flight once their latency has passed, with or without a
        market event to carry them (the wall clock drives the exchange)."""
        ex = self.ex
        while True:
            self._wake.clear()
            due = ex.next_request_ns()
            if due is None:
                await self._wake.wait()
                continue
            delay_s = (due - self.clock()) / 1e9
            if delay_s > 0:
                # a request sent meanwhile may arrive earlier (latency jitter): wake for it too
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay_s)
                continue
            ex.advance_to(self.clock())
