"""The loopback exchange's post-only rules (issue 13 item 2, exchange-facts A5 and the change-log's standing
`priceMatch`): a crossing GTX is refused with -5022 and never recorded, `priceMatch` QUEUE / OPPONENT take the
book's price at arrival (not with `price`), `GET /fapi/v1/commissionRate` serves the [sim] rates, and a
resting post-only order that fills is a maker fill at the maker rate. ~1-2 s (an in-process server)."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from bot.settings.sim import SimSection
from tests.sim.server_helpers import call, running_server


async def _book(http: aiohttp.ClientSession, base: str) -> tuple[float, float]:
    st, t, _ = await call(http, base, "GET", "/fapi/v1/ticker/bookTicker", {"symbol": "BTCUSDT"}, signed=False)
    assert st == 200
    return float(t["bidPrice"]), float(t["askPrice"])


async def test_gtx_price_match_and_commission_rate() -> None:
    cfg = SimSection(maker_fee_bps=1.5, taker_fee_bps=4.5)
    async with running_server(cfg=cfg) as (_server, base):
        await asyncio.sleep(0.3)
        async with aiohttp.ClientSession() as http:
            st, fee, _ = await call(http, base, "GET", "/fapi/v1/commissionRate", {"symbol": "BTCUSDT"})
            assert st == 200 and fee["symbol"] == "BTCUSDT"
            assert (float(fee["makerCommissionRate"]), float(fee["takerCommissionRate"])) == \
                pytest.approx((1.5e-4, 4.5e-4))
            bid, ask = await _book(http, base)
            base_order = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "quantity": "0.002",
                          "timeInForce": "GTX"}
            # a post-only buy at the ask would take: refused, nothing recorded
            st, body, _ = await call(http, base, "POST", "/fapi/v1/order",
                                     {**base_order, "price": f"{ask:.1f}", "newClientOrderId": "x1"})
            assert (st, body["code"]) == (400, -5022)
            st, body, _ = await call(http, base, "GET", "/fapi/v1/order", {"symbol": "BTCUSDT",
                                                                          "origClientOrderId": "x1"})
            assert body["code"] == -2013
            # priceMatch QUEUE: our side's best (the bid for a buy), resting as maker
            st, q, _ = await call(http, base, "POST", "/fapi/v1/order", {**base_order, "priceMatch": "QUEUE",
                                                                          "newClientOrderId": "q1"})
            assert st == 200 and q["status"] == "NEW", q
            bid2, ask2 = await _book(http, base)
            assert float(q["price"]) <= bid2 + 1e-9 and float(q["price"]) < ask2
            # priceMatch with a price, or on a MARKET order: refused (-1106)
            st, body, _ = await call(http, base, "POST", "/fapi/v1/order",
                                     {**base_order, "priceMatch": "QUEUE", "price": f"{bid:.1f}"})
            assert body["code"] == -1106
            st, body, _ = await call(http, base, "POST", "/fapi/v1/order",
                                     {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.002",
                                      "priceMatch": "OPPONENT"})
            assert body["code"] == -1106
            # priceMatch OPPONENT with IOC: the other side's best, so it takes there (a taker fill)
            st, o, _ = await call(http, base, "POST", "/fapi/v1/order",
                                  {**base_order, "timeInForce": "IOC", "priceMatch": "OPPONENT",
                                   "newClientOrderId": "o1"})
            assert st == 200 and o["status"] in ("FILLED", "PARTIALLY_FILLED", "EXPIRED"), o
            st, trades, _ = await call(http, base, "GET", "/fapi/v1/userTrades", {"symbol": "BTCUSDT"})
            took = [t for t in trades if str(t["orderId"]) == str(o["orderId"])]
            assert took and all(t["maker"] is False for t in took)
            for t in took:  # the taker rate on the fill's notional
                assert float(t["commission"]) == pytest.approx(float(t["qty"]) * float(t["price"]) * 4.5e-4,
                                                               rel=1e-6)
            # the resting QUEUE order, if the market comes to it within 5 s, fills as maker at the maker rate
            for _ in range(100):
                st, trades, _ = await call(http, base, "GET", "/fapi/v1/userTrades", {"symbol": "BTCUSDT"})
                mine = [t for t in trades if str(t["orderId"]) == str(q["orderId"])]
                if mine:
                    assert all(t["maker"] is True for t in mine)
                    assert all(float(t["commission"]) == pytest.approx(
                        float(t["qty"]) * float(t["price"]) * 1.5e-4, rel=1e-6) for t in mine)
                    break
                await asyncio.sleep(0.05)
