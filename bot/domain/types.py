"""Shared vocabulary: sides, order kinds and states, close reasons, and the signal -> risk intent."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

__all__ = [
    "CloseReason",
    "EntryIntent",
    "OrderKind",
    "OrderStatus",
    "RejectReason",
    "Side",
    "TakeProfitTier",
    "TimeInForce",
    "TriggerPrice",
]


class Side(str, Enum):
    BUY = "BUY"
    SELL = "SELL"

    @property
    def sign(self) -> int:
        return 1 if self is Side.BUY else -1

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY

    @classmethod
    def for_position(cls, direction: str) -> Side:
        """'long' -> BUY (the entry side), 'short' -> SELL."""
        return cls.BUY if direction == "long" else cls.SELL


class OrderKind(str, Enum):
    LIMIT = "LIMIT"
    MARKET = "MARKET"
    STOP_MARKET = "STOP_MARKET"  # Binance: algo order (POST /fapi/v1/algoOrder), exchange-facts A3
    TAKE_PROFIT_MARKET = "TAKE_PROFIT_MARKET"
    TRAILING_STOP_MARKET = "TRAILING_STOP_MARKET"

    @property
    def is_conditional(self) -> bool:
        return self in (OrderKind.STOP_MARKET, OrderKind.TAKE_PROFIT_MARKET, OrderKind.TRAILING_STOP_MARKET)


class TimeInForce(str, Enum):
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"
    GTX = "GTX"  # post-only (Binance GTX; Bybit PostOnly)


class TriggerPrice(str, Enum):
    MARK = "MARK_PRICE"
    LAST = "CONTRACT_PRICE"  # Binance's name for the last price


class OrderStatus(str, Enum):
    PENDING_NEW = "PENDING_NEW"  # written to the journal, not yet acknowledged
    NEW = "NEW"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    EXPIRED = "EXPIRED"
    REJECTED = "REJECTED"  # the venue said no
    TRIGGERED = "TRIGGERED"  # a conditional order fired (its child order fills next)

    @property
    def is_final(self) -> bool:
        return self in (OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.EXPIRED, OrderStatus.REJECTED)


class RejectReason(str, Enum):
    """Why a venue refused an order, in the trade's words: each venue adapter translates its own codes at
    the boundary (bot.venues.*.errors) so the pure trade machine matches no venue's code."""

    OTHER = "OTHER"  # any other refusal: the trade logic treats it as a plain "no"
    # the trigger is already crossed by the price it watches: a stop there would fire at once (Binance -2021,
    # Bybit 110092/110093 and trading-stop's "should lower/greater than base_price"): take the loss now
    STOP_WOULD_TRIGGER = "STOP_WOULD_TRIGGER"
    # an order with this client id exists already (Binance -4116, Bybit 110072): an earlier attempt of ours
    # landed; look it up by client id, never send it again
    DUPLICATE_CLIENT_ID = "DUPLICATE_CLIENT_ID"


class CloseReason(str, Enum):
    STOP_LOSS = "STOP_LOSS"
    TAKE_PROFIT = "TAKE_PROFIT"
    TRAILING_STOP = "TRAILING_STOP"
    TIME_LIMIT = "TIME_LIMIT"
    NO_PROGRESS = "NO_PROGRESS"
    SIGNAL_EXIT = "SIGNAL_EXIT"
    RISK_HALT = "RISK_HALT"
    MANUAL = "MANUAL"
    LIQUIDATION = "LIQUIDATION"


@dataclass(frozen=True, slots=True)
class TakeProfitTier:
    price_ticks: int
    fraction: float  # of the position, tiers sum to 1.0


@dataclass(frozen=True, slots=True)
class EntryIntent:
    """What a setup wants: never a quantity (sizing belongs to risk).

    side is 'long' or 'short'. Prices in integer ticks of the symbol's instrument; `price_ticks` is the
    reference (intended) entry price, `stop_ticks` comes from market structure and lies on the losing
    side of the entry. `features` holds the values that triggered it, for the journal.

    The latency trail of the triggering market message (0 = unknown), stamped by whoever fed the signal
    engine (`stamped`): `ts_event_ns` the venue's event time of the message, `ts_recv_ns` our receive
    time, `ts_signal_ns` when the signal engine had emitted the intent. The engine journals them with
    the trade (trades.event_ts_ns / recv_ts_ns / signal_ts_ns) for the report's latency breakdown.
    """

    symbol: str
    side: str  # "long" | "short"
    setup: str
    ts_ns: int
    price_ticks: int
    stop_ticks: int
    targets: tuple[TakeProfitTier, ...]
    time_limit_s: float
    features: dict[str, float] = field(default_factory=dict)
    ts_event_ns: int = 0
    ts_recv_ns: int = 0
    ts_signal_ns: int = 0
    tag: str = ""  # the strategy's own label of the candidate (Candidate.tag), "" for the built-ins

    def stamped(self, event_ns: int, recv_ns: int, signal_ns: int) -> EntryIntent:
        # positional, not dataclasses.replace (which introspects the fields: ~5 us warm, on every intent's path)
        return EntryIntent(self.symbol, self.side, self.setup, self.ts_ns, self.price_ticks, self.stop_ticks,
                           self.targets, self.time_limit_s, self.features, event_ns, recv_ns, signal_ns, self.tag)

    def __post_init__(self) -> None:
        if self.side not in ("long", "short"):
            raise ValueError(f"side must be 'long' or 'short', got {self.side!r}")
        if self.side == "long" and not self.stop_ticks < self.price_ticks:
            raise ValueError(f"long stop {self.stop_ticks} must be below entry {self.price_ticks}")
        if self.side == "short" and not self.stop_ticks > self.price_ticks:
            raise ValueError(f"short stop {self.stop_ticks} must be above entry {self.price_ticks}")

    @property
    def stop_distance_ticks(self) -> int:
        return abs(self.price_ticks - self.stop_ticks)
