"""Book sequencing by the venues' rules, with faults injected."""

from __future__ import annotations

from bot.domain.events import DepthDiff, DepthSnapshot
from bot.domain.instrument import Instrument
from bot.market.book import OrderBook
from bot.market.health import BookStatus
from bot.market.sync import BinanceBookSync, BybitBookSync

BTC = Instrument("binance-usdm", "BTCUSDT", "0.10", "0.001")


def diff(U: int, u: int, pu: int, bids=(), asks=()) -> DepthDiff:
    return DepthDiff("BTCUSDT", U, u, pu, [list(x) for x in bids], [list(x) for x in asks], 0, 0)


SNAP = DepthSnapshot("BTCUSDT", 100, [["100.0", "1.000"]], [["100.1", "1.000"]], 0, 0)


def test_splice_drops_old_events_and_bridges_on_the_snapshot_id() -> None:
    s = BinanceBookSync(OrderBook(BTC))
    assert s.needs_snapshot and s.health.status is BookStatus.SYNCING
    s.on_diff(diff(90, 95, 89, [["99.0", "5"]]), 1)  # u < lastUpdateId: dropped
    s.on_diff(diff(96, 103, 95, [["100.0", "2.000"]]), 2)  # U <= 100 <= u: the bridge
    s.on_diff(diff(104, 110, 103, asks=[["100.1", "0"], ["100.2", "3.000"]]), 3)
    s.on_snapshot(SNAP, 4)
    assert s.health.status is BookStatus.LIVE
    assert s.stats.dropped == 1 and s.stats.applied == 2 and s.stats.gaps == 0
    assert s.book.bbo() == (1000, 2000, 1002, 3000)
    assert s.book.bid_size(990) == 0  # the dropped event's level was never applied
    assert s.last_update_id == 110
    s.on_diff(diff(111, 120, 110, [["100.0", "0"]]), 5)
    assert s.book.best_bid() is None and s.stats.applied == 3


def test_snapshot_before_any_diff_waits_for_the_bridging_event() -> None:
    s = BinanceBookSync(OrderBook(BTC))
    s.on_snapshot(SNAP, 1)
    assert s.health.status is BookStatus.SYNCING  # snapshot loaded, bridge not seen yet
    s.on_diff(diff(80, 99, 79), 2)  # older than the snapshot
    s.on_diff(diff(100, 105, 99, [["100.0", "7.000"]]), 3)
    assert s.health.status is BookStatus.LIVE and s.book.best_bid() == (1000, 7000)


def test_gap_detected_by_pu_and_resynced_with_a_new_snapshot() -> None:
    s = BinanceBookSync(OrderBook(BTC))
    s.on_snapshot(SNAP, 0)
    s.on_diff(diff(95, 105, 94), 1)
    s.on_diff(diff(106, 110, 105), 2)
    assert s.health.is_live and not s.needs_snapshot
    s.on_diff(diff(115, 120, 112), 3)  # pu 112 != 110: a message was lost
    assert s.stats.gaps == 1 and s.stats.resyncs == 1
    assert s.needs_snapshot and s.health.status is BookStatus.SYNCING
    assert "gap" in s.health.reason
    s.snapshot_requested()
    s.on_diff(diff(121, 125, 120, [["100.5", "1.000"]], [["100.6", "1.000"]]), 4)
    s.on_snapshot(DepthSnapshot("BTCUSDT", 122, [["100.4", "1.000"]], [["100.6", "2.000"]], 0, 0), 5)
    assert s.health.is_live
    assert s.book.bbo() == (1005, 1000, 1006, 1000)  # the buffered bridge applied on the new snapshot


def test_snapshot_older_than_buffered_diffs_is_requested_again() -> None:
    s = BinanceBookSync(OrderBook(BTC))
    s.on_diff(diff(200, 210, 199), 1)
    s.on_diff(diff(211, 220, 210), 2)
    s.snapshot_requested()
    s.on_snapshot(SNAP, 3)  # lastUpdateId 100 < first buffered U 200: cannot bridge
    assert s.needs_snapshot and s.health.status is BookStatus.SYNCING
    assert "older" in s.health.reason and s.stats.snapshots == 0
    s.on_snapshot(DepthSnapshot("BTCUSDT", 215, [["100.0", "1"]], [["100.1", "1"]], 0, 0), 4)
    assert s.health.is_live and s.last_update_id == 220
    assert s.stats.applied == 1 and s.stats.dropped == 1  # u=210 < 215 dropped; 211..220 bridges


def test_duplicate_after_sync_is_dropped_not_a_gap() -> None:
    s = BinanceBookSync(OrderBook(BTC))
    s.on_snapshot(SNAP, 0)
    s.on_diff(diff(95, 105, 94), 1)
    s.on_diff(diff(95, 105, 94), 2)  # the same event again (e.g. overlap during a rollover)
    assert s.stats.gaps == 0 and s.stats.dropped == 1 and s.health.is_live


def test_crossed_book_is_flagged_and_recovers() -> None:
    s = BinanceBookSync(OrderBook(BTC))
    s.on_snapshot(SNAP, 0)
    s.on_diff(diff(95, 105, 94, [["100.2", "1.000"]]), 1)
    assert s.health.status is BookStatus.CROSSED and s.stats.crossed == 1
    s.on_diff(diff(106, 107, 105, [["100.2", "0"]]), 2)
    assert s.health.is_live


def test_stale_then_next_update_revives() -> None:
    s = BinanceBookSync(OrderBook(BTC))
    s.on_snapshot(SNAP, 0)
    s.on_diff(diff(95, 105, 94), 1)
    s.mark_stale("no message for 5000 ms", 10)
    assert s.health.status is BookStatus.STALE and s.health.since_ns == 10
    s.on_diff(diff(106, 107, 105), 11)
    assert s.health.is_live


def bybit(kind: str, u: int, bids=(), asks=()) -> DepthDiff:
    return DepthDiff("XRPUSDT", u, u, -1, [list(x) for x in bids], [list(x) for x in asks], 0, 0,
                     is_snapshot=kind == "snapshot")


XRP = Instrument("bybit", "XRPUSDT", "0.0001", "1")


def test_bybit_snapshot_delta_stale_gap_and_restart() -> None:
    s = BybitBookSync(OrderBook(XRP))
    s.on_diff(bybit("delta", 5, [["1.0000", "5"]]), 0)  # before any snapshot: cannot apply
    assert s.stats.dropped == 1 and not s.health.is_live
    s.on_diff(bybit("snapshot", 10, [["1.0000", "5"]], [["1.0001", "7"]]), 1)
    s.on_diff(bybit("delta", 11, [["1.0000", "0"], ["0.9999", "3"]]), 2)
    assert s.book.bbo() == (9999, 3, 10001, 7) and s.health.is_live
    s.on_diff(bybit("delta", 11, [["0.9999", "100"]]), 3)  # stale u: dropped
    assert s.book.best_bid() == (9999, 3)
    s.on_diff(bybit("delta", 13), 4)  # u jumped: gap -> resubscribe for a fresh snapshot
    assert s.stats.gaps == 1 and s.needs_snapshot and s.health.status is BookStatus.SYNCING
    s.on_diff(bybit("delta", 1, [["2.0000", "1"]], [["2.0001", "1"]]), 5)  # u = 1: service restart
    assert s.book.bbo() == (20000, 1, 20001, 1) and s.health.is_live
