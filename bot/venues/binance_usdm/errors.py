"""ccxt exceptions -> the bot's venue errors, translated ONCE here (architecture habit 7).

We decide on the Binance error *code* carried in the response body (`{"code":-2019,"msg":...}`), not on
ccxt's exception class: ccxt picks its class tables by URL prefix (`https://fapi.` / `demo-fapi`), so
against the loopback simulator the same code maps to a different class (exchange-facts C4). The class
is only used for what has no body: timeouts, connection errors, HTTP 5xx, 418/429.

What the caller must do (bot.venues.errors):
- OrderRejected(code): the venue said no; the order does not exist. Not retried.
- StopWouldTrigger (an OrderRejected): -2021 "Order would immediately trigger" (exchange-facts A3): the stop
  is already crossed; the trade flattens instead of halting the symbol.
- DuplicateClientId (an OrderRejected): -4116 "ClientOrderId is duplicated" (A3): an earlier attempt of ours
  exists; the engine looks it up instead of sending again.
- AmbiguousOutcome: timeout / 5xx / connection lost while PLACING an order: it may exist. Look it up by
  client id before anything else (Binance General Info: "5XX: execution status UNKNOWN").
- VenueUnavailable: network or exchange down, for requests that change nothing (look-ups, cancels).
- RateLimited(retry_after_s): 429/418; nothing may be sent until then.
- ClockUnsynced (a VenueUnavailable): -1021/-5028 or our own offset check; resync the clock first.
"""

from __future__ import annotations

import re

import aiohttp
import ccxt.async_support as ccxt

from bot.venues.errors import (
    AmbiguousOutcome,
    DuplicateClientId,
    OrderRejected,
    RateLimited,
    StopWouldTrigger,
    VenueError,
    VenueUnavailable,
)

__all__ = ["CLOCK_CODES", "DUPLICATE_CID", "IMMEDIATE_TRIGGER", "NOT_FOUND_CODES", "ClockUnsynced", "binance_code",
           "translate"]

_CODE_RE = re.compile(r'"code"\s*:\s*(-?\d+)')

# -1021 INVALID_TIMESTAMP (recvWindow / 1000 ms ahead), -5028 ME recvWindow (exchange-facts A2).
CLOCK_CODES = frozenset({-1021, -5028})
# -2013 "Order does not exist", -2011 "Unknown order sent" (cancel); algo look-ups answer the same codes.
NOT_FOUND_CODES = frozenset({-2013, -2011})
IMMEDIATE_TRIGGER = -2021  # "Order would immediately trigger" (exchange-facts A3)
DUPLICATE_CID = -4116  # "ClientOrderId is duplicated" (A3)


class ClockUnsynced(VenueUnavailable):
    """Our clock is not trusted against the exchange's (-1021, or the measured offset is too large).
    Entries are refused until a resync brings it back; protective orders still go (with the offset)."""


class OrderNotFound(VenueError):
    """The venue says this client id does not exist (-2013/-2011). Used inside the gateway only."""


def binance_code(e: BaseException) -> int | None:
    m = _CODE_RE.search(str(e))
    return int(m.group(1)) if m else None


def translate(e: Exception, *, placing: bool, retry_after_s: float = 0.0) -> VenueError:
    """The one mapping. `placing`: the request may have created an order (POST order/algoOrder)."""
    msg = _redact(str(e))
    unknown: type[VenueError] = AmbiguousOutcome if placing else VenueUnavailable
    status = getattr(e, "http_status", None)  # set by BinanceUsdm.handle_errors on 5xx
    if isinstance(status, int) and status >= 500:
        return unknown(msg)  # "5XX: execution status UNKNOWN" (General Info)
    if isinstance(e, ccxt.DDoSProtection | ccxt.RateLimitExceeded):
        banned = status == 418 or " 418 " in msg
        return RateLimited(msg, retry_after_s=max(retry_after_s, 1.0), banned=banned)
    code = binance_code(e)
    if code is not None:
        if code in CLOCK_CODES:
            return ClockUnsynced(f"{msg} (code {code})")
        if code == -1003:  # too much request weight: the 429 family without the status
            return RateLimited(msg, retry_after_s=max(retry_after_s, 1.0))
        if code in NOT_FOUND_CODES:
            return OrderNotFound(msg)
        if code in (-1000, -1001, -1007):
            # -1000 UNKNOWN, -1001 DISCONNECTED (internal error), -1007 TIMEOUT ("Send status unknown;
            # execution status unknown"): the order may exist.
            return unknown(msg)
        if code == IMMEDIATE_TRIGGER:
            return StopWouldTrigger(msg, code=code)
        if code == DUPLICATE_CID:
            return DuplicateClientId(msg, code=code)
        return OrderRejected(msg, code=code)
    if isinstance(e, ccxt.NetworkError | ccxt.BadResponse) or isinstance(e.__cause__, aiohttp.ClientError):
        # RequestTimeout / ExchangeNotAvailable / a broken response: no usable answer.
        return unknown(msg)
    if isinstance(e, ccxt.AuthenticationError | ccxt.PermissionDenied):
        return OrderRejected(msg, code="auth")
    if isinstance(e, ccxt.InvalidOrder | ccxt.BadRequest | ccxt.ArgumentsRequired | ccxt.NotSupported):
        # ccxt's own checks before sending (precision, order type not listed): nothing was sent.
        return OrderRejected(msg, code="invalid")
    return unknown(msg)


def _redact(msg: str) -> str:
    """ccxt messages can hold the request URL with its signed query; keep the secret-free part."""
    return re.sub(r"signature=[0-9a-fA-F]+", "signature=<redacted>", msg)[:500]
