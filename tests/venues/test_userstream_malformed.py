"""Issue 11 item 4, user streams: a malformed user event never ends the stream.

Pure: both translators raise MalformedMessage (and only that) for the issue's `"S":"HOLD"`, unknown
statuses, NaN/inf/negative quantities and prices, wrong types, and under fuzzing. Against the loopback
fakes (real websockets + ccxt): the stream counts the bad event, stays connected, runs a REST catch-up
that finds the fill the bad event hid, and delivers the next good event.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from bot.domain.types import OrderKind, OrderStatus
from bot.errors import MalformedMessage
from bot.settings.core import VenueSection
from bot.venues.binance_usdm.gateway import BinanceGateway
from bot.venues.bybit.gateway import BybitGateway
from bot.venues.bybit.userevents import BybitEventTranslator
from tests.venues.fake_binance import FakeBinance
from tests.venues.fake_bybit import FakeBybit
from tests.venues.test_binance_userstream import algo, otu
from tests.venues.test_binance_userstream import drain as bn_drain
from tests.venues.test_binance_userstream import limit_buy as bn_limit_buy
from tests.venues.test_binance_userstream import translator as bn_translator
from tests.venues.test_bybit_userstream import BTC, execution, msg, order
from tests.venues.test_bybit_userstream import drain as bb_drain
from tests.venues.test_bybit_userstream import limit_buy as bb_limit_buy
from tests.venues.test_bybit_userstream import make_gw as bb_make_gw

MS = 1_000_000


# ----------------------------------------------------------------------------------- Binance, pure
@pytest.mark.parametrize("field,value", [("S", "HOLD"), ("X", "HOLD"), ("q", "NaN"), ("z", "-0.005"),
                                         ("l", "1e400"), ("L", "nan"), ("L", "-5"), ("ap", "inf"), ("n", "NaN"),
                                         ("s", ["BTCUSDT"]), ("q", "abc"), ("l", {"x": 1})])
def test_binance_bad_order_event_is_malformed(field: str, value: Any) -> None:
    tr = bn_translator()
    ev = otu("t1-sl", 555, "TRADE", "FILLED", l="0.005", z="0.005", L="58990.0", t=77)
    ev["o"][field] = value
    with pytest.raises(MalformedMessage):
        tr.on_message(ev, MS)
    assert tr.stats["malformed"] == 1
    # the translator is not left half-changed: the same fill, well-formed, is delivered once
    good = otu("t1-sl", 555, "TRADE", "FILLED", l="0.005", z="0.005", L="58990.0", t=77)
    assert [u.last_fill_lots for u in tr.on_message(good, 2 * MS)] == [5]


@pytest.mark.parametrize("raw", [b"{", b"[]", b'"x"', orjson.dumps({"e": "ALGO_UPDATE", "o": "x"}),
                                 orjson.dumps(algo("t1-sl", 9, "HOLD")),
                                 orjson.dumps({"e": "ACCOUNT_UPDATE", "a": {"P": [{"s": "BTCUSDT", "pa": "NaN"}]}}),
                                 orjson.dumps({"e": "ACCOUNT_UPDATE", "a": {"m": "FUNDING_FEE",
                                                                            "B": [{"a": "USDT", "bc": "inf"}]}})])
def test_binance_bad_other_events_are_malformed(raw: bytes) -> None:
    with pytest.raises(MalformedMessage):
        bn_translator().on_message(raw, MS)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(["", "abc", "NaN", "inf", "1e400", "-1", "0", "0.005", "HOLD", "BUY", "Sell", "FILLED",
                       "Filled", "TRADE", "BTCUSDT"]),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.sampled_from(["s", "S", "q"]), kids, max_size=2),
    max_leaves=6,
)


def _mutated(template: dict[str, Any], data: st.DataObject) -> dict[str, Any]:
    ev = copy.deepcopy(template)
    inner = ev["o"] if "o" in ev else ev["data"][0]
    key = data.draw(st.sampled_from(sorted(inner)))
    inner[key] = data.draw(JSON)
    return ev


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_fuzz_binance_user_events_raise_only_malformed(data: st.DataObject) -> None:
    template = data.draw(st.sampled_from([
        otu("t1-sl", 555, "TRADE", "FILLED", l="0.005", z="0.005", L="58990.0", t=77),
        otu("x-manual", 556, "NEW", "NEW", o="LIMIT"),
        algo("t1-sl", 9001, "TRIGGERED", ai="555"),
    ]))
    with contextlib.suppress(MalformedMessage):
        bn_translator().on_message(_mutated(template, data), MS)


# ----------------------------------------------------------------------------------- Bybit, pure
def bb_translator() -> BybitEventTranslator:
    tr = BybitEventTranslator({"BTCUSDT": BTC}, link_wait_ms=2000)
    tr.expect("t1-entry", OrderKind.LIMIT)
    return tr


@pytest.mark.parametrize("topic,item", [
    ("order", order("t1-entry", "Hold")),
    ("order", order("t1-entry", "Filled", side="HOLD")),
    ("order", order("t1-entry", "Filled", cum="NaN")),
    ("order", order("t1-entry", "Filled", qty="-0.005")),
    ("execution", execution("t1-entry", "e1", "0.005", "NaN", "0")),
    ("execution", execution("t1-entry", "e1", "-0.005", "59900", "0")),
    ("execution", execution("t1-entry", "e1", "0.005", "59900", "0", fee="inf")),
    ("execution", execution("t1-entry", "e1", "0.005", "59900", "0", side="Hold")),
])
def test_bybit_bad_events_are_malformed(topic: str, item: dict[str, Any]) -> None:
    tr = bb_translator()
    with pytest.raises(MalformedMessage):
        tr.on_message(msg(topic, item), MS)
    assert tr.stats["malformed"] == 1 and tr.stats["fills"] == 0


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_fuzz_bybit_user_events_raise_only_malformed(data: st.DataObject) -> None:
    template = data.draw(st.sampled_from([
        msg("order", order("t1-entry", "Filled", cum="0.005", avg="59900")),
        msg("execution", execution("t1-entry", "e1", "0.005", "59900", "0")),
        msg("position", {"category": "linear", "symbol": "BTCUSDT", "side": "Buy", "size": "0.005",
                         "avgPrice": "59900", "positionIdx": 0, "stopLoss": "59000", "unrealisedPnl": "1"}),
    ]))
    with contextlib.suppress(MalformedMessage):
        bb_translator().on_message(_mutated(template, data), MS)


# ----------------------------------------------------------------------------------- live streams
@pytest.fixture
async def bn_fake():
    f = await FakeBinance().start()
    yield f
    await f.stop()


@pytest.fixture
async def bn_gw(bn_fake: FakeBinance):
    v = VenueSection(name="binance-usdm", environment="exchange-sim", rest_url=bn_fake.url,
                     ws_private_url=f"ws://127.0.0.1:{bn_fake.port}/private", api_key=SecretStr("k"),
                     api_secret=SecretStr("s"), algo_link_wait_ms=300)
    g = BinanceGateway(v)
    await asyncio.wait_for(g.start(), 10)
    assert g.user_stream is not None
    await asyncio.wait_for(g.user_stream.caught_up.wait(), 10)
    yield g
    await asyncio.wait_for(g.close(), 10)


@pytest.fixture
async def bb_fake():
    f = await FakeBybit().start()
    yield f
    await f.stop()


@pytest.fixture
async def bb_gw(bb_fake: FakeBybit):
    g = bb_make_gw(bb_fake, ping_interval_s=0.1)
    await asyncio.wait_for(g.start(), 10)
    assert g.user_stream is not None
    await asyncio.wait_for(g.user_stream.caught_up.wait(), 10)
    yield g
    await asyncio.wait_for(g.close(), 10)


async def test_binance_stream_survives_a_bad_event_and_catches_up(bn_gw: BinanceGateway,
                                                                  bn_fake: FakeBinance) -> None:
    us = bn_gw.user_stream
    assert us is not None
    await bn_gw.submit(bn_limit_buy("t7-entry"))
    oid = bn_fake.orders["t7-entry"]["orderId"]
    bn_fake.fill_order("t7-entry")  # the fill's own event is the malformed one below
    catchups = us.stats["catchups"]
    await bn_fake.push(otu("t7-entry", oid, "TRADE", "FILLED", l="0.005", z="0.005", L="59900.0", t=9, S="HOLD",
                           o="LIMIT"))
    ups: list[Any] = []
    for _ in range(200):  # the REST catch-up the bad event asked for finds the fill
        ups += [u for u in await bn_drain(bn_gw) if u.client_id == "t7-entry"]
        if ups:
            break
        await asyncio.sleep(0.025)
    assert [(u.status, u.last_fill_lots) for u in ups] == [(OrderStatus.FILLED, 5)]
    assert us.stats["malformed"] == 1 and us.stats["catchups"] == catchups + 1
    assert bn_fake.ws_connects == ["lk1"]  # the same connection: never dropped for it
    # the next good event still flows on that connection
    await bn_gw.submit(bn_limit_buy("t8-entry"))
    oid8 = bn_fake.orders["t8-entry"]["orderId"]
    await bn_fake.push(otu("t8-entry", oid8, "CANCELED", "CANCELED", o="LIMIT", S="BUY"))
    for _ in range(200):
        got = [u for u in await bn_drain(bn_gw) if u.client_id == "t8-entry"]
        if got:
            break
        await asyncio.sleep(0.025)
    assert [u.status for u in got] == [OrderStatus.CANCELED]


async def test_bybit_stream_survives_a_bad_event_and_catches_up(bb_gw: BybitGateway,
                                                                bb_fake: FakeBybit) -> None:
    us = bb_gw.user_stream
    assert us is not None
    await bb_gw.submit(bb_limit_buy("t7-entry"))
    e = bb_fake.fill_order("t7-entry")
    catchups = us.stats["catchups"]
    await bb_fake.push("execution", [{**e, "execPrice": "NaN"}])
    ups: list[Any] = []
    for _ in range(200):
        ups += [u for u in bb_drain(bb_gw) if u.client_id == "t7-entry"]
        if ups:
            break
        await asyncio.sleep(0.025)
    assert [(u.status, u.last_fill_lots, u.trade_id) for u in ups] == [(OrderStatus.FILLED, 5, e["execId"])]
    assert us.stats["malformed"] == 1 and us.stats["catchups"] == catchups + 1
    assert bb_fake.ws_connects == 1
