"""BybitGateway through real ccxt against a loopback fake Bybit v5: the exact requests that reach the server."""

from __future__ import annotations

import asyncio
import io
import logging

import pytest
from pydantic import SecretStr

from bot.domain.types import OrderKind, OrderStatus, RejectReason, Side, TimeInForce, TriggerPrice
from bot.logging import configure_logging
from bot.settings.core import VenueSection
from bot.venues.bybit.errors import ClockUnsynced
from bot.venues.bybit.exchange import make_exchange
from bot.venues.bybit.gateway import BybitGateway
from bot.venues.bybit.orders import client_id_of, link_id
from bot.venues.bybit.userstream import BybitUserStream
from bot.venues.errors import AmbiguousOutcome, DuplicateClientId, OrderRejected, RateLimited, StopWouldTrigger
from bot.venues.ports import ExecutionGateway, OrderRequest, OrderUpdate
from tests.venues.fake_bybit import FakeBybit

SECRET = "s3cr3t-never-logged"


def venue(url: str, **kw: object) -> VenueSection:
    base: dict[str, object] = dict(name="bybit", environment="testnet", rest_url=url, api_key=SecretStr("k"),
                                   api_secret=SecretStr(SECRET), ambiguous_lookup_delays_ms=(0, 20, 100))
    base.update(kw)
    return VenueSection(**base)  # type: ignore[arg-type]


@pytest.fixture
async def fake():
    f = await FakeBybit(secret=SECRET).start()
    yield f
    await f.stop()


@pytest.fixture
async def gw(fake: FakeBybit):
    g = BybitGateway(venue(fake.url))
    await asyncio.wait_for(g.start(autorun=False), 10)  # no private stream: exact request lists
    yield g
    await g.close()


def req(cid: str = "t1-entry", **kw: object) -> OrderRequest:
    base: dict[str, object] = dict(client_id=cid, symbol="BTCUSDT", side=Side.BUY, kind=OrderKind.MARKET, qty_lots=5)
    base.update(kw)
    return OrderRequest(**base)  # type: ignore[arg-type]


def stop(cid: str, ticks: int, **kw: object) -> OrderRequest:
    return req(cid, side=Side.SELL, kind=OrderKind.STOP_MARKET, trigger_ticks=ticks, reduce_only=True, **kw)


def drain(g: BybitGateway) -> list[OrderUpdate]:
    out = []
    while not g._updates.empty():
        u = g._updates.get_nowait()
        assert u is not None
        out.append(u)
    return out


async def test_start_and_entry_make_no_hidden_calls(fake: FakeBybit):
    g = BybitGateway(venue(fake.url))
    await g.start(autorun=False)
    try:
        assert isinstance(g, ExecutionGateway)
        inst = g.instrument("BTCUSDT")
        assert (inst.tick_size, inst.step_size, inst.min_notional, inst.venue) == ("0.10", "0.001", "5", "bybit")
        await g.submit(req())
        # C4: the two instruments-info pages, our clock samples, the order. No /v5/user/query-api,
        # /v5/account/info (unified probing) or /v5/asset/coin/query-info (currencies).
        assert [(r["method"], r["path"]) for r in fake.requests] == [
            ("GET", "/v5/market/instruments-info"), ("GET", "/v5/market/instruments-info"),
            ("GET", "/v5/market/time"), ("GET", "/v5/market/time"), ("GET", "/v5/market/time"),
            ("POST", "/v5/order/create")]
        assert [r["query"] for r in fake.requests[:2]] == [
            {"category": "linear", "limit": "1000"}, {"category": "linear", "limit": "1000", "status": "PreLaunch"}]
    finally:
        await g.close()


async def test_market_entry_carries_the_attached_stop_and_is_signed(gw: BybitGateway, fake: FakeBybit):
    ack = await gw.submit(req(attached_stop_ticks=590_001, working_type=TriggerPrice.MARK))
    assert (ack.client_id, ack.status, ack.venue_order_id) == ("t1-entry", OrderStatus.NEW,
                                                               fake.orders["t1-entry"]["orderId"])
    r = fake.calls("POST", "/v5/order/create")[0]
    assert r["body"] == {"symbol": "BTCUSDT", "side": "Buy", "orderType": "Market", "orderLinkId": "t1-entry",
                         "category": "linear", "qty": "0.005", "stopLoss": "59000.1", "positionIdx": 0,
                         "slTriggerBy": "MarkPrice", "tpslMode": "Full"}
    h = r["headers"]
    assert h["X-BAPI-API-KEY"] == "k" and h["X-BAPI-RECV-WINDOW"] == "5000"
    assert len(h["X-BAPI-SIGN"]) == 64 and abs(int(h["X-BAPI-TIMESTAMP"]) - fake.server_ms()) < 5000
    assert fake.position()["stopLoss"] == "59000.1"  # the fake checked the signature and the time, and armed it
    # an entry without a stop, on the last price: no stop fields at all
    await gw.submit(req("t2-entry", side=Side.SELL, kind=OrderKind.LIMIT, price_ticks=600_005,
                        time_in_force=TimeInForce.GTX))
    b = fake.calls("POST", "/v5/order/create")[1]["body"]
    assert b == {"symbol": "BTCUSDT", "side": "Sell", "orderType": "Limit", "orderLinkId": "t2-entry",
                 "price": "60000.5", "category": "linear", "qty": "0.005", "positionIdx": 0,
                 "timeInForce": "PostOnly"}


async def test_take_profit_limit_is_reduce_only_and_never_carries_a_stop(gw: BybitGateway, fake: FakeBybit):
    await gw.submit(req("t1-tp1", side=Side.SELL, kind=OrderKind.LIMIT, qty_lots=2, price_ticks=610_000,
                        reduce_only=True, attached_stop_ticks=590_000))
    assert fake.calls("POST", "/v5/order/create")[0]["body"] == {
        "symbol": "BTCUSDT", "side": "Sell", "orderType": "Limit", "orderLinkId": "t1-tp1", "price": "61000",
        "category": "linear", "qty": "0.002", "positionIdx": 0, "reduceOnly": True, "timeInForce": "GTC"}


async def test_take_profit_market_and_stop_entry_are_conditional_orders(gw: BybitGateway, fake: FakeBybit):
    await gw.submit(req("t1-tpm", side=Side.SELL, kind=OrderKind.TAKE_PROFIT_MARKET, trigger_ticks=610_000,
                        reduce_only=True))
    await gw.submit(req("t2-se", kind=OrderKind.STOP_MARKET, trigger_ticks=610_000, working_type=TriggerPrice.LAST))
    assert [r["body"] for r in fake.calls("POST", "/v5/order/create")] == [
        {"symbol": "BTCUSDT", "side": "Sell", "orderType": "Market", "orderLinkId": "t1-tpm", "category": "linear",
         "qty": "0.005", "triggerDirection": 1, "triggerPrice": "61000", "reduceOnly": True, "positionIdx": 0,
         "triggerBy": "MarkPrice"},
        {"symbol": "BTCUSDT", "side": "Buy", "orderType": "Market", "orderLinkId": "t2-se", "category": "linear",
         "qty": "0.005", "triggerDirection": 1, "triggerPrice": "61000", "positionIdx": 0, "triggerBy": "LastPrice"}]
    assert fake.calls("POST", "/v5/position/trading-stop") == []
    assert [(u.client_id, u.kind, u.status) for u in await gw.open_orders("BTCUSDT")] == [
        ("t1-tpm", OrderKind.TAKE_PROFIT_MARKET, OrderStatus.NEW), ("t2-se", OrderKind.STOP_MARKET, OrderStatus.NEW)]
    with pytest.raises(OrderRejected):
        await gw.submit(req("t3-tr", side=Side.SELL, kind=OrderKind.TRAILING_STOP_MARKET, callback_rate_bps=20,
                            reduce_only=True))


async def test_stop_leg_is_the_position_stop_via_trading_stop(gw: BybitGateway, fake: FakeBybit):
    await gw.submit(req())  # long 0.005, no attached stop
    ack = await gw.submit(stop("t1-sl", 595_000, working_type=TriggerPrice.LAST))
    assert ack.status is OrderStatus.NEW
    assert len(fake.calls("POST", "/v5/order/create")) == 1  # the stop is not an order, nor an amend
    assert fake.calls("POST", "/v5/position/trading-stop")[0]["body"] == {
        "category": "linear", "symbol": "BTCUSDT", "tpslMode": "Full", "positionIdx": 0, "stopLoss": "59500",
        "slTriggerBy": "LastPrice", "slOrderType": "Market"}
    assert fake.position()["stopLoss"] == "59500"
    # a move (the machine's breakeven / resize): the same one stop, modified; the old leg's cancel sends
    # nothing and reports the old leg ended
    await gw.submit(stop("t1-sl2", 600_010, qty_lots=3))
    assert fake.position()["stopLoss"] == "60001" and len(fake.calls("POST", "/v5/position/trading-stop")) == 2
    await gw.cancel("BTCUSDT", "t1-sl", conditional=True)
    assert len(fake.calls("POST", "/v5/position/trading-stop")) == 2
    ended = drain(gw)
    assert [(u.client_id, u.status) for u in ended] == [("t1-sl", OrderStatus.CANCELED)]
    assert "superseded" in ended[0].reason
    assert (await gw.fetch_order("BTCUSDT", "t1-sl2", conditional=True)).status is OrderStatus.NEW  # type: ignore[union-attr]
    # the owner's cancel removes the position's stop
    await gw.cancel("BTCUSDT", "t1-sl2", conditional=True)
    assert fake.calls("POST", "/v5/position/trading-stop")[-1]["body"] == {
        "category": "linear", "symbol": "BTCUSDT", "tpslMode": "Full", "positionIdx": 0, "stopLoss": "0"}
    assert fake.position()["stopLoss"] == "" and [u.client_id for u in drain(gw)] == ["t1-sl2"]


async def test_stop_equal_to_the_attached_one_is_acknowledged_34040(gw: BybitGateway, fake: FakeBybit):
    await gw.submit(req(attached_stop_ticks=595_000))
    ack = await gw.submit(stop("t1-sl", 595_000))
    assert ack.status is OrderStatus.NEW and gw.tr.stops.owner("BTCUSDT") == "t1-sl"
    assert len(fake.calls("POST", "/v5/position/trading-stop")) == 1  # answered 34040 "not modified"


async def test_stop_without_a_position_is_asked_twice_then_rejected(gw: BybitGateway, fake: FakeBybit):
    gw.stop_desk.zero_position_retry_s = 0.01
    with pytest.raises(OrderRejected) as ei:
        await gw.submit(stop("t1-sl", 595_000))
    assert ei.value.code == 10001 and len(fake.calls("POST", "/v5/position/trading-stop")) == 2
    # a fill heard before Bybit booked the position: the second ask finds it
    await gw.submit(req())
    fake.faults.append({"method": "POST", "path": "/v5/position/trading-stop", "action": "code", "code": 10001,
                        "msg": "can not set tp/sl/ts for zero position"})
    assert (await gw.submit(stop("t2-sl", 595_000))).status is OrderStatus.NEW
    assert fake.position()["stopLoss"] == "59500" and gw.tr.stops.owner("BTCUSDT") == "t2-sl"


async def test_stop_through_the_price_is_stop_would_trigger(gw: BybitGateway, fake: FakeBybit):
    """Bybit's words for Binance's -2021, translated at the boundary (bybit/errors.py): trading-stop's 10001
    "... should lower than base_price" (the position stop, our path) and 110092/110093 on a conditional order.
    The trade machine then takes the loss (flatten) instead of halting the symbol."""
    from bot.execution.actions import HaltSymbol, Submit
    from tests.execution.harness import T0
    from tests.execution.test_trade_machine import machine, upd

    await gw.submit(req())  # long 0.005
    fake.faults.append({"method": "POST", "path": "/v5/position/trading-stop", "action": "code", "code": 10001,
                        "msg": "StopLoss:5950000 set for Buy position should lower than base_price:5940000??MarkPrice"})
    with pytest.raises(StopWouldTrigger) as ei:
        await gw.submit(stop("t1-sl", 595_000))
    assert ei.value.code == 10001 and ei.value.reason is RejectReason.STOP_WOULD_TRIGGER
    assert len(fake.calls("POST", "/v5/position/trading-stop")) == 1  # not asked again: a refusal
    for code, word in ((110092, "Rising"), (110093, "Falling")):
        fake.faults.append({"method": "POST", "path": "/v5/order/create", "action": "code", "code": code,
                            "msg": f"expect {word}, but trigger_price[610000000] <= current[611000000]??MarkPrice"})
        with pytest.raises(StopWouldTrigger):
            await gw.submit(req(f"t{code}-tpm", side=Side.SELL, kind=OrderKind.TAKE_PROFIT_MARKET,
                                trigger_ticks=610_000, reduce_only=True))
    # another 10001 is a plain refusal
    fake.faults.append({"method": "POST", "path": "/v5/position/trading-stop", "action": "code", "code": 10001,
                        "msg": "params error: slTriggerBy invalid"})
    with pytest.raises(OrderRejected) as e2:
        await gw.submit(stop("t2-sl", 595_000))
    assert e2.value.reason is RejectReason.OTHER
    fake.faults.append({"method": "POST", "path": "/v5/order/create", "action": "code", "code": 110072,
                        "msg": "OrderLinkedID is duplicate"})
    with pytest.raises(DuplicateClientId):
        await gw.submit(req("t3-entry"))
    # what the engine hands the machine (bot.execution.sending): the reason -> flatten, no halt
    m = machine()
    m.start(T0)
    m.on_update(upd("t7-entry", OrderStatus.FILLED, 500, 50_000.0, 500), T0)
    e = ei.value
    out = m.on_rejected("t7-sl", e.code, str(e), T0 + 1, e.reason)
    assert [a.leg.client_id for a in out if isinstance(a, Submit)] == ["t7-exit"]
    assert not any(isinstance(a, HaltSymbol) for a in out)


async def test_cancel_lookup_and_open_orders_by_order_link_id(gw: BybitGateway, fake: FakeBybit):
    await gw.submit(req("t1-tp1", side=Side.SELL, kind=OrderKind.LIMIT, price_ticks=610_000, reduce_only=True))
    u = await gw.fetch_order("BTCUSDT", "t1-tp1")
    assert u is not None
    assert (u.status, u.kind, u.qty_lots, u.reduce_only) == (OrderStatus.NEW, OrderKind.LIMIT, 5, True)
    assert fake.calls("GET", "/v5/order/realtime")[0]["query"] == {"category": "linear", "symbol": "BTCUSDT",
                                                                   "orderLinkId": "t1-tp1"}
    opened = await gw.open_orders("BTCUSDT")
    assert [(o.client_id, o.kind) for o in opened] == [("t1-tp1", OrderKind.LIMIT)]
    assert fake.calls("GET", "/v5/order/realtime")[1]["query"] == {"category": "linear", "symbol": "BTCUSDT"}
    await gw.cancel("BTCUSDT", "t1-tp1")
    assert fake.calls("POST", "/v5/order/cancel")[0]["body"] == {"symbol": "BTCUSDT", "category": "linear",
                                                                 "orderLinkId": "t1-tp1"}
    # ended orders come from the history; a second cancel (110001) is not an error
    u = await gw.fetch_order("BTCUSDT", "t1-tp1")
    assert u is not None and u.status is OrderStatus.CANCELED
    assert fake.calls("GET", "/v5/order/history")[0]["query"]["orderLinkId"] == "t1-tp1"
    await gw.cancel("BTCUSDT", "t1-tp1")
    assert await gw.fetch_order("BTCUSDT", "nope") is None


async def test_a_re_sent_leg_travels_without_the_dot_bybit_refuses_and_reads_back_as_ours(
        gw: BybitGateway, fake: FakeBybit):
    """A re-sent leg is "t3-tp1.2" (execution/trade.py); Bybit's orderLinkId takes letters, digits, '-' and
    '_' only (B3): it goes out as "t3-tp1_2" and every answer about it comes back under "t3-tp1.2" (found
    by the restart drill B on exchange-sim: the re-placed take-profits were refused before they left)."""
    await gw.submit(req("t3-tp1.2", side=Side.SELL, kind=OrderKind.LIMIT, price_ticks=610_000, reduce_only=True))
    assert fake.calls("POST", "/v5/order/create")[0]["body"]["orderLinkId"] == "t3-tp1_2"
    u = await gw.fetch_order("BTCUSDT", "t3-tp1.2")
    assert u is not None and (u.client_id, u.status) == ("t3-tp1.2", OrderStatus.NEW)
    assert fake.calls("GET", "/v5/order/realtime")[0]["query"]["orderLinkId"] == "t3-tp1_2"
    assert [o.client_id for o in await gw.open_orders("BTCUSDT")] == ["t3-tp1.2"]
    await gw.cancel("BTCUSDT", "t3-tp1.2")
    assert fake.calls("POST", "/v5/order/cancel")[0]["body"]["orderLinkId"] == "t3-tp1_2"
    # someone else's ids are read as they are
    assert [client_id_of(x) for x in ("web_manual_1", "t3-tp1", "t3_2", "x-tp1_2")] == [
        "web_manual_1", "t3-tp1", "t3_2", "x-tp1_2"]
    assert link_id(client_id_of("t12-exit_3")) == "t12-exit_3" and client_id_of(link_id("t12-sl.4")) == "t12-sl.4"


async def test_account_positions_and_leverage(gw: BybitGateway, fake: FakeBybit):
    await gw.submit(req(side=Side.SELL, qty_lots=7))
    acc = await gw.account()
    assert (acc.equity, acc.available, acc.wallet_balance) == (10010.5, 9000.25, 10000.0)
    assert [(p.symbol, p.qty_lots, p.entry_price, p.leverage) for p in acc.positions] == [("BTCUSDT", -7, 60000.0, 10)]
    assert fake.calls("GET", "/v5/account/wallet-balance")[0]["query"] == {"accountType": "UNIFIED"}
    assert fake.calls("GET", "/v5/position/list")[0]["query"] == {"category": "linear", "settleCoin": "USDT"}
    await gw.set_leverage("BTCUSDT", 15)
    assert fake.calls("POST", "/v5/position/set-leverage")[0]["body"] == {
        "symbol": "BTCUSDT", "buyLeverage": "15", "sellLeverage": "15", "category": "linear"}
    await gw.set_leverage("BTCUSDT", 15)  # 110043 "not modified" is success
    assert len(fake.calls("POST", "/v5/position/set-leverage")) == 2


async def test_rejection_carries_the_ret_code_and_is_not_looked_up(gw: BybitGateway, fake: FakeBybit):
    fake.faults.append({"method": "POST", "path": "/v5/order/create", "action": "code", "code": 110007,
                        "msg": "ab not enough for new order"})
    with pytest.raises(OrderRejected) as ei:
        await gw.submit(req())
    assert ei.value.code == 110007 and "ab not enough" in str(ei.value)
    assert fake.calls("GET", "/v5/order/realtime") == []


async def test_5xx_after_execution_is_found_by_order_link_id_not_duplicated(gw: BybitGateway, fake: FakeBybit):
    fake.faults.append({"method": "POST", "path": "/v5/order/create", "action": "execute_then_500"})
    ack = await gw.submit(req("t7-entry"))
    assert ack.venue_order_id == fake.orders["t7-entry"]["orderId"] and ack.status is OrderStatus.FILLED
    assert len(fake.calls("POST", "/v5/order/create")) == 1  # never resent
    # the market order filled at once: not in realtime (open orders), found in history
    assert [r["query"]["orderLinkId"] for r in fake.calls("GET", "/v5/order/realtime")] == ["t7-entry"]
    assert [r["query"]["orderLinkId"] for r in fake.calls("GET", "/v5/order/history")] == ["t7-entry"]
    assert gw.stats["ambiguous_found"] == 1


async def test_internal_error_10016_and_5xx_without_execution_stay_ambiguous(gw: BybitGateway, fake: FakeBybit):
    fake.faults.append({"method": "POST", "path": "/v5/order/create", "action": "code", "code": 10016,
                        "msg": "Internal System Error."})
    with pytest.raises(AmbiguousOutcome):
        await gw.submit(req("t9-entry"))
    assert len(fake.calls("POST", "/v5/order/create")) == 1
    assert len(fake.calls("GET", "/v5/order/realtime")) == 3 and len(fake.calls("GET", "/v5/order/history")) == 3
    fake.faults.append({"method": "POST", "path": "/v5/order/create", "action": "500"})
    with pytest.raises(AmbiguousOutcome):
        await gw.submit(req("t10-entry"))
    assert len(fake.calls("POST", "/v5/order/create")) == 2


async def test_timeout_then_late_execution_found_on_a_later_lookup(fake: FakeBybit):
    g = BybitGateway(venue(fake.url, request_timeout_ms=200, ambiguous_lookup_delays_ms=(0, 400, 400)))
    await g.start(autorun=False)
    try:
        fake.faults.append({"method": "POST", "path": "/v5/order/create", "action": "hang", "seconds": 0.4})
        ack = await asyncio.wait_for(g.submit(req("t8-entry", kind=OrderKind.LIMIT, price_ticks=599_000)), 10)
        assert ack.status is OrderStatus.NEW and ack.venue_order_id == fake.orders["t8-entry"]["orderId"]
        assert len(fake.calls("POST", "/v5/order/create")) == 1
        assert len(fake.calls("GET", "/v5/order/realtime")) >= 2  # first look-up: not there yet
    finally:
        await g.close()


async def test_ambiguous_trading_stop_is_checked_on_the_position_not_resent(gw: BybitGateway, fake: FakeBybit):
    await gw.submit(req())
    fake.faults.append({"method": "POST", "path": "/v5/position/trading-stop", "action": "execute_then_500"})
    ack = await gw.submit(stop("t1-sl", 595_000))
    assert ack.status is OrderStatus.NEW and fake.position()["stopLoss"] == "59500"
    assert len(fake.calls("POST", "/v5/position/trading-stop")) == 1
    assert fake.calls("GET", "/v5/position/list")[0]["query"] == {"category": "linear", "symbol": "BTCUSDT"}
    # not executed: the position does not show it, so it is sent once more (idempotent)
    fake.faults.append({"method": "POST", "path": "/v5/position/trading-stop", "action": "500"})
    await gw.submit(stop("t1-sl2", 596_000))
    assert len(fake.calls("POST", "/v5/position/trading-stop")) == 3 and fake.position()["stopLoss"] == "59600"


async def test_10006_blocks_the_endpoint_until_the_reset_timestamp(gw: BybitGateway, fake: FakeBybit):
    gw._wall_s = lambda: 1_700_000_000.25
    reset_ms = str(1_700_000_000_250 + 700)
    fake.faults.append({"method": "POST", "path": "/v5/order/create", "action": "code", "code": 10006,
                        "msg": "Too many visits!", "headers": {"X-Bapi-Limit-Reset-Timestamp": reset_ms,
                                                               "X-Bapi-Limit-Status": "0"}})
    with pytest.raises(RateLimited) as ei:
        await gw.submit(req("t1-entry"))
    assert 0.69 < ei.value.retry_after_s <= 0.71 and not ei.value.banned
    n = len(fake.requests)
    with pytest.raises(RateLimited):  # blocked: nothing is sent to that endpoint
        await gw.submit(req("t2-entry"))
    assert len(fake.requests) == n
    await gw.open_orders("BTCUSDT")  # other endpoints are not blocked
    assert len(fake.requests) == n + 1


async def test_403_blocks_everything_with_retry_after(gw: BybitGateway, fake: FakeBybit):
    fake.faults.append({"method": "POST", "path": "/v5/order/create", "action": "403",
                        "headers": {"Retry-After": "120"}})
    with pytest.raises(RateLimited) as ei:
        await gw.submit(req())
    assert ei.value.banned and 119.0 < ei.value.retry_after_s <= 120.0
    n = len(fake.requests)
    with pytest.raises(RateLimited):
        await gw.account()
    assert len(fake.requests) == n


async def test_limiter_keeps_headroom_for_protective_requests(gw: BybitGateway, fake: FakeBybit):
    gw._wall_s = lambda: 1_700_000_000.5
    await gw.submit(req())
    for i in range(7):
        await gw.submit(req(f"t1-tp{i}", side=Side.SELL, kind=OrderKind.LIMIT, qty_lots=1, price_ticks=610_000,
                            reduce_only=True))
    with pytest.raises(RateLimited):  # 8 of 10 this second: an entry may not (budget 80 %)
        await gw.submit(req("t2-entry"))
    await gw.submit(req("t1-exit", side=Side.SELL, reduce_only=True))  # a protective one may
    assert len(fake.calls("POST", "/v5/order/create")) == 9


async def test_clock_skew_10002_resyncs_and_refuses_entries_until_fixed(gw: BybitGateway, fake: FakeBybit):
    fake.skew_ms = 6000  # Bybit's clock 6 s ahead of ours: our timestamps fall out of recv_window
    with pytest.raises(ClockUnsynced):
        await gw.submit(req("t1-entry"))
    assert len(fake.calls("POST", "/v5/order/create")) == 1 and 5500 < gw.clock.offset_ms < 6500
    with pytest.raises(ClockUnsynced):  # 6 s > 25 % of recv_window: entries refused before sending
        await gw.submit(req("t2-entry"))
    assert len(fake.calls("POST", "/v5/order/create")) == 1
    fake.skew_ms = -8000  # now our clock is ahead: a protective order refused by 10002 goes once more
    assert (await gw.submit(req("t2-exit", side=Side.SELL, reduce_only=True))).status is OrderStatus.NEW
    assert len(fake.calls("POST", "/v5/order/create")) == 3 and "t2-exit" in fake.orders
    fake.skew_ms = 0
    await gw.sync_clock()
    assert (await gw.submit(req("t3-entry"))).status is OrderStatus.NEW


async def test_secret_never_reaches_logs_or_errors(fake: FakeBybit):
    buf = io.StringIO()
    configure_logging("DEBUG", "json", stream=buf)  # ours and stdlib (aiohttp, websockets, ccxt) into buf
    logging.getLogger("ccxt").setLevel(logging.DEBUG)  # ccxt logs every request and its headers at DEBUG
    try:
        g = BybitGateway(venue(fake.url, ws_private_url=fake.ws_url))
        await g.start()
        assert g.user_stream is not None
        await asyncio.wait_for(g.user_stream.caught_up.wait(), 10)  # the websocket auth went too
        await g.submit(req(attached_stop_ticks=590_000))
        fake.faults.append({"method": "POST", "path": "/v5/order/create", "action": "code", "code": 10004,
                            "msg": "error sign!"})
        with pytest.raises(OrderRejected) as ei:
            await g.submit(req("t2-entry"))
        await g.close()
    finally:
        logging.getLogger("ccxt").setLevel(logging.NOTSET)
        configure_logging()
    out = buf.getvalue()
    assert "clock synced" in out and "X-BAPI-SIGN" in out  # both loggers did write, so the check means something
    assert SECRET not in out and SECRET not in str(ei.value)


async def test_environments_urls_and_private_stream():
    import aiohttp

    async def urls(env: str, rest_url: str = "") -> tuple[dict[str, str], str]:
        async with aiohttp.ClientSession() as s:
            v = venue(rest_url, environment=env)
            ex = make_exchange(v, s)
            api = {k: ex.implode_hostname(u) for k, u in ex.urls["api"].items()}
            assert ex.options["enableUnifiedAccount"] is True and ex.has["fetchCurrencies"] is False
            assert ex.enableRateLimit is False
            await ex.close()
            return api, BybitUserStream(BybitGateway(v)).url

    main, ws = await urls("mainnet")
    assert main["private"] == main["public"] == "https://api.bybit.com" and ws == "wss://stream.bybit.com/v5/private"
    test, ws = await urls("testnet")
    assert test["private"] == test["public"] == "https://api-testnet.bybit.com"
    assert ws == "wss://stream-testnet.bybit.com/v5/private"
    demo, ws = await urls("demo")
    assert demo["private"] == "https://api-demo.bybit.com" and demo["public"] == "https://api.bybit.com"
    assert ws == "wss://stream-demo.bybit.com/v5/private"
    over, _ = await urls("demo", "http://127.0.0.1:9")
    assert set(over.values()) == {"http://127.0.0.1:9"}
    with pytest.raises(ValueError, match="rest_url"):
        await urls("exchange-sim")


async def test_one_session_reused_and_closed_by_us(fake: FakeBybit):
    g = BybitGateway(venue(fake.url))
    await g.start(autorun=False)
    session = g._session
    assert g.ex is not None and g.ex.session is session
    await g.submit(req())
    await g.close()
    assert session is not None and session.closed


async def test_fee_rates_read_the_accounts_fee_rate(gw: BybitGateway, fake: FakeBybit):
    """Issue 13 item 5: GET /v5/account/fee-rate (category linear, the symbol), signed."""
    assert await gw.fee_rates("BTCUSDT") == ("0.0002", "0.00055")
    (call,) = fake.calls("GET", "/v5/account/fee-rate")
    assert call["query"]["category"] == "linear" and call["query"]["symbol"] == "BTCUSDT"
    assert "X-BAPI-SIGN" in call["headers"]
