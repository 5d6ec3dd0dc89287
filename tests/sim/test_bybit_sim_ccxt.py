"""Unmodified ccxt `bybit` (only its URLs pointed at the loopback) against the exchange simulator's Bybit v5
protocol: place with an attached stop -> position -> trading-stop -> cancel; a bad signature is refused with
Bybit's own code (issue 16 item 1)."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import ccxt.async_support as ccxt
import pytest

from tests.sim.server_helpers import KEY, SECRET, running_server


def bybit(base: str, secret: str = SECRET) -> Any:
    ex = ccxt.bybit({"apiKey": KEY, "secret": secret, "enableRateLimit": False})
    ex.urls["api"] = {k: base for k in ex.urls["api"]}
    return ex


@pytest.fixture
async def sim():
    async with running_server() as (server, base):
        await asyncio.wait_for(server.next_depth("BTCUSDT", 5.0), 10)
        ex = bybit(base)
        try:
            yield server, base, ex
        finally:
            await ex.close()


async def _tpsl_rows(ex: Any) -> list[dict[str, Any]]:
    res = await ex.privateGetV5OrderRealtime({"category": "linear", "symbol": "BTCUSDT"})
    return [r for r in res["result"]["list"] if r["stopOrderType"] == "StopLoss"]


async def test_ccxt_place_with_attached_stop_position_trading_stop_cancel(sim):
    server, _base, ex = sim
    await ex.load_markets()
    assert "BTC/USDT:USDT" in ex.markets
    m = ex.market("BTC/USDT:USDT")
    inst = server.ex.markets["BTCUSDT"].inst
    assert m["precision"]["price"] == float(inst.tick_size)
    book = await ex.fetch_order_book("BTC/USDT:USDT", 50)
    bid, ask = book["bids"][0][0], book["asks"][0][0]
    assert 0 < bid < ask
    stop = float(inst.ticks_to_str(inst.price_to_ticks(bid * 0.99)))
    o = await ex.create_order("BTC/USDT:USDT", "market", "buy", 0.01, None,
                              {"stopLoss": {"triggerPrice": stop}, "clientOrderId": "cc-entry-1"})
    assert o["id"]
    pos = await ex.fetch_position("BTC/USDT:USDT")
    assert pos["contracts"] == pytest.approx(0.01)
    assert pos["side"] == "long"
    assert float(pos["stopLossPrice"]) == pytest.approx(stop)
    rows = await _tpsl_rows(ex)  # the attached stop rests at the exchange as the position's stop
    assert [(r["orderLinkId"], float(r["triggerPrice"]), r["orderStatus"]) for r in rows] == [("", stop, "Untriggered")]
    # move the position's stop: the old system order ends, one new stop
    stop2 = float(inst.ticks_to_str(inst.price_to_ticks(bid * 0.985)))
    res = await ex.privatePostV5PositionTradingStop({"category": "linear", "symbol": "BTCUSDT", "tpslMode": "Full",
                                                     "positionIdx": 0, "stopLoss": str(stop2),
                                                     "slTriggerBy": "LastPrice"})
    assert res["retCode"] == "0" or res["retCode"] == 0
    rows = await _tpsl_rows(ex)
    assert [float(r["triggerPrice"]) for r in rows] == [stop2]
    with pytest.raises(ccxt.ExchangeError, match="34040"):  # same stop again: not modified
        await ex.privatePostV5PositionTradingStop({"category": "linear", "symbol": "BTCUSDT", "tpslMode": "Full",
                                                   "positionIdx": 0, "stopLoss": str(stop2)})
    # a resting limit far away, then cancelled by its orderLinkId
    lim = await ex.create_order("BTC/USDT:USDT", "limit", "buy", 0.01, round(bid * 0.95, 1),
                                {"clientOrderId": "cc-lim-1", "timeInForce": "GTC"})
    opened = await ex.fetch_open_orders("BTC/USDT:USDT")
    assert "cc-lim-1" in [x["clientOrderId"] for x in opened]
    await ex.cancel_order(lim["id"], "BTC/USDT:USDT")
    opened = await ex.fetch_open_orders("BTC/USDT:USDT")
    assert "cc-lim-1" not in [x["clientOrderId"] for x in opened]
    # close: the position's stop goes with the position
    await ex.create_order("BTC/USDT:USDT", "market", "sell", 0.01, None, {"reduceOnly": True,
                                                                         "clientOrderId": "cc-exit-1"})
    assert (await ex.fetch_position("BTC/USDT:USDT"))["contracts"] in (0, 0.0, None)
    assert await _tpsl_rows(ex) == []
    trades = await ex.fetch_my_trades("BTC/USDT:USDT")
    assert {t["order"] for t in trades} >= {o["id"]}
    bal = await ex.fetch_balance()
    assert bal["USDT"]["total"] > 0


async def test_bad_signature_is_refused_with_bybits_code(sim):
    _server, base, _ex = sim
    bad = bybit(base, secret="not-the-secret")
    try:
        with pytest.raises(ccxt.AuthenticationError, match="10004"):
            await bad.privateGetV5PositionList({"category": "linear", "symbol": "BTCUSDT"})
    finally:
        await bad.close()
    async with aiohttp.ClientSession() as http, http.get(f"{base}/v5/position/list?category=linear&symbol=BTCUSDT",
                                                         headers={"X-BAPI-API-KEY": "wrong"}) as r:
        body = await r.json()
    assert r.status == 200 and body["retCode"] == 10003


async def test_uid_rate_limit_headers_and_10006(sim):
    _server, _base, ex = sim
    await ex.load_markets()
    ex.last_response_headers = {}
    codes = []
    for _ in range(6):  # fee-rate: 5 per second per UID
        try:
            await ex.privateGetV5AccountFeeRate({"category": "linear", "symbol": "BTCUSDT"})
            codes.append(0)
        except ccxt.BaseError as e:
            codes.append(10006 if "10006" in str(e) else -1)
    h = {k.lower(): v for k, v in (ex.last_response_headers or {}).items()}
    assert h.get("x-bapi-limit") == "5"
    assert 10006 in codes and codes[0] == 0
