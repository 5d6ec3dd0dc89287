"""BinanceGateway through real ccxt against a loopback fake: the exact requests that reach the server."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import SecretStr

from bot.domain.types import OrderKind, OrderStatus, RejectReason, Side, TimeInForce, TriggerPrice
from bot.settings.core import VenueSection
from bot.venues.binance_usdm.errors import ClockUnsynced
from bot.venues.binance_usdm.gateway import BinanceGateway
from bot.venues.binance_usdm.instruments import KNOWN
from bot.venues.binance_usdm.orders import trigger_ticks_away
from bot.venues.errors import AmbiguousOutcome, DuplicateClientId, OrderRejected, RateLimited, StopWouldTrigger
from bot.venues.ports import ExecutionGateway, OrderRequest
from tests.venues.fake_binance import FakeBinance

BTC = KNOWN["BTCUSDT"]


def venue(url: str, **kw: object) -> VenueSection:
    base: dict[str, object] = dict(name="binance-usdm", environment="exchange-sim", rest_url=url,
                                   api_key=SecretStr("k"), api_secret=SecretStr("s"),
                                   ambiguous_lookup_delays_ms=(0, 50, 300))
    base.update(kw)
    return VenueSection(**base)  # type: ignore[arg-type]


@pytest.fixture
async def fake():
    f = await FakeBinance().start()
    yield f
    await f.stop()


@pytest.fixture
async def gw(fake: FakeBinance):
    g = BinanceGateway(venue(fake.url))
    await asyncio.wait_for(g.start(autorun=False), 10)  # no user stream: exact request counts
    yield g
    await g.close()


def entry(cid: str = "t1-entry", **kw: object) -> OrderRequest:
    base: dict[str, object] = dict(client_id=cid, symbol="BTCUSDT", side=Side.BUY, kind=OrderKind.MARKET, qty_lots=5)
    base.update(kw)
    return OrderRequest(**base)  # type: ignore[arg-type]


async def test_is_an_execution_gateway_and_start_loads_markets_and_clock(gw: BinanceGateway, fake: FakeBinance):
    assert isinstance(gw, ExecutionGateway)
    assert gw.instrument("BTCUSDT").tick_size == "0.10"
    assert [r["path"] for r in fake.requests][:1] == ["/fapi/v1/exchangeInfo"]
    assert len(fake.calls("GET", "/fapi/v1/time")) == 3
    assert gw.clock.entry_refusal() == ""
    # nothing hits sapi / currencies
    assert all(r["path"].startswith("/fapi/") for r in fake.requests)


async def test_market_and_limit_entries_hit_fapi_v1_order(gw: BinanceGateway, fake: FakeBinance):
    ack = await gw.submit(entry())
    assert ack.status is OrderStatus.FILLED and ack.client_id == "t1-entry"
    p = fake.calls("POST", "/fapi/v1/order")[0]["params"]
    assert p["type"] == "MARKET" and p["side"] == "BUY" and p["quantity"] == "0.005"
    assert p["newClientOrderId"] == "t1-entry" and "reduceOnly" not in p
    assert "stopLoss" not in p and "signature" in p
    await gw.submit(entry("t2-entry", kind=OrderKind.LIMIT, price_ticks=599_995, time_in_force=TimeInForce.GTX))
    p = fake.calls("POST", "/fapi/v1/order")[1]["params"]
    assert (p["type"], p["price"], p["timeInForce"]) == ("LIMIT", "59999.5", "GTX")
    await gw.submit(entry("t2-exit", side=Side.SELL, reduce_only=True))
    assert fake.calls("POST", "/fapi/v1/order")[2]["params"]["reduceOnly"] == "true"


async def test_stop_and_take_profit_are_algo_orders(gw: BinanceGateway, fake: FakeBinance):
    sl = entry("t1-sl", side=Side.SELL, kind=OrderKind.STOP_MARKET, trigger_ticks=590_001, reduce_only=True,
               working_type=TriggerPrice.MARK)
    ack = await gw.submit(sl)
    assert ack.status is OrderStatus.NEW and ack.venue_order_id
    assert fake.calls("POST", "/fapi/v1/order") == []
    p = fake.calls("POST", "/fapi/v1/algoOrder")[0]["params"]
    assert p["algoType"] == "CONDITIONAL" and p["type"] == "STOP_MARKET"
    assert p["triggerPrice"] == "59000.1" and p["reduceOnly"] == "true" and p["workingType"] == "MARK_PRICE"
    assert p["clientAlgoId"] == "t1-sl" and p["quantity"] == "0.005"
    assert "stopPrice" not in p and "newClientOrderId" not in p and "stopLoss" not in p
    await gw.submit(entry("t1-tp1", side=Side.SELL, kind=OrderKind.TAKE_PROFIT_MARKET, trigger_ticks=610_000,
                          qty_lots=0, close_position=True, working_type=TriggerPrice.LAST))
    p = fake.calls("POST", "/fapi/v1/algoOrder")[1]["params"]
    assert p["type"] == "TAKE_PROFIT_MARKET" and p["closePosition"] == "true" and "quantity" not in p
    assert "reduceOnly" not in p and p["workingType"] == "CONTRACT_PRICE" and p["triggerPrice"] == "61000"


async def test_algo_lookup_and_cancel_use_client_algo_id(gw: BinanceGateway, fake: FakeBinance):
    await gw.submit(entry("t1-sl", side=Side.SELL, kind=OrderKind.STOP_MARKET, trigger_ticks=590_000, reduce_only=True))
    u = await gw.fetch_order("BTCUSDT", "t1-sl", conditional=True)
    assert u is not None and u.kind is OrderKind.STOP_MARKET and u.status is OrderStatus.NEW and u.qty_lots == 5
    assert fake.calls("GET", "/fapi/v1/algoOrder")[0]["params"]["clientAlgoId"] == "t1-sl"
    opened = await gw.open_orders("BTCUSDT")
    assert [(o.client_id, o.kind) for o in opened] == [("t1-sl", OrderKind.STOP_MARKET)]
    assert fake.calls("GET", "/fapi/v1/openAlgoOrders")[0]["params"]["symbol"] == "BTCUSDT"
    await gw.cancel("BTCUSDT", "t1-sl", conditional=True)
    d = fake.calls("DELETE", "/fapi/v1/algoOrder")[0]["params"]
    assert d["clientAlgoId"] == "t1-sl" and d["symbol"] == "BTCUSDT"
    assert fake.algos["t1-sl"]["algoStatus"] == "CANCELED"
    await gw.cancel("BTCUSDT", "t1-sl", conditional=True)  # idempotent: -2011 is not an error
    assert await gw.fetch_order("BTCUSDT", "nope", conditional=False) is None


def test_trigger_rounding_is_away_from_the_market():
    # long's stop (SELL STOP_MARKET) rounds down, short's stop (BUY) up; take-profits the reverse.
    assert trigger_ticks_away(59000.17, Side.SELL, OrderKind.STOP_MARKET, BTC) == 590_001
    assert trigger_ticks_away(59000.17, Side.BUY, OrderKind.STOP_MARKET, BTC) == 590_002
    assert trigger_ticks_away(61000.03, Side.SELL, OrderKind.TAKE_PROFIT_MARKET, BTC) == 610_001
    assert trigger_ticks_away(61000.03, Side.BUY, OrderKind.TAKE_PROFIT_MARKET, BTC) == 610_000
    assert trigger_ticks_away(59000.1, Side.BUY, OrderKind.STOP_MARKET, BTC) == 590_001  # on the grid


async def test_rejection_carries_the_venue_code(gw: BinanceGateway, fake: FakeBinance):
    fake.faults.append({"method": "POST", "path": "/fapi/v1/order", "action": "code", "code": -2019,
                        "msg": "Margin is insufficient."})
    with pytest.raises(OrderRejected) as ei:
        await gw.submit(entry())
    assert ei.value.code == -2019
    assert len(fake.calls("GET", "/fapi/v1/order")) == 0  # a rejection is not looked up


async def test_stop_through_the_price_is_stop_would_trigger_minus_2021(gw: BinanceGateway, fake: FakeBinance):
    # exchange-facts A3: -2021 "Order would immediately trigger": translated here, the machine reads the reason
    fake.faults.append({"method": "POST", "path": "/fapi/v1/algoOrder", "action": "code", "code": -2021,
                        "msg": "Order would immediately trigger."})
    with pytest.raises(StopWouldTrigger) as ei:
        await gw.submit(entry("t1-sl", side=Side.SELL, kind=OrderKind.STOP_MARKET, trigger_ticks=590_001,
                              reduce_only=True))
    assert ei.value.code == -2021 and ei.value.reason is RejectReason.STOP_WOULD_TRIGGER
    fake.faults.append({"method": "POST", "path": "/fapi/v1/algoOrder", "action": "code", "code": -4045,
                        "msg": "Reach max stop order limit."})
    with pytest.raises(OrderRejected) as e2:
        await gw.submit(entry("t2-sl", side=Side.SELL, kind=OrderKind.STOP_MARKET, trigger_ticks=590_001,
                              reduce_only=True))
    assert e2.value.reason is RejectReason.OTHER and not isinstance(e2.value, StopWouldTrigger)
    # -4116: an earlier attempt of ours exists (the engine looks it up, bot.execution.sending)
    fake.faults.append({"method": "POST", "path": "/fapi/v1/order", "action": "code", "code": -4116,
                        "msg": "ClientOrderId is duplicated."})
    with pytest.raises(DuplicateClientId) as e3:
        await gw.submit(entry())
    assert e3.value.reason is RejectReason.DUPLICATE_CLIENT_ID


async def test_5xx_after_execution_is_found_by_client_id_not_duplicated(gw: BinanceGateway, fake: FakeBinance):
    fake.faults.append({"method": "POST", "path": "/fapi/v1/order", "action": "execute_then_500"})
    ack = await gw.submit(entry("t7-entry"))
    assert ack.status is OrderStatus.FILLED and ack.venue_order_id == str(fake.orders["t7-entry"]["orderId"])
    assert len(fake.calls("POST", "/fapi/v1/order")) == 1  # never resent
    assert fake.calls("GET", "/fapi/v1/order")[0]["params"]["origClientOrderId"] == "t7-entry"
    assert gw.stats["ambiguous_found"] == 1


async def test_5xx_on_algo_order_is_looked_up_by_client_algo_id(gw: BinanceGateway, fake: FakeBinance):
    fake.faults.append({"method": "POST", "path": "/fapi/v1/algoOrder", "action": "execute_then_500"})
    ack = await gw.submit(entry("t7-sl", side=Side.SELL, kind=OrderKind.STOP_MARKET, trigger_ticks=590_000,
                                reduce_only=True))
    assert ack.venue_order_id == str(fake.algos["t7-sl"]["algoId"])
    assert len(fake.calls("POST", "/fapi/v1/algoOrder")) == 1
    assert fake.calls("GET", "/fapi/v1/algoOrder")[0]["params"]["clientAlgoId"] == "t7-sl"


async def test_timeout_then_late_execution_found_on_a_later_lookup(fake: FakeBinance):
    g = BinanceGateway(venue(fake.url, request_timeout_ms=200, ambiguous_lookup_delays_ms=(0, 400, 400)))
    await g.start(autorun=False)
    try:
        fake.faults.append({"method": "POST", "path": "/fapi/v1/order", "action": "hang", "seconds": 0.4})
        ack = await asyncio.wait_for(g.submit(entry("t8-entry")), 10)
        assert ack.status is OrderStatus.FILLED
        assert len(fake.calls("POST", "/fapi/v1/order")) == 1
        assert len(fake.calls("GET", "/fapi/v1/order")) >= 2  # first look-up: not there yet
    finally:
        await g.close()


async def test_5xx_without_execution_stays_ambiguous_and_is_not_resent(gw: BinanceGateway, fake: FakeBinance):
    fake.faults.append({"method": "POST", "path": "/fapi/v1/order", "action": "500"})
    with pytest.raises(AmbiguousOutcome):
        await gw.submit(entry("t9-entry"))
    assert len(fake.calls("POST", "/fapi/v1/order")) == 1
    assert len(fake.calls("GET", "/fapi/v1/order")) == 3


async def test_429_then_418_raise_rate_limited_with_retry_after_and_block(gw: BinanceGateway, fake: FakeBinance):
    fake.faults.append({"method": "POST", "path": "/fapi/v1/order", "action": "429", "retry_after": "7"})
    with pytest.raises(RateLimited) as ei:
        await gw.submit(entry("t1-entry"))
    assert 6.0 < ei.value.retry_after_s <= 7.0 and not ei.value.banned
    n = len(fake.requests)
    with pytest.raises(RateLimited):  # still blocked: nothing is sent
        await gw.submit(entry("t2-entry"))
    assert len(fake.requests) == n
    gw.limiter._orders_blocked_until_s = 0.0  # the 7 s passed (no sleeping in tests)
    fake.faults.append({"method": "POST", "path": "/fapi/v1/order", "action": "418", "retry_after": "120"})
    with pytest.raises(RateLimited) as ei:
        await gw.submit(entry("t3-entry"))
    assert ei.value.banned and 119.0 < ei.value.retry_after_s <= 120.0
    assert gw.limiter.blocked_for_s(gw._wall_s()) > 100


async def test_limiter_follows_order_count_headers(gw: BinanceGateway, fake: FakeBinance):
    # The limiter's windows are aligned to wall-clock multiples of 10 s / 60 s: pin its clock mid-window so
    # the two orders below cannot straddle a boundary (that made this test flaky on a loaded machine).
    gw._wall_s = lambda: 1_700_000_005.0
    fake.order_count = 299  # the venue says 299 of 300 in these 10 s
    await gw.submit(entry("t1-sl", side=Side.SELL, kind=OrderKind.STOP_MARKET, trigger_ticks=590_000,
                          reduce_only=True))  # protective: may use the headroom
    with pytest.raises(RateLimited):  # an entry may not (budget 80 %)
        await gw.submit(entry("t2-entry"))


async def test_clock_skew_minus_1021_resyncs_and_refuses_entries_until_fixed(gw: BinanceGateway, fake: FakeBinance):
    fake.skew_ms = 6000  # the exchange clock jumps 6 s ahead of ours (> recvWindow 5 s)
    with pytest.raises(ClockUnsynced):
        await gw.submit(entry("t1-entry"))
    assert len(fake.calls("POST", "/fapi/v1/order")) == 1  # refused by the venue (-1021), not resent
    assert 5500 < gw.clock.offset_ms < 6500  # resynced
    n = len(fake.calls("POST", "/fapi/v1/order"))
    with pytest.raises(ClockUnsynced):  # 6 s > 25 % of recvWindow 5000: entries refused before sending
        await gw.submit(entry("t2-entry"))
    assert len(fake.calls("POST", "/fapi/v1/order")) == n
    # protective orders still go, stamped with the offset, and are accepted
    ack = await gw.submit(entry("t2-sl", side=Side.SELL, kind=OrderKind.STOP_MARKET, trigger_ticks=590_000,
                                reduce_only=True))
    assert ack.status is OrderStatus.NEW
    fake.skew_ms = 0  # fixed
    await gw.sync_clock()
    assert (await gw.submit(entry("t3-entry"))).status is OrderStatus.FILLED


async def test_protective_order_rejected_by_1021_is_resent_once_after_resync(gw: BinanceGateway, fake: FakeBinance):
    fake.skew_ms = -8000  # our clock ahead of the exchange: timestamp > server + 1000
    ack = await gw.submit(entry("t1-sl", side=Side.SELL, kind=OrderKind.STOP_MARKET, trigger_ticks=590_000,
                                reduce_only=True))
    assert ack.status is OrderStatus.NEW
    assert len(fake.calls("POST", "/fapi/v1/algoOrder")) == 2 and len(fake.algos) == 1


async def test_account_positions_and_leverage(gw: BinanceGateway, fake: FakeBinance):
    fake.position_amt = "-0.007"
    acc = await gw.account()
    assert acc.equity == 10010.0 and acc.available == 9000.0
    assert [(p.symbol, p.qty_lots, p.leverage, p.isolated) for p in acc.positions] == [("BTCUSDT", -7, 20, True)]
    await gw.set_leverage("BTCUSDT", 15)
    assert fake.calls("POST", "/fapi/v1/leverage")[0]["params"]["leverage"] == "15"


async def test_one_session_reused_and_closed_by_us(fake: FakeBinance):
    g = BinanceGateway(venue(fake.url))
    await g.start(autorun=False)
    session = g._session
    assert g.ex is not None and g.ex.session is session
    await g.submit(entry())
    assert g.ex.session is session
    await g.close()
    assert session is not None and session.closed


async def test_ip_weight_429_on_a_lookup_does_not_block_the_stop(gw: BinanceGateway, fake: FakeBinance):
    """Issue 11: a 429 (weight, Retry-After 10 s) must not make the bot refuse its own stop: order
    placement weighs 0 IP weight (exchange-facts A2). Look-ups (weight 1) wait it out."""
    fake.faults.append({"method": "GET", "path": "/fapi/v1/order", "action": "429", "retry_after": "10"})
    with pytest.raises(RateLimited):
        await gw.fetch_order("BTCUSDT", "t1-entry")
    n_posts = len(fake.calls("POST", "/fapi/v1/algoOrder"))
    ack = await gw.submit(entry("t1-sl", side=Side.SELL, kind=OrderKind.STOP_MARKET, trigger_ticks=590_000,
                                reduce_only=True))
    assert ack.status is OrderStatus.NEW
    assert len(fake.calls("POST", "/fapi/v1/algoOrder")) == n_posts + 1  # sent, not refused locally
    n = len(fake.requests)
    with pytest.raises(RateLimited) as ei:  # a weighted request still waits: nothing sent
        await gw.fetch_order("BTCUSDT", "t1-sl", True)
    assert len(fake.requests) == n and 9.0 < ei.value.retry_after_s <= 10.0


async def test_429_answering_a_stop_blocks_orders_with_the_time_left(gw: BinanceGateway, fake: FakeBinance):
    fake.faults.append({"method": "POST", "path": "/fapi/v1/algoOrder", "action": "429", "retry_after": "5"})
    stop = entry("t2-sl", side=Side.SELL, kind=OrderKind.STOP_MARKET, trigger_ticks=590_000, reduce_only=True)
    with pytest.raises(RateLimited) as ei:
        await gw.submit(stop)
    assert 4.0 < ei.value.retry_after_s <= 5.0
    n = len(fake.requests)
    with pytest.raises(RateLimited) as ei2:  # into the Retry-After nothing is sent, a stop neither
        await gw.submit(stop)
    assert len(fake.requests) == n and 0 < ei2.value.retry_after_s <= ei.value.retry_after_s


async def test_fee_rates_read_the_accounts_commission_rate(gw: BinanceGateway, fake: FakeBinance):
    """Issue 13 item 5: GET /fapi/v1/commissionRate per symbol, signed, its decimal strings as they came."""
    assert await gw.fee_rates("BTCUSDT") == ("0.000160", "0.000400")
    (call,) = fake.calls("GET", "/fapi/v1/commissionRate")
    assert call["params"]["symbol"] == "BTCUSDT" and "signature" in call["params"]
