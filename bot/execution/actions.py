"""Vocabulary of the trade lifecycle: legs, trade states and their transition table, timers, and the
actions the pure state machine hands to its driver (the engine, or a test).

The machine never performs I/O: it returns actions, in the order they must be carried out. The driver
journals each one before acting on it (a Submit's leg row is written before the order is sent).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from bot.domain.orders import OrderRequest
from bot.domain.types import CloseReason, OrderStatus

__all__ = [
    "TRANSITIONS",
    "Action",
    "Cancel",
    "FillRecord",
    "HaltSymbol",
    "Leg",
    "LegRole",
    "OrderEvent",
    "Schedule",
    "StateChanged",
    "Submit",
    "Timer",
    "TradeClosed",
    "TradeState",
    "Unschedule",
]


class TradeState(StrEnum):
    PLANNED = "PLANNED"  # journaled with its planned legs; nothing sent yet
    ENTERING = "ENTERING"  # entry order sent, nothing filled
    PROTECTING = "PROTECTING"  # a position exists and its (latest) stop is not yet confirmed
    PROTECTED = "PROTECTED"  # a position exists and the venue acknowledged its stop
    EXITING = "EXITING"  # flattening (time exit, failed stop) or waiting for entry legs to end when flat
    CLOSED = "CLOSED"  # flat after having held a position; every other leg cancelled
    ABORTED = "ABORTED"  # ended without ever holding a position (denied, rejected, cancelled, expired)


# The only legal moves (Nautilus-style explicit table). PROTECTED -> PROTECTING: a new stop (resize, move)
# is waiting for its acknowledgement, with the same confirm deadline as the first one.
TRANSITIONS: dict[TradeState, frozenset[TradeState]] = {
    TradeState.PLANNED: frozenset({TradeState.ENTERING, TradeState.ABORTED}),
    TradeState.ENTERING: frozenset({TradeState.PROTECTING, TradeState.ABORTED}),
    TradeState.PROTECTING: frozenset({TradeState.PROTECTED, TradeState.EXITING, TradeState.CLOSED}),
    TradeState.PROTECTED: frozenset({TradeState.PROTECTING, TradeState.EXITING, TradeState.CLOSED}),
    TradeState.EXITING: frozenset({TradeState.CLOSED}),
    TradeState.CLOSED: frozenset(),
    # an entry reported "not found" after an ambiguous outcome that executed after all (late matching,
    # issue 11): the trade opens as it would have, so its position gets its own stop and journal rows
    TradeState.ABORTED: frozenset({TradeState.ENTERING}),
}


class LegRole(StrEnum):
    ENTRY = "entry"
    ADD = "add"  # a scale-in increment
    STOP = "stop"
    TP = "tp"
    EXIT = "exit"  # a market order that flattens

    @property
    def opens(self) -> bool:
        return self in (LegRole.ENTRY, LegRole.ADD)


class Timer(StrEnum):
    ENTRY_TIMEOUT = "ENTRY_TIMEOUT"
    STOP_CONFIRM = "STOP_CONFIRM"
    NO_PROGRESS = "NO_PROGRESS"
    MAX_HOLD = "MAX_HOLD"
    EXIT_RETRY = "EXIT_RETRY"  # a refused market exit is sent again (capped backoff) while a position exists


@dataclass(slots=True)
class Leg:
    client_id: str
    role: LegRole
    req: OrderRequest
    intended_ticks: int  # limit price, trigger price, or the reference price of a market order
    tier: int = 0  # TP tier (1..), scale-in increment (2..), stop version (1..)
    status: OrderStatus = OrderStatus.PENDING_NEW
    confirmed: bool = False  # acknowledged by the venue (ack or any live status on the stream)
    filled_lots: int = 0
    avg_price: float = 0.0
    fees: float = 0.0
    venue_order_id: str = ""
    cancel_sent: bool = False

    @property
    def done(self) -> bool:
        return self.status.is_final


@dataclass(frozen=True, slots=True)
class Submit:
    trade_id: str
    leg: Leg
    reduces: bool  # protective/reducing: never denied by the gate's rate limit


@dataclass(frozen=True, slots=True)
class Cancel:
    trade_id: str
    symbol: str
    client_id: str
    conditional: bool


@dataclass(frozen=True, slots=True)
class Schedule:
    trade_id: str
    timer: Timer
    at_ns: int


@dataclass(frozen=True, slots=True)
class Unschedule:
    trade_id: str
    timer: Timer


@dataclass(frozen=True, slots=True)
class StateChanged:
    trade_id: str
    old: TradeState
    new: TradeState
    reason: str
    fields: dict[str, Any] = field(default_factory=dict)  # trade columns this change settles


@dataclass(frozen=True, slots=True)
class OrderEvent:
    """An order state change that carries no new fill (ack, trigger, cancel, expiry, rejection)."""

    trade_id: str
    client_id: str
    status: OrderStatus
    reason: str = ""
    venue_order_id: str = ""


@dataclass(frozen=True, slots=True)
class FillRecord:
    trade_id: str
    client_id: str
    role: LegRole
    side: str
    lots: int
    price: float
    fee: float
    is_maker: bool
    venue_trade_id: str
    status: OrderStatus  # of the order after this fill
    filled_lots: int
    avg_price: float
    ts_ns: int


@dataclass(frozen=True, slots=True)
class HaltSymbol:
    symbol: str
    reason: str


@dataclass(frozen=True, slots=True)
class TradeClosed:
    trade_id: str
    symbol: str
    setup: str
    reason: CloseReason
    pnl: float
    fees: float
    r_multiple: float


Action = Submit | Cancel | Schedule | Unschedule | StateChanged | OrderEvent | FillRecord | HaltSymbol | TradeClosed
