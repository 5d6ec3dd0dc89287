"""The loopback exchange's faults for `scalper drill` (issue 11): a muted user stream, an order that
executes late, a raw frame injected into a stream, an order placed from outside the bot."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import orjson
import websockets

from tests.sim.server_helpers import call, running_server

MARKET = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.002"}


async def _fault(http: aiohttp.ClientSession, base: str, body: dict[str, Any], status: int = 200) -> dict[str, Any]:
    async with http.post(f"{base}/_sim/fault", data=orjson.dumps(body)) as r:
        assert r.status == status, await r.text()
        return await r.json()  # type: ignore[no-any-return]


async def _state(http: aiohttp.ClientSession, base: str) -> dict[str, Any]:
    async with http.get(f"{base}/_sim/state") as r:
        return await r.json()  # type: ignore[no-any-return]


async def _events(ws: Any, wait_s: float) -> list[dict[str, Any]]:
    """Every user-data event that arrives within `wait_s`."""
    out = []
    end = time.monotonic() + wait_s
    while (left := end - time.monotonic()) > 0:
        try:
            m = await asyncio.wait_for(ws.recv(), left)
        except TimeoutError:
            break
        out.append(orjson.loads(m))
    return out


def _pos(state: dict[str, Any], sym: str = "BTCUSDT") -> float:
    return sum(float(p["positionAmt"]) for p in state["positions"] if p["symbol"] == sym)


async def _user_ws(http: aiohttp.ClientSession, base: str) -> Any:
    _, body, _ = await call(http, base, "POST", "/fapi/v1/listenKey", signed=False)
    return await websockets.connect(base.replace("http", "ws") + f"/private/ws?listenKey={body['listenKey']}")


async def test_mute_user_stream_keeps_the_socket_and_pings_but_loses_the_events() -> None:
    async with running_server() as (_s, base), aiohttp.ClientSession() as http:
        await asyncio.sleep(0.3)
        ws = await _user_ws(http, base)
        try:
            await _fault(http, base, {"kind": "mute_user_stream", "ms": 800})
            st, body, _ = await call(http, base, "POST", "/fapi/v1/order", {**MARKET, "newClientOrderId": "m-1"})
            assert st == 200 and body["status"] == "FILLED"
            pong = await ws.ping()
            await asyncio.wait_for(pong, 2.0)  # still connected and answering pings
            assert await _events(ws, 0.4) == []  # silent while muted
            state = await _state(http, base)
            assert state["faults"]["user_stream_muted"] and state["faults"]["muted_events"] >= 1
            await asyncio.sleep(0.6)  # mute over
            st, _, _ = await call(http, base, "POST", "/fapi/v1/order", {**MARKET, "newClientOrderId": "m-2"})
            assert st == 200
            got = await _events(ws, 1.0)
            cids = {e["o"]["c"] for e in got if e["e"] == "ORDER_TRADE_UPDATE"}
            assert cids == {"m-2"}  # m-1's events were lost, not replayed
        finally:
            await ws.close()


async def test_late_execute_is_ambiguous_invisible_then_placed_and_streamed() -> None:
    async with running_server() as (_s, base), aiohttp.ClientSession() as http:
        await asyncio.sleep(0.3)
        ws = await _user_ws(http, base)
        try:
            await _fault(http, base, {"kind": "late_execute", "ms": 700, "count": 1})
            st, body, _ = await call(http, base, "POST", "/fapi/v1/order", {**MARKET, "newClientOrderId": "late-1"})
            assert (st, body["code"]) == (503, -1007)
            st, body, _ = await call(http, base, "GET", "/fapi/v1/order",
                                     {"symbol": "BTCUSDT", "origClientOrderId": "late-1"})
            assert (st, body["code"]) == (400, -2013)  # not found ... yet
            assert _pos(await _state(http, base)) == 0.0
            st, _, _ = await call(http, base, "POST", "/fapi/v1/order", {**MARKET, "newClientOrderId": "ok-2"})
            assert st == 200  # count=1: the next one is normal
            got = await _events(ws, 1.5)
            st, body, _ = await call(http, base, "GET", "/fapi/v1/order",
                                     {"symbol": "BTCUSDT", "origClientOrderId": "late-1"})
            assert st == 200 and body["status"] == "FILLED"
            state = await _state(http, base)
            assert _pos(state) == 0.004 and state["faults"]["late_pending"] == 0
            filled = [e["o"]["c"] for e in got if e["e"] == "ORDER_TRADE_UPDATE" and e["o"]["X"] == "FILLED"]
            assert filled == ["ok-2", "late-1"]  # streamed when it finally executed
            # "fill": a late IOC LIMIT that would expire (far below the market) fills at its own price on arrival
            await _fault(http, base, {"kind": "late_execute", "ms": 300, "fill": True})
            bid = (await _state(http, base))["books"]["BTCUSDT"]["best_bid"]
            px = f"{round(bid * 0.95, 1):.1f}"
            far = {**MARKET, "type": "LIMIT", "price": px, "quantity": "0.01", "timeInForce": "IOC",
                   "newClientOrderId": "late-2"}
            st, _, _ = await call(http, base, "POST", "/fapi/v1/order", far)
            assert st == 503
            await asyncio.sleep(0.6)
            st, body, _ = await call(http, base, "GET", "/fapi/v1/order",
                                     {"symbol": "BTCUSDT", "origClientOrderId": "late-2"})
            assert st == 200, body
            assert body["status"] == "FILLED" and float(body["avgPrice"]) == float(px)
            assert _pos(await _state(http, base)) == 0.014
        finally:
            await ws.close()


async def test_inject_sends_the_raw_frame_on_the_route_only() -> None:
    async with running_server() as (_s, base), aiohttp.ClientSession() as http:
        wsb = base.replace("http", "ws")
        ws = await _user_ws(http, base)
        pub = await websockets.connect(f"{wsb}/public/stream?streams=btcusdt@depth@100ms")
        try:
            await asyncio.sleep(0.3)
            raw = '{"e":"depthUpdate","s":"BTCUSDT","u":"x","b":[["abc","1"]]}'
            got = await _fault(http, base, {"kind": "inject", "route": "public", "raw": raw,
                                            "stream": "btcusdt@depth@100ms"})
            assert got["sent"] == 1
            frames = []
            end = time.monotonic() + 2.0
            while time.monotonic() < end and not any("abc" in f for f in frames):
                frames.append(await asyncio.wait_for(pub.recv(), 2.0))
            assert '{"stream":"btcusdt@depth@100ms","data":' + raw + "}" in frames
            assert await _events(ws, 0.3) == []  # the private socket got nothing
            got = await _fault(http, base, {"kind": "inject", "route": "private", "raw": "not json"})
            assert got["sent"] == 1
            assert await asyncio.wait_for(ws.recv(), 2.0) == "not json"
            await _fault(http, base, {"kind": "inject", "route": "nowhere", "raw": "x"}, status=400)
        finally:
            await ws.close()
            await pub.close()


async def test_outside_order_is_placed_with_a_foreign_client_id_and_streamed() -> None:
    async with running_server() as (_s, base), aiohttp.ClientSession() as http:
        await asyncio.sleep(0.3)
        ws = await _user_ws(http, base)
        try:
            got = await _fault(http, base, {"kind": "outside_order", "symbol": "BTCUSDT", "side": "SELL",
                                            "type": "MARKET", "qty": 0.01})
            assert got["status"] == "FILLED" and got["client_id"].startswith("web_")
            ev = await _events(ws, 1.0)
            assert [e["o"]["c"] for e in ev if e["e"] == "ORDER_TRADE_UPDATE" and e["o"]["X"] == "FILLED"] == \
                [got["client_id"]]
            assert any(e["e"] == "ACCOUNT_UPDATE" for e in ev)
            state = await _state(http, base)
            assert _pos(state) == -0.01 and state["faults"]["outside_orders"] == 1
            await _fault(http, base, {"kind": "outside_order", "symbol": "BTCUSDT", "side": "HOLD"}, status=400)
        finally:
            await ws.close()


async def test_rate_limit_on_a_request_starts_there_and_entries_only_spares_reduce_only_orders() -> None:
    async with running_server() as (_s, base), aiohttp.ClientSession() as http:
        await asyncio.sleep(0.3)
        await _fault(http, base, {"kind": "rate_limit", "on": "POST /fapi/v1/algoOrder", "retry_after_s": 2,
                                  "ban_after": 100})
        st, _, _ = await call(http, base, "GET", "/fapi/v1/time", signed=False)
        assert st == 200  # armed, not started
        assert (await _state(http, base))["faults"]["rate_limit_armed"] == ["POST /fapi/v1/algoOrder"]
        assert (await _state(http, base))["faults"]["fired"] == []
        st, _, _ = await call(http, base, "POST", "/fapi/v1/order", {**MARKET, "newClientOrderId": "e-1"})
        assert st == 200
        stop = {"symbol": "BTCUSDT", "side": "SELL", "type": "STOP_MARKET", "algoType": "CONDITIONAL",
                "triggerPrice": "30000.0", "closePosition": "true"}
        st, _, h = await call(http, base, "POST", "/fapi/v1/algoOrder", stop)
        # the stop itself met the 429, told the whole window (not a second more: it starts with that request)
        assert st == 429 and int(h["Retry-After"]) == 2
        st, _, _ = await call(http, base, "GET", "/fapi/v1/time", signed=False)
        assert st == 429  # and the window is on for everything
        await asyncio.sleep(2.1)
        st, _, _ = await call(http, base, "POST", "/fapi/v1/algoOrder", stop)
        assert st == 200
        await _fault(http, base, {"kind": "error_after_execute", "entries_only": True})
        st, _, _ = await call(http, base, "POST", "/fapi/v1/order",
                              {**MARKET, "side": "SELL", "reduceOnly": "true", "quantity": "0.001"})
        assert st == 200  # a reduce-only order is not an entry: untouched
        st, body, _ = await call(http, base, "POST", "/fapi/v1/order", {**MARKET, "newClientOrderId": "e-2"})
        assert (st, body["code"]) == (503, -1007)
        fired = (await _state(http, base))["faults"]["fired"]
        assert [(f["kind"], f.get("on")) for f in fired] == [("rate_limit", "POST /fapi/v1/algoOrder"),
                                                            ("error_after_execute", None)]
        assert fired[0]["time"] <= fired[1]["time"]
        await _fault(http, base, {"kind": "rate_limit", "on": "nonsense"}, status=400)


async def test_state_history_lists_every_order_algo_order_and_fill() -> None:
    async with running_server() as (_s, base), aiohttp.ClientSession() as http:
        await asyncio.sleep(0.3)
        for cid in ("h-1", "h-2"):
            st, _, _ = await call(http, base, "POST", "/fapi/v1/order", {**MARKET, "newClientOrderId": cid})
            assert st == 200
        assert "orders" not in await _state(http, base)  # opt-in
        async with http.get(f"{base}/_sim/state?history=1") as r:
            state = await r.json()
        assert [(o["clientOrderId"], o["status"]) for o in state["orders"]] == [("h-1", "FILLED"), ("h-2", "FILLED")]
        by_cid: dict[str, float] = {}
        for f in state["fills"]:
            by_cid[f["clientOrderId"]] = by_cid.get(f["clientOrderId"], 0.0) + f["qty"]
            assert f["price"] > 1000 and f["side"] == "BUY"
        assert by_cid == {"h-1": 0.002, "h-2": 0.002}
        assert state["algo_orders"] == []
