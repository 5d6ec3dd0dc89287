"""Issue 11 item 4: no single market input ends the process.

The fuzzed values of the issue (a level ["abc","1"], "NaN", "1e400", a 3-item level, `u` as a string,
negative sizes, NaN marks, negative trades) each give MalformedMessage from the parser or the book sync,
and nothing else; the sync resyncs a book a bad level may have damaged; the feeds and the pipeline count
them and go on. Property tests (hypothesis) put arbitrary JSON values into every field of valid
messages of both venues and check that no other exception type escapes parse -> sync -> book.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.domain.events import DepthDiff, DepthSnapshot
from bot.errors import MalformedMessage
from bot.market.book import OrderBook
from bot.market.health import BookStatus
from bot.market.sync import BinanceBookSync, BybitBookSync
from bot.pipeline import Pipeline
from bot.settings import load_settings
from bot.signals import SignalEngine
from bot.venues.binance_usdm import parse as bn
from bot.venues.binance_usdm.feed import BinanceMarketFeed
from bot.venues.binance_usdm.instruments import KNOWN
from bot.venues.bybit import parse as bb

BTC = KNOWN["BTCUSDT"]
MS = 1_000_000


def depth(U: Any = 11, u: Any = 12, pu: Any = 10, b: Any = None, a: Any = None) -> dict[str, Any]:
    return {"e": "depthUpdate", "E": 1_700_000_000_000, "T": 1_700_000_000_000, "s": "BTCUSDT", "U": U, "u": u,
            "pu": pu, "b": [["60000.0", "1.000"]] if b is None else b, "a": [["60000.1", "2.000"]] if a is None else a}


def live_sync() -> BinanceBookSync:
    """A Binance sync in sequence at u=10 with a 2-level book."""
    s = BinanceBookSync(OrderBook(BTC, 1000))
    s.on_diff(DepthDiff("BTCUSDT", 5, 10, 4, [["59999.0", "1"]], [["60001.0", "1"]], MS, MS), MS)
    s.on_snapshot(DepthSnapshot("BTCUSDT", 8, [["59999.0", "1"]], [["60001.0", "1"]], MS, MS), MS)
    assert s.health.status is BookStatus.LIVE and s.last_update_id == 10
    return s


def feed_diff(sync: BinanceBookSync, msg: dict[str, Any]) -> None:
    ev = bn.parse_message(orjson.dumps(msg), 2 * MS)
    assert isinstance(ev, DepthDiff)
    sync.on_diff(ev, 2 * MS)


# ----------------------------------------------------------------------------------- the issue's values
@pytest.mark.parametrize("level", [["abc", "1"], ["NaN", "1"], ["60000.0", "NaN"], ["1e400", "1"],
                                   ["60000.0", "1e400"], ["60000.0", "1", "x"], ["60000.0"], "ab", None, 5,
                                   ["60000.0", "-1"], ["-5.0", "1"], [["60000.0"], "1"]])
def test_a_bad_level_is_malformed_and_resyncs_the_book(level: Any) -> None:
    for side in ("b", "a"):
        s = live_sync()
        msg = depth(**{side: [["60000.0", "1.000"], level]})
        with pytest.raises(MalformedMessage):
            feed_diff(s, msg)
        assert s.health.status is BookStatus.SYNCING and "malformed" in s.health.reason
        assert s.needs_snapshot and s.stats.malformed == 1
        assert s.book.bbo() is None  # the half-applied book is not left to be read
        # the next snapshot + bridging diff brings it back
        s.snapshot_requested()
        s.on_diff(DepthDiff("BTCUSDT", 13, 14, 12, [["59990.0", "3"]], [], 3 * MS, 3 * MS), 3 * MS)
        s.on_snapshot(DepthSnapshot("BTCUSDT", 13, [["59990.0", "2"]], [["60010.0", "2"]], 3 * MS, 3 * MS), 3 * MS)
        assert s.health.status is BookStatus.LIVE
        assert s.book.bbo() == (599_900, 3000, 600_100, 2000)


@pytest.mark.parametrize("field,value", [("u", "12"), ("U", None), ("pu", 1.5), ("E", "1700000000000"),
                                         ("E", [1]), ("s", 5), ("b", "x"), ("a", {"p": 1}), ("u", True)])
def test_bad_ids_times_and_shapes_are_malformed_in_the_parser(field: str, value: Any) -> None:
    msg = depth()
    msg[field] = value
    with pytest.raises(MalformedMessage):
        bn.parse_message(orjson.dumps(msg), MS)


@pytest.mark.parametrize("msg", [
    {"e": "markPriceUpdate", "E": 1, "s": "BTCUSDT", "p": "NaN", "i": "1", "r": "0.0001", "T": 2},
    {"e": "markPriceUpdate", "E": 1, "s": "BTCUSDT", "p": "60000", "i": "1", "r": "inf", "T": 2},
    {"e": "markPriceUpdate", "E": 1, "s": "BTCUSDT", "p": "-1", "i": "1", "r": "0", "T": 2},
    {"e": "aggTrade", "E": 1, "s": "BTCUSDT", "a": 1, "p": "60000", "q": "-0.5", "T": 1, "m": True},
    {"e": "aggTrade", "E": 1, "s": "BTCUSDT", "a": 1, "p": "-60000", "q": "0.5", "T": 1, "m": True},
    {"e": "aggTrade", "E": 1, "s": "BTCUSDT", "a": "1", "p": "60000", "q": "0.5", "T": 1, "m": True},
    {"e": "aggTrade", "E": 1, "s": "BTCUSDT", "a": 1, "p": "60000", "q": "0.5", "T": 1, "m": "yes"},
    {"e": "trade", "E": 1, "s": "BTCUSDT", "t": 1, "p": "1e400", "q": "0.5", "T": 1, "m": True, "X": "MARKET"},
    {"e": "bookTicker", "u": 1, "s": "BTCUSDT", "b": "NaN", "B": "1", "a": "60000.1", "A": "1", "E": 1},
    {"e": "bookTicker", "u": 1, "s": "BTCUSDT", "b": "60000", "B": "-1", "a": "60000.1", "A": "1", "E": 1},
    {"lastUpdateId": "9", "bids": [], "asks": []},
])
def test_nan_marks_negative_trades_and_bad_tickers_are_malformed(msg: dict[str, Any]) -> None:
    with pytest.raises(MalformedMessage):
        bn.parse_message(orjson.dumps(msg), MS)


def test_an_unknown_event_type_is_ignored_not_fatal() -> None:
    assert bn.parse_message(orjson.dumps({"e": ["depthUpdate"]}), MS) is None  # was TypeError (unhashable)


def test_valid_messages_still_parse() -> None:
    t = bn.parse_message(orjson.dumps({"e": "aggTrade", "E": 1, "s": "BTCUSDT", "a": 7, "p": "60000.1",
                                       "q": "0.5", "T": 2, "m": False}), MS)
    assert t is not None and (t.price, t.qty, t.trade_id, t.buyer_is_maker, t.ts_event_ns) == (
        "60000.1", "0.5", 7, False, 2 * MS)
    f = bn.parse_message(orjson.dumps({"e": "markPriceUpdate", "E": 1, "s": "BTCUSDT", "p": "60000", "i": "",
                                       "r": "-0.0001", "T": 0}), MS)
    assert f is not None and (f.mark_price, f.index_price, f.funding_rate, f.next_funding_ns) == (
        60000.0, None, -0.0001, None)


def test_a_snapshot_with_bad_levels_asks_for_another() -> None:
    s = BinanceBookSync(OrderBook(BTC, 1000))
    s.on_diff(DepthDiff("BTCUSDT", 5, 10, 4, [["59999.0", "1"]], [], MS, MS), MS)
    s.snapshot_requested()
    with pytest.raises(MalformedMessage):
        s.on_snapshot(DepthSnapshot("BTCUSDT", 8, [["59999.0", "NaN"]], [], MS, MS), MS)
    assert s.needs_snapshot and s.health.status is BookStatus.SYNCING


def test_bybit_bad_levels_resubscribe_even_without_resync_on_gap() -> None:
    s = BybitBookSync(OrderBook(BTC, 1000), resync_on_gap=False)
    snap = {"topic": "orderbook.200.BTCUSDT", "type": "snapshot", "ts": 1,
            "data": {"s": "BTCUSDT", "b": [["60000.0", "1"]], "a": [["60000.1", "1"]], "u": 1, "seq": 1}}
    for ev in bb.parse_payload(snap, MS):
        s.on_diff(ev, MS)
    assert s.health.status is BookStatus.LIVE
    bad = copy.deepcopy(snap)
    bad["type"] = "delta"
    bad["data"].update(u=2, b=[["60000.0", "abc"]])
    with pytest.raises(MalformedMessage):
        for ev in bb.parse_payload(bad, MS):
            s.on_diff(ev, MS)
    assert s.needs_snapshot and s.health.status is BookStatus.SYNCING


@pytest.mark.parametrize("msg", [
    {"topic": "orderbook.200.BTCUSDT", "type": "weird", "ts": 1, "data": {"s": "BTCUSDT", "b": [], "a": [], "u": 1}},
    {"topic": "orderbook.200.BTCUSDT", "type": "delta", "ts": 1, "data": {"s": "BTCUSDT", "b": [], "a": [], "u": "2"}},
    {"topic": "publicTrade.BTCUSDT", "type": "snapshot", "ts": 1,
     "data": [{"T": 1, "s": "BTCUSDT", "S": "Hold", "v": "1", "p": "60000", "i": "1"}]},
    {"topic": "publicTrade.BTCUSDT", "type": "snapshot", "ts": 1,
     "data": [{"T": 1, "s": "BTCUSDT", "S": "Buy", "v": "-1", "p": "60000", "i": "1"}]},
    {"topic": "tickers.BTCUSDT", "type": "delta", "ts": 1, "data": {"symbol": "BTCUSDT", "markPrice": "NaN"}},
    {"topic": 5},
])
def test_bybit_bad_values_are_malformed(msg: dict[str, Any]) -> None:
    with pytest.raises(MalformedMessage):
        bb.parse_message(orjson.dumps(msg), MS)


# ----------------------------------------------------------------------------------- property tests
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(["", "abc", "NaN", "nan", "inf", "-inf", "1e400", "-1", "-0.5", "0", "60000.0", "1e-400",
                       "60000.1", "1.000", "12", "BTCUSDT", "Buy", "Sell", "snapshot", "delta"]),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.sampled_from(["p", "q", "s", "u"]), kids,
                                                              max_size=3),
    max_leaves=8,
)

BN_TEMPLATES: list[dict[str, Any]] = [
    depth(),
    {"e": "bookTicker", "u": 12, "s": "BTCUSDT", "b": "60000.0", "B": "1", "a": "60000.1", "A": "1", "E": 1, "T": 1},
    {"e": "aggTrade", "E": 1, "s": "BTCUSDT", "a": 1, "p": "60000", "q": "0.5", "f": 1, "l": 1, "T": 1, "m": True},
    {"e": "trade", "E": 1, "s": "BTCUSDT", "t": 1, "p": "60000", "q": "0.5", "T": 1, "m": True, "X": "MARKET"},
    {"e": "markPriceUpdate", "E": 1, "s": "BTCUSDT", "p": "60000", "i": "60001", "P": "1", "r": "0.0001", "T": 2},
    {"stream": "btcusdt@depthSnapshot", "data": {"lastUpdateId": 12, "E": 1, "T": 1,
                                                 "bids": [["60000.0", "1"]], "asks": [["60000.1", "1"]]}},
]


def _mutate(template: dict[str, Any], path: list[Any], value: Any) -> dict[str, Any]:
    msg = copy.deepcopy(template)
    node: Any = msg
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    return msg


def _paths(obj: Any, prefix: list[Any]) -> list[list[Any]]:
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.append([*prefix, k])
            out.extend(_paths(v, [*prefix, k]))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out.append([*prefix, i])
            out.extend(_paths(v, [*prefix, i]))
    return out


def _apply_binance(raw: bytes, sync: BinanceBookSync) -> None:
    ev = bn.parse_message(raw, 2 * MS)
    if isinstance(ev, DepthDiff):
        sync.on_diff(ev, 2 * MS)
    elif isinstance(ev, DepthSnapshot):
        sync.on_snapshot(ev, 2 * MS)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fuzz_binance_parse_sync_book_raise_only_malformed(data: st.DataObject) -> None:
    template = data.draw(st.sampled_from(BN_TEMPLATES))
    path = data.draw(st.sampled_from(_paths(template, [])))
    value = data.draw(JSON)
    raw = orjson.dumps(_mutate(template, path, value))
    sync = live_sync()
    try:
        _apply_binance(raw, sync)
    except MalformedMessage:
        assert sync.health.status is not BookStatus.LIVE or sync.stats.malformed == 0
    # whatever happened, the book is either LIVE and consistent or not offered as LIVE
    if sync.health.status is BookStatus.LIVE:
        bbo = sync.book.bbo()
        assert bbo is None or all(x > 0 for x in bbo)


@pytest.mark.parametrize("raw", [b'{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":1,"u":99999999999999999999999,"pu":0,'
                                 b'"b":[],"a":[]}', b'{"e":"depthUpdate","E":1e400}', b"[", b"null", b'"x"'])
def test_big_numbers_and_non_objects(raw: bytes) -> None:
    with pytest.raises(MalformedMessage):
        _apply_binance(raw, live_sync())


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_fuzz_arbitrary_bytes_raise_only_malformed(raw: bytes) -> None:
    sync = live_sync()
    with contextlib.suppress(MalformedMessage):
        _apply_binance(raw, sync)
    with contextlib.suppress(MalformedMessage):
        bb.parse_message(raw, MS)


BB_TEMPLATES: list[dict[str, Any]] = [
    {"topic": "orderbook.200.BTCUSDT", "type": "delta", "ts": 1,
     "data": {"s": "BTCUSDT", "b": [["60000.0", "1"]], "a": [["60000.1", "1"]], "u": 2, "seq": 5}},
    {"topic": "publicTrade.BTCUSDT", "type": "snapshot", "ts": 1,
     "data": [{"T": 1, "s": "BTCUSDT", "S": "Buy", "v": "1", "p": "60000", "i": "abc-1", "L": "PlusTick"}]},
    {"topic": "tickers.BTCUSDT", "type": "snapshot", "ts": 1,
     "data": {"symbol": "BTCUSDT", "markPrice": "60000", "indexPrice": "60001", "fundingRate": "0.0001",
              "nextFundingTime": "1700000000000"}},
]


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_fuzz_bybit_parse_sync_book_raise_only_malformed(data: st.DataObject) -> None:
    template = data.draw(st.sampled_from(BB_TEMPLATES))
    path = data.draw(st.sampled_from(_paths(template, [])))
    msg = _mutate(template, path, data.draw(JSON))
    s = BybitBookSync(OrderBook(BTC, 1000))
    for ev in bb.parse_payload({"topic": "orderbook.200.BTCUSDT", "type": "snapshot", "ts": 1,
                                "data": {"s": "BTCUSDT", "b": [["59999.0", "1"]], "a": [["60001.0", "1"]],
                                         "u": 1}}, MS):
        s.on_diff(ev, MS)
    try:
        for ev in bb.parse_message(orjson.dumps(msg), MS):
            if isinstance(ev, DepthDiff):
                s.on_diff(ev, MS)
    except MalformedMessage:
        pass


# ----------------------------------------------------------------------------------- feed + pipeline
ISSUE_MESSAGES = [
    depth(b=[["abc", "1"]]), depth(b=[["NaN", "1"]]), depth(a=[["1e400", "1"]]), depth(b=[["60000.0", "1", "2"]]),
    depth(u="12"), {"e": "markPriceUpdate", "E": 1, "s": "BTCUSDT", "p": "NaN", "r": "0", "T": 2},
]


def live_feed() -> BinanceMarketFeed:
    s = load_settings(overrides={"venue": {"name": "binance-usdm", "environment": "exchange-sim",
                                           "symbols": ["BTCUSDT"]}})
    seen: list[Any] = []
    feed = BinanceMarketFeed(s.venue, s.market, KNOWN, seen.append)
    sync = feed.syncs["BTCUSDT"]
    feed._on_public(orjson.dumps({"stream": "btcusdt@depth@100ms",
                                  "data": depth(U=5, u=10, pu=4, b=[["59999.0", "1"]], a=[["60001.0", "1"]])}), MS)
    sync.snapshot_requested()
    sync.on_snapshot(DepthSnapshot("BTCUSDT", 8, [["59999.0", "1"]], [["60001.0", "1"]], MS, MS), MS)
    assert sync.health.status is BookStatus.LIVE
    feed._want.clear()
    return feed


@pytest.mark.parametrize("m", ISSUE_MESSAGES)
def test_binance_feed_counts_each_bad_message_and_goes_on(m: dict[str, Any]) -> None:
    feed = live_feed()
    sync = feed.syncs["BTCUSDT"]
    feed._on_public(orjson.dumps({"stream": "btcusdt@depth@100ms", "data": m}), 2 * MS)  # does not raise
    assert feed.malformed == 1
    if m.get("e") == "depthUpdate":
        # a bad level resynced at once; a skipped diff (bad u) breaks the pu chain: the next one resyncs
        feed._on_public(orjson.dumps({"stream": "btcusdt@depth@100ms", "data": depth(U=13, u=14, pu=12)}), 3 * MS)
        assert sync.health.status is BookStatus.SYNCING and sync.needs_snapshot
        assert feed._want.is_set()  # the snapshot loop is woken to resync this symbol
    else:
        assert sync.health.status is BookStatus.LIVE  # a bad mark price touches no book


def test_binance_feed_survives_a_consumer_bug() -> None:
    feed = live_feed()
    def boom(ev: Any) -> None:
        raise RuntimeError("a consumer bug")

    feed.on_event = boom
    feed._on_market(orjson.dumps({"e": "aggTrade", "E": 1, "s": "BTCUSDT", "a": 1, "p": "60000", "q": "1",
                                  "T": 1, "m": True}), 3 * MS)
    assert feed.handler_errors == 1  # logged with its traceback, not raised


def test_pipeline_on_raw_counts_bad_messages_and_goes_on() -> None:
    s = load_settings()
    p = Pipeline({"BTCUSDT": BTC}, SignalEngine(s.signals, {"BTCUSDT": BTC}), None)

    async def run() -> None:
        p.on_raw(orjson.dumps(depth(U=5, u=10, pu=4, b=[["59999.0", "1"]], a=[["60001.0", "1"]])), MS)
        p.on_raw(orjson.dumps({"stream": "btcusdt@depthSnapshot", "data": {
            "lastUpdateId": 8, "bids": [["59999.0", "1"]], "asks": [["60001.0", "1"]]}}), MS)
        assert p.syncs["BTCUSDT"].health.status is BookStatus.LIVE
        for m in ISSUE_MESSAGES:
            p.on_raw(orjson.dumps(m), 2 * MS)
        p.on_raw(orjson.dumps(depth(b=[["abc", "1"]]) | {"s": "NEWSYM"}), 2 * MS)

    asyncio.run(run())
    # the first bad level resyncs BTCUSDT; the next three diffs are then only buffered (SYNCING, waiting
    # for a snapshot: they would be refused when spliced); `u` as a string, the NaN mark and the unknown
    # symbol whose sample level gives no instrument are refused at once
    assert p.malformed == 4
    assert p.syncs["BTCUSDT"].health.status is BookStatus.SYNCING


def test_bybit_feed_counts_bad_messages_resubscribes_and_goes_on() -> None:
    from bot.venues.bybit.feed import BybitMarketFeed

    s = load_settings(overrides={"venue": {"name": "bybit", "environment": "testnet", "symbols": ["BTCUSDT"]}})
    seen: list[Any] = []
    feed = BybitMarketFeed(s.venue, s.market, KNOWN, seen.append)
    sync = feed.syncs["BTCUSDT"]
    book = {"topic": "orderbook.200.BTCUSDT", "type": "snapshot", "ts": 1,
            "data": {"s": "BTCUSDT", "b": [["59999.0", "1"]], "a": [["60001.0", "1"]], "u": 1, "seq": 1}}
    feed._on_message(orjson.dumps(book), MS)
    assert sync.health.status is BookStatus.LIVE and len(seen) == 1
    bad = copy.deepcopy(book)
    bad.update(type="delta")
    bad["data"].update(u=2, a=[["60001.0", "1", "x"]])
    feed._on_message(orjson.dumps(bad), 2 * MS)
    feed._on_message(b'{"topic":"publicTrade.BTCUSDT","ts":1,"data":[{"T":1,"s":"BTCUSDT","S":"HOLD","v":"1",'
                     b'"p":"1","i":"1"}]}', 2 * MS)
    feed._on_message(b"{not json", 2 * MS)
    assert feed.malformed == 3
    assert sync.health.status is BookStatus.SYNCING and sync.needs_snapshot and feed._want.is_set()
    feed.on_event = lambda ev: (_ for _ in ()).throw(RuntimeError("a consumer bug"))
    feed._on_message(orjson.dumps(book), 3 * MS)  # the fresh snapshot applies, then the consumer raises
    assert feed.handler_errors == 1 and sync.needs_snapshot  # that book is resynced once more
