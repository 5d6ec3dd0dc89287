"""What the Binance and Bybit conformance runs share: the field check, waiting for an event, the update
collector, the minimum size, clean-up and the run's frame (connect, wire the taps, steps, always clean up).

A venue's run (binance.py, bybit.py) subclasses `RunBase`, wires its taps in `_wire` and lists its steps in
a coroutine handed to `run_lifecycle`; the steps themselves call the bot's own gateway, so each venue file
keeps only what differs (routes, parsers, codes).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from bot.conformance.fields import missing_fields
from bot.conformance.report import Deviation, Report
from bot.domain.orders import OrderRequest, OrderUpdate
from bot.domain.types import OrderKind, OrderStatus, Side, TimeInForce

if TYPE_CHECKING:
    from bot.domain.instrument import Instrument
    from bot.settings import Settings

__all__ = ["EVENT_WAIT_S", "FAR_LIMIT_BPS", "FAR_STOP_BPS", "RunBase", "check_fields", "run_lifecycle"]

EVENT_WAIT_S = 10.0
# a post-only limit this far from the bid rests and never fills; Binance's PERCENT_PRICE filter bounds how far
# a limit may be (~5 % on majors, exchange-facts A5), so 3 %
FAR_LIMIT_BPS = 300
FAR_STOP_BPS = 1000  # a stop 10 % away never triggers in the seconds it lives

T = TypeVar("T")


def check_fields(where: str, parse: Callable[[Any], object], body: Any,
                 optional: frozenset[str] = frozenset()) -> None:
    """Hand `body` to the bot's parser; a field it reads and the venue left out is a Deviation naming it."""
    missing, err = missing_fields(parse, body, optional)
    if missing:
        names = ", ".join(f"`{m}`" for m in missing)
        raise Deviation(f"{where}: field{'s' if len(missing) > 1 else ''} {names} missing"
                        + (f" ({err})" if err else ""))
    if err:
        raise Deviation(f"{where}: the bot's parser refused the answer: {err}")


class _Gateway(Protocol):
    ex: Any
    clock: Any

    async def sync_clock(self) -> Any: ...

    def updates(self) -> Any: ...

    def instrument(self, symbol: str) -> Instrument: ...

    async def start(self, autorun: bool = ...) -> Any: ...

    async def close(self) -> None: ...


class RunBase:
    """The state and helpers a venue's lifecycle shares: settings, gateway, symbol, the run's client-id tag,
    the gateway's published updates and the raw user-stream events the taps saw."""

    gw: _Gateway

    def __init__(self, settings: Settings) -> None:
        self.s = settings
        self.symbol = settings.venue.symbols[0]
        # the run's client id prefix, in milliseconds: two runs against one account within the same second (a
        # second took ~0.5 s to start once bytecode was compiled) reused each other's ids, which the venue refuses
        # (Bybit 10001 "OrderLinkedID is duplicate"; Binance -4116)
        self.tag = f"conf-{time.time_ns() // 1_000_000 % 10**10}"
        self.updates: list[OrderUpdate] = []
        self.raw_events: list[dict[str, Any]] = []

    stream_name = "user stream"  # the venue's word for its private stream, in the connect step's text

    async def start(self) -> str:
        await self.gw.start(autorun=True)
        return f"{self.symbol} listed; {self.stream_name} started"

    def _wire(self) -> None:
        raise NotImplementedError

    def cleanup_orders(self) -> Iterable[Awaitable[Any]]:
        """The cancels of everything the run may have left (a venue's run overrides)."""
        return ()

    async def cleanup(self) -> None:
        for cancel in self.cleanup_orders():
            try:
                await cancel
            except Exception:  # best effort; what is left open shows in the failed steps
                continue

    async def collect(self) -> None:
        async for u in self.gw.updates():
            if isinstance(u, OrderUpdate):
                self.updates.append(u)

    async def wait_for(self, find: Callable[[], T | None], fail: Callable[[], str],
                       deadline: float | None = None) -> T:
        """Poll `find` every 20 ms until it returns something; past the deadline a Deviation saying `fail()`."""
        end = time.monotonic() + EVENT_WAIT_S if deadline is None else deadline
        while (got := find()) is None:  # bounded by the deadline
            if time.monotonic() > end:
                raise Deviation(fail())
            await asyncio.sleep(0.02)
        return got

    async def gateway_published(self, cid: str, status: OrderStatus, where: str, deadline: float) -> None:
        """What the engine gets: the gateway's own update of the change (not only the raw event)."""
        await self.wait_for(
            lambda: True if any(u.client_id == cid and u.status is status for u in self.updates) else None,
            lambda: f"{where}: the gateway published no {status.value} for {cid}", deadline)

    async def clock_answer(self, method: str) -> Any:
        """Run the gateway's own clock sync with a tap on the ccxt call it makes (`method`); its last raw
        answer. The tap is removed afterwards whatever happened."""
        ex = self.gw.ex
        own = method in vars(ex)
        call = getattr(ex, method)
        bodies: list[Any] = []

        async def tap(params: Any = None) -> Any:
            res = await call(params or {})
            bodies.append(res)
            return res

        setattr(ex, method, tap)
        try:
            await self.gw.sync_clock()
        finally:
            if own:
                setattr(ex, method, call)
            else:
                delattr(ex, method)  # back to the class's method
        return bodies[-1]

    def clock_verdict(self, where: str) -> str:
        """The bot's own entry rule on the measured skew (venues/clock.py) as the step's verdict."""
        clock = self.gw.clock
        refusal = clock.entry_refusal()
        if refusal:
            raise Deviation(f"{where}: {refusal}: the bot would refuse entries")
        return f"offset {clock.offset_ms:+.1f} ms, rtt {clock.rtt_ms:.1f} ms (limit {clock.limit_ms:.0f} ms)"

    def filters_verdict(self, where: str, required: tuple[str, ...]) -> str:
        """The instrument as the bot parsed it: a zero filter is one the venue did not send."""
        inst = self.gw.instrument(self.symbol)
        zero = [n for n in required if float(getattr(inst, n)) <= 0]
        if zero:
            raise Deviation(f"{where}: {self.symbol} has no {', '.join(zero)} (filter missing)")
        return (f"tick {inst.tick_size}, step {inst.step_size}, min qty {inst.min_qty}, "
                f"min notional {inst.min_notional}")

    def far_limit(self, cid: str, bid: float) -> OrderRequest:
        """A minimum-size post-only BUY limit FAR_LIMIT_BPS below the bid: it rests and never fills."""
        inst = self.gw.instrument(self.symbol)
        price_ticks = int(bid * (1 - FAR_LIMIT_BPS / 10_000) / inst.tick)
        return OrderRequest(cid, self.symbol, Side.BUY, OrderKind.LIMIT, self.min_lots(price_ticks * inst.tick),
                            price_ticks, time_in_force=TimeInForce.GTX)

    def min_lots(self, price: float) -> int:
        """The smallest size the venue takes at `price`: min qty, and qty * price >= min notional (+10 %:
        the price moves between the quote and the order; exchange-facts A5 MIN_NOTIONAL, B3 minNotionalValue)."""
        inst = self.gw.instrument(self.symbol)
        need = float(inst.min_notional) * 1.1 / price
        return int(max(inst.min_lots, -(-round(need / inst.step, 9) // 1)))


async def run_lifecycle(report: Report, run: RunBase, connect: str,
                        steps: Callable[[], Awaitable[None]]) -> Report:
    """Connect (a failed connect skips the rest), wire the taps, collect the gateway's updates, run the
    venue's steps; whatever happened, cancel what the run placed and close the gateway."""
    collector: asyncio.Task[None] | None = None
    try:
        if not await report.step(connect, run.start):
            report.skip("the rest", "could not connect")
            return report
        run._wire()
        collector = asyncio.get_running_loop().create_task(run.collect())
        await steps()
        return report
    finally:
        if run.gw.ex is not None:
            await run.cleanup()
        if collector is not None:
            collector.cancel()
        await run.gw.close()

