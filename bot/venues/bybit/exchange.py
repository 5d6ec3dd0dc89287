"""The ccxt `bybit` instance the gateway talks through, configured so ccxt does only what we ask.

Environments (VenueSection.environment; exchange-facts B2, C1):
- mainnet: ccxt's URLs (api.bybit.com);
- testnet: `set_sandbox_mode(True)` (api-testnet.bybit.com);
- demo: `enable_demo_trading(True)` (api-demo.bybit.com, keys made in the mainnet site's demo mode) for
  everything private, while public REST (instruments, time) stays on mainnet: demo trading reads
  mainnet's public data (B2). Exactly one of the two calls, once (C1);
- `venue.rest_url` replaces every REST root afterwards (the loopback fake in tests); exchange-sim
  requires it.

What ccxt may and may not do (C1, C2, C4):
- options preset so it makes no hidden calls: `enableUnifiedAccount`/`enableUnifiedMargin` (else the first
  private order costs /v5/user/query-api + /v5/account/info), `fetchMarkets.types=['linear']` and
  `has['fetchCurrencies']=False` (load_markets = the two instruments-info pages of C4, nothing else);
- its throttle off (`enableRateLimit=False`) and no retries (`maxRetriesOnFailure=0`): the gateway's
  BybitLimiter, fed by the X-Bapi-* headers of every response through the `handle_errors` hook, decides;
- the aiohttp session is the gateway's (ccxt does not close a session it was given).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import ccxt.async_support as ccxt

from bot.settings.core import VenueSection

__all__ = ["BybitV5", "make_exchange"]


class BybitV5(ccxt.bybit):  # type: ignore[misc]
    """ccxt's bybit with one hook: every response's path, status, headers and retCode go to our limiter
    (race-free, unlike `last_response_headers`), and a 5xx is marked so it is never taken for a refusal."""

    bot_on_response: Callable[[str, int, dict[str, str], int | None], None] | None = None
    bot_instruments: list[dict[str, Any]] | None = None

    def handle_errors(self, code: int, reason: str, url: str, method: str, headers: dict[str, str], body: str,
                      response: object, requestHeaders: object, requestBody: object) -> Any:
        path = urlsplit(url).path
        if self.bot_on_response is not None:
            ret = response.get("retCode", response.get("ret_code")) if isinstance(response, dict) else None
            ok = isinstance(ret, int | str) and str(ret).lstrip("-").isdigit()
            self.bot_on_response(path, int(code or 0), headers or {}, int(ret) if ok else None)  # type: ignore[arg-type]
        if code and int(code) >= 500:
            err = ccxt.ExchangeNotAvailable(f"{self.id} HTTP {code} {method} {path} {str(body)[:200]}")
            err.http_status = int(code)  # type: ignore[attr-defined]
            raise err
        return super().handle_errors(code, reason, url, method, headers, body, response, requestHeaders,
                                     requestBody)

    async def publicGetV5MarketInstrumentsInfo(self, params: dict[str, Any] | None = None) -> Any:
        res = await super().publicGetV5MarketInstrumentsInfo(params or {})
        if "status" not in (params or {}):  # not the PreLaunch page: those do not trade yet
            rows = ((res or {}).get("result") or {}).get("list") or []
            self.bot_instruments = [*(self.bot_instruments or []), *rows]
        return res


def make_exchange(venue: VenueSection, session: aiohttp.ClientSession) -> BybitV5:
    ex = BybitV5({
        "apiKey": venue.api_key.get_secret_value(),
        "secret": venue.api_secret.get_secret_value(),
        "session": session,
        "enableRateLimit": False,  # our limiter decides (C4: ccxt spaces Bybit orders 50 ms apart)
        "timeout": venue.request_timeout_ms,
        "options": {
            "recvWindow": venue.recv_window_ms,
            "adjustForTimeDifference": False,  # the gateway measures and sets options['timeDifference']
            "maxRetriesOnFailure": 0,  # never resend an order blindly
            "enableUnifiedAccount": True,  # no /v5/user/query-api + /v5/account/info probe (C2)
            "enableUnifiedMargin": False,
            "unifiedMarginStatus": 6,
            "fetchMarkets": {"types": ["linear"]},
            "defaultType": "swap",
            "defaultSubType": "linear",
        },
    })
    ex.timeout_on_exit = 0  # ccxt sleeps 250 ms in close() for ITS session's SSL shutdown; the session is ours
    ex.has["fetchCurrencies"] = False  # load_markets would otherwise call /v5/asset/coin/query-info (C4)
    env = venue.environment
    if env == "testnet":
        ex.set_sandbox_mode(True)
    elif env == "demo":
        mainnet_public = ex.urls["api"]["public"]
        ex.enable_demo_trading(True)
        ex.urls["api"] = {**ex.urls["api"], "public": mainnet_public}
    if venue.rest_url:
        base = venue.rest_url.rstrip("/")
        ex.urls["api"] = {key: base for key in ex.urls["api"]}
    elif env == "exchange-sim":
        raise ValueError("venue.environment = 'exchange-sim' needs venue.rest_url")
    return ex
