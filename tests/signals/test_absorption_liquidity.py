"""Touch trackers (absorption, iceberg, depletion), walls and round numbers, by hand."""

from __future__ import annotations

import pytest

from bot.domain.instrument import Instrument
from bot.market.book import OrderBook
from bot.signals.absorption import TouchTracker
from bot.signals.liquidity import WallTracker, round_step_ticks_for

INST = Instrument("binance-usdm", "TESTUSDT", "0.10", "0.001")


def test_absorption_refill_iceberg_depletion() -> None:
    t = TouchTracker(iceberg_min_refills=2)
    t.on_touch(100, 10, ts_ns=0)
    t.on_hit(100, 6)  # sellers hit 6 of the 10
    t.on_hit(99, 50)  # another price: not this level
    t.on_touch(100, 9, ts_ns=1)  # expected 4 left, shows 9: 5 refilled
    assert (t.hit_lots, t.hits, t.refills, t.refill_lots) == (6, 1, 1, 5)
    assert t.depletion == pytest.approx(0.1)
    assert not t.is_iceberg  # 6 traded < 10 ever shown
    t.on_hit(100, 8)
    t.on_touch(100, 10, ts_ns=2)  # expected 1, shows 10: refill 9
    assert (t.hit_lots, t.refills, t.refill_lots) == (14, 2, 14)
    assert t.absorption_ratio == pytest.approx(1.4)
    assert t.is_iceberg  # 14 traded > 10 peak, 2 refills
    t.on_touch(100, 2, ts_ns=3)  # cancels, not a hit: no refill, depletion 0.8
    assert t.refills == 2 and t.depletion == pytest.approx(0.8)
    assert t.held_ns(5) == 5
    t.on_touch(99, 30, ts_ns=4)  # the level gave way: a new level, counters reset
    assert (t.price_ticks, t.hit_lots, t.refills, t.peak_lots, t.since_ns) == (99, 0, 0, 30, 4)


def test_hit_fully_explained_by_trades_is_no_refill() -> None:
    t = TouchTracker()
    t.on_touch(100, 10, 0)
    t.on_hit(100, 12)  # more than shown (hidden size), level shows 0 expected, 0 shown
    t.on_touch(100, 0, 1)
    assert t.refills == 0


def _book() -> OrderBook:
    b = OrderBook(INST, depth_ticks=100)
    bids = [(1000 - i, 10) for i in range(10)]
    bids[4] = (996, 200)  # wall: 200 vs mean 10 of the others
    asks = [(1001 + i, 10) for i in range(10)]
    b.apply_snapshot_ticks(bids, asks)
    return b


def test_wall_found_then_pulled() -> None:
    b = _book()
    w = WallTracker(True, levels=10, mult=5.0, min_lots=100, pull_frac=0.3, scan_ns=1000)
    assert w.on_depth(b, 0) is None
    assert w.wall is not None and (w.wall.price_ticks, w.wall.lots) == (996, 200)
    assert w.distance_ticks(1000.5) == pytest.approx(4.5)
    b.set_bid(996, 20)  # 180 lots gone, none traded there: pulled
    pulled = w.on_depth(b, 10)
    assert pulled is not None and pulled.price_ticks == 996 and w.pulls == 1 and w.wall is None


def test_wall_traded_away_is_not_pulled() -> None:
    b = _book()
    w = WallTracker(True, levels=10, mult=5.0, min_lots=100, pull_frac=0.3, scan_ns=10**12)
    w.on_depth(b, 0)
    w.on_trade_at(996, 150)  # sellers ate 150 of it
    b.set_bid(996, 40)
    assert w.on_depth(b, 10) is None and w.pulls == 0 and w.wall is not None
    # the touch trades through it: consumed, not pulled
    for t in range(997, 1001):
        b.set_bid(t, 0)
    b.set_bid(996, 0)
    assert w.on_depth(b, 20) is None and w.wall is None and w.pulls == 0


def test_small_level_is_no_wall() -> None:
    b = _book()
    w = WallTracker(True, levels=10, mult=5.0, min_lots=1000, scan_ns=1)
    w.on_depth(b, 0)
    assert w.wall is None


def test_round_step() -> None:
    assert round_step_ticks_for(61_800.0, 0.1) == 1000  # 100.0 USDT
    assert round_step_ticks_for(3_400.0, 0.01) == 1000  # 10.00 USDT
    assert round_step_ticks_for(0.5, 0.0001) == 10  # 0.001
