"""The loopback exchange: start-up, unmodified ccxt binanceusdm, signed requests, streams, user data."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from typing import Any

import aiohttp
import orjson
import pytest
import websockets

from bot.domain.events import BookTicker, DepthDiff, DepthSnapshot
from bot.market.book import OrderBook
from bot.market.sync import BinanceBookSync
from bot.venues.binance_usdm.instruments import KNOWN
from bot.venues.binance_usdm.parse import parse_message, parse_snapshot
from tests.conftest import ROOT, SESSIONS
from tests.sim.server_helpers import build_server, call, ccxt_client, running_server

SYM = "BTC/USDT:USDT"


def _launch() -> tuple[subprocess.Popen[str], float, str]:
    t0 = time.monotonic()
    p = subprocess.Popen([sys.executable, "-m", "bot", "exchange-sim", "--port", "0", "--seed", "1"],
                         cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert p.stdout is not None
    line = p.stdout.readline()  # printed once the port is bound and the market runs
    return p, time.monotonic() - t0, line


async def _probe_time(port: int) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/fapi/v1/time") as r:
        return r.status, await r.json()


def test_exchange_sim_command_starts_in_under_two_seconds_and_serves() -> None:
    # Best of up to three launches: this 2-core machine is shared with other test runs.
    best = float("inf")
    for _ in range(3):
        p, elapsed, line = _launch()
        try:
            assert "ready on http://127.0.0.1:" in line, line + (p.stderr.read() if p.stderr else "")
            best = min(best, elapsed)
            if best < 2.0:
                port = int(line.split("127.0.0.1:")[1].split()[0])
                status, body = asyncio.run(asyncio.wait_for(_probe_time(port), 5))
                assert status == 200 and abs(body["serverTime"] - time.time() * 1000) < 5000
                break
        finally:
            p.terminate()
            p.wait(5)
    assert best < 2.0, f"best start-up of 3: {best:.2f} s"


async def test_unmodified_ccxt_runs_the_order_lifecycle() -> None:
    async with running_server() as (server, base):
        await asyncio.sleep(0.3)
        ex = ccxt_client(base)
        try:
            markets = await asyncio.wait_for(ex.load_markets(), 5)
            m = markets[SYM]
            assert m["precision"]["price"] == 0.1 and m["precision"]["amount"] == 0.001
            assert m["limits"]["cost"]["min"] == 100
            ob = await ex.fetch_order_book(SYM, 5)
            bid = ob["bids"][0][0]
            o = await ex.create_order(SYM, "limit", "buy", 0.002, bid - 50)
            assert o["status"] == "open" and o["price"] == pytest.approx(bid - 50)
            assert (await ex.fetch_order(o["id"], SYM))["status"] == "open"
            assert [x["id"] for x in await ex.fetch_open_orders(SYM)] == [o["id"]]
            assert (await ex.cancel_order(o["id"], SYM))["status"] == "canceled"
            mk = await ex.create_order(SYM, "market", "buy", 0.002)
            assert mk["status"] == "closed" and mk["filled"] == 0.002 and mk["average"] >= ob["asks"][0][0] - 100
            # a stop via stopLossPrice is routed to POST /fapi/v1/algoOrder (exchange-facts C2)
            sl = await ex.create_order(SYM, "market", "sell", 0.002, None,
                                       {"stopLossPrice": round(bid * 0.99, 1), "reduceOnly": True,
                                        "workingType": "MARK_PRICE"})
            assert sl["status"] == "open" and sl["triggerPrice"] == pytest.approx(round(bid * 0.99, 1))
            assert [a.algo_id for a in server.ex.open_algo_orders("BTCUSDT")] == [int(sl["id"])]
            got = await ex.fetch_order(sl["id"], SYM, {"trigger": True})
            assert got["status"] == "open"
            assert len(await ex.fetch_open_orders(SYM, params={"trigger": True})) == 1
            assert (await ex.cancel_order(sl["id"], SYM, {"trigger": True}))["status"] == "canceled"
            assert server.ex.open_algo_orders("BTCUSDT") == []
            pos = await ex.fetch_positions([SYM])
            assert [(p["contracts"], p["side"]) for p in pos] == [(0.002, "long")]
            bal = await ex.fetch_balance()
            assert 9_900 < bal["USDT"]["total"] < 10_000
            assert (await ex.set_leverage(20, SYM))["leverage"] == 20
        finally:
            await ex.close()


async def test_signed_requests_are_checked_like_the_venue() -> None:
    async with running_server() as (_server, base):
        await asyncio.sleep(0.3)
        async with aiohttp.ClientSession() as http:
            order = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "quantity": "0.002",
                     "price": "50000.0", "timeInForce": "GTC"}
            st, body, h = await call(http, base, "POST", "/fapi/v1/order", order, secret="wrong")
            assert (st, body["code"]) == (400, -1022)
            st, body, _ = await call(http, base, "POST", "/fapi/v1/order", order,
                                     ts_ms=int(time.time() * 1000) - 6000)
            assert (st, body["code"]) == (400, -1021)
            st, body, _ = await call(http, base, "POST", "/fapi/v1/order", order,
                                     ts_ms=int(time.time() * 1000) + 1500)
            assert (st, body["code"]) == (400, -1021)
            st, body, _ = await call(http, base, "GET", "/fapi/v2/balance", key=None)
            assert (st, body["code"]) == (401, -2014)
            st, body, h = await call(http, base, "POST", "/fapi/v1/order", order)
            assert st == 200 and body["status"] == "NEW"
            assert h["X-MBX-ORDER-COUNT-10S"] == "1" and "X-MBX-USED-WEIGHT-1M" in h
            st, body, _ = await call(http, base, "POST", "/fapi/v1/order",
                                     {**order, "type": "STOP_MARKET", "stopPrice": "50000.0"})
            assert body["code"] == -4120
            codes = {}
            for name, path, method, params in [
                ("cancel unknown", "/fapi/v1/order", "DELETE", {"symbol": "BTCUSDT", "origClientOrderId": "x"}),
                ("query unknown", "/fapi/v1/order", "GET", {"symbol": "BTCUSDT", "orderId": "1"}),
                ("margin", "/fapi/v1/order", "POST", {**order, "quantity": "100"}),
                ("reduce only", "/fapi/v1/order", "POST", {**order, "reduceOnly": "true"}),
                ("notional", "/fapi/v1/order", "POST", {**order, "quantity": "0.001"}),
                ("immediate trigger", "/fapi/v1/algoOrder", "POST",
                 {"symbol": "BTCUSDT", "side": "BUY", "type": "STOP_MARKET", "algoType": "CONDITIONAL",
                  "quantity": "0.002", "triggerPrice": "1000.0"}),
            ]:
                st, body, _ = await call(http, base, method, path, params)
                codes[name] = body["code"]
            assert codes == {"cancel unknown": -2011, "query unknown": -2013, "margin": -2019,
                             "reduce only": -2022, "notional": -4164, "immediate trigger": -2021}


async def _collect(ws: Any, seconds: float) -> list[bytes]:
    out: list[bytes] = []
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        try:
            msg = await asyncio.wait_for(ws.recv(), left)
        except TimeoutError:
            break
        out.append(msg.encode() if isinstance(msg, str) else msg)
    return out


async def test_websocket_client_syncs_a_dom_from_the_public_stream_with_zero_gaps() -> None:
    async with running_server() as (_server, base):
        ws_url = base.replace("http", "ws") + "/public/stream?streams=btcusdt@depth@100ms/btcusdt@bookTicker"
        book = OrderBook(KNOWN["BTCUSDT"])
        sync = BinanceBookSync(book)
        checked = mismatched = 0
        async with websockets.connect(ws_url) as ws, aiohttp.ClientSession() as http:
            first = await _collect(ws, 0.3)  # buffer, then fetch the snapshot, as the official algorithm says
            async with http.get(f"{base}/fapi/v1/depth?symbol=BTCUSDT&limit=1000") as r:
                snap = parse_snapshot(await r.json(), "BTCUSDT", 0)
            rest = await _collect(ws, 2.0)
        inst = KNOWN["BTCUSDT"]
        for i, raw in enumerate([*first, b"SNAPSHOT", *rest]):
            if raw == b"SNAPSHOT":
                sync.on_snapshot(snap, 0)
                continue
            ev = parse_message(raw, 0)
            assert orjson.loads(raw)["stream"] in ("btcusdt@depth@100ms", "btcusdt@bookTicker")
            if isinstance(ev, DepthDiff):
                sync.on_diff(ev, i)
            elif isinstance(ev, BookTicker) and sync.health.is_live and ev.update_id == sync.last_update_id:
                checked += 1
                want = (inst.price_to_ticks(ev.bid_price), inst.qty_to_lots(ev.bid_qty),
                        inst.price_to_ticks(ev.ask_price), inst.qty_to_lots(ev.ask_qty))
                mismatched += want != book.bbo()
        assert isinstance(snap, DepthSnapshot)
        assert sync.stats.depth_events >= 15 and sync.stats.snapshots == 1
        assert (sync.stats.gaps, sync.stats.resyncs, sync.stats.crossed) == (0, 0, 0)
        assert sync.health.is_live
        assert mismatched == 0


async def test_user_data_stream_carries_order_algo_and_account_updates() -> None:
    async with running_server() as (_server, base):
        await asyncio.sleep(0.3)
        async with aiohttp.ClientSession() as http:
            st, body, _ = await call(http, base, "POST", "/fapi/v1/listenKey", signed=False)
            key = body["listenKey"]
            st, again, _ = await call(http, base, "POST", "/fapi/v1/listenKey", signed=False)
            assert again["listenKey"] == key  # an active key is returned again (exchange-facts A4)
            async with websockets.connect(base.replace("http", "ws") + f"/private/ws?listenKey={key}") as ws:
                st, body, _ = await call(http, base, "POST", "/fapi/v1/order",
                                         {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.003",
                                          "newClientOrderId": "t1-entry"})
                assert st == 200 and body["status"] == "FILLED"
                oid = body["orderId"]
                st, trades, _ = await call(http, base, "GET", "/fapi/v1/userTrades",
                                           {"symbol": "BTCUSDT", "orderId": oid})
                assert st == 200 and sum(float(t["qty"]) for t in trades) == pytest.approx(0.003)
                assert all(t["orderId"] == oid and t["buyer"] and not t["maker"] for t in trades)
                st, body, _ = await call(http, base, "POST", "/fapi/v1/algoOrder",
                                         {"symbol": "BTCUSDT", "side": "SELL", "type": "STOP_MARKET",
                                          "algoType": "CONDITIONAL", "triggerPrice": "30000.0",
                                          "closePosition": "true", "workingType": "MARK_PRICE",
                                          "clientAlgoId": "t1-sl"})
                assert st == 200 and body["algoStatus"] == "NEW"
                events = [orjson.loads(m) for m in await _collect(ws, 0.5)]
        kinds = [e["e"] for e in events]
        assert "ACCOUNT_UPDATE" in kinds
        otu = [e["o"] for e in events if e["e"] == "ORDER_TRADE_UPDATE"]
        assert otu[0]["x"] == "NEW" and otu[0]["c"] == "t1-entry"
        trades = [o for o in otu if o["x"] == "TRADE"]
        assert sum(float(o["l"]) for o in trades) == pytest.approx(0.003) and trades[-1]["X"] == "FILLED"
        assert all(o["N"] == "USDT" and float(o["n"]) > 0 and o["m"] is False for o in trades)
        algo = [e["o"] for e in events if e["e"] == "ALGO_UPDATE"]
        assert [(a["caid"], a["X"], a["o"], a["wt"], a["cp"]) for a in algo] == [
            ("t1-sl", "NEW", "STOP_MARKET", "MARK_PRICE", True)]
        acct = [e["a"] for e in events if e["e"] == "ACCOUNT_UPDATE"][-1]
        assert acct["P"][0]["s"] == "BTCUSDT" and float(acct["P"][0]["pa"]) == pytest.approx(0.003)


@pytest.mark.skipif(not (ROOT.parent / "shared" / "data" / "binance_usdm").is_dir(), reason="no recorded data")
async def test_a_recorded_session_is_served_and_a_client_syncs_from_it() -> None:
    server = build_server([str(p) for p in SESSIONS["btcusdt_20240808"]], port=0, speed=3.0)
    port = await server.start()
    base = f"http://127.0.0.1:{port}"
    try:
        sync = BinanceBookSync(OrderBook(KNOWN["BTCUSDT"]))
        async with websockets.connect(f"ws://127.0.0.1:{port}/public/stream?streams=btcusdt@depth@100ms") as ws, \
                aiohttp.ClientSession() as http:
            first = await _collect(ws, 0.5)
            for _ in range(20):  # the engine is live once the recorded snapshot has played
                async with http.get(f"{base}/fapi/v1/depth?symbol=BTCUSDT&limit=1000") as r:
                    if r.status == 200:
                        snap = parse_snapshot(await r.json(), "BTCUSDT", 0)
                        break
                first += await _collect(ws, 0.2)
            else:
                pytest.fail("the replayed book never became live")
            rest = await _collect(ws, 1.5)
        for raw in first:
            ev = parse_message(raw, 0)
            assert isinstance(ev, DepthDiff)
            sync.on_diff(ev, 0)
        sync.on_snapshot(snap, 0)
        for raw in rest:
            ev = parse_message(raw, 0)
            assert isinstance(ev, DepthDiff)
            sync.on_diff(ev, 0)
        assert sync.health.is_live and sync.stats.gaps == 0 and sync.stats.applied > 10
        assert server.ex.markets["BTCUSDT"].book.bbo() is not None
    finally:
        await server.stop()
