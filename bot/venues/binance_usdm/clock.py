"""The clock offset estimator lives in bot/venues/clock.py (both venues' gateways use it through
bot/venues/gateway_common.py); re-exported here for the Binance code and older imports."""

from bot.venues.clock import ClockSync

__all__ = ["ClockSync"]
