"""Binance USD-M public REST used by the market feed: depth snapshots, rate-aware (exchange-facts A1, A2).

`WeightLimiter` is sans-I/O (explicit `now_s`): Binance counts IP weight per wall-clock minute
(REQUEST_WEIGHT 2400/min unless exchangeInfo `rateLimits` says otherwise) and reports what is used in
`X-MBX-USED-WEIGHT-1M`; 429 means the limit was broken and 418 an automatic IP ban, both with
`Retry-After` seconds to honour (General Info). `DepthClient` does the HTTP with one aiohttp session.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp

from bot.venues.endpoints import BINANCE_USDM
from bot.venues.errors import RateLimited, VenueUnavailable

__all__ = ["DEFAULT_ENDPOINTS", "DepthClient", "WeightLimiter", "depth_weight", "endpoints_for"]

DEFAULT_ENDPOINTS = BINANCE_USDM  # environment -> (REST, ws /public root, ws /market root)


def endpoints_for(environment: str, rest_url: str = "", ws_public_url: str = "",
                  ws_market_url: str = "") -> tuple[str, str, str]:
    rest, pub, mkt = DEFAULT_ENDPOINTS[environment]
    return ((rest_url or rest).rstrip("/"), (ws_public_url or pub).rstrip("/"),
            (ws_market_url or mkt).rstrip("/"))


def depth_weight(limit: int) -> int:
    """GET /fapi/v1/depth weight by limit (SDK market_data_api.order_book): 5-50 -> 2, 100 -> 5,
    500 -> 10, 1000 -> 20."""
    if limit <= 50:
        return 2
    if limit <= 100:
        return 5
    if limit <= 500:
        return 10
    return 20


class WeightLimiter:
    """Per-minute IP weight budget, synchronised with the venue's own count when it tells us."""

    __slots__ = ("_blocked_until_s", "_minute", "_used", "budget")

    def __init__(self, budget_per_min: int = 2400) -> None:
        self.budget = budget_per_min
        self._minute = -1
        self._used = 0
        self._blocked_until_s = 0.0

    def set_budget_from_exchange_info(self, info: dict[str, Any]) -> None:
        for rl in info.get("rateLimits", []):
            if (rl.get("rateLimitType") == "REQUEST_WEIGHT" and rl.get("interval") == "MINUTE"
                    and int(rl.get("intervalNum", 1)) == 1):
                self.budget = int(rl["limit"])

    def _roll(self, now_s: float) -> None:
        minute = int(now_s // 60)
        if minute != self._minute:
            self._minute = minute
            self._used = 0

    def delay_s(self, weight: int, now_s: float) -> float:
        """How long to wait before spending `weight` (0: go now). Does not spend."""
        if now_s < self._blocked_until_s:
            return self._blocked_until_s - now_s
        self._roll(now_s)
        if self._used + weight <= self.budget:
            return 0.0
        return (self._minute + 1) * 60.0 - now_s + 0.05  # the window resets at the next minute

    def spend(self, weight: int, now_s: float) -> None:
        self._roll(now_s)
        self._used += weight

    def observe_used(self, used: int, now_s: float) -> None:
        """X-MBX-USED-WEIGHT-1M: the venue's count includes other processes on the same IP."""
        self._roll(now_s)
        self._used = max(self._used, used)

    def block(self, seconds: float, now_s: float) -> None:
        """429/418 Retry-After: no request at all until then."""
        self._blocked_until_s = max(self._blocked_until_s, now_s + seconds)

    @property
    def used(self) -> int:
        return self._used


class DepthClient:
    """GET {rest}/fapi/v1/depth, returning the raw body bytes (the recorder writes them as received)."""

    def __init__(self, rest_url: str, session: aiohttp.ClientSession, limiter: WeightLimiter,
                 limit: int = 1000, timeout_s: float = 5.0) -> None:
        self.rest_url = rest_url
        self.session = session
        self.limiter = limiter
        self.limit = limit
        self.weight = depth_weight(limit)
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.requests = 0

    async def depth(self, symbol: str) -> tuple[bytes, int]:
        """(raw body, ts_recv_ns). Raises RateLimited (after recording the block) or VenueUnavailable."""
        for _ in range(100):  # bounded: each wait ends at a minute boundary or a Retry-After
            wait = self.limiter.delay_s(self.weight, time.time())
            if wait <= 0:
                break
            await asyncio.sleep(wait)
        self.limiter.spend(self.weight, time.time())
        self.requests += 1
        url = f"{self.rest_url}/fapi/v1/depth"
        try:
            async with self.session.get(url, params={"symbol": symbol, "limit": str(self.limit)},
                                        timeout=self.timeout) as resp:
                body = await resp.read()
                ts_recv_ns = time.time_ns()
                used = resp.headers.get("X-MBX-USED-WEIGHT-1M")
                if used is not None and used.isdigit():
                    self.limiter.observe_used(int(used), time.time())
                if resp.status in (429, 418):
                    retry = _retry_after_s(resp.headers.get("Retry-After"), default=60.0)
                    self.limiter.block(retry, time.time())
                    raise RateLimited(f"GET /fapi/v1/depth {symbol}: HTTP {resp.status}", retry,
                                      banned=resp.status == 418)
                if resp.status != 200:
                    raise VenueUnavailable(f"GET /fapi/v1/depth {symbol}: HTTP {resp.status} {body[:200]!r}")
                return body, ts_recv_ns
        except (aiohttp.ClientError, TimeoutError) as e:
            raise VenueUnavailable(f"GET /fapi/v1/depth {symbol}: {e!r}") from e


def _retry_after_s(value: str | None, default: float) -> float:
    try:
        return max(0.0, float(value)) if value else default
    except ValueError:
        return default
