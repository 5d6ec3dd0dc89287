"""The loopback exchange's Binance USD-M WebSocket API (`/ws-fapi/v1`, bot/venues/sim/ws_api.py): raw frames
signed here by hand the way Binance documents it (params sorted by name, `key=value&...`, HMAC-SHA256 hex),
answers checked field by field; the same engine as REST (an order placed on the socket is looked up by REST)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from typing import Any

import aiohttp
import orjson
import pytest

from tests.sim.server_helpers import KEY, SECRET, call, running_server


def signed(params: dict[str, Any], secret: str = SECRET, ts_ms: int | None = None) -> dict[str, Any]:
    p = {**params, "apiKey": KEY, "timestamp": ts_ms if ts_ms is not None else int(time.time() * 1000)}
    payload = "&".join(f"{k}={str(p[k]).lower() if isinstance(p[k], bool) else p[k]}" for k in sorted(p))
    p["signature"] = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
    return p


class Ws:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.n = 0

    async def req(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self.n += 1
        await self.ws.send_str(orjson.dumps({"id": f"r{self.n}", "method": method, "params": params}).decode())
        msg = await asyncio.wait_for(self.ws.receive(), 5)
        body = orjson.loads(msg.data)
        assert body["id"] == f"r{self.n}"
        return body


@pytest.fixture
async def sim():
    async with running_server() as (server, base), aiohttp.ClientSession() as http:
        await asyncio.wait_for(server.next_depth("BTCUSDT", 5.0), 10)
        ws = await http.ws_connect(base.replace("http", "ws") + "/ws-fapi/v1")
        try:
            yield server, base, http, Ws(ws)
        finally:
            await ws.close()


def bid(server: Any) -> tuple[str, int]:
    m = server.ex.markets["BTCUSDT"]
    b = m.book.bbo()[0]
    return m.inst.ticks_to_str(b - 50), b


async def test_order_place_status_cancel_answers_like_binance_and_rest_sees_the_same_order(sim):
    server, base, http, ws = sim
    px, _ = bid(server)
    order = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.002",
             "price": px, "newClientOrderId": "ws-t1", "newOrderRespType": "RESULT"}
    r = await ws.req("order.place", signed(order))
    assert r["status"] == 200 and "error" not in r
    res = r["result"]
    assert res["clientOrderId"] == "ws-t1" and res["status"] == "NEW" and res["price"] == px
    assert res["origQty"] == "0.002" and isinstance(res["orderId"], int)
    kinds = {(x["rateLimitType"], x["interval"], x["intervalNum"]): x for x in r["rateLimits"]}
    assert set(kinds) == {("REQUEST_WEIGHT", "MINUTE", 1), ("ORDERS", "SECOND", 10), ("ORDERS", "MINUTE", 1)}
    assert kinds[("ORDERS", "SECOND", 10)]["count"] >= 1 and kinds[("ORDERS", "SECOND", 10)]["limit"] == 300
    # the same engine: REST finds it
    status, body, _ = await call(http, base, "GET", "/fapi/v1/order", {"symbol": "BTCUSDT",
                                                                      "origClientOrderId": "ws-t1"})
    assert status == 200 and body["orderId"] == res["orderId"]
    r = await ws.req("order.status", signed({"symbol": "BTCUSDT", "origClientOrderId": "ws-t1"}))
    assert r["status"] == 200 and r["result"]["status"] == "NEW"
    r = await ws.req("order.cancel", signed({"symbol": "BTCUSDT", "origClientOrderId": "ws-t1"}))
    assert r["status"] == 200 and r["result"]["status"] == "CANCELED"
    r = await ws.req("order.cancel", signed({"symbol": "BTCUSDT", "origClientOrderId": "ws-t1"}))
    assert r["status"] == 400 and r["error"]["code"] in (-2011, -2013), r
    # a repeated client id on an open order: -4116 as on REST
    await ws.req("order.place", signed({**order, "newClientOrderId": "ws-t2"}))
    r = await ws.req("order.place", signed({**order, "newClientOrderId": "ws-t2"}))
    assert r["status"] == 400 and r["error"]["code"] == -4116
    assert server.requests["WS order.place"] == 3


async def test_bad_signature_key_and_timestamp_are_refused_with_binance_codes_and_nothing_placed(sim):
    server, _, _, ws = sim
    px, _ = bid(server)
    order = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.002",
             "price": px, "newClientOrderId": "bad-1"}
    r = await ws.req("order.place", signed(order, secret="not-the-secret"))
    assert r["status"] == 400 and r["error"] == {"code": -1022, "msg": "Signature for this request is not valid."}
    p = signed(order)
    p["quantity"] = "0.003"  # changed after signing
    r = await ws.req("order.place", p)
    assert r["error"]["code"] == -1022
    r = await ws.req("order.place", {**signed(order), "apiKey": "other"})
    assert r["status"] == 401 and r["error"]["code"] == -2015
    r = await ws.req("order.place", signed(order, ts_ms=int(time.time() * 1000) - 60_000))
    assert r["status"] == 400 and r["error"]["code"] == -1021
    r = await ws.req("order.modify", signed(order))
    assert r["status"] == 400 and r["error"]["code"] == -1020
    assert not server.ex.open_orders("BTCUSDT")


async def test_algo_order_place_and_cancel_and_the_stop_rejection_fault(sim):
    server, _, _, ws = sim
    _, b = bid(server)
    inst = server.ex.markets["BTCUSDT"].inst
    stop = {"symbol": "BTCUSDT", "side": "SELL", "algoType": "CONDITIONAL", "type": "STOP_MARKET",
            "triggerPrice": inst.ticks_to_str(b - 400), "workingType": "MARK_PRICE", "closePosition": True,
            "clientAlgoId": "ws-sl1", "newOrderRespType": "RESULT"}
    r = await ws.req("algoOrder.place", signed(stop))
    assert r["status"] == 200, r
    assert r["result"]["clientAlgoId"] == "ws-sl1" and r["result"]["algoStatus"] == "NEW"
    assert [a.client_algo_id for a in server.ex.open_algo_orders("BTCUSDT")] == ["ws-sl1"]
    r = await ws.req("algoOrder.cancel", signed({"symbol": "BTCUSDT", "clientAlgoId": "ws-sl1"}))
    assert r["status"] == 200 and r["result"]["algoStatus"] == "CANCELED"
    server.faults.apply({"kind": "reject_next_stop", "code": -2021})
    r = await ws.req("algoOrder.place", signed({**stop, "clientAlgoId": "ws-sl2"}))
    assert r["status"] == 400 and r["error"]["code"] == -2021


async def test_error_after_execute_answers_unknown_and_rate_limit_answers_429_with_retry_after(sim):
    server, _, _, ws = sim
    server.faults.apply({"kind": "error_after_execute", "count": 1, "status": 503})
    r = await ws.req("order.place", signed({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET",
                                            "quantity": "0.002", "newClientOrderId": "amb-1"}))
    assert r["status"] == 503 and r["error"]["code"] == -1007
    assert server.ex.query("BTCUSDT", "amb-1").status == "FILLED"  # it executed all the same
    server.faults.apply({"kind": "rate_limit", "retry_after_s": 3})
    r = await ws.req("order.status", signed({"symbol": "BTCUSDT", "origClientOrderId": "amb-1"}))
    assert r["status"] == 429 and r["error"]["code"] == -1003
    d = r["error"]["data"]
    assert 2000 <= d["retryAfter"] - d["serverTime"] <= 3000


async def test_silence_fault_executes_without_answering_and_drop_ws_refuses_new_sockets(sim):
    server, base, http, ws = sim
    server.faults.apply({"kind": "ws_api_silence", "count": 1})
    ws.n += 1
    p = signed({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.002", "newClientOrderId": "s-1"})
    await ws.ws.send_str(orjson.dumps({"id": "x", "method": "order.place", "params": p}).decode())
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(ws.ws.receive(), 0.5)
    assert server.ex.query("BTCUSDT", "s-1").status == "FILLED"
    assert server.faults.fired[-1]["kind"] == "ws_api_silence"
    out = server.faults.apply({"kind": "drop_ws", "route": "ws-api", "refuse_ms": 1000})
    assert out["dropped"] == 1
    msg = await asyncio.wait_for(ws.ws.receive(), 5)
    assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING)
    with pytest.raises(aiohttp.WSServerHandshakeError):
        await http.ws_connect(base.replace("http", "ws") + "/ws-fapi/v1")
    await asyncio.sleep(1.1)
    again = await http.ws_connect(base.replace("http", "ws") + "/ws-fapi/v1")
    await again.close()
