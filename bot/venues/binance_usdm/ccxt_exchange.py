"""ccxt's `binanceusdm` as the gateway uses it (moved out of gateway.py): one hook on every response (the
limiter's headers, 5xx marked as "execution status unknown"), exchangeInfo kept, and the ccxt options the
gateway relies on (no throttle, no retries, our clock offset, no sapi calls; exchange-facts C4)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp
import ccxt.async_support as ccxt

from bot.settings.core import VenueSection
from bot.venues.binance_usdm.errors import binance_code

__all__ = ["FAPI_PATHS", "BinanceUsdm", "ccxt_config"]

_PLACING_PATHS = ("/fapi/v1/order", "/fapi/v1/algoOrder", "/fapi/v1/batchOrders")
_FAPI_KEYS = ("fapiPublic", "fapiPublicV2", "fapiPublicV3", "fapiPrivate", "fapiPrivateV2", "fapiPrivateV3")
FAPI_PATHS = {"fapiPublic": "/fapi/v1", "fapiPublicV2": "/fapi/v2", "fapiPublicV3": "/fapi/v3",
               "fapiPrivate": "/fapi/v1", "fapiPrivateV2": "/fapi/v2", "fapiPrivateV3": "/fapi/v3",
               "fapiData": "/futures/data"}


class BinanceUsdm(ccxt.binanceusdm):  # type: ignore[misc]
    """ccxt's binanceusdm with one hook: every response's status and headers go to our limiter (race-free,
    unlike `last_response_headers`), and a 5xx is marked so it is never mistaken for a rejection."""

    bot_on_response: Callable[[int, dict[str, str], bool, int | None], None] | None = None
    bot_exchange_info: dict[str, Any] | None = None

    def handle_errors(self, code: int, reason: str, url: str, method: str, headers: dict[str, str], body: str,
                      response: object, requestHeaders: object, requestBody: object) -> Any:
        if self.bot_on_response is not None:
            status = int(code or 0)
            # which limit a 429 reports decides what it blocks (limiter.py): an order placement or not, and
            # the body's code (-1003 weight, -1015 orders)
            placing = method == "POST" and url.split("?")[0].endswith(_PLACING_PATHS)
            self.bot_on_response(status, headers or {}, placing,
                                 binance_code(Exception(body)) if status in (418, 429) and body else None)
        if code and int(code) >= 500:
            err = ccxt.ExchangeNotAvailable(f"{self.id} HTTP {code} {method} {url.split('?')[0]} {str(body)[:200]}")
            err.http_status = int(code)  # type: ignore[attr-defined]
            raise err
        return super().handle_errors(code, reason, url, method, headers, body, response, requestHeaders,
                                     requestBody)

    async def fapiPublicGetExchangeInfo(self, params: dict[str, Any] | None = None) -> Any:
        res = await super().fapiPublicGetExchangeInfo(params or {})
        self.bot_exchange_info = res  # kept for rateLimits and our Instruments (one request, not two)
        return res


def ccxt_config(venue: VenueSection, session: aiohttp.ClientSession) -> dict[str, Any]:
    return {
        "apiKey": venue.api_key.get_secret_value(),
        "secret": venue.api_secret.get_secret_value(),
        "session": session,
        "enableRateLimit": False,  # our TradeLimiter decides (C4: ccxt spaces orders 200 ms apart)
        "timeout": venue.request_timeout_ms,
        "options": {
            "recvWindow": venue.recv_window_ms,
            "adjustForTimeDifference": False,  # we measure and set options['timeDifference'] ourselves
            "fetchCurrencies": False,  # no sapi calls (C1/C4)
            "maxRetriesOnFailure": 0,  # never resend an order blindly
            "warnOnFetchOpenOrdersWithoutSymbol": False,
            "defaultType": "swap",
        },
    }
