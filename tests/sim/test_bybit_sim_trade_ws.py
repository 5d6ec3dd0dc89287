"""The loopback exchange's Bybit v5 order-entry websocket `/v5/trade` (bot/venues/sim/bybit_trade_ws.py), by raw
frames: auth, create (with an attached stop) / amend / cancel, Bybit's answer shape, its error codes, the
10019 restart fault, and the same engine as REST (an order placed over the socket is found by REST)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from typing import Any

import aiohttp
import orjson
import pytest

from tests.sim.server_helpers import KEY, SECRET, running_server
from tests.sim.test_bybit_sim_rest import v5


def auth_frame(secret: str = SECRET, expires_ms: int | None = None, req_id: str | None = "a1") -> dict[str, Any]:
    exp = expires_ms if expires_ms is not None else int(time.time() * 1000) + 10_000
    sig = hmac.new(secret.encode(), f"GET/realtime{exp}".encode(), hashlib.sha256).hexdigest()
    out: dict[str, Any] = {"op": "auth", "args": [KEY, exp, sig]}
    if req_id is not None:
        out["reqId"] = req_id
    return out


def order_frame(op: str, body: dict[str, Any], req_id: str, ts_ms: int | None = None) -> dict[str, Any]:
    ts = ts_ms if ts_ms is not None else int(time.time() * 1000)
    return {"reqId": req_id, "header": {"X-BAPI-TIMESTAMP": str(ts), "X-BAPI-RECV-WINDOW": "5000"}, "op": op,
            "args": [body]}


async def ask(ws: aiohttp.ClientWebSocketResponse, frame: dict[str, Any]) -> dict[str, Any]:
    await ws.send_str(orjson.dumps(frame).decode())
    msg = await asyncio.wait_for(ws.receive(), 5)
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    out: dict[str, Any] = orjson.loads(msg.data)
    return out


@pytest.fixture
async def sim():
    async with running_server() as (server, base), aiohttp.ClientSession() as http:
        await asyncio.wait_for(server.next_depth("BTCUSDT", 5.0), 10)
        yield server, base, http


def _px(server: Any, ticks: int) -> str:
    return str(server.ex.markets["BTCUSDT"].inst.ticks_to_str(ticks))


async def test_auth_refused_then_accepted_and_orders_need_it(sim):
    server, base, http = sim
    async with http.ws_connect(f"{base.replace('http', 'ws')}/v5/trade") as ws:
        bad = await ask(ws, auth_frame(secret="wrong"))
        assert bad["retCode"] == 10004 and bad["op"] == "auth" and bad["reqId"] == "a1" and bad["connId"]
        expired = await ask(ws, auth_frame(expires_ms=int(time.time() * 1000) - 1000, req_id=None))
        assert expired["retCode"] == 10004 and "reqId" not in expired  # no reqId asked, none answered
        body = {"category": "linear", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Market", "qty": "0.01"}
        refused = await ask(ws, order_frame("order.create", body, "o0"))
        assert refused["retCode"] == 10003 and refused["data"] == {}
        ok = await ask(ws, auth_frame())
        assert ok == {"reqId": "a1", "retCode": 0, "retMsg": "OK", "op": "auth", "connId": ok["connId"]}
        again = await ask(ws, auth_frame())
        assert again["retCode"] == 20001
        pong = await ask(ws, {"op": "ping"})
        assert pong["op"] == "pong" and pong["retCode"] == 0 and int(pong["data"][0]) > 0
    assert server.ex.position_lots("BTCUSDT") == 0  # nothing executed before auth


async def test_create_with_attached_stop_amend_cancel_answers_and_errors(sim):
    server, base, http = sim
    m = server.ex.markets["BTCUSDT"]
    bid, _, ask_t, _ = m.book.bbo()
    async with http.ws_connect(f"{base.replace('http', 'ws')}/v5/trade") as ws:
        assert (await ask(ws, auth_frame()))["retCode"] == 0
        limit = {"category": "linear", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Limit", "qty": "0.01",
                 "price": _px(server, bid - 200), "timeInForce": "PostOnly", "orderLinkId": "ws-l1"}
        a = await ask(ws, order_frame("order.create", limit, "r1"))
        assert a["retCode"] == 0 and a["retMsg"] == "OK" and a["op"] == "order.create" and a["reqId"] == "r1"
        assert a["data"]["orderLinkId"] == "ws-l1" and a["data"]["orderId"] and a["connId"]
        h = a["header"]
        assert h["X-Bapi-Limit"] == "10" and int(h["X-Bapi-Limit-Status"]) < 10
        assert int(h["X-Bapi-Limit-Reset-Timestamp"]) > 0 and int(h["Timenow"]) > 0 and h["Traceid"]
        # the same engine: REST finds the socket's order
        got, _ = await v5(http, base, "GET", "/v5/order/realtime", {"category": "linear", "symbol": "BTCUSDT",
                                                                   "orderLinkId": "ws-l1"})
        assert got["result"]["list"][0]["orderStatus"] == "New"
        dup = await ask(ws, order_frame("order.create", limit, "r2"))
        assert dup["retCode"] == 110072 and dup["data"] == {}  # the REST route's order errors
        reused = await ask(ws, order_frame("order.create", {**limit, "orderLinkId": "ws-l2"}, "r1"))
        assert reused["retCode"] == 20006
        late = await ask(ws, order_frame("order.create", {**limit, "orderLinkId": "ws-l3"}, "r3",
                                         ts_ms=int(time.time() * 1000) - 10_000))
        assert late["retCode"] == 10002
        amend = await ask(ws, order_frame("order.amend", {"category": "linear", "symbol": "BTCUSDT",
                                                          "orderLinkId": "ws-l1", "price": _px(server, bid - 300)},
                                          "r4"))
        assert amend["retCode"] == 0 and amend["op"] == "order.amend" and amend["data"]["orderLinkId"] == "ws-l1"
        assert server.ex.by_client[("BTCUSDT", "ws-l1")].price_ticks == bid - 300
        cancel = await ask(ws, order_frame("order.cancel", {"category": "linear", "symbol": "BTCUSDT",
                                                            "orderLinkId": "ws-l1"}, "r5"))
        assert cancel["retCode"] == 0 and cancel["data"]["orderLinkId"] == "ws-l1"
        gone = await ask(ws, order_frame("order.cancel", {"category": "linear", "symbol": "BTCUSDT",
                                                          "orderLinkId": "ws-l1"}, "r6"))
        assert gone["retCode"] == 110001
        unknown = await ask(ws, order_frame("order.explode", {}, "r7"))
        assert unknown["retCode"] == 10404
        # a market entry with an attached stopLoss: the position gets its stop, as over REST
        entry = {"category": "linear", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Market", "qty": "0.01",
                 "orderLinkId": "ws-e1", "stopLoss": _px(server, bid - 400), "slTriggerBy": "MarkPrice",
                 "tpslMode": "Full"}
        e = await ask(ws, order_frame("order.create", entry, "r8"))
        assert e["retCode"] == 0, e
    pos, _ = await v5(http, base, "GET", "/v5/position/list", {"category": "linear", "symbol": "BTCUSDT"})
    row = pos["result"]["list"][0]
    assert row["side"] == "Buy" and float(row["size"]) == 0.01 and float(row["stopLoss"]) > 0
    assert server.requests["WS order.create"] == 5 and server.requests["WS order.cancel"] == 2
    assert ask_t > bid


async def test_restart_fault_answers_10019_without_processing_and_drop_closes(sim):
    server, base, http = sim
    bid = server.ex.markets["BTCUSDT"].book.bbo()[0]
    limit = {"category": "linear", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Limit", "qty": "0.01",
             "price": _px(server, bid - 200), "orderLinkId": "ws-r1"}
    async with http.ws_connect(f"{base.replace('http', 'ws')}/v5/trade") as ws:
        assert (await ask(ws, auth_frame()))["retCode"] == 0
        async with http.post(f"{base}/_sim/fault", json={"kind": "ws_trade_restart", "count": 1}) as r:
            assert r.status == 200
        a = await ask(ws, order_frame("order.create", limit, "x1"))
        assert a["retCode"] == 10019 and a["reqId"] == "x1"
        assert ("BTCUSDT", "ws-r1") not in server.ex.by_client  # refused, not processed
        b = await ask(ws, order_frame("order.create", limit, "x2"))
        assert b["retCode"] == 0  # one-shot
        async with http.post(f"{base}/_sim/fault", json={"kind": "drop_ws", "route": "bybit-trade",
                                                         "refuse_ms": 500}) as r:
            assert (await r.json())["dropped"] == 1
        msg = await asyncio.wait_for(ws.receive(), 5)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING)
    with pytest.raises(aiohttp.WSServerHandshakeError):
        await http.ws_connect(f"{base.replace('http', 'ws')}/v5/trade")
    await asyncio.sleep(0.6)
    async with http.ws_connect(f"{base.replace('http', 'ws')}/v5/trade") as ws:
        assert (await ask(ws, auth_frame()))["retCode"] == 0
