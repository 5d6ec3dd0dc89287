"""The loopback exchange's faults on its Bybit v5 routes that `scalper drill --venue bybit` uses (in process,
signed v5 requests; ~1-4 s): the per-UID 10006 on one endpoint with its reset timestamp, armed at a request or
after an ambiguous entry; late_execute on order create; inject on the Bybit sockets."""

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

from bot.drill.venue import BYBIT
from tests.sim.server_helpers import KEY, SECRET, running_server


async def v5(http: aiohttp.ClientSession, base: str, method: str, path: str,
             params: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
    """A signed request: (HTTP status, JSON body or the text, headers)."""
    ts = str(int(time.time() * 1000))
    payload = orjson.dumps(params).decode() if method == "POST" else urlencode(params)
    sig = hmac.new(SECRET.encode(), (ts + KEY + "5000" + payload).encode(), hashlib.sha256).hexdigest()
    headers = {"X-BAPI-API-KEY": KEY, "X-BAPI-TIMESTAMP": ts, "X-BAPI-RECV-WINDOW": "5000", "X-BAPI-SIGN": sig,
               "Content-Type": "application/json"}
    url = f"{base}{path}" + (f"?{payload}" if method == "GET" else "")
    async with http.request(method, url, data=payload if method == "POST" else None, headers=headers) as r:
        body = await r.json() if r.content_type == "application/json" else await r.text()
        return r.status, body, dict(r.headers)


@pytest.fixture
async def sim():
    async with running_server() as (server, base), aiohttp.ClientSession() as http:
        await asyncio.wait_for(server.next_depth("BTCUSDT", 5.0), 10)
        yield server, base, http


Q = {"category": "linear", "symbol": "BTCUSDT"}


async def test_uid_limit_10006_on_one_endpoint_with_its_reset_timestamp(sim) -> None:
    server, base, http = sim
    with pytest.raises(ValueError, match="needs 'on'"):
        server.faults.apply({"kind": "rate_limit", "code": 10006})
    with pytest.raises(ValueError, match="/v5/"):
        server.faults.apply({"kind": "rate_limit", "code": 10006, "on": "POST /fapi/v1/algoOrder"})
    server.faults.apply({"kind": "rate_limit", "on": "POST /v5/position/trading-stop", "retry_after_s": 2,
                         **BYBIT.rate_limit})
    st, body, _ = await v5(http, base, "GET", "/v5/order/realtime", Q)
    assert st == 200 and body["retCode"] == 0  # other endpoints untouched, nothing fired yet
    t0 = server.now_ms()
    st, body, h = await v5(http, base, "POST", "/v5/position/trading-stop", {**Q, "stopLoss": "1"})
    assert st == 200 and body["retCode"] == 10006
    reset = int(h["X-Bapi-Limit-Reset-Timestamp"])
    assert h["X-Bapi-Limit-Status"] == "0" and t0 + 1900 <= reset <= t0 + 2100
    st, body, _ = await v5(http, base, "GET", "/v5/position/list", Q)
    assert body["retCode"] == 0  # per endpoint, not per IP (no 403)
    assert [f["kind"] for f in server.faults.fired] == ["rate_limit"] and server.faults.uid_limited
    await asyncio.sleep(max(0.0, (reset - server.now_ms()) / 1000) + 0.05)
    st, body, _ = await v5(http, base, "POST", "/v5/position/trading-stop", {**Q, "stopLoss": "1"})
    assert body["retCode"] == 10001  # past the reset: answered again (zero position)


async def test_lookup_limit_starts_only_after_the_ambiguous_entry(sim) -> None:
    server, base, http = sim
    server.faults.apply({"kind": "error_after_execute", "count": 1, "entries_only": True})
    server.faults.apply({"kind": "rate_limit", "on": BYBIT.lookup_path, "retry_after_s": 3, **BYBIT.lookup_limit})
    # the open-order listing before the entry (a reconciliation pass) does not start it
    st, body, _ = await v5(http, base, "GET", "/v5/order/realtime", Q)
    assert body["retCode"] == 0 and server.faults.armed_limits
    order = {**Q, "side": "Buy", "orderType": "Market", "qty": "0.01", "orderLinkId": "a1-entry"}
    st, _body, _ = await v5(http, base, "POST", "/v5/order/create", order)
    assert st == 503 and server.ex.position_lots("BTCUSDT") > 0  # executed, answer lost
    st, body, _ = await v5(http, base, "GET", "/v5/order/realtime", {**Q, "orderLinkId": "a1-entry"})
    assert body["retCode"] == 10006 and not server.faults.armed_limits
    fired = [f["kind"] for f in server.faults.fired]
    assert fired == ["error_after_execute", "rate_limit"]


async def test_late_execute_on_order_create(sim) -> None:
    server, base, http = sim
    server.faults.apply({"kind": "late_execute", "ms": 500, "count": 1, "entries_only": True})
    bid = server.ex.markets["BTCUSDT"].book.bbo()[0]
    inst = server.ex.markets["BTCUSDT"].inst
    stop = inst.ticks_to_str(bid - 400)
    order = {**Q, "side": "Buy", "orderType": "Market", "qty": "0.01", "orderLinkId": "l1-entry", "stopLoss": stop}
    st, _body, _ = await v5(http, base, "POST", "/v5/order/create", order)
    assert st == 503 and server.faults.late_pending == 1
    st, body, _ = await v5(http, base, "GET", "/v5/order/realtime", {**Q, "orderLinkId": "l1-entry"})
    assert body["retCode"] == 0 and body["result"]["list"] == []  # not found (yet)
    for _ in range(40):
        await asyncio.sleep(0.05)
        if not server.faults.late_pending:
            break
    st, body, _ = await v5(http, base, "GET", "/v5/order/realtime", {**Q, "orderLinkId": "l1-entry"})
    (row,) = body["result"]["list"]
    assert row["orderStatus"] == "Filled" and server.ex.position_lots("BTCUSDT") > 0
    # placed with its attached stop: the position's stopLoss is armed as for an order placed at once
    st, body, _ = await v5(http, base, "GET", "/v5/position/list", Q)
    assert body["result"]["list"][0]["stopLoss"] == stop


async def test_inject_reaches_the_bybit_sockets(sim) -> None:
    server, base, http = sim
    ws_url = base.replace("http", "ws") + "/v5/public/linear"
    async with http.ws_connect(ws_url) as ws:
        await ws.send_str('{"op":"subscribe","args":["tickers.BTCUSDT"]}')
        for _ in range(50):
            if any(c.route == "bybit-public" for c in server.conns):
                break
            await asyncio.sleep(0.02)
        state = {"time": server.now_ms(), "books": {"BTCUSDT": {"last_update_id": 5}}, "bybit_book_u": {}}
        raw = BYBIT.bad_depth("BTCUSDT", state)[0]
        got = server.faults.apply({"kind": "inject", "route": BYBIT.public_route, "raw": raw})
        assert got["sent"] == 1
        for _ in range(100):
            msg = await asyncio.wait_for(ws.receive_str(), 5)
            if msg == raw:
                break
        else:
            raise AssertionError("the injected frame never came")
        assert orjson.loads(raw)["data"]["b"] == [["abc", "1"]]
