"""Ports: what the execution engine needs from a venue, and what a market feed gives.

Every venue (Binance USD-M through ccxt, Bybit through ccxt, the in-process simulator, the paper
gateway) implements `ExecutionGateway`; nothing above `venues/` knows which one it talks to
(architecture.md: a second venue is one new folder; paper trading is another gateway, never an
`if dry_run:`). The order/fill/position types live in bot.domain.orders (re-exported here). Quantities are
integer lots and prices integer ticks of the symbol's Instrument; the
gateway converts to the venue's strings at its edge.

Errors (bot.venues.errors, raised by gateways):
- OrderRejected: the venue said no (keep it apart from a *denial* by our own risk gate).
- AmbiguousOutcome: timeout / 5xx: the order may or may not exist. Never retry blindly: look it up
  by client id first (fetch_order).
- VenueUnavailable / RateLimited: back off (RateLimited carries retry_after_s).

Funding: a gateway that can see funding settlements also implements `FundingSource`
(`funding_updates()` -> `FundingPayment`). It is a separate protocol so `ExecutionGateway` (and every
fake of it) stays as it was; the app journals the payments (bot.journal.funding.FundingRecorder).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol, runtime_checkable

from bot.domain.instrument import Instrument
from bot.domain.orders import (
    AccountSnapshot,
    FundingPayment,
    OrderAck,
    OrderRequest,
    OrderUpdate,
    PositionSnapshot,
)

__all__ = [
    "AccountSnapshot",
    "ExecutionGateway",
    "FundingPayment",
    "FundingSource",
    "OrderAck",
    "OrderRequest",
    "OrderUpdate",
    "PositionSnapshot",
]


@runtime_checkable
class ExecutionGateway(Protocol):
    """Order entry and account state of one venue account."""

    name: str

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def instrument(self, symbol: str) -> Instrument: ...

    async def submit(self, req: OrderRequest) -> OrderAck: ...

    async def cancel(self, symbol: str, client_id: str, conditional: bool = False) -> None: ...

    async def fetch_order(
        self, symbol: str, client_id: str, conditional: bool = False
    ) -> OrderUpdate | None: ...

    async def open_orders(self, symbol: str | None = None) -> list[OrderUpdate]: ...

    async def set_leverage(self, symbol: str, leverage: int) -> None: ...

    async def account(self) -> AccountSnapshot: ...

    def updates(self) -> AsyncIterator[OrderUpdate]: ...


@runtime_checkable
class FundingSource(Protocol):
    """A gateway that reports funding settlements (Binance user stream, the simulators)."""

    def funding_updates(self) -> AsyncIterator[FundingPayment]: ...
