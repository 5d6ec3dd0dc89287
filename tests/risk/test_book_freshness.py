"""Issue 11 item 5: a book is tradable only while fresh.

The watchdog marks a book STALE only after `market.stale_after_ms` (5 s) of silence; a scalper's edge is
gone long before. Entries are refused (DenyReason.BOOK_STALE, counted) once the book's last update is
older than `market.max_book_age_ms`, measured as the stream's lag (exchange event -> local receive) or
its silence (local receive -> now), and /health says so, while the book is still LIVE.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from bot.domain.events import DepthDiff, DepthSnapshot, Trade
from bot.market.book import OrderBook
from bot.market.health import BookHealth, BookStatus
from bot.market.sync import BinanceBookSync, BybitBookSync
from bot.ops.state import RuntimeState
from bot.pipeline import Pipeline
from bot.risk import DenyReason, MarketView, RiskGate
from bot.settings import load_settings
from bot.settings.risk import RiskSection
from bot.venues.binance_usdm.instruments import KNOWN
from bot.venues.bybit import parse as bb
from tests.execution.harness import MS, T0, Rig, intent, running

BTC = KNOWN["BTCUSDT"]


def test_age_is_the_larger_of_lag_and_silence() -> None:
    h = BookHealth("BTCUSDT")
    assert h.age_ms(T0) == float("inf")  # no update yet: never fresh
    h.stamp(T0 - 30 * MS, T0)  # 30 ms from the exchange's clock to ours: the lag floor (offset + wire)
    assert h.lag_ms() == 0.0 and h.age_ms(T0 + 10 * MS) == 10.0
    assert h.age_ms(T0 + 700 * MS) == 700.0  # silent for 700 ms
    h.set(BookStatus.LIVE, "in sequence", T0)
    assert h.is_fresh(T0 + 400 * MS, 500) and not h.is_fresh(T0 + 501 * MS, 500)
    assert h.is_fresh(T0 + 10_000 * MS, 0)  # 0 turns the age check off
    h.stamp(T0 + 100 * MS - 830 * MS, T0 + 100 * MS)  # a stream falling behind: 800 ms over the floor
    assert h.lag_ms() == pytest.approx(800.0, abs=0.1) and not h.is_fresh(T0 + 100 * MS, 500)
    h.stamp(T0 + 200 * MS - 40 * MS, T0 + 200 * MS)  # caught up
    assert h.is_fresh(T0 + 200 * MS, 500)


def test_a_constant_clock_offset_is_not_age() -> None:
    """A recording replayed with its original event times (the loopback exchange's file source), or a
    local clock that is off by a constant: the lag floor absorbs it."""
    h = BookHealth("BTCUSDT")
    two_years = 2 * 365 * 86_400 * 1_000 * MS
    for k in range(100):
        t = T0 + k * 100 * MS
        h.stamp(t - two_years - (k % 7) * MS, t)  # 0-6 ms of jitter on top of the offset
    assert h.lag_ms() <= 6.0 and h.age_ms(T0 + 99 * 100 * MS) <= 6.0


def test_the_lag_floor_forgets_a_forward_clock_step_slowly() -> None:
    h = BookHealth("BTCUSDT")
    h.stamp(T0 - 10 * MS, T0)
    h.stamp(T0 + MS - 610 * MS, T0 + MS)  # our clock stepped 600 ms forward (or the stream is behind)
    assert h.lag_ms() == pytest.approx(600.0, abs=0.1)
    t = T0 + 60 * 60 * 1_000 * MS  # an hour later, the same 600 ms: the floor has risen ~440 ms
    h.stamp(t - 610 * MS, t)
    assert 100.0 < h.lag_ms() < 200.0


def test_gate_denies_a_stale_book_and_counts_it() -> None:
    g = RiskGate(RiskSection(), equity=10_000, now_ns=T0)
    fresh = MarketView(book_live=True, spread_bps=1.0, book_age_ms=120.0, max_book_age_ms=500.0)
    assert g.check_entry("BTCUSDT", "s", fresh, T0) is None
    old = MarketView(book_live=True, spread_bps=1.0, book_age_ms=5_000.0, max_book_age_ms=500.0)
    d = g.check_entry("BTCUSDT", "s", old, T0)
    assert d is not None and d.reason is DenyReason.BOOK_STALE and "5000 > 500 ms" in d.detail
    never = MarketView(book_live=True, spread_bps=1.0, book_age_ms=float("inf"), max_book_age_ms=500.0)
    assert g.check_entry("BTCUSDT", "s", never, T0).reason is DenyReason.BOOK_STALE  # type: ignore[union-attr]
    off = MarketView(book_live=True, spread_bps=1.0, book_age_ms=5_000.0, max_book_age_ms=0.0)
    assert g.check_entry("BTCUSDT", "s", off, T0) is None
    assert g.denials == {"BOOK_STALE": 2}


def test_syncs_stamp_every_applied_update() -> None:
    s = BinanceBookSync(OrderBook(BTC, 1000))
    s.on_diff(DepthDiff("BTCUSDT", 5, 10, 4, [["59999.0", "1"]], [["60001.0", "1"]], T0 - 5 * MS, T0), T0)
    assert s.health.last_recv_ns == 0  # buffered, not applied
    s.on_snapshot(DepthSnapshot("BTCUSDT", 8, [["59999.0", "1"]], [["60001.0", "1"]], T0, T0 + MS), T0 + MS)
    assert (s.health.last_event_ns, s.health.last_recv_ns) == (T0 - 5 * MS, T0)  # the bridging diff
    s.on_diff(DepthDiff("BTCUSDT", 11, 12, 10, [["59999.0", "2"]], [], T0 + 90 * MS, T0 + 100 * MS), T0 + 100 * MS)
    assert (s.health.last_event_ns, s.health.last_recv_ns) == (T0 + 90 * MS, T0 + 100 * MS)
    b = BybitBookSync(OrderBook(BTC, 1000))
    (ev,) = bb.parse_payload({"topic": "orderbook.200.BTCUSDT", "type": "snapshot", "ts": T0 // MS,
                              "data": {"s": "BTCUSDT", "b": [["1", "1"]], "a": [["2", "1"]], "u": 1}}, T0 + 3 * MS)
    b.on_diff(ev, T0 + 3 * MS)
    assert (b.health.last_event_ns, b.health.last_recv_ns) == (T0, T0 + 3 * MS)
    assert b.health.age_ms(T0 + 5 * MS) == 2.0  # the first lag is the floor: only the silence counts


def test_health_is_degraded_by_an_old_live_book_before_the_watchdog() -> None:
    st = RuntimeState(now_ns=T0)
    h = BookHealth("BTCUSDT")
    h.set(BookStatus.LIVE, "in sequence", T0)
    h.stamp(T0 - MS, T0)
    st.track_book("BTCUSDT", h)
    st.book_max_age_ms = 500
    assert st.health(T0 + 100 * MS)["status"] == "ok"
    frozen = st.health(T0 + 1_000 * MS)  # 1 s of silence: the 5 s watchdog has not fired
    assert frozen["status"] == "degraded" and "BTCUSDT book stale: 1000 ms old" in frozen["reasons"][0]
    assert st.feeds(T0 + 1_000 * MS)["BTCUSDT"]["age_ms"] == 1000.0


class _Signals:
    """Emits one entry intent per trade (the pipeline, the risk gate and the engine are real)."""

    def on_depth(self, *a: object) -> list:
        return []

    def on_trade(self, trade: Trade, now_ns: int) -> list:
        return [intent(ts=now_ns, price=600_000, stop=599_400, targets=((600_800, 1.0),))]

    def on_funding(self, *a: object) -> None:
        pass


async def test_a_frozen_stream_refuses_entries_before_the_watchdog(tmp_path: Path) -> None:
    """The issue's 5 s freeze: the book stays LIVE (the watchdog has not fired) but is 600 ms old."""
    rig = Rig(tmp_path)
    state = RuntimeState(now_ns=T0)
    max_age = load_settings().market.max_book_age_ms
    assert max_age == 500
    p = Pipeline(dict(KNOWN), _Signals(), rig.engine, state, clock=rig.clock,  # type: ignore[arg-type]
                 max_book_age_ms=max_age)

    def depth(U: int, u: int, pu: int, ts: int) -> bytes:
        return orjson.dumps({"e": "depthUpdate", "E": ts // MS, "T": ts // MS, "s": "BTCUSDT", "U": U, "u": u,
                             "pu": pu, "b": [["59999.9", "2.000"]], "a": [["60000.0", "2.000"]]})

    def trade(i: int, ts: int) -> bytes:
        return orjson.dumps({"e": "aggTrade", "E": ts // MS, "s": "BTCUSDT", "a": i, "p": "60000.0", "q": "0.010",
                             "T": ts // MS, "m": False})

    async with running(rig):
        p.on_raw(depth(5, 10, 4, T0), T0)
        p.on_raw(orjson.dumps({"stream": "btcusdt@depthSnapshot", "data": {
            "lastUpdateId": 8, "bids": [["59999.9", "1.000"]], "asks": [["60000.0", "1.000"]]}}), T0)
        sync = p.syncs["BTCUSDT"]
        assert sync.health.status is BookStatus.LIVE
        rig.clock.t = T0 + 600 * MS  # no depth for 600 ms; a trade arrives
        p.on_raw(trade(1, rig.clock.t), rig.clock.t)
        assert sync.health.status is BookStatus.LIVE  # still LIVE: only the age says no
        assert state.denials == {"BOOK_STALE": 1} and p.denials == 1
        assert rig.rows("trades") == []
        # depth flows again: the next entry goes through
        p.on_raw(depth(11, 12, 10, rig.clock.t), rig.clock.t)
        rig.clock.t += 50 * MS
        p.on_raw(trade(2, rig.clock.t), rig.clock.t)
        await rig.settle()
        assert state.denials == {"BOOK_STALE": 1} and len(rig.rows("trades")) == 1
