"""User data stream: event translation and algo linking (pure), listenKey life cycle and REST catch-up
(real ccxt + websockets against the loopback fake)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import SecretStr

from bot.domain.types import OrderKind, OrderStatus, Side
from bot.settings.core import VenueSection
from bot.venues.binance_usdm.gateway import BinanceGateway
from bot.venues.binance_usdm.instruments import KNOWN
from bot.venues.binance_usdm.userevents import ListenKeyExpired, UserEventTranslator
from bot.venues.ports import OrderRequest, OrderUpdate, PositionSnapshot
from tests.venues.fake_binance import FakeBinance

MS = 1_000_000


def otu(c: str, i: int, x: str, X: str, *, l: str = "0", z: str = "0", L: str = "0", t: int = 0,  # noqa: E741
        o: str = "MARKET", q: str = "0.005", S: str = "SELL", T: int = 1000) -> dict[str, Any]:
    return {"e": "ORDER_TRADE_UPDATE", "E": T, "T": T,
            "o": {"s": "BTCUSDT", "c": c, "S": S, "o": o, "f": "GTC", "q": q, "p": "0", "ap": L, "sp": "0",
                  "x": x, "X": X, "i": i, "l": l, "z": z, "L": L, "N": "USDT", "n": "0.03", "T": T, "t": t,
                  "m": False, "R": True, "wt": "MARK_PRICE", "ot": o, "ps": "BOTH", "cp": False}}


def algo(caid: str, aid: int, X: str, ai: str = "", aq: str = "0", ap: str = "0", E: int = 1000) -> dict[str, Any]:
    return {"e": "ALGO_UPDATE", "T": E, "E": E,
            "o": {"caid": caid, "aid": aid, "at": "CONDITIONAL", "o": "STOP_MARKET", "s": "BTCUSDT", "S": "SELL",
                  "ps": "BOTH", "f": "GTC", "q": "0.005", "X": X, "ai": ai, "ap": ap, "aq": aq, "act": "MARKET",
                  "tp": "59000.0", "p": "0", "wt": "MARK_PRICE", "cp": False, "pP": False, "R": True, "tt": 0}}


def translator() -> UserEventTranslator:
    tr = UserEventTranslator({"BTCUSDT": KNOWN["BTCUSDT"]}, link_wait_ms=2000)
    tr.expect("t1-sl", True)
    return tr


def child_fill(i: int = 555, c: str = "x-child-1") -> dict[str, Any]:
    return otu(c, i, "TRADE", "FILLED", l="0.005", z="0.005", L="58990.0", t=77)


def test_algo_triggered_first_then_child_fill_is_linked():
    tr = translator()
    a = tr.on_message(algo("t1-sl", 9001, "TRIGGERED", ai="555"), 1 * MS)
    assert [(u.client_id, u.status) for u in a] == [("t1-sl", OrderStatus.TRIGGERED)]
    f = tr.on_message(child_fill(), 2 * MS)
    assert len(f) == 1
    u = f[0]
    assert isinstance(u, OrderUpdate)
    assert (u.client_id, u.parent_id, u.venue_order_id) == ("t1-sl", "t1-sl", "555")
    assert (u.last_fill_lots, u.last_fill_price, u.trade_id, u.status) == (5, 58990.0, "77", OrderStatus.FILLED)


def test_child_fill_first_is_held_then_released_linked_by_algo_update():
    tr = translator()
    assert tr.on_message(child_fill(), 1 * MS) == []  # nobody knows order 555 yet
    out = tr.on_message(algo("t1-sl", 9001, "TRIGGERED", ai="555"), 2 * MS)
    assert [(u.client_id, u.parent_id, u.status) for u in out if isinstance(u, OrderUpdate)] == [
        ("t1-sl", "", OrderStatus.TRIGGERED), ("t1-sl", "t1-sl", OrderStatus.FILLED)]
    assert tr.stats["linked"] == 1
    fin = tr.on_message(algo("t1-sl", 9001, "FINISHED", ai="555", aq="0.005", ap="58990.0", E=1001), 3 * MS)
    assert [(u.status, u.filled_lots) for u in fin if isinstance(u, OrderUpdate)] == [(OrderStatus.FILLED, 5)]


def test_child_named_after_its_algo_order_needs_no_link():
    tr = translator()  # the simulator's children carry the algo order's client id
    out = tr.on_message(child_fill(c="t1-sl"), 1 * MS)
    assert [(u.client_id, u.parent_id) for u in out if isinstance(u, OrderUpdate)] == [("t1-sl", "t1-sl")]


def test_unknown_order_is_released_unlinked_after_the_wait_and_duplicates_dropped():
    tr = translator()
    assert tr.on_message(otu("manual-1", 42, "NEW", "NEW"), 1 * MS) == []
    assert tr.flush_expired(1000 * MS) == []
    out = tr.flush_expired(2001 * MS)
    assert [(u.client_id, u.parent_id, u.status) for u in out] == [("manual-1", "", OrderStatus.NEW)]
    tr.expect("t2-entry", False)
    m = otu("t2-entry", 43, "TRADE", "FILLED", l="0.005", z="0.005", L="60000.0", t=5, S="BUY")
    assert len(tr.on_message(m, 3000 * MS)) == 1
    assert tr.on_message(m, 3001 * MS) == []  # the same fill again (reconnect overlap)
    assert tr.stats["duplicates"] == 1


def test_account_update_and_listen_key_expired():
    tr = translator()
    acc = {"e": "ACCOUNT_UPDATE", "E": 1, "T": 1, "a": {"m": "ORDER", "B": [], "P": [
        {"s": "BTCUSDT", "pa": "-0.005", "ep": "60000.0", "bep": "0", "cr": "0", "up": "-1.5", "mt": "isolated",
         "iw": "10", "ps": "BOTH"}]}}
    out = tr.on_message(acc, 1)
    assert out == [PositionSnapshot("BTCUSDT", -5, 60000.0, -1.5, isolated=True)]
    assert isinstance(tr.on_message({"e": "listenKeyExpired", "E": 5, "listenKey": "lk1"}, 2)[0], ListenKeyExpired)


# ------------------------------------------------------------------------------------ against the fake


@pytest.fixture
async def fake():
    f = await FakeBinance().start()
    yield f
    await f.stop()


@pytest.fixture
async def gw(fake: FakeBinance):
    v = VenueSection(name="binance-usdm", environment="exchange-sim", rest_url=fake.url,
                     ws_private_url=f"ws://127.0.0.1:{fake.port}/private", api_key=SecretStr("k"),
                     api_secret=SecretStr("s"), algo_link_wait_ms=300)
    g = BinanceGateway(v)
    await asyncio.wait_for(g.start(), 10)
    assert g.user_stream is not None
    g.user_stream.reconnect_min_ms = 20
    g.user_stream.reconnect_max_ms = 100
    await asyncio.wait_for(g.user_stream.caught_up.wait(), 10)
    yield g
    await asyncio.wait_for(g.close(), 10)


async def next_update(g: BinanceGateway, timeout_s: float = 5.0) -> OrderUpdate:
    it = g.updates()
    return await asyncio.wait_for(anext(it), timeout_s)


async def drain(g: BinanceGateway) -> list[OrderUpdate]:
    out = []
    while not g._updates.empty():
        u = g._updates.get_nowait()
        assert u is not None
        out.append(u)
    return out


def limit_buy(cid: str) -> OrderRequest:
    return OrderRequest(cid, "BTCUSDT", Side.BUY, OrderKind.LIMIT, 5, price_ticks=599_000)


async def test_stream_delivers_our_order_updates(gw: BinanceGateway, fake: FakeBinance):
    assert fake.ws_connects == ["lk1"]
    await gw.submit(limit_buy("t1-entry"))
    oid = fake.orders["t1-entry"]["orderId"]
    await fake.push(otu("t1-entry", oid, "TRADE", "FILLED", l="0.005", z="0.005", L="59900.0", t=9, S="BUY",
                        o="LIMIT"))
    u = await next_update(gw)
    assert (u.client_id, u.status, u.last_fill_lots, u.trade_id) == ("t1-entry", OrderStatus.FILLED, 5, "9")


async def test_ws_drop_during_a_fill_is_reconciled_by_rest_once(gw: BinanceGateway, fake: FakeBinance):
    await gw.submit(limit_buy("t2-entry"))
    await fake.push(otu("t2-entry", fake.orders["t2-entry"]["orderId"], "NEW", "NEW", o="LIMIT", S="BUY"))
    await asyncio.sleep(0.05)
    assert await drain(gw) == []  # the NEW event repeats the acknowledgement: not delivered twice
    assert gw.user_stream is not None
    gw.user_stream.caught_up.clear()
    fake.fill_order("t2-entry")  # filled while the socket is down: no event ever comes
    await fake.drop_ws()
    await asyncio.wait_for(gw.user_stream.caught_up.wait(), 10)
    ups = [u for u in await drain(gw) if u.client_id == "t2-entry"]
    assert [(u.status, u.last_fill_lots, u.fee, u.is_maker) for u in ups] == [(OrderStatus.FILLED, 5, 0.02, True)]
    assert ups[0].trade_id == str(fake.trades[-1]["id"])
    assert fake.ws_connects == ["lk1", "lk1"]  # same key: it is still active
    # the same fill pushed late on the new socket (or a second catch-up) is not delivered twice
    await gw.user_stream.catch_up()
    assert [u for u in await drain(gw) if u.client_id == "t2-entry"] == []


async def test_listen_key_expired_gives_a_new_key_and_nothing_missed(gw: BinanceGateway, fake: FakeBinance):
    await gw.submit(limit_buy("t3-entry"))
    assert gw.user_stream is not None
    gw.user_stream.caught_up.clear()
    fake.dead_keys.add("lk1")
    fake.fill_order("t3-entry")  # happens while the key is dead
    await fake.push({"e": "listenKeyExpired", "E": 1, "listenKey": "lk1"})
    await asyncio.wait_for(gw.user_stream.caught_up.wait(), 10)
    assert fake.ws_connects == ["lk1", "lk2"] and gw.user_stream.listen_key == "lk2"
    ups = [u for u in await drain(gw) if u.client_id == "t3-entry"]
    assert [(u.status, u.last_fill_lots) for u in ups] == [(OrderStatus.FILLED, 5)]


async def test_keepalive_refused_means_new_key(gw: BinanceGateway, fake: FakeBinance):
    assert gw.user_stream is not None
    gw.user_stream.keepalive_s = 0.05
    gw.user_stream.caught_up.clear()
    fake.dead_keys.add("lk1")
    await asyncio.wait_for(gw.user_stream.caught_up.wait(), 10)
    assert gw.user_stream.listen_key == "lk2" and fake.ws_connects[-1] == "lk2"
    assert len(fake.calls("PUT", "/fapi/v1/listenKey")) >= 1


async def test_triggered_stop_missed_while_down_links_child_fills(gw: BinanceGateway, fake: FakeBinance):
    await gw.submit(OrderRequest("t4-sl", "BTCUSDT", Side.SELL, OrderKind.STOP_MARKET, 5, trigger_ticks=590_000,
                                 reduce_only=True))
    assert gw.user_stream is not None
    gw.user_stream.caught_up.clear()
    # the stop fires while we are away: algo FINISHED, child order 777 filled
    fake.algos["t4-sl"].update(algoStatus="FINISHED", actualOrderId="777")
    fake.trades.append({"symbol": "BTCUSDT", "id": 31, "orderId": 777, "side": "SELL", "price": "58995.0",
                        "qty": "0.005", "commission": "0.15", "commissionAsset": "USDT", "maker": False, "time": 1})
    await fake.drop_ws()
    await asyncio.wait_for(gw.user_stream.caught_up.wait(), 10)
    ups = [u for u in await drain(gw) if u.client_id == "t4-sl"]
    fills = [u for u in ups if u.trade_id]
    assert [(u.parent_id, u.venue_order_id, u.last_fill_lots, u.last_fill_price) for u in fills] == [
        ("t4-sl", "777", 5, 58995.0)]
    own = [(u.status, u.filled_lots, u.avg_price) for u in ups if u.parent_id == ""]
    assert own == [(OrderStatus.FILLED, 5, 58995.0)]  # the algo order itself: finished, filled by its child


async def test_health_events_keepalive_answers_and_a_requested_reconnect(gw: BinanceGateway, fake: FakeBinance):
    """What the app's stream health is fed (bot.app_watch): the keep-alive's answer (Binance's only probe),
    every message, a reconnect asked for by the app (same key, then the catch-up), a refused keep-alive."""
    us = gw.user_stream
    assert us is not None
    events: list[tuple[str, str]] = []
    us.on_event = lambda kind, detail: events.append((kind, detail))
    us.keepalive_s = 0.05
    for _ in range(100):
        if ("probe_ok", "") in events:
            break
        await asyncio.sleep(0.02)
    assert ("probe_ok", "") in events
    await gw.submit(limit_buy("t7-entry"))
    await fake.push(otu("t7-entry", fake.orders["t7-entry"]["orderId"], "NEW", "NEW", o="LIMIT", S="BUY"))
    for _ in range(100):
        if ("message", "") in events:
            break
        await asyncio.sleep(0.02)
    assert ("message", "") in events
    us.keepalive_s = 3600
    events.clear()
    us.caught_up.clear()
    assert us.request_reconnect("a fill it never delivered")
    await asyncio.wait_for(us.caught_up.wait(), 10)
    kinds = [k for k, _ in events]
    assert kinds.index("lost") < kinds.index("connected") < kinds.index("caught_up")
    assert "requested: a fill it never delivered" in dict(events)["lost"]
    assert fake.ws_connects[-2:] == ["lk1", "lk1"]
    # a refused keep-alive (-1125): probe failed, then a new key
    events.clear()
    us.caught_up.clear()
    fake.dead_keys.add("lk1")
    us.keepalive_s = 0.05
    await asyncio.wait_for(us.caught_up.wait(), 10)
    assert any(k == "probe_failed" and "refused" in d for k, d in events)
