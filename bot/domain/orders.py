"""The trade vocabulary shared by every layer: an order we send, the venue's answers about it, a funding
settlement, the account's positions. Pure data (issue 12 item 2: vocabulary in `domain/`, not in
`venues/`). Quantities are integer lots and prices integer ticks of the symbol's Instrument; the venue
converts to its strings at its edge. bot.venues.ports re-exports them for older imports.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.domain.types import OrderKind, OrderStatus, Side, TimeInForce, TriggerPrice

__all__ = [
    "AccountSnapshot",
    "BalanceUpdate",
    "FundingPayment",
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
class BalanceUpdate:
    """A wallet balance pushed by the user stream (Binance ACCOUNT_UPDATE `a.B[]`: `wb` wallet balance, `cw`
    cross wallet balance), after every fill, fee and funding settlement: what the operator sees between the
    REST account checks. Free margin is not in it (sizing keeps the REST snapshot's)."""

    asset: str
    wallet_balance: float
    cross_wallet: float
    ts_event_ns: int


@dataclass(frozen=True, slots=True)
class AccountSnapshot:
    equity: float
    available: float
    wallet_balance: float
    positions: tuple[PositionSnapshot, ...] = field(default_factory=tuple)
