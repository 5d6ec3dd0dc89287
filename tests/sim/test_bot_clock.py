"""The simulator does not flatter (issue 13 item 3): orders on the bot's clock with compute, order, ack and
user-stream latency; latency distributions; the two queue models; the bookTicker top; funding only when
recorded or explicitly assumed. Unit tests, milliseconds each."""

from __future__ import annotations

import asyncio
import math
import statistics

import pytest

from bot.domain.events import BookTicker
from bot.domain.types import OrderStatus, Side
from bot.settings.sim import SimSection
from bot.venues.sim.gateway import SimGateway
from bot.venues.sim.latency import Latency, SimLatencies
from tests.sim.helpers import MS, Feed, limit, market, new_exchange, px, standard_book


def _lat(ms: float) -> Latency:
    return Latency.from_ms(ms)


def _gateway(compute_ms: float = 1.0, order_ms: float = 10.0, ack_ms: float = 7.0, stream_ms: float = 5.0):
    ex = new_exchange(order_latency=_lat(order_ms))
    feed = Feed(ex)
    standard_book(feed)
    bot_now = [0]
    gw = SimGateway(ex, clock=lambda: bot_now[0], latencies=SimLatencies(_lat(compute_ms), _lat(ack_ms),
                                                                         _lat(stream_ms)))
    return ex, feed, gw, bot_now


async def test_an_order_leaves_on_the_bots_clock_not_the_exchanges() -> None:
    ex, feed, gw, bot_now = _gateway()
    # the exchange has moved 50 ms past what the bot has seen (its messages are still on their way)
    decided = feed.t
    for _ in range(50):
        feed.step(1.0)
    ex.advance_to(feed.t)
    bot_now[0] = decided
    task = asyncio.create_task(gw.submit(market("e1", Side.BUY, 2)))
    await asyncio.sleep(0)
    d, sent, arrive = gw.sent["e1"]
    assert d == decided and sent == decided + 1 * MS and arrive == decided + 11 * MS
    # the exchange's clock is later than that arrival: it cannot be matched before it leaves the bot
    assert arrive < ex.now_ns
    ex.advance_to(ex.now_ns + 1)
    fill = ex.fills[-1]
    assert fill[1].client_id == "e1" and fill[7] == arrive
    # the answer is not seen before ack latency after the match; the fill not before the user stream's
    assert not task.done()
    assert gw.release(arrive + 5 * MS - 1) == 0 and gw._queue.qsize() == 0
    gw.release(arrive + 5 * MS)
    assert gw._queue.qsize() >= 1 and not task.done()  # NEW / TRADE on the user stream, ack still on its way
    update = gw._queue.get_nowait()
    assert update.ts_recv_ns == arrive + 5 * MS and update.ts_event_ns == arrive
    gw.release(arrive + 7 * MS)
    await asyncio.sleep(0)
    assert task.done() and task.result().status is OrderStatus.FILLED
    await gw.close()


async def test_without_a_bot_clock_the_gateway_is_unchanged() -> None:
    ex = new_exchange()
    standard_book(Feed(ex))
    gw = SimGateway(ex)  # paper trading: immediate, updates at once
    ack = await gw.submit(market("p1", Side.BUY, 2))
    assert ack.status is OrderStatus.FILLED and gw._queue.qsize() >= 1 and gw.next_release_ns() is None


def test_latency_distributions_are_seeded_and_shaped() -> None:
    lat = Latency.from_ms(2.0, 4.0, "lognormal", seed=3, p99_over_median=5.0)
    xs = sorted(lat.draw() / MS for _ in range(20_000))
    assert xs[0] >= 2.0  # never below the base
    assert statistics.median(xs) == pytest.approx(6.0, rel=0.03)  # base + median 4
    assert xs[int(0.99 * len(xs))] == pytest.approx(2.0 + 20.0, rel=0.08)  # base + 5 x 4
    a, b = (Latency.from_ms(2.0, 4.0, "lognormal", seed=3, p99_over_median=5.0) for _ in range(2))
    assert [a.draw() for _ in range(100)] == [b.draw() for _ in range(100)]  # same seed, same draws
    emp = Latency.from_ms(1.0, 10.0, "empirical", seed=1, samples=(1.0, 2.0, 3.0, 100.0, 2.5))
    ys = [emp.draw() / MS for _ in range(5000)]
    assert set(round(y, 6) for y in ys) <= {1.0 + 10.0 * s / 2.5 for s in (1.0, 2.0, 3.0, 100.0, 2.5)}
    assert statistics.median(ys) == pytest.approx(11.0)
    with pytest.raises(ValueError):
        Latency.from_ms(1.0, 1.0, "empirical")
    c = SimSection()
    lats = SimLatencies.from_settings(c)
    assert lats.compute.min_ns == int(c.compute_latency_ms * MS) and lats.ack.kind == c.latency_kind
    assert not math.isnan(lats.user_stream.sigma)


@pytest.mark.parametrize("model", ["pro_rata", "risk_averse"])
def test_queue_models_differ_on_cancels_not_on_trades(model: str) -> None:
    ex = new_exchange(queue_model=model)
    feed = Feed(ex)
    standard_book(feed)  # 1.000 BTC bid at 60000.0
    ex.place(limit("b1", Side.BUY, 10, "60000.0"))
    (o,) = ex.markets["BTCUSDT"].bids
    assert o.queue_ahead_lots == 1000
    feed.diff(bids=[["60000.0", "0.500"]])  # half the level cancelled, no trade
    assert o.queue_ahead_lots == 500  # all of the level was ahead: capped at its new size either way
    feed.diff(bids=[["60000.0", "0.600"]])  # someone joins behind us
    feed.diff(bids=[["60000.0", "0.300"]])  # half of it cancelled again
    # pro rata: ceil(500 * 300 / 600) = 250 ahead; risk-averse: the cancels were behind us, 300 (capped)
    assert o.queue_ahead_lots == (250 if model == "pro_rata" else 300)
    feed.trade("60000.0", "0.200", seller_aggressor=True)  # a print at our price eats the queue in both
    assert o.queue_ahead_lots == (50 if model == "pro_rata" else 100)
    feed.trade("60000.0", "0.105", seller_aggressor=True)
    assert ex.fills and ex.fills[-1][2] == (10 if model == "pro_rata" else 5)


def test_the_book_ticker_is_the_matching_top_while_newer_than_the_depth() -> None:
    ex = new_exchange()
    feed = Feed(ex)
    standard_book(feed)  # depth: 60000.0 / 60000.1 (0.002)
    m = ex.markets["BTCUSDT"]
    t = feed.step()
    # the ticker (id after the last diff) says the ask moved up to 60000.5 with 0.004 there
    ex.on_event(BookTicker("BTCUSDT", feed.u + 1, "60000.4", "0.300", "60000.5", "0.004", t, t), t)
    assert m.bbo() == (px("60000.4"), 300, px("60000.5"), 4)
    got = ex.place(market("m1", Side.BUY, 8))
    fills = [(f[3], f[2]) for f in ex.fills if f[1].client_id == "m1"]
    # 4 lots at the ticker's ask, then the depth levels behind it (60001.0); none at the stale 60000.1/.2
    assert fills == [(px("60000.5"), 4), (px("60001.0"), 4)] and got.status == "FILLED"
    # a resting bid at 60000.4 (the ticker's bid: 0.300 ahead of it)
    ex.place(limit("b1", Side.BUY, 3, "60000.4"))
    assert m.bids[0].queue_ahead_lots == 300
    # the ticker's ask comes down to our bid: we fill as maker
    t = feed.step()
    ex.on_event(BookTicker("BTCUSDT", feed.u + 2, "60000.3", "0.100", "60000.4", "0.050", t, t), t)
    assert ex.fills[-1][1].client_id == "b1" and ex.fills[-1][6] is True
    # a diff with a later id (u + 3): the depth book is the top again
    feed.diff(asks=[["60000.1", "0"], ["60000.2", "0"]])
    assert m.bbo() == (px("60000.0"), 1000, px("60000.5"), 10)


def test_book_ticker_top_can_be_turned_off() -> None:
    ex = new_exchange(book_ticker_top=False)
    feed = Feed(ex)
    standard_book(feed)
    t = feed.step()
    ex.on_event(BookTicker("BTCUSDT", feed.u + 1, "60000.4", "0.300", "60000.5", "0.004", t, t), t)
    assert ex.markets["BTCUSDT"].bbo() == (px("60000.0"), 1000, px("60000.1"), 2)


def test_recorded_raw_tickers_are_parsed_when_the_top_is_needed() -> None:
    ex = new_exchange()
    feed = Feed(ex)
    standard_book(feed)
    t = feed.step()
    raw = (b'{"stream":"btcusdt@bookTicker","data":{"e":"bookTicker","u":%d,"s":"BTCUSDT","b":"60000.2",'
           b'"B":"0.100","a":"60000.3","A":"0.200","T":1,"E":1}}' % (feed.u + 1))
    ex.on_message(raw, t)
    m = ex.markets["BTCUSDT"]
    assert m.bt_raw == raw  # kept, not parsed: nothing needed the top
    assert m.mid_ticks() == px("60000.2") + 0.5 and m.bt_raw is None


@pytest.mark.parametrize(("source", "paid"), [("recorded", False), ("assumed", True), ("none", False)])
def test_funding_is_never_invented(source: str, paid: bool) -> None:
    ex = new_exchange(funding_source=source, funding_rate_bps=1.0, funding_interval_s=60)
    feed = Feed(ex)
    standard_book(feed)
    ex.place(market("m1", Side.BUY, 2))
    for _ in range(130):  # two minutes with no markPrice stream
        feed.step(1000.0)
        ex.advance_to(feed.t)
    got = [r for r in ex.drain() if getattr(r, "reason", "") == "FUNDING_FEE"]
    assert bool(got) is paid


@pytest.mark.parametrize("source", ["recorded", "assumed", "none"])
def test_recorded_funding_follows_the_mark_price_stream(source: str) -> None:
    ex = new_exchange(funding_source=source, funding_rate_bps=1.0, funding_interval_s=3600)
    feed = Feed(ex)
    standard_book(feed)
    ex.place(market("m1", Side.BUY, 2))
    feed.mark(60000.0, rate=0.0005, next_funding_ns=feed.t + 10_000 * MS)
    for _ in range(12):
        feed.step(1000.0)
        ex.advance_to(feed.t)
    got = [r for r in ex.drain() if getattr(r, "reason", "") == "FUNDING_FEE"]
    if source == "none":
        assert got == []
    else:  # the recorded rate (5 bps) at the recorded time, long pays
        assert len(got) == 1 and got[0].balance_change == pytest.approx(-0.002 * 60000.0 * 0.0005)
