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
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from bot.domain.instrument import Instrument
from bot.domain.orders import (
    AccountSnapshot,
    FundingPayment,
    OrderAck,
    OrderRequest,
    OrderUpdate,
    PositionSnapshot,
)
from bot.venues.order_transport import OrderTransportSnapshot

__all__ = [
    "NO_EXTRAS",
    "AccountSnapshot",
    "AccountTrades",
    "ExecutionGateway",
    "FundingPayment",
    "FundingSource",
    "GatewayCapabilities",
    "OrderAck",
    "OrderRequest",
    "OrderTransportReport",
    "OrderTransportSnapshot",
    "OrderUpdate",
    "PositionLevelStops",
    "PositionSnapshot",
    "RawOrderLookup",
    "RetryAfterState",
    "VenueIdCancel",
    "WarmSubmit",
]


@dataclass(frozen=True, slots=True)
class GatewayCapabilities:
    """What a venue does beyond the `ExecutionGateway` port, declared by the gateway class (issue 12: venue
    differences as a record, not `getattr` probing). Each flag promises the protocol named beside it."""

    account_trades: bool = False  # AccountTrades.user_trades(): the exact fills of an order / of the account
    raw_order_lookup: bool = False  # RawOrderLookup.fetch_order_raw(): an algo order's child (actualOrderId)
    position_level_stop: bool = False  # PositionLevelStops: one stop per position, not per order (Bybit)
    funding: bool = False  # FundingSource.funding_updates(): funding settlements of the account
    stream_missed_hook: bool = False  # `on_stream_missed(symbol, detail)` is called for fills the stream missed
    # submit() does its own synchronous work (checks, request, signature, hand-off to the transport) before its
    # first await and needs nothing from its caller to progress: the engine may start an entry eagerly
    # (bot/execution/eager.py)
    eager_submit: bool = False
    retry_after: bool = False  # RetryAfterState.blocked_for_s(): how long a venue's Retry-After still blocks
    cancel_by_venue_id: bool = False  # VenueIdCancel.cancel_venue_order(): orders placed without a client id
    order_transport: bool = False  # OrderTransportReport.order_transport_state(): the order socket, for the operator
    warm_submit: bool = False  # WarmSubmit.warm_submit(): submit's synchronous part run and dropped (execution/warm.py)


NO_EXTRAS = GatewayCapabilities()


@runtime_checkable
class ExecutionGateway(Protocol):
    """Order entry and account state of one venue account."""

    name: str
    capabilities: GatewayCapabilities

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


class AccountTrades(Protocol):
    """`capabilities.account_trades`: the account's trades (Binance userTrades, Bybit execution list),
    oldest first by the caller; `order_id` "" = every order since `start_ms`."""

    async def user_trades(self, symbol: str, order_id: str = "", start_ms: int = 0) -> list[dict[str, Any]]: ...


class RawOrderLookup(Protocol):
    """`capabilities.raw_order_lookup`: the venue's own record of one order (an algo order's child id)."""

    async def fetch_order_raw(self, symbol: str, client_id: str, conditional: bool) -> dict[str, Any] | None: ...


class PositionLevelStops(Protocol):
    """`capabilities.position_level_stop`: the venue keeps one stop per position (Bybit `stopLoss`), so an
    open order may be the position's stop rather than one of ours, and a restart must re-own it."""

    def is_position_level(self, u: OrderUpdate) -> bool: ...

    def adopt_stop(self, req: OrderRequest, since_ns: int = 0) -> None: ...


class WarmSubmit(Protocol):
    """`capabilities.warm_submit`: what `submit` does before its first await for `req` (the clock check, the
    venue's request, the limiter's look, the signature), then dropped: nothing sent, counted or registered.
    It keeps that code in the CPU caches between entries (bot/execution/warm.py)."""

    def warm_submit(self, req: OrderRequest) -> None: ...


class VenueIdCancel(Protocol):
    """`capabilities.cancel_by_venue_id`: cancel an order by the venue's own id. A venue that lets an order
    be placed without a client id (Bybit: orderLinkId is optional, B3; a hand-placed order has none) needs it
    for reconciliation to cancel such an order; idempotent like `cancel`."""

    async def cancel_venue_order(self, symbol: str, venue_order_id: str) -> None: ...


class RetryAfterState(Protocol):
    """`capabilities.retry_after`: seconds a Retry-After (429/418; Bybit 403, 10006/10018) the venue answered
    still forbids sending, the longest block of any kind; 0.0 when nothing is blocked. The app waits it out
    before retrying its start and adds it to the shutdown's wait (exits wait it out)."""

    def blocked_for_s(self, now_s: float) -> float: ...


class OrderTransportReport(Protocol):
    """`capabilities.order_transport`: how this gateway's orders travel now (execution.order_transport; the
    order websocket's state, reconnects, requests over it, REST fallbacks, last error). Read-only and cheap:
    the ops side calls it at every scrape (bot/venues/order_transport.py)."""

    def order_transport_state(self) -> OrderTransportSnapshot: ...
