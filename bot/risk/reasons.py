"""Why risk said no. A *denial* is our own decision, kept apart from a venue *rejection*
(bot.venues.errors.OrderRejected): the journal stores them in different tables."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["Denial", "DenyReason"]


class DenyReason(StrEnum):
    # sizing and exchange filters
    INVALID_STOP = "INVALID_STOP"  # stop on the wrong side of the entry, or zero distance
    BELOW_MIN_QTY = "BELOW_MIN_QTY"  # LOT_SIZE.minQty (or 0 lots after rounding down)
    BELOW_MIN_NOTIONAL = "BELOW_MIN_NOTIONAL"  # MIN_NOTIONAL.notional (-4164 at the venue)
    ABOVE_MAX_QTY = "ABOVE_MAX_QTY"  # LOT_SIZE / MARKET_LOT_SIZE maxQty
    LEVERAGE_ABOVE_CONFIG = "LEVERAGE_ABOVE_CONFIG"  # needs more than risk.max_leverage
    LEVERAGE_ABOVE_BRACKET = "LEVERAGE_ABOVE_BRACKET"  # > the bracket's initialLeverage
    INSUFFICIENT_MARGIN = "INSUFFICIENT_MARGIN"  # margin > free (available) balance
    LIQUIDATION_TOO_CLOSE = "LIQUIDATION_TOO_CLOSE"  # liq price nearer than k × stop distance
    # trading state
    HALTED = "HALTED"
    REDUCING = "REDUCING"
    SYMBOL_HALTED = "SYMBOL_HALTED"
    # an earlier entry there answered "status unknown", was not found, and may still execute (quarantine)
    ENTRY_OUTCOME_UNKNOWN = "ENTRY_OUTCOME_UNKNOWN"
    # limits
    POSITION_OPEN = "POSITION_OPEN"  # one trade per symbol at a time
    MAX_OPEN_POSITIONS = "MAX_OPEN_POSITIONS"
    MAX_SYMBOL_NOTIONAL = "MAX_SYMBOL_NOTIONAL"
    MAX_TOTAL_NOTIONAL = "MAX_TOTAL_NOTIONAL"
    RATE_PER_SECOND = "RATE_PER_SECOND"
    RATE_PER_MINUTE = "RATE_PER_MINUTE"
    DAILY_LOSS_LIMIT = "DAILY_LOSS_LIMIT"
    MAX_DRAWDOWN = "MAX_DRAWDOWN"
    LOSS_STREAK_COOLDOWN = "LOSS_STREAK_COOLDOWN"
    SETUP_COOLDOWN = "SETUP_COOLDOWN"
    # market conditions
    BOOK_NOT_LIVE = "BOOK_NOT_LIVE"
    BOOK_STALE = "BOOK_STALE"  # LIVE but its last update is older than market.max_book_age_ms
    SPREAD_TOO_WIDE = "SPREAD_TOO_WIDE"
    FUNDING_WINDOW = "FUNDING_WINDOW"
    # costs (bot.risk.costs)
    COST_TOO_HIGH = "COST_TOO_HIGH"  # round-trip cost at the planned size > risk.max_cost_r of its R
    TARGET_BELOW_COST = "TARGET_BELOW_COST"  # first target nets < risk.min_target_net_r after costs


@dataclass(frozen=True, slots=True)
class Denial:
    reason: DenyReason
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.reason.value}: {self.detail}" if self.detail else self.reason.value
