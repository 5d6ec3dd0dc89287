"""Raw signed requests to the loopback exchange's Bybit v5 routes: the rules ccxt does not exercise."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from typing import Any
from urllib.parse import urlencode

import aiohttp
import orjson
import pytest

from tests.sim.server_helpers import KEY, SECRET, running_server


async def v5(http: aiohttp.ClientSession, base: str, method: str, path: str, params: dict[str, Any] | None = None,
             ts_ms: int | None = None, secret: str = SECRET) -> tuple[dict[str, Any], dict[str, str]]:
    params = params or {}
    ts = str(ts_ms if ts_ms is not None else int(time.time() * 1000))
    payload = orjson.dumps(params).decode() if method == "POST" else urlencode(params)
    sig = hmac.new(secret.encode(), (ts + KEY + "5000" + payload).encode(), hashlib.sha256).hexdigest()
    headers = {"X-BAPI-API-KEY": KEY, "X-BAPI-TIMESTAMP": ts, "X-BAPI-RECV-WINDOW": "5000", "X-BAPI-SIGN": sig,
               "Content-Type": "application/json"}
    url = f"{base}{path}" + (f"?{payload}" if method == "GET" and payload else "")
    async with http.request(method, url, data=payload if method == "POST" else None, headers=headers) as r:
        assert r.status == 200
        return await r.json(), dict(r.headers)


@pytest.fixture
async def sim():
    async with running_server() as (server, base), aiohttp.ClientSession() as http:
        await asyncio.wait_for(server.next_depth("BTCUSDT", 5.0), 10)
        yield server, base, http


def _px(server: Any, ticks: int) -> str:
    return str(server.ex.markets["BTCUSDT"].inst.ticks_to_str(ticks))


async def test_post_only_that_would_take_is_cancelled_and_link_ids_are_unique(sim):
    server, base, http = sim
    ask = server.ex.markets["BTCUSDT"].book.bbo()[2]
    order = {"category": "linear", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Limit", "qty": "0.01",
             "price": _px(server, ask + 10), "timeInForce": "PostOnly", "orderLinkId": "po-1"}
    body, headers = await v5(http, base, "POST", "/v5/order/create", order)
    assert body["retCode"] == 0 and headers["X-Bapi-Limit"] == "10"
    got, _ = await v5(http, base, "GET", "/v5/order/realtime", {"category": "linear", "symbol": "BTCUSDT",
                                                               "orderLinkId": "po-1"})
    row = got["result"]["list"][0]
    assert row["orderStatus"] == "Cancelled" and float(row["cumExecQty"]) == 0 and row["timeInForce"] == "PostOnly"
    assert row["rejectReason"] == "EC_PostOnlyWillTakeLiquidity"
    assert server.ex.position_lots("BTCUSDT") == 0
    body, _ = await v5(http, base, "POST", "/v5/order/create", order)  # the same orderLinkId again
    assert body["retCode"] == 110072
    body, _ = await v5(http, base, "POST", "/v5/order/create", {**order, "orderLinkId": "po-1.2"})
    assert body["retCode"] == 10001 and "orderLinkId" in body["retMsg"]  # B3: letters, digits, '-', '_'


async def test_conditional_order_amend_cancel_and_timestamp_check(sim):
    server, base, http = sim
    bid = server.ex.markets["BTCUSDT"].book.bbo()[0]
    cond = {"category": "linear", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Market", "qty": "0.01",
            "triggerPrice": _px(server, bid + 500), "triggerDirection": 1, "triggerBy": "LastPrice",
            "orderLinkId": "stop-entry-1"}
    body, _ = await v5(http, base, "POST", "/v5/order/create", cond)
    assert body["retCode"] == 0
    wrong = {**cond, "orderLinkId": "stop-entry-2", "triggerPrice": _px(server, bid - 500)}
    body, _ = await v5(http, base, "POST", "/v5/order/create", wrong)  # a rise-trigger below the market
    assert body["retCode"] == 110092  # "expect Rising, but trigger_price <= current" (ccxt bybit exceptions)
    body, _ = await v5(http, base, "POST", "/v5/order/amend", {"category": "linear", "symbol": "BTCUSDT",
                                                              "orderLinkId": "stop-entry-1",
                                                              "triggerPrice": _px(server, bid + 600)})
    assert body["retCode"] == 0
    got, _ = await v5(http, base, "GET", "/v5/order/realtime", {"category": "linear", "symbol": "BTCUSDT",
                                                               "orderFilter": "StopOrder"})
    rows = got["result"]["list"]
    assert [(r["orderLinkId"], r["orderStatus"], r["triggerPrice"]) for r in rows] == [
        ("stop-entry-1", "Untriggered", _px(server, bid + 600))]
    body, _ = await v5(http, base, "POST", "/v5/order/cancel", {"category": "linear", "symbol": "BTCUSDT",
                                                               "orderLinkId": "stop-entry-1"})
    assert body["retCode"] == 0
    body, _ = await v5(http, base, "POST", "/v5/order/cancel", {"category": "linear", "symbol": "BTCUSDT",
                                                               "orderLinkId": "stop-entry-1"})
    assert body["retCode"] == 110001
    hist, _ = await v5(http, base, "GET", "/v5/order/history", {"category": "linear", "symbol": "BTCUSDT",
                                                               "orderLinkId": "stop-entry-1"})
    assert hist["result"]["list"][0]["orderStatus"] == "Deactivated"
    body, _ = await v5(http, base, "GET", "/v5/position/list", {"category": "linear", "symbol": "BTCUSDT"},
                       ts_ms=int(time.time() * 1000) - 60_000)
    assert body["retCode"] == 10002


async def test_trading_stop_needs_a_position_and_a_side_and_reduce_only_cannot_carry_a_stop(sim):
    server, base, http = sim
    bid = server.ex.markets["BTCUSDT"].book.bbo()[0]
    ts = {"category": "linear", "symbol": "BTCUSDT", "tpslMode": "Full", "positionIdx": 0,
          "stopLoss": _px(server, bid - 300)}
    body, _ = await v5(http, base, "POST", "/v5/position/trading-stop", ts)
    assert body["retCode"] == 10001 and "zero position" in body["retMsg"]
    body, _ = await v5(http, base, "POST", "/v5/order/create", {
        "category": "linear", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Market", "qty": "0.01",
        "stopLoss": _px(server, bid + 300)})  # a long's stop above the market
    assert body["retCode"] == 10001 and "StopLoss" in body["retMsg"]
    body, _ = await v5(http, base, "POST", "/v5/order/create", {
        "category": "linear", "symbol": "BTCUSDT", "side": "Sell", "orderType": "Market", "qty": "0.01",
        "reduceOnly": True, "stopLoss": _px(server, bid + 300)})
    assert body["retCode"] == 10001 and "reduceOnly" in body["retMsg"]
    body, _ = await v5(http, base, "POST", "/v5/order/create", {
        "category": "linear", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Market", "qty": "0.01"})
    assert body["retCode"] == 0
    body, _ = await v5(http, base, "POST", "/v5/position/trading-stop", {**ts, "stopLoss": _px(server, bid + 2000)})
    assert body["retCode"] == 10001  # a long's stop above the market would fire at once
    body, _ = await v5(http, base, "POST", "/v5/position/trading-stop", ts)
    assert body["retCode"] == 0
    pos, _ = await v5(http, base, "GET", "/v5/position/list", {"category": "linear", "symbol": "BTCUSDT"})
    assert pos["result"]["list"][0]["stopLoss"] == _px(server, bid - 300)
    body, _ = await v5(http, base, "POST", "/v5/position/trading-stop", {**ts, "stopLoss": "0"})
    assert body["retCode"] == 0 and server.ex.open_algo_orders("BTCUSDT") == []
