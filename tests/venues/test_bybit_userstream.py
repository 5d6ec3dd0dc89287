"""Bybit private stream: topic translation (pure), then auth/subscribe/ping, pushes, drop + reconnect +
REST catch-up and the position stop, with real ccxt + websockets against the loopback fake."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from typing import Any

import pytest
from pydantic import SecretStr

from bot.domain.instrument import Instrument
from bot.domain.types import OrderKind, OrderStatus, Side
from bot.settings.core import VenueSection
from bot.venues.bybit.gateway import BybitGateway
from bot.venues.bybit.userevents import BybitEventTranslator, StopMissing
from bot.venues.errors import VenueUnavailable
from bot.venues.ports import OrderRequest, OrderUpdate, PositionSnapshot
from tests.venues.fake_bybit import FakeBybit

MS = 1_000_000
BTC = Instrument("bybit", "BTCUSDT", "0.10", "0.001", "0.001", "1190", "119", "5", "BTC", "USDT")


def order(link: str, status: str, cum: str = "0", *, oid: str = "o1", qty: str = "0.005", stop_type: str = "",
          avg: str = "", side: str = "Buy", order_type: str = "Limit", **kw: Any) -> dict[str, Any]:
    d = {"category": "linear", "symbol": "BTCUSDT", "orderId": oid, "orderLinkId": link, "side": side,
         "orderType": order_type, "price": "59900", "qty": qty, "orderStatus": status, "cumExecQty": cum,
         "avgPrice": avg, "leavesQty": "0", "stopOrderType": stop_type, "reduceOnly": False,
         "rejectReason": "EC_NoError", "cancelType": "UNKNOWN", "updatedTime": "1000"}
    d.update(kw)
    return d


def execution(link: str, eid: str, qty: str, price: str, leaves: str, *, oid: str = "o1", order_qty: str = "0.005",
              fee: str = "0.03", maker: bool = True, stop_type: str = "UNKNOWN", side: str = "Buy") -> dict[str, Any]:
    return {"category": "linear", "symbol": "BTCUSDT", "orderId": oid, "orderLinkId": link, "side": side,
            "orderQty": order_qty, "leavesQty": leaves, "orderType": "Limit", "stopOrderType": stop_type,
            "execFee": fee, "execId": eid, "execPrice": price, "execQty": qty, "execType": "Trade",
            "execTime": "1000", "isMaker": maker}


def msg(topic: str, *data: dict[str, Any]) -> dict[str, Any]:
    return {"id": "x", "topic": topic, "creationTime": 1, "data": list(data)}


def translator() -> BybitEventTranslator:
    tr = BybitEventTranslator({"BTCUSDT": BTC}, link_wait_ms=2000)
    tr.expect("t1-entry", OrderKind.LIMIT)
    return tr


def test_execution_then_order_gives_one_fill_with_price_fee_and_id():
    tr = translator()
    a = tr.on_message(msg("execution", execution("t1-entry", "e1", "0.002", "59900", "0.003")), 1 * MS)
    b = tr.on_message(msg("execution", execution("t1-entry", "e2", "0.003", "59910", "0", fee="0.05")), 2 * MS)
    c = tr.on_message(msg("order", order("t1-entry", "Filled", "0.005", avg="59906")), 3 * MS)
    fills = [u for u in a + b if isinstance(u, OrderUpdate)]
    assert [(u.client_id, u.status, u.filled_lots, u.last_fill_lots, u.last_fill_price, u.fee, u.is_maker, u.trade_id)
            for u in fills] == [("t1-entry", OrderStatus.PARTIALLY_FILLED, 2, 2, 59900.0, 0.03, True, "e1"),
                                ("t1-entry", OrderStatus.FILLED, 5, 3, 59910.0, 0.05, True, "e2")]
    assert fills[1].avg_price == pytest.approx(59906.0) and fills[1].kind is OrderKind.LIMIT
    assert c == []  # the order's Filled repeats what the executions said
    assert tr.on_message(msg("execution", execution("t1-entry", "e2", "0.003", "59910", "0")), 4 * MS) == []


def test_an_acknowledgement_after_the_streamed_end_is_not_followed_as_open():
    tr = translator()
    tr.on_message(msg("execution", execution("t1-entry", "e1", "0.005", "59900", "0")), 1 * MS)
    tr.track(OrderUpdate("t1-entry", "o1", "BTCUSDT", Side.BUY, OrderKind.LIMIT, OrderStatus.NEW, 5, 0, 0.0))
    assert tr.live == {}  # a catch-up will not look it up again and again


def test_order_ahead_of_its_executions_is_held_until_they_come_or_the_wait_ends():
    tr = translator()
    assert tr.on_message(msg("order", order("t1-entry", "Filled", "0.005", avg="59900")), 1 * MS) == []
    out = tr.on_message(msg("execution", execution("t1-entry", "e1", "0.005", "59900", "0")), 2 * MS)
    assert [(u.status, u.filled_lots, u.trade_id) for u in out if isinstance(u, OrderUpdate)] == [
        (OrderStatus.FILLED, 5, "e1")]
    # an execution that never comes: the order's own word after link_wait, without a fee
    tr.expect("t2-entry", OrderKind.LIMIT)
    part = order("t2-entry", "PartiallyFilled", "0.002", oid="o2", avg="59800")
    assert tr.on_message(msg("order", part), 3 * MS) == []
    assert tr.flush_expired(1000 * MS) == []
    late = tr.flush_expired(2004 * MS)
    assert [(u.client_id, u.status, u.filled_lots, u.avg_price, u.fee) for u in late] == [
        ("t2-entry", OrderStatus.PARTIALLY_FILLED, 2, 59800.0, 0.0)]


def test_status_words_including_conditional_ones():
    tr = translator()
    tr.expect("t1-tp", OrderKind.TAKE_PROFIT_MARKET)
    seen = []
    for i, (word, extra) in enumerate([("Untriggered", {}), ("Triggered", {}), ("Deactivated", {}),
                                       ("Rejected", {"rejectReason": "EC_PostOnlyWillTakeLiquidity"})]):
        out = tr.on_message(msg("order", order("t1-tp", word, oid=f"c{i}", stop_type="Stop", **extra)), i * MS)
        seen += [(u.status, u.kind, u.reason) for u in out if isinstance(u, OrderUpdate)]
    assert seen == [(OrderStatus.NEW, OrderKind.TAKE_PROFIT_MARKET, ""),
                    (OrderStatus.TRIGGERED, OrderKind.TAKE_PROFIT_MARKET, ""),
                    (OrderStatus.CANCELED, OrderKind.TAKE_PROFIT_MARKET, ""),
                    (OrderStatus.REJECTED, OrderKind.TAKE_PROFIT_MARKET, "EC_PostOnlyWillTakeLiquidity")]
    out = tr.on_message(msg("order", order("t1-entry", "PartiallyFilledCanceled", oid="o9",
                                           cancelType="CancelByUser")), 9 * MS)
    assert [u.status for u in out if isinstance(u, OrderUpdate)] == [OrderStatus.CANCELED]


def test_position_stop_activity_is_reported_under_the_owning_stop_leg():
    tr = translator()
    tr.stops.attach("BTCUSDT", "t1-entry")
    sys_exec = execution("", "e7", "0.005", "59000", "0", oid="s1", order_qty="0.005", stop_type="StopLoss",
                         side="Sell", maker=False)
    # the attached stop fires before any stop leg owns it: held, never reported as the entry's
    assert tr.on_message(msg("execution", sys_exec), 1 * MS) == []
    old, released = tr.confirm_stop("BTCUSDT", "t1-sl", 590_000)
    assert old == "" and [(u.client_id, u.parent_id, u.status, u.last_fill_lots, u.kind) for u in released] == [
        ("t1-sl", "t1-sl", OrderStatus.FILLED, 5, OrderKind.STOP_MARKET)]
    # later system stop orders of the symbol go to the owner; their Deactivated (a move) is not forwarded
    out = tr.on_message(msg("order", order("", "Triggered", oid="s2", stop_type="StopLoss", side="Sell")), 2 * MS)
    assert [(u.client_id, u.parent_id, u.status) for u in out if isinstance(u, OrderUpdate)] == [
        ("t1-sl", "t1-sl", OrderStatus.TRIGGERED)]
    assert tr.on_message(msg("order", order("", "Deactivated", oid="s3", stop_type="StopLoss")), 3 * MS) == []


def test_position_messages_and_a_missing_stop():
    tr = translator()
    pos = {"category": "linear", "symbol": "BTCUSDT", "side": "Sell", "size": "0.007", "positionIdx": 0,
           "entryPrice": "60000", "unrealisedPnl": "-1.5", "leverage": "10", "tradeMode": 0, "stopLoss": "61000"}
    assert tr.on_message(msg("position", pos), 1) == [PositionSnapshot("BTCUSDT", -7, 60000.0, -1.5, leverage=10)]
    assert tr.on_message(msg("position", pos), 2) == []  # unchanged: not repeated
    tr.confirm_stop("BTCUSDT", "t1-sl", 610_000)
    assert tr.on_message(msg("position", {**pos, "stopLoss": "0"}), 3) == [StopMissing("BTCUSDT", "t1-sl")]
    flat = {**pos, "side": "", "size": "0", "stopLoss": ""}
    assert tr.on_message(msg("position", flat), 4) == [PositionSnapshot("BTCUSDT", 0, 0.0, -1.5, leverage=10)]


# ------------------------------------------------------------------------------------ against the fake


@pytest.fixture
async def fake():
    f = await FakeBybit().start()
    yield f
    await f.stop()


def make_gw(fake: FakeBybit, **kw: object) -> BybitGateway:
    v = VenueSection(name="bybit", environment="testnet", rest_url=fake.url, ws_private_url=fake.ws_url,
                     api_key=SecretStr("k"), api_secret=SecretStr("s"), algo_link_wait_ms=300)
    return BybitGateway(v, **kw)  # type: ignore[arg-type]


@pytest.fixture
async def gw(fake: FakeBybit):
    g = make_gw(fake, ping_interval_s=0.1)
    await asyncio.wait_for(g.start(), 10)
    assert g.user_stream is not None
    g.user_stream.reconnect_min_ms, g.user_stream.reconnect_max_ms = 10, 50
    await asyncio.wait_for(g.user_stream.caught_up.wait(), 10)
    yield g
    await asyncio.wait_for(g.close(), 10)


def drain(g: BybitGateway) -> list[OrderUpdate]:
    out = []
    while not g._updates.empty():
        u = g._updates.get_nowait()
        assert u is not None
        out.append(u)
    return out


async def reconnect(g: BybitGateway, fake: FakeBybit) -> None:
    assert g.user_stream is not None
    g.user_stream.caught_up.clear()
    await fake.drop_ws()
    await asyncio.wait_for(g.user_stream.caught_up.wait(), 10)


def limit_buy(cid: str, **kw: object) -> OrderRequest:
    return OrderRequest(cid, "BTCUSDT", Side.BUY, OrderKind.LIMIT, 5, price_ticks=599_000, **kw)  # type: ignore[arg-type]


async def test_auth_subscribe_and_ping_messages(gw: BybitGateway, fake: FakeBybit):
    auth, sub = fake.ws_received[0], fake.ws_received[1]
    assert auth["op"] == "auth" and auth["args"][0] == "k"
    expires = auth["args"][1]
    assert isinstance(expires, int) and 5_000 < expires - fake.server_ms() <= 10_000
    assert auth["args"][2] == hmac.new(b"s", f"GET/realtime{expires}".encode(), hashlib.sha256).hexdigest()
    assert sub["op"] == "subscribe" and sub["args"] == ["order", "execution", "position", "wallet"]
    await asyncio.sleep(0.35)
    assert next(m for m in fake.ws_received if m["op"] == "ping")["req_id"].startswith("ping")
    assert gw.user_stream is not None and gw.user_stream.stats["pongs"] >= 1
    # the first catch-up ran right after subscribing: executions, open orders, positions
    paths = [r["path"] for r in fake.requests]
    assert {"/v5/execution/list", "/v5/order/realtime", "/v5/position/list"} <= set(paths)


async def test_pushed_order_execution_and_position_reach_the_engine(gw: BybitGateway, fake: FakeBybit):
    await gw.submit(limit_buy("t1-entry"))
    o = fake.orders["t1-entry"]
    await fake.push("order", [dict(o)])  # New: repeats the acknowledgement, not delivered twice
    e = fake.fill_order("t1-entry")
    await fake.push("execution", [e])
    await fake.push("order", [dict(o)])
    await fake.push("position", [{**fake.position(), "category": "linear", "entryPrice": "59900"}])
    u = await asyncio.wait_for(anext(gw.updates()), 5)
    assert (u.client_id, u.status, u.filled_lots, u.last_fill_price, u.fee, u.trade_id) == (
        "t1-entry", OrderStatus.FILLED, 5, 59900.0, 0.02, e["execId"])
    p = await asyncio.wait_for(anext(gw.position_updates()), 5)
    assert (p.symbol, p.qty_lots, p.entry_price) == ("BTCUSDT", 5, 59900.0)
    await asyncio.sleep(0.05)
    assert drain(gw) == []


async def test_fill_while_disconnected_is_caught_up_by_rest_once(gw: BybitGateway, fake: FakeBybit):
    await gw.submit(limit_buy("t2-entry"))
    e = fake.fill_order("t2-entry")  # filled while the socket is down: no event ever comes
    await reconnect(gw, fake)
    ups = [u for u in drain(gw) if u.client_id == "t2-entry"]
    assert [(u.status, u.last_fill_lots, u.fee, u.is_maker, u.trade_id) for u in ups] == [
        (OrderStatus.FILLED, 5, 0.02, True, e["execId"])]
    assert fake.ws_connects == 2
    # the same fill pushed late on the new socket, or a second catch-up: not delivered twice
    await fake.push("execution", [e])
    assert gw.user_stream is not None
    await gw.user_stream.catch_up()
    await asyncio.sleep(0.05)
    assert [u for u in drain(gw) if u.client_id == "t2-entry"] == []


async def test_cancelled_while_disconnected_is_found_by_order_link_id(gw: BybitGateway, fake: FakeBybit):
    await gw.submit(limit_buy("t3-entry"))
    fake.orders["t3-entry"].update(orderStatus="Cancelled", cancelType="CancelByAdmin")
    await reconnect(gw, fake)
    assert [(u.client_id, u.status) for u in drain(gw)] == [("t3-entry", OrderStatus.CANCELED)]
    assert fake.calls("GET", "/v5/order/history")[-1]["query"]["orderLinkId"] == "t3-entry"


async def test_stop_fired_while_disconnected_reaches_the_stop_leg(gw: BybitGateway, fake: FakeBybit):
    await gw.submit(OrderRequest("t4-entry", "BTCUSDT", Side.BUY, OrderKind.MARKET, 5, attached_stop_ticks=590_000))
    await gw.submit(OrderRequest("t4-sl", "BTCUSDT", Side.SELL, OrderKind.STOP_MARKET, 5, trigger_ticks=590_000,
                                 reduce_only=True))  # 34040: the attached stop is already this
    await fake.push("position", [{**fake.position(), "category": "linear"}])
    assert (await asyncio.wait_for(anext(gw.position_updates()), 5)).qty_lots == 5
    _, e = fake.trigger_stop(price="58990")
    await reconnect(gw, fake)
    ups = drain(gw)
    stop_fills = [u for u in ups if u.trade_id == e["execId"]]
    assert [(u.client_id, u.parent_id, u.status, u.last_fill_lots, u.last_fill_price) for u in stop_fills] == [
        ("t4-sl", "t4-sl", OrderStatus.FILLED, 5, 58990.0)]
    assert [u.client_id for u in ups if u.trade_id] == ["t4-entry", "t4-sl"]  # the entry's fill came too
    flat = await asyncio.wait_for(anext(gw.position_updates()), 5)  # flat at the venue: said explicitly
    assert (flat.symbol, flat.qty_lots) == ("BTCUSDT", 0)


async def test_stop_gone_at_the_venue_is_reported_after_a_rest_check(gw: BybitGateway, fake: FakeBybit):
    await gw.submit(OrderRequest("t5-entry", "BTCUSDT", Side.BUY, OrderKind.MARKET, 5))
    await gw.submit(OrderRequest("t5-sl", "BTCUSDT", Side.SELL, OrderKind.STOP_MARKET, 5, trigger_ticks=590_000,
                                 reduce_only=True))
    stale = {**fake.position(), "category": "linear", "stopLoss": ""}
    await fake.push("position", [stale])  # stale message: REST still shows the stop -> nothing
    await asyncio.sleep(0.1)
    assert [u for u in drain(gw) if u.client_id == "t5-sl"] == []
    fake.position().update(stopLoss="")  # removed at the venue (by hand, say)
    await fake.push("position", [{**stale, "unrealisedPnl": "2"}])
    u = await asyncio.wait_for(anext(gw.updates()), 5)
    assert (u.client_id, u.status) == ("t5-sl", OrderStatus.CANCELED) and "gone" in u.reason


async def test_refused_auth_ends_the_stream_and_updates_raise(fake: FakeBybit):
    fake.refuse_auth = True
    g = make_gw(fake)
    await g.start()
    assert g.user_stream is not None
    g.user_stream.reconnect_min_ms, g.user_stream.reconnect_max_ms = 5, 10
    try:
        with pytest.raises(VenueUnavailable, match="auth refused"):
            await asyncio.wait_for(anext(g.updates()), 5)
        assert fake.ws_connects == 3
    finally:
        await g.close()


async def test_attached_stop_firing_before_the_stop_leg_is_that_leg(gw: BybitGateway, fake: FakeBybit):
    await gw.submit(OrderRequest("t6-entry", "BTCUSDT", Side.BUY, OrderKind.MARKET, 5, attached_stop_ticks=590_000))
    o, e = fake.trigger_stop(price="58995")  # fires at once: the position is flat again
    await fake.push("execution", [e])
    await fake.push("order", [dict(o)])
    await asyncio.sleep(0.1)
    assert [u for u in drain(gw) if u.trade_id == e["execId"]] == []  # held: never reported as the entry's
    ack = await gw.submit(OrderRequest("t6-sl", "BTCUSDT", Side.SELL, OrderKind.STOP_MARKET, 5, trigger_ticks=590_000,
                                       reduce_only=True))
    assert ack.status is OrderStatus.TRIGGERED  # zero position, and the held stop activity is this leg's
    fills = [u for u in drain(gw) if u.trade_id == e["execId"]]
    assert [(u.client_id, u.parent_id, u.last_fill_lots, u.last_fill_price) for u in fills] == [
        ("t6-sl", "t6-sl", 5, 58995.0)]


async def test_health_events_pong_messages_and_a_requested_reconnect(gw: BybitGateway, fake: FakeBybit):
    """What the app's stream health is fed (bot.app_watch): pongs answer our pings (the probe), every
    message, and a reconnect asked for by the app, followed by its catch-up."""
    us = gw.user_stream
    assert us is not None
    events: list[str] = []
    us.on_event = lambda kind, detail: events.append(kind)
    await asyncio.sleep(0.35)  # ping every 0.1 s
    assert "probe_ok" in events and "probe_failed" not in events and "message" in events
    events.clear()
    us.caught_up.clear()
    assert us.request_reconnect("a fill it never delivered")
    await asyncio.wait_for(us.caught_up.wait(), 10)
    await asyncio.sleep(0.05)
    assert events.index("lost") < events.index("connected") < events.index("caught_up")
    assert us.stats["reconnects_requested"] == 1


def test_wallet_topic_gives_the_balance_of_each_coin():
    from bot.domain.orders import BalanceUpdate

    tr = translator()
    got = tr.on_message(msg("wallet", {"accountType": "UNIFIED", "totalEquity": "10010.5", "coin": [
        {"coin": "USDT", "walletBalance": "9995.25", "equity": "10010.5"},
        {"coin": "BTC", "walletBalance": "", "equity": "0"}]}), 1 * MS)
    assert got == [BalanceUpdate("USDT", 9995.25, 9995.25, 1 * MS)]  # creationTime 1 ms; a blank balance skipped
