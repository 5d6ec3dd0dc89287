"""ccxt exceptions from Bybit v5 -> the bot's venue errors, translated ONCE here (architecture habit 7).

Bybit answers most refusals with HTTP 200 and `{"retCode": N, "retMsg": ...}`; ccxt raises with the body in
the message. We decide on that retCode, not on ccxt's class (its tables differ by URL, exchange-facts C4);
the class only decides what has no body: timeouts, connection errors, HTTP 5xx and 403.

retCode (docs/v5/error.mdx, B2):
- 10002 request expired (timestamp outside recv_window) -> ClockUnsynced: resync via /v5/market/time.
- 10006 too many visits (per-UID limit), 10018 IP limit -> RateLimited until X-Bapi-Limit-Reset-Timestamp.
- HTTP 403 "access too frequent" (600 requests / 5 s per IP) -> RateLimited(banned): stop >= 10 min (B2).
- 10000 / 10016 internal error, HTTP 5xx, timeout, connection lost -> the outcome is UNKNOWN while
  placing (AmbiguousOutcome: look the order up by orderLinkId), VenueUnavailable otherwise.
- 110001 order does not exist, 110008 finished or cancelled, 110010 already cancelled -> OrderNotFound
  (a cancel of an order that is no longer open is not an error).
- 34040 "not modified" (trading-stop: the stop is already that) and 110043 "leverage not modified" ->
  NotModified: the state asked for is the state the venue has (3P: several Bybit v5 clients treat 34040
  as a no-op; verified only against third-party code).
- 10001 "can not set tp/sl/ts for zero position" -> ZeroPosition (an OrderRejected): no position to protect.
- a stop already crossed by the price it watches -> StopWouldTrigger (an OrderRejected): the trade flattens at
  once instead of halting the symbol (Binance's -2021 case). On a conditional order: 110092 "expect Rising,
  but trigger_price[..] <= current[..]" / 110093 "expect Falling, but trigger_price[..] >= current[..]" (ccxt
  bybit's exceptions map, 3P); on trading-stop (the position's stop, our path): 10001 "sl:.. set for Sell
  position should greater base_price:..??LastPrice" / "StopLoss:.. set for Buy position should lower than
  base_price:.." (3P: ccxt issues #19089, #14342; not in the v5 error table, exchange-facts B3 says nothing).
- 110072 "OrderLinkedID is duplicate" -> DuplicateClientId: an earlier attempt of ours exists (orderLinkId is
  unique, B3; the code from ccxt bybit's exceptions map, 3P): looked up, never sent again.
- anything else -> OrderRejected(code): the venue said no.
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

__all__ = [
    "CLOCK_CODES",
    "DUPLICATE_CID_CODES",
    "NOT_FOUND_CODES",
    "NOT_MODIFIED_CODES",
    "TRIGGER_CROSSED_CODES",
    "ClockUnsynced",
    "NotModified",
    "OrderNotFound",
    "ZeroPosition",
    "bybit_code",
    "translate",
]

_CODE_RE = re.compile(r'"ret_?[cC]ode"\s*:\s*"?(-?\d+)')
_MSG_RE = re.compile(r'"ret_?[mM]sg"\s*:\s*"([^"]*)"')

CLOCK_CODES = frozenset({10002})
RATE_CODES = frozenset({10006, 10018})
NOT_FOUND_CODES = frozenset({110001, 110008, 110010})
NOT_MODIFIED_CODES = frozenset({34040, 110043})
UNKNOWN_CODES = frozenset({10000, 10016})  # server timeout / internal system error: may have executed
DUPLICATE_CID_CODES = frozenset({110072})
TRIGGER_CROSSED_CODES = frozenset({110092, 110093})  # expect Rising / Falling, but trigger_price vs current
# trading-stop's 10001 for a stop on the wrong side of the price it watches ("base_price")
_CROSSED_SL_RE = re.compile(r"\b(?:sl|stop_?loss)\b.*\bshould\b.*\bbase_price\b", re.IGNORECASE)


class ClockUnsynced(VenueUnavailable):
    """Our clock is not trusted against Bybit's (10002, or the measured offset is too large). Entries are
    refused until a resync brings it back; protective requests still go (with the offset applied)."""


class OrderNotFound(VenueError):
    """The venue does not know this order (any more). Used inside the gateway only."""


class NotModified(VenueError):
    """The venue already has exactly what was asked (34040 / 110043). Used inside the gateway only."""


class ZeroPosition(OrderRejected):
    """A position stop for a position that does not exist (closed, or not opened yet)."""


def bybit_code(e: BaseException) -> int | None:
    m = _CODE_RE.search(str(e))
    return int(m.group(1)) if m else None


def translate(e: Exception, *, placing: bool, retry_after_s: float = 0.0, banned: bool = False) -> VenueError:
    """The one mapping. `placing`: the request may have created or changed an order or a stop.
    `retry_after_s`/`banned`: what the limiter learnt from the same response's headers."""
    msg = _redact(str(e))
    unknown: type[VenueError] = AmbiguousOutcome if placing else VenueUnavailable
    status = getattr(e, "http_status", None)  # set by BybitV5.handle_errors on 5xx
    if isinstance(status, int) and status >= 500:
        return unknown(msg)
    code = bybit_code(e)
    if code is not None and code != 0:
        if code in CLOCK_CODES:
            return ClockUnsynced(f"{msg} (retCode {code})")
        if code in RATE_CODES:
            return RateLimited(msg, retry_after_s=retry_after_s if retry_after_s > 0 else 1.0, banned=banned)
        if code in NOT_FOUND_CODES:
            return OrderNotFound(msg)
        if code in NOT_MODIFIED_CODES:
            return NotModified(msg)
        if code in UNKNOWN_CODES:
            return unknown(msg)
        m = _MSG_RE.search(str(e))
        if code == 10001 and m and "zero position" in m.group(1):
            return ZeroPosition(msg, code=code)
        if code in DUPLICATE_CID_CODES:
            return DuplicateClientId(msg, code=code)
        if code in TRIGGER_CROSSED_CODES or (code == 10001 and m and _CROSSED_SL_RE.search(m.group(1))):
            return StopWouldTrigger(msg, code=code)
        return OrderRejected(msg, code=code)
    if isinstance(e, ccxt.DDoSProtection | ccxt.RateLimitExceeded):  # HTTP 403 (ccxt httpExceptions) / 429
        return RateLimited(msg, retry_after_s=retry_after_s if retry_after_s > 0 else 1.0, banned=banned)
    if isinstance(e, ccxt.NetworkError | ccxt.BadResponse) or isinstance(e.__cause__, aiohttp.ClientError):
        return unknown(msg)
    if isinstance(e, ccxt.AuthenticationError | ccxt.PermissionDenied):
        return OrderRejected(msg, code="auth")
    if isinstance(e, ccxt.InvalidOrder | ccxt.BadRequest | ccxt.ArgumentsRequired | ccxt.NotSupported):
        return OrderRejected(msg, code="invalid")  # ccxt's own checks before sending: nothing was sent
    return unknown(msg)


def _redact(msg: str) -> str:
    """Messages carry the response body, never the request headers; cut signatures anyway, and length."""
    return re.sub(r'(X-BAPI-SIGN["\']?\s*[:=]\s*["\']?)[0-9a-fA-F]+', r"\1<redacted>", msg)[:500]
