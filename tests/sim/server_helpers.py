"""Helpers for the loopback exchange tests: a running server, signed raw requests, a ccxt client."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlencode

import aiohttp

from bot.venues.sim.server import SimServer, build_server

KEY, SECRET = "sim-key", "sim-secret"


@asynccontextmanager
async def running_server(**kw: Any) -> AsyncIterator[tuple[SimServer, str]]:
    kw.setdefault("symbols", ("BTCUSDT",))
    server = build_server(["generated"], port=0, seed=kw.pop("seed", 3), **kw)
    port = await server.start()
    try:
        yield server, f"http://127.0.0.1:{port}"
    finally:
        await server.stop()


def sign(params: dict[str, Any], secret: str = SECRET, ts_ms: int | None = None) -> str:
    p = dict(params)
    p.setdefault("timestamp", ts_ms if ts_ms is not None else int(time.time() * 1000))
    q = urlencode(p)
    return q + "&signature=" + hmac.new(secret.encode(), q.encode(), hashlib.sha256).hexdigest()


async def call(http: aiohttp.ClientSession, base: str, method: str, path: str, params: dict[str, Any] | None = None,
               signed: bool = True, key: str | None = KEY, ts_ms: int | None = None,
               secret: str = SECRET) -> tuple[int, Any, dict[str, str]]:
    q = sign(params or {}, secret, ts_ms) if signed else urlencode(params or {})
    headers = {"X-MBX-APIKEY": key} if key else {}
    url = f"{base}{path}"
    if method in ("POST", "PUT"):
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        r = await http.request(method, url, data=q, headers=headers)
    else:
        r = await http.request(method, f"{url}?{q}" if q else url, headers=headers)
    async with r:
        body = await r.json(content_type=None)
        return r.status, body, dict(r.headers)


def ccxt_client(base: str) -> Any:
    import ccxt.async_support as ccxt

    ex = ccxt.binanceusdm({"apiKey": KEY, "secret": SECRET, "enableRateLimit": False,
                           "options": {"fetchCurrencies": False}, "timeout": 5000})
    for k, v in list(ex.urls["api"].items()):  # exchange-facts C4
        if k.startswith("fapi"):
            ex.urls["api"][k] = v.replace("https://fapi.binance.com", base)
    return ex
