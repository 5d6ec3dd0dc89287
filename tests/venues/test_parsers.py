"""Venue parsers: real payload shapes, unknown fields ignored, malformed input rejected clearly."""

from __future__ import annotations

import orjson
import pytest

from bot.domain.events import BookTicker, DepthDiff, DepthSnapshot, FundingInfo, Trade
from bot.errors import MalformedMessage
from bot.venues.binance_usdm import parse as bn
from bot.venues.bybit import parse as bb

DEPTH = (b'{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1723161256299,"T":1723161256298,'
         b'"s":"BTCUSDT","U":5,"u":9,"pu":4,"b":[["61800.20","0.014"]],"a":[["61800.30","3.330"]]}}')


def test_binance_depth_combined_and_ws_mode() -> None:
    ev = bn.parse_message(DEPTH, 7)
    assert isinstance(ev, DepthDiff)
    assert (ev.symbol, ev.first_id, ev.final_id, ev.prev_final_id) == ("BTCUSDT", 5, 9, 4)
    assert ev.bids == [["61800.20", "0.014"]] and ev.ts_event_ns == 1723161256299 * 10**6 and ev.ts_recv_ns == 7
    bare = orjson.loads(DEPTH)["data"]
    assert isinstance(bn.parse_message(orjson.dumps(bare), 0), DepthDiff)


def test_binance_unknown_fields_and_events_are_ignored() -> None:
    msg = orjson.loads(DEPTH)
    msg["data"].update({"ps": "BTCUSDT", "st": 1, "zz": [1, 2]})
    assert isinstance(bn.parse_message(orjson.dumps(msg), 0), DepthDiff)
    assert bn.parse_message(b'{"result":null,"id":1}', 0) is None
    assert bn.parse_message(b'{"stream":"x@kline_1m","data":{"e":"kline","E":1}}', 0) is None


def test_binance_other_events() -> None:
    bt = bn.parse_message(b'{"e":"bookTicker","u":5,"s":"BTCUSDT","b":"1.0","B":"2","a":"1.1","A":"3",'
                          b'"T":1,"E":2}', 0)
    assert isinstance(bt, BookTicker) and (bt.update_id, bt.bid_qty, bt.ask_price) == (5, "2", "1.1")
    tr = bn.parse_message(b'{"e":"aggTrade","E":1,"s":"BTCUSDT","a":9,"p":"10.5","q":"0.2","nq":"0.2","f":1,'
                          b'"l":2,"T":3,"m":true}', 0)
    assert isinstance(tr, Trade) and tr.trade_id == 9 and not tr.aggressor_buy and tr.ts_event_ns == 3 * 10**6
    t2 = bn.parse_message(b'{"e":"trade","E":1,"T":1,"s":"BTCUSDT","t":4,"p":"1","q":"1","X":"MARKET",'
                          b'"m":false}', 0)
    assert isinstance(t2, Trade) and t2.aggressor_buy
    assert bn.parse_message(b'{"e":"trade","E":1,"T":1,"s":"B","t":4,"p":"1","q":"1","X":"ADL","m":false}', 0) is None
    mp = bn.parse_message(b'{"e":"markPriceUpdate","E":5,"s":"BTCUSDT","p":"100.5","i":"100.4","P":"1",'
                          b'"r":"0.0001","T":1700000000000}', 0)
    assert isinstance(mp, FundingInfo) and mp.funding_rate == 0.0001 and mp.next_funding_ns == 1700000000000 * 10**6


def test_binance_snapshots_bare_and_wrapped() -> None:
    body = b'{"lastUpdateId":77,"E":1,"T":1,"bids":[["1.0","1"]],"asks":[["1.1","1"]]}'
    bare = bn.parse_message(body, 0)
    assert isinstance(bare, DepthSnapshot) and bare.symbol == "" and bare.last_update_id == 77
    wrapped = bn.parse_message(b'{"stream":"ethusdt@depthSnapshot","data":' + body + b"}", 0)
    assert isinstance(wrapped, DepthSnapshot) and wrapped.symbol == "ETHUSDT"


@pytest.mark.parametrize(
    "raw, words",
    [
        (b'{"stream":"btcusdt@depth","data":{"e":"depthUpdate","E":1', "invalid JSON"),
        (b"[1,2]", "JSON object"),
        (b'{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":1,"u":2,"b":[],"a":[]}', "'pu'"),
        (b'{"e":"bookTicker","u":"x","s":"B","b":"1","B":"1","a":"1","A":"1","E":null}', "bookTicker"),
    ],
)
def test_binance_malformed(raw: bytes, words: str) -> None:
    with pytest.raises(MalformedMessage, match=words):
        bn.parse_message(raw, 0)


def test_bybit_messages() -> None:
    ob = bb.parse_message(b'{"topic":"orderbook.50.BTCUSDT","type":"delta","ts":5,"data":{"s":"BTCUSDT",'
                          b'"b":[["1","2"]],"a":[],"u":42,"seq":7,"new":1},"cts":4}', 9)
    assert len(ob) == 1 and isinstance(ob[0], DepthDiff) and ob[0].final_id == 42 and not ob[0].is_snapshot
    tr = bb.parse_message(b'{"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":1,"data":['
                          b'{"T":1,"s":"BTCUSDT","S":"Buy","v":"0.1","p":"10","L":"PlusTick","i":"a-1","BT":false},'
                          b'{"T":2,"s":"BTCUSDT","S":"Sell","v":"0.2","p":"9","L":"MinusTick","i":"17",'
                          b'"BT":false}]}', 0)
    assert [t.aggressor_buy for t in tr] == [True, False] and tr[1].trade_id == 17
    tk = bb.parse_message(b'{"topic":"tickers.BTCUSDT","type":"delta","ts":1,"data":{"symbol":"BTCUSDT",'
                          b'"fundingRate":"0.0001"}}', 0)
    assert isinstance(tk[0], FundingInfo) and tk[0].mark_price is None and tk[0].funding_rate == 0.0001
    assert bb.parse_message(b'{"success":true,"ret_msg":"pong","op":"ping"}', 0) == []
    with pytest.raises(MalformedMessage):
        bb.parse_message(b'{"topic":"orderbook.50.BTCUSDT","type":"delta","ts":5,"data":{}}', 0)


def test_exchange_info_from_the_cryptofeed_capture() -> None:
    from bot.venues.binance_usdm.instruments import load_exchange_info
    from tests.conftest import BINANCE

    if not BINANCE.is_dir():
        pytest.skip("../shared/data/binance_usdm is absent")
    table = load_exchange_info(str(BINANCE / "cryptofeed_BINANCE_FUTURES.0"))
    sushi = table["SUSHIUSDT"]
    assert (sushi.tick_size, sushi.step_size) == ("0.0010", "1")
    # in 2021 BTCUSDT traded on a 0.01 tick (0.10 today, see instruments.KNOWN)
    assert table["BTCUSDT"].tick_size == "0.01" and table["BTCUSDT"].step_size == "0.001"
