"""The simulator's order records, the reports it emits, and its error type.

Statuses and execution types are Binance's own words (exchange-facts A3/A4) so the server writes them
as they are: regular orders NEW, PARTIALLY_FILLED, FILLED, CANCELED, EXPIRED; algo (conditional)
orders NEW, TRIGGERED, FINISHED, CANCELED, EXPIRED, REJECTED.

Reports carry a *copy* of the order as it was at that moment (orders are mutable records).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

__all__ = [
    "AccountReport",
    "AlgoOrder",
    "AlgoReport",
    "OrderReport",
    "RequestResult",
    "SimError",
    "SimOrder",
]


class SimError(Exception):
    """The exchange said no: a Binance error code and message (e.g. -2019 'Margin is insufficient.')."""

    def __init__(self, code: int, msg: str, http_status: int = 400) -> None:
        super().__init__(f"{code}: {msg}")
        self.code = code
        self.msg = msg
        self.http_status = http_status


class SimOrder:
    """A regular order (LIMIT or MARKET) in the matching engine."""

    __slots__ = ("avg_notional_tl", "client_id", "close_position", "created_ns", "filled_lots",
                 "level_lots", "order_id", "orig_type", "parent_algo_id", "parent_client_id", "price_ticks",
                 "qty_lots", "queue_ahead_lots", "reduce_only", "seq", "side_sign", "status", "stop_ticks",
                 "symbol", "tif", "type", "updated_ns", "working_type")

    def __init__(self, order_id: int, client_id: str, symbol: str, side_sign: int, type_: str, tif: str,
                 qty_lots: int, price_ticks: int, reduce_only: bool, now_ns: int, seq: int) -> None:
        self.order_id = order_id
        self.client_id = client_id
        self.symbol = symbol
        self.side_sign = side_sign  # +1 BUY, -1 SELL
        self.type = type_  # "LIMIT" | "MARKET"
        self.orig_type = type_  # STOP_MARKET etc. for the child of a triggered algo order
        self.tif = tif
        self.qty_lots = qty_lots
        self.price_ticks = price_ticks  # 0 for MARKET
        self.stop_ticks = 0
        self.reduce_only = reduce_only
        self.close_position = False
        self.working_type = "CONTRACT_PRICE"
        self.filled_lots = 0
        self.avg_notional_tl: float = 0  # sum of ticks*lots of the fills (average = this / filled)
        self.status = "NEW"
        self.created_ns = now_ns
        self.updated_ns = now_ns
        self.queue_ahead_lots = 0  # displayed size ahead of us at our price (resting orders)
        self.level_lots = 0  # displayed size at our price when last seen
        self.parent_algo_id = 0
        self.parent_client_id = ""
        self.seq = seq  # arrival order (FIFO among our own orders)

    @property
    def side(self) -> str:
        return "BUY" if self.side_sign > 0 else "SELL"

    @property
    def remaining_lots(self) -> int:
        return self.qty_lots - self.filled_lots

    @property
    def is_open(self) -> bool:
        return self.status in ("NEW", "PARTIALLY_FILLED")

    def avg_ticks(self) -> float:
        return self.avg_notional_tl / self.filled_lots if self.filled_lots else 0.0

    def copy(self) -> SimOrder:
        return copy.copy(self)


class AlgoOrder:
    """A conditional order held by the "Algo Service" until it triggers (exchange-facts A3)."""

    __slots__ = ("activate_ticks", "activated", "algo_id", "callback_rate_bps", "child_order_id",
                 "client_algo_id", "close_position", "created_ns", "extreme_ticks", "fill_lots",
                 "fill_notional_tl", "price_protect", "qty_lots", "reason", "reduce_only", "side_sign", "status",
                 "symbol", "trigger_ns", "trigger_ticks", "type", "updated_ns", "working_type")

    def __init__(self, algo_id: int, client_algo_id: str, symbol: str, side_sign: int, type_: str,
                 qty_lots: int, trigger_ticks: int, working_type: str, reduce_only: bool,
                 close_position: bool, now_ns: int) -> None:
        self.algo_id = algo_id
        self.client_algo_id = client_algo_id
        self.symbol = symbol
        self.side_sign = side_sign
        self.type = type_  # STOP_MARKET | TAKE_PROFIT_MARKET | TRAILING_STOP_MARKET
        self.qty_lots = qty_lots
        self.trigger_ticks = trigger_ticks
        self.working_type = working_type  # MARK_PRICE | CONTRACT_PRICE
        self.reduce_only = reduce_only
        self.close_position = close_position
        self.price_protect = False
        self.activate_ticks = 0  # trailing: 0 = active at once
        self.callback_rate_bps = 0  # trailing: 100 = 1 %
        self.activated = False
        self.extreme_ticks = 0.0  # trailing: best price since activation
        self.status = "NEW"
        self.child_order_id = 0
        self.fill_lots = 0
        self.fill_notional_tl: float = 0
        self.reason = ""
        self.created_ns = now_ns
        self.updated_ns = now_ns
        self.trigger_ns = 0

    @property
    def side(self) -> str:
        return "BUY" if self.side_sign > 0 else "SELL"

    @property
    def is_open(self) -> bool:
        return self.status == "NEW"

    def copy(self) -> AlgoOrder:
        return copy.copy(self)


@dataclass(slots=True)
class OrderReport:
    """ORDER_TRADE_UPDATE: one change of one regular order. `exec_type` is Binance's `x`
    (NEW, TRADE, CANCELED, EXPIRED, CALCULATED for a liquidation fill, REJECTED)."""

    ts_ns: int
    order: SimOrder  # a copy as of this report
    exec_type: str
    last_lots: int = 0
    last_ticks: float = 0.0
    fee: float = 0.0
    realized_pnl: float = 0.0
    is_maker: bool = False
    trade_id: int = 0
    reason: str = ""


@dataclass(slots=True)
class AlgoReport:
    """ALGO_UPDATE: one change of one conditional order (status in `algo.status`)."""

    ts_ns: int
    algo: AlgoOrder  # a copy as of this report


@dataclass(slots=True)
class AccountReport:
    """ACCOUNT_UPDATE: balances and the positions that changed. reason: ORDER, FUNDING_FEE, ..."""

    ts_ns: int
    reason: str
    symbols: tuple[str, ...]
    balance_change: float = 0.0


@dataclass(slots=True)
class RequestResult:
    """Outcome of a request scheduled through the latency model (`SimExchange.send*`)."""

    ticket: int
    ts_ns: int
    value: object = None  # the order / algo order (a copy) on success
    error: SimError | None = None
    extra: dict[str, object] = field(default_factory=dict)
