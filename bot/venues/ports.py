"""Ports: what the execution engine needs from a venue, and what a market feed gives.

Every venue (Binance USD-M through ccxt, Bybit through ccxt, the in-process simulator, the paper
gateway) implements `ExecutionGateway`; nothing above `venues/` knows which one it talks to
(architecture.md: a second venue is one new folder; paper trading is another gateway, never an
`if dry_run:`). Quantities are integer lots and prices integer ticks of the symbol's Instrument; the
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
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from bot.domain.instrument import Instrument
from bot.domain.types import OrderKind, OrderStatus, Side, TimeInForce, TriggerPrice

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


@dataclass(frozen=True, slots=True)
class OrderRequest:
    client_id: str  # names the trade and the leg, e.g. "t42-entry", "t42-sl", "t42-tp1" (<= 36 chars)
    symbol: str
    side: Side
    kind: OrderKind
    qty_lots: int  # 0 with close_position=True
    price_ticks: int | None = None  # LIMIT only
    trigger_ticks: int | None = None  # STOP_MARKET / TAKE_PROFIT_MARKET / trailing activation
    time_in_force: TimeInForce = TimeInForce.GTC
    reduce_only: bool = False
    close_position: bool = False
    working_type: TriggerPrice = TriggerPrice.MARK
    callback_rate_bps: int | None = None  # trailing stop callback (Binance callbackRate is in %: bps/100)
    # Entries only: a protective stop the venue attaches to the order itself, armed when the position
    # opens (Bybit `stopLoss`, whole position, trigger = working_type). Venues that cannot attach one
    # (Binance) ignore it: the trade machine's own STOP_MARKET leg follows the first fill either way.
    attached_stop_ticks: int | None = None


@dataclass(frozen=True, slots=True)
class OrderAck:
    client_id: str
    venue_order_id: str
    status: OrderStatus
    ts_ns: int


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    """One change of one order, from the user stream or a REST look-up.

    `last_fill_lots`/`last_fill_price` describe the fill this update reports (0 when none);
    `filled_lots` is cumulative. Fills carry a price as float (average prices are not on the grid).
    """

    client_id: str
    venue_order_id: str
    symbol: str
    side: Side
    kind: OrderKind
    status: OrderStatus
    qty_lots: int
    filled_lots: int
    avg_price: float
    last_fill_lots: int = 0
    last_fill_price: float = 0.0
    fee: float = 0.0  # in the quote asset, this fill
    is_maker: bool = False
    reduce_only: bool = False
    trade_id: str = ""
    reason: str = ""
    ts_event_ns: int = 0
    ts_recv_ns: int = 0
    parent_id: str = ""  # a triggered conditional order: the algo order's client id


@dataclass(frozen=True, slots=True)
class FundingPayment:
    """One funding settlement on the account, as the venue reported it.

    `amount_quote` is signed as the venue reports it (Binance ACCOUNT_UPDATE `bc`): negative = paid.
    `symbol` is "" when the venue does not say (Binance cross margin: the event carries no position).
    `venue_ref` identifies the settlement, so a replay of the same message (a reconnect overlap, a REST
    catch-up) is journaled once.
    """

    symbol: str
    amount_quote: float
    asset: str
    ts_event_ns: int
    ts_recv_ns: int
    venue_ref: str


@dataclass(frozen=True, slots=True)
class PositionSnapshot:
    symbol: str
    qty_lots: int  # signed: > 0 long, < 0 short
    entry_price: float
    unrealized_pnl: float = 0.0
    liquidation_price: float = 0.0
    leverage: int = 0
    isolated: bool = False


@dataclass(frozen=True, slots=True)
class AccountSnapshot:
    equity: float
    available: float
    wallet_balance: float
    positions: tuple[PositionSnapshot, ...] = field(default_factory=tuple)


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
