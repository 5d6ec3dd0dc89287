"""The DOM against hand-computed values and, with hypothesis, against a naive dict reference."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.domain.instrument import Instrument
from bot.market.book import OrderBook

BTC = Instrument("binance-usdm", "BTCUSDT", "0.10", "0.001")


def make(depth_ticks: int = 1000) -> OrderBook:
    b = OrderBook(BTC, depth_ticks=depth_ticks)
    b.apply_snapshot(
        [["100.0", "1.000"], ["99.9", "2.000"], ["99.5", "0.500"]],
        [["100.1", "1.500"], ["100.3", "3.000"], ["101.0", "0.001"]],
    )
    return b


def test_snapshot_converts_to_ticks_and_lots() -> None:
    b = make()
    assert b.bbo() == (1000, 1000, 1001, 1500)
    assert b.bids() == [(1000, 1000), (999, 2000), (995, 500)]
    assert b.asks(2) == [(1001, 1500), (1003, 3000)]
    assert b.spread_ticks() == 1
    assert b.mid_ticks() == 1000.5
    assert not b.is_crossed()


def test_diff_sets_removes_and_moves_best() -> None:
    b = make()
    b.apply_diff([["100.0", "0.000"], ["99.8", "4.000"]], [["100.1", "0"], ["100.2", "0.250"]])
    assert b.best_bid() == (999, 2000)  # best removed -> next level
    assert b.best_ask() == (1002, 250)
    assert b.bid_size(998) == 4000
    # removing a level we do not hold is a no-op (Binance rule 9)
    b.apply_diff([["50.0", "0.000"]], [["200.0", "0.000"]])
    assert b.bbo() == (999, 2000, 1002, 250)
    # an improving bid becomes the best
    b.apply_diff([["100.1", "0.100"]], [])
    assert b.best_bid() == (1001, 100)


def test_crossed_detection() -> None:
    b = make()
    b.apply_diff([["100.2", "1.000"]], [])
    assert b.is_crossed()
    b.apply_diff([["100.2", "0"]], [])
    assert not b.is_crossed()


def test_depth_imbalance_cumulative_and_sweep() -> None:
    b = make()
    assert b.depth_lots(2) == (3000, 4500)
    assert b.imbalance(2) == (3000 - 4500) / 7500
    assert b.imbalance(10) == (3500 - 4501) / 8001
    assert b.cumulative_asks(3) == [(1001, 1500), (1003, 4500), (1010, 4501)]
    filled, notional, worst = b.sweep(True, 2000)  # buy 2.000: 1.5 @ 100.1 + 0.5 @ 100.3
    assert (filled, notional, worst) == (2000, 1500 * 1001 + 500 * 1003, 1003)
    assert b.vwap_ticks(True, 2000) == (1500 * 1001 + 500 * 1003) / 2000
    assert b.impact_ticks(True, 2000) == b.vwap_ticks(True, 2000) - 1001
    assert b.vwap_ticks(False, 10_000) is None  # not enough bids


def test_levels_beyond_depth_are_dropped_and_window_recenters() -> None:
    b = OrderBook(BTC, depth_ticks=100)
    b.apply_snapshot([["100.0", "1"]], [["100.1", "1"]])
    b.apply_diff([["50.0", "1.000"]], [["150.0", "1.000"]])  # 500 ticks away: beyond the window
    assert b.bid_count == 1 and b.ask_count == 1
    # The market trends up by 30 ticks a step, far past the window: the book follows it.
    for step in range(1, 40):
        px = 1000 + 30 * step
        b.apply_diff_ticks([(px, 5), (px - 30, 0)], [(px + 1, 5), (px - 29, 0)])
        assert b.bbo() == (px, 5, px + 1, 5)
    assert b.recenters > 0
    assert b.bid_count <= 3 * 100  # bounded by the window, not by the history


def test_empty_book_reads() -> None:
    b = OrderBook(BTC)
    assert b.bbo() is None and b.best_bid() is None and b.mid_ticks() is None
    assert b.imbalance(10) == 0.0 and b.bids(5) == [] and b.depth_lots(5) == (0, 0)
    b.apply_diff([["100.0", "1.000"]], [])  # a cold book accepts levels
    assert b.best_bid() == (1000, 1000) and b.best_ask() is None


# ---------------------------------------------------------------------- property test
class Naive:
    """The obviously-correct model: two dicts, sorted on every read."""

    def __init__(self) -> None:
        self.b: dict[int, int] = {}
        self.a: dict[int, int] = {}

    def set(self, side: dict[int, int], t: int, q: int) -> None:
        if q:
            side[t] = q
        else:
            side.pop(t, None)

    def bids(self, n: int) -> list[tuple[int, int]]:
        return sorted(self.b.items(), reverse=True)[:n]

    def asks(self, n: int) -> list[tuple[int, int]]:
        return sorted(self.a.items())[:n]


levels = st.lists(st.tuples(st.integers(900, 1100), st.integers(0, 50)), max_size=12)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(levels, levels), min_size=1, max_size=40))
def test_random_updates_match_naive_reference(updates: list) -> None:
    # depth 2000 ticks: every generated price stays inside the window, so nothing is pruned
    book = OrderBook(BTC, depth_ticks=2000)
    ref = Naive()
    book.apply_snapshot_ticks([(950, 10)], [(1050, 10)])
    ref.b[950] = 10
    ref.a[1050] = 10
    for bids, asks in updates:
        # Exercise both write paths: decimal strings and ints.
        if len(bids) % 2:
            book.apply_diff([[f"{t / 10:.1f}", f"{q / 1000:.3f}"] for t, q in bids],
                            [[f"{t / 10:.1f}", f"{q / 1000:.3f}"] for t, q in asks])
        else:
            book.apply_diff_ticks(bids, asks)
        for t, q in bids:
            ref.set(ref.b, t, q)
        for t, q in asks:
            ref.set(ref.a, t, q)
        assert book.bids() == ref.bids(10_000)
        assert book.asks() == ref.asks(10_000)
        assert book.best_bid() == (ref.bids(1)[0] if ref.b else None)
        assert book.best_ask() == (ref.asks(1)[0] if ref.a else None)
        rb = sum(q for _, q in ref.bids(10))
        ra = sum(q for _, q in ref.asks(10))
        assert book.depth_lots(10) == (rb, ra)
        assert book.is_crossed() == bool(ref.b and ref.a and max(ref.b) >= min(ref.a))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(-5000, 5000), st.integers(0, 9)), max_size=200))
def test_window_drops_only_far_levels(ops: list) -> None:
    """With a small window, levels within depth of the touch always agree with the reference."""
    depth = 300
    book = OrderBook(BTC, depth_ticks=depth)
    ref = Naive()
    for is_bid, t, q in ops:
        t += 100_000
        (book.set_bid if is_bid else book.set_ask)(t, q)
        ref.set(ref.b if is_bid else ref.a, t, q)
    bb = book.best_bid()
    if bb is not None:
        # The true best can only be absent from our book if it was dropped as far from *our* touch,
        # so the top level we show must be a real level of the reference.
        assert ref.b.get(bb[0]) == bb[1]
    ba = book.best_ask()
    if ba is not None:
        assert ref.a.get(ba[0]) == ba[1]


def _naive_sweep(levels: list[tuple[int, int]], lots: int) -> tuple[int, int, int]:
    filled = notional = worst = 0
    for t, q in levels:
        if filled >= lots:
            break
        take = min(q, lots - filled)
        filled, notional, worst = filled + take, notional + take * t, t
    return filled, notional, worst


def test_sweep_stops_at_the_completing_level_and_matches_a_walk_of_the_levels() -> None:
    """The sweep walks the ladder lazily (it prices every entry's impact); on random books it must give
    what a walk over bids()/asks() gives, for sizes inside, at and beyond the side's total."""
    import random

    rng = random.Random(7)
    for _ in range(200):
        b = OrderBook(BTC, depth_ticks=500)
        mid = 100_000 + rng.randrange(-50, 50)
        b.apply_snapshot_ticks([(mid - 1 - rng.randrange(0, 300), rng.randrange(1, 5000)) for _ in range(40)],
                               [(mid + 1 + rng.randrange(0, 300), rng.randrange(1, 5000)) for _ in range(40)])
        for side_buy, levels in ((True, b.asks()), (False, b.bids())):
            total = sum(q for _, q in levels)
            for lots in (0, 1, rng.randrange(1, total + 1), total, total + 1):
                want = _naive_sweep(levels, lots) if lots > 0 else (0, 0, 0)
                assert b.sweep(side_buy, lots) == want
    empty = OrderBook(BTC)
    assert empty.sweep(True, 10) == (0, 0, 0) and empty.sweep(False, 10) == (0, 0, 0)
