"""Matching engine: queue position, partial fills, slippage, time in force, reduce-only, latency."""

from __future__ import annotations

import pytest

from bot.domain.types import Side, TimeInForce
from bot.venues.sim.latency import Latency
from bot.venues.sim.orders import OrderReport, SimError
from tests.sim.helpers import Feed, limit, market, new_exchange, px, standard_book


def _trades(ex):  # type: ignore[no-untyped-def]
    return [r for r in ex.drain() if isinstance(r, OrderReport) and r.exec_type == "TRADE"]


def test_resting_bid_fills_only_after_the_volume_ahead_trades() -> None:
    ex = new_exchange()
    f = Feed(ex)
    standard_book(f)
    o = ex.place(limit("b1", Side.BUY, 10, "60000.0"))
    assert o.status == "NEW" and o.queue_ahead_lots == 1000  # 1.000 BTC displayed ahead of us
    ex.drain()
    f.trade("60000.0", "0.600", seller_aggressor=True)
    f.trade("60000.0", "0.399", seller_aggressor=True)
    assert _trades(ex) == []
    assert ex.query("BTCUSDT", "b1").queue_ahead_lots == 1
    f.trade("60000.1", "0.500", seller_aggressor=False)  # buys at the ask do not touch bids
    f.trade("60000.0", "0.005", seller_aggressor=True)  # 1 lot ahead, then 4 for us
    fills = _trades(ex)
    assert [(r.last_lots, r.order.status, r.is_maker) for r in fills] == [(4, "PARTIALLY_FILLED", True)]
    assert fills[0].last_ticks == px("60000.0")
    f.trade("60000.0", "0.010", seller_aggressor=True)
    fills = _trades(ex)
    assert [(r.last_lots, r.order.status) for r in fills] == [(6, "FILLED")]
    assert ex.position_lots("BTCUSDT") == 10
    assert ex.open_orders() == []
    # maker fee: 2 bps of 0.006 BTC * 60000
    assert fills[0].fee == pytest.approx(0.006 * 60000 * 0.0002)


def test_cancels_advance_the_queue_pro_rata_and_additions_join_behind() -> None:
    ex = new_exchange()
    f = Feed(ex)
    standard_book(f)
    ex.place(limit("b1", Side.BUY, 10, "60000.0"))
    f.diff(bids=[["60000.0", "0.500"]])  # 0.5 BTC cancelled out of 1.0: half the queue ahead goes
    assert ex.query("BTCUSDT", "b1").queue_ahead_lots == 500
    f.diff(bids=[["60000.0", "0.800"]])  # arrivals join behind us
    assert ex.query("BTCUSDT", "b1").queue_ahead_lots == 500
    f.diff(bids=[["60000.0", "0.400"]])  # half of the level cancelled: ceil(500 * 400/800)
    assert ex.query("BTCUSDT", "b1").queue_ahead_lots == 250
    ex.drain()
    f.trade("60000.0", "0.250", seller_aggressor=True)
    assert _trades(ex) == []
    f.trade("60000.0", "0.003", seller_aggressor=True)
    assert [r.last_lots for r in _trades(ex)] == [3]


def test_trade_through_our_price_fills_all_and_a_crossing_book_fills_at_our_price() -> None:
    ex = new_exchange()
    f = Feed(ex)
    standard_book(f)
    ex.place(limit("b1", Side.BUY, 10, "59999.9"))
    ex.place(limit("s1", Side.SELL, 7, "60001.0"))
    ex.drain()
    f.trade("59999.8", "0.001", seller_aggressor=True)  # a sell print below our bid: swept through us
    fills = _trades(ex)
    assert [(r.order.client_id, r.last_lots, r.last_ticks) for r in fills] == [("b1", 10, px("59999.9"))]
    # the bid side moves up to 60001.0: our ask there is hit (as maker, at our price)
    f.diff(bids=[["60001.0", "0.004"]], asks=[["60000.1", "0"], ["60000.2", "0"], ["60000.5", "0"]])
    fills = _trades(ex)
    assert [(r.order.client_id, r.last_lots, r.last_ticks, r.is_maker) for r in fills] == [
        ("s1", 4, px("60001.0"), True)]
    assert ex.query("BTCUSDT", "s1").status == "PARTIALLY_FILLED"


def test_market_order_slippage_equals_walking_the_book() -> None:
    ex = new_exchange()
    f = Feed(ex)
    standard_book(f)
    book = ex.markets["BTCUSDT"].book
    filled, notional, worst = book.sweep(True, 8)
    ex.place(market("m1", Side.BUY, 8))
    fills = _trades(ex)
    assert [(r.last_ticks, r.last_lots) for r in fills] == [(px("60000.1"), 2), (px("60000.2"), 3),
                                                            (px("60000.5"), 3)]
    assert sum(r.last_lots for r in fills) == filled
    assert sum(r.last_lots * r.last_ticks for r in fills) == notional
    assert fills[-1].last_ticks == worst
    assert fills[-1].order.avg_ticks() == pytest.approx(notional / filled)
    assert all(not r.is_maker for r in fills)
    # The lots we took are gone for the next order until the venue publishes new sizes there.
    ex.place(market("m2", Side.BUY, 8))
    assert [(r.last_ticks, r.last_lots) for r in _trades(ex)] == [(px("60000.5"), 7), (px("60001.0"), 1)]
    f.diff(asks=[["60000.1", "0.002"]])
    ex.place(market("m3", Side.BUY, 2))
    assert [(r.last_ticks, r.last_lots) for r in _trades(ex)] == [(px("60000.1"), 2)]


def test_time_in_force_gtx_ioc_fok() -> None:
    ex = new_exchange()
    f = Feed(ex)
    standard_book(f)
    with pytest.raises(SimError) as e:
        ex.place(limit("p1", Side.BUY, 5, "60000.1", TimeInForce.GTX))
    assert e.value.code == -5022
    assert ex.place(limit("p2", Side.BUY, 5, "60000.0", TimeInForce.GTX)).status == "NEW"
    o = ex.place(limit("i1", Side.BUY, 10, "60000.2", TimeInForce.IOC))
    assert (o.filled_lots, o.status) == (5, "EXPIRED")
    o = ex.place(limit("f1", Side.BUY, 100, "60000.5", TimeInForce.FOK))
    assert (o.filled_lots, o.status) == (0, "EXPIRED")
    o = ex.place(limit("g1", Side.BUY, 20, "60000.5"))  # GTC: takes 10, rests 10 at 60000.5
    assert (o.filled_lots, o.status) == (10, "PARTIALLY_FILLED")
    assert [x.client_id for x in ex.open_orders()] == ["p2", "g1"]


def test_reduce_only_never_flips_the_position() -> None:
    ex = new_exchange()
    f = Feed(ex)
    standard_book(f)
    ex.place(market("e1", Side.BUY, 5))
    assert ex.position_lots("BTCUSDT") == 5
    ex.place(limit("tp", Side.SELL, 5, "60005.0", reduce_only=True))
    o = ex.place(market("x1", Side.SELL, 50, reduce_only=True))  # cut to the position
    assert o.filled_lots == 5 and ex.position_lots("BTCUSDT") == 0
    assert ex.query("BTCUSDT", "tp").status == "EXPIRED"  # nothing left to reduce
    with pytest.raises(SimError) as e:
        ex.place(market("x2", Side.SELL, 1, reduce_only=True))
    assert e.value.code == -2022
    # A resting reduce-only order fills at most the position even when more trades through it.
    ex.place(market("e2", Side.BUY, 3))
    ex.place(limit("tp2", Side.SELL, 10, "60005.0", reduce_only=True))
    f.trade("60006.0", "1.000", seller_aggressor=False)
    assert ex.position_lots("BTCUSDT") == 0
    assert ex.query("BTCUSDT", "tp2").filled_lots == 3


def test_margin_and_notional_checks_on_entry() -> None:
    ex = new_exchange(balance=100.0, default_leverage=10)
    f = Feed(ex)
    standard_book(f)
    with pytest.raises(SimError) as e:  # 0.02 BTC ~ 1200 USDT notional needs 120 USDT at 10x
        ex.place(limit("big", Side.BUY, 20, "59999.0"))
    assert e.value.code == -2019
    with pytest.raises(SimError) as e:  # 0.001 BTC ~ 60 USDT < minNotional 100
        ex.place(limit("small", Side.BUY, 1, "59999.0"))
    assert e.value.code == -4164
    assert ex.place(limit("ok", Side.BUY, 10, "59999.0")).status == "NEW"  # 60 USDT margin
    with pytest.raises(SimError) as e:  # the resting order holds its margin
        ex.place(limit("ok2", Side.BUY, 10, "59999.0"))
    assert e.value.code == -2019
    with pytest.raises(SimError) as e:
        ex.cancel("BTCUSDT", "nope")
    assert e.value.code == -2011
    with pytest.raises(SimError) as e:
        ex.query("BTCUSDT", "nope")
    assert e.value.code == -2013


def test_an_order_meets_the_book_as_it_is_when_it_arrives() -> None:
    ex = new_exchange(order_latency=Latency.from_ms(5.0))
    f = Feed(ex)
    standard_book(f)
    t_send = f.t
    ticket = ex.send("place", market("m1", Side.BUY, 2), now_ns=t_send)
    # 2 ms later, before the order arrives, the ask moves up.
    f.diff(asks=[["60000.1", "0"], ["60000.2", "0"]])
    assert ex.position_lots("BTCUSDT") == 0
    f.step(10)
    ex.advance_to(f.t)
    results = [r for r in ex.drain() if getattr(r, "ticket", None) == ticket]
    assert len(results) == 1 and results[0].error is None
    assert results[0].ts_ns == t_send + 5_000_000
    o = ex.query("BTCUSDT", "m1")
    assert o.avg_ticks() == px("60000.5")  # not 60000.1: that level was gone when it arrived
