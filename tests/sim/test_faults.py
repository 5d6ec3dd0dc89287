"""Fault injection on the loopback exchange (POST /_sim/fault) and the state endpoint."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import orjson
import pytest
import websockets

from bot.domain.events import DepthDiff
from bot.market.book import OrderBook
from bot.market.sync import BinanceBookSync
from bot.venues.binance_usdm.instruments import KNOWN
from bot.venues.binance_usdm.parse import parse_message, parse_snapshot
from tests.sim.server_helpers import call, running_server

ORDER = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "quantity": "0.002", "price": "50000.0",
         "timeInForce": "GTC"}


async def _fault(http: aiohttp.ClientSession, base: str, body: dict[str, Any]) -> dict[str, Any]:
    async with http.post(f"{base}/_sim/fault", data=orjson.dumps(body)) as r:
        assert r.status == 200, await r.text()
        return await r.json()  # type: ignore[no-any-return]


async def _recv(ws: Any, wait_s: float) -> bytes | None:
    try:
        m = await asyncio.wait_for(ws.recv(), wait_s)
    except TimeoutError:
        return None
    return m.encode() if isinstance(m, str) else m


async def test_gap_breaks_the_chain_and_a_fresh_snapshot_resyncs() -> None:
    async with running_server() as (_s, base), aiohttp.ClientSession() as http:
        sync = BinanceBookSync(OrderBook(KNOWN["BTCUSDT"]))

        async def snapshot() -> None:
            async with http.get(f"{base}/fapi/v1/depth?symbol=BTCUSDT&limit=1000") as r:
                sync.on_snapshot(parse_snapshot(await r.json(), "BTCUSDT", 0), 0)

        async with websockets.connect(base.replace("http", "ws") + "/public/ws/btcusdt@depth@100ms") as ws:
            end = time.monotonic() + 4.0
            injected = False
            while time.monotonic() < end:
                raw = await _recv(ws, 1.0)
                assert raw is not None
                ev = parse_message(raw, 0)
                assert isinstance(ev, DepthDiff)  # ws mode: bare payloads
                sync.on_diff(ev, 0)
                if sync.needs_snapshot:
                    await snapshot()
                if sync.health.is_live and not injected and sync.stats.applied > 5:
                    await _fault(http, base, {"kind": "gap", "symbol": "BTCUSDT", "count": 1})
                    injected = True
                if sync.stats.gaps and sync.stats.snapshots >= 2 and sync.stats.applied > 20:
                    break
        assert sync.stats.gaps == 1  # exactly the one we injected
        assert sync.stats.snapshots >= 2 and sync.health.is_live


async def test_error_after_execute_answers_5xx_but_the_order_exists() -> None:
    async with running_server() as (_server, base), aiohttp.ClientSession() as http:
        await asyncio.sleep(0.3)
        await _fault(http, base, {"kind": "error_after_execute"})
        st, body, _ = await call(http, base, "POST", "/fapi/v1/order", {**ORDER, "newClientOrderId": "amb-1"})
        assert (st, body["code"]) == (503, -1007)
        st, body, _ = await call(http, base, "GET", "/fapi/v1/order",
                                 {"symbol": "BTCUSDT", "origClientOrderId": "amb-1"})
        assert st == 200 and body["status"] == "NEW"  # look it up by client id: it is there
        st, body, _ = await call(http, base, "POST", "/fapi/v1/order", {**ORDER, "newClientOrderId": "amb-2"})
        assert st == 200  # one-shot
        async with http.get(f"{base}/_sim/state") as r:
            state = await r.json()
        assert [o["clientOrderId"] for o in state["open_orders"]] == ["amb-1", "amb-2"]
        assert {"account", "positions", "open_algo_orders", "books"} <= set(state)
        assert state["books"]["BTCUSDT"]["status"] == "LIVE"


async def test_delay_reject_stop_and_clock_skew() -> None:
    async with running_server() as (_s, base), aiohttp.ClientSession() as http:
        await asyncio.sleep(0.3)
        await _fault(http, base, {"kind": "delay_orders_ms", "ms": 300})
        t0 = time.monotonic()
        st, _, _ = await call(http, base, "POST", "/fapi/v1/order", ORDER)
        assert st == 200 and time.monotonic() - t0 >= 0.3
        await _fault(http, base, {"kind": "delay_orders_ms", "ms": 0})
        await call(http, base, "POST", "/fapi/v1/order", {**ORDER, "type": "MARKET", "price": "", "timeInForce": ""})
        stop = {"symbol": "BTCUSDT", "side": "SELL", "type": "STOP_MARKET", "algoType": "CONDITIONAL",
                "triggerPrice": "30000.0", "closePosition": "true"}
        await _fault(http, base, {"kind": "reject_next_stop"})
        st, body, _ = await call(http, base, "POST", "/fapi/v1/algoOrder", stop)
        assert (st, body["code"]) == (400, -2021)
        st, body, _ = await call(http, base, "POST", "/fapi/v1/algoOrder", stop)
        assert st == 200 and body["algoStatus"] == "NEW"
        await _fault(http, base, {"kind": "clock_skew_ms", "ms": -3000})
        st, body, _ = await call(http, base, "GET", "/fapi/v1/time", signed=False)
        assert body["serverTime"] < time.time() * 1000 - 2500
        st, body, _ = await call(http, base, "GET", "/fapi/v2/balance")  # our clock is 3 s "ahead"
        assert (st, body["code"]) == (400, -1021)
        await _fault(http, base, {"kind": "clear"})
        st, _, _ = await call(http, base, "GET", "/fapi/v2/balance")
        assert st == 200


async def test_rate_limit_answers_429_then_418_with_retry_after() -> None:
    async with running_server() as (_s, base), aiohttp.ClientSession() as http:
        await _fault(http, base, {"kind": "rate_limit", "retry_after_s": 2, "ban_after": 2, "ban_s": 30})
        statuses = []
        for _ in range(4):
            st, _, h = await call(http, base, "GET", "/fapi/v1/time", signed=False)
            statuses.append((st, int(h["Retry-After"])))
        assert [s for s, _ in statuses] == [429, 429, 418, 418]
        assert 1 <= statuses[0][1] <= 2 and statuses[2][1] == 30
        async with http.post(f"{base}/_sim/fault", data=b'{"kind": "nope"}') as r:
            assert r.status == 400 and "rate_limit" in (await r.json())["kinds"]


async def test_listen_key_expiry_drop_ws_and_freeze() -> None:
    async with running_server() as (_s, base), aiohttp.ClientSession() as http:
        wsb = base.replace("http", "ws")
        _, body, _ = await call(http, base, "POST", "/fapi/v1/listenKey", signed=False)
        key = body["listenKey"]
        async with websockets.connect(f"{wsb}/private/ws?listenKey={key}") as priv:
            await _fault(http, base, {"kind": "expire_listen_key"})
            raw = await _recv(priv, 2.0)
            assert raw is not None and orjson.loads(raw) == {"e": "listenKeyExpired", "E": pytest.approx(
                time.time() * 1000, abs=5000), "listenKey": key}
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(priv.recv(), 2.0)
        st, body, _ = await call(http, base, "PUT", "/fapi/v1/listenKey", signed=False)
        assert (st, body["code"]) == (400, -1125)
        async with websockets.connect(f"{wsb}/public/ws/btcusdt@bookTicker") as pub:
            assert await _recv(pub, 2.0) is not None
            await _fault(http, base, {"kind": "freeze_stream", "ms": 600})
            await asyncio.sleep(0.05)
            while await _recv(pub, 0.02) is not None:  # what was already queued
                pass
            t0 = time.monotonic()
            assert await _recv(pub, 5.0) is not None
            assert time.monotonic() - t0 >= 0.4  # silent while frozen, then flowing again
            got = await _fault(http, base, {"kind": "drop_ws", "route": "public"})
            assert got["dropped"] == 1
            with pytest.raises(websockets.ConnectionClosed):
                for _ in range(1000):
                    await asyncio.wait_for(pub.recv(), 2.0)
