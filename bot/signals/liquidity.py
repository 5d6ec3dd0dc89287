"""Resting-liquidity features: walls (large resting orders) and their pulling, round-number pockets.

- wall: within the top `levels` of a side, the largest level whose size is at least `mult` x the mean
  size of the other levels and at least `min_lots` (the "large limit order" of Bookmap-style DOM
  reading; see also Hautsch & Huang 2012 on the information in large visible depth). Found by a scan of
  the top levels at most once per `scan_ns` (O(levels), amortised), then watched every depth event with
  one O(1) size read.
- pulled wall: the watched wall's size falls below `pull_frac` of its size while the drop is not
  explained by prints at that price (less than half of the drop traded there) and the touch never
  went through it: liquidity withdrawn, not traded
  (spoof-like). A wall that the touch trades through is "consumed", not pulled.
- round-number pocket: the nearest multiples of `round_step_ticks` above and below the mid (prices
  like 62000.0 for BTC, 3400.00 for ETH, where resting size clusters: Osler 2003, "Currency orders and
  exchange rate dynamics: an explanation for the predictive success of technical analysis"); reported
  as the distance in ticks and the lots resting exactly there. O(1).
"""

from __future__ import annotations

import math

from bot.market.book import OrderBook

__all__ = ["Wall", "WallTracker", "round_step_ticks_for"]


class Wall:
    __slots__ = ("lots", "price_ticks", "since_ns", "traded_lots")

    def __init__(self, price_ticks: int, lots: int, since_ns: int) -> None:
        self.price_ticks = price_ticks
        self.lots = lots
        self.since_ns = since_ns
        self.traded_lots = 0

    def __repr__(self) -> str:
        return f"Wall({self.lots} lots @ {self.price_ticks} since {self.since_ns})"


class WallTracker:
    """Walls on one side (`is_bid`) of one book."""

    __slots__ = ("is_bid", "last_pulled", "last_pulled_ns", "levels", "min_lots", "mult", "next_scan_ns",
                 "pull_frac", "pulls", "scan_ns", "wall")

    def __init__(self, is_bid: bool, levels: int = 20, mult: float = 5.0, min_lots: int = 1,
                 pull_frac: float = 0.3, scan_ns: int = 250_000_000) -> None:
        self.is_bid = is_bid
        self.levels = levels
        self.mult = mult
        self.min_lots = min_lots
        self.pull_frac = pull_frac
        self.scan_ns = scan_ns
        self.next_scan_ns = 0
        self.wall: Wall | None = None
        self.pulls = 0
        self.last_pulled: Wall | None = None
        self.last_pulled_ns = 0

    def on_depth(self, book: OrderBook, ts_ns: int) -> Wall | None:
        """Watch the current wall; rescan when due. Returns the wall just pulled, if any."""
        pulled = None
        w = self.wall
        if w is not None:
            touch = book.best_bid_ticks if self.is_bid else book.best_ask_ticks
            if touch is None or (touch < w.price_ticks if self.is_bid else touch > w.price_ticks):
                self.wall = None  # traded through: consumed
            else:
                now = book.bid_size(w.price_ticks) if self.is_bid else book.ask_size(w.price_ticks)
                if now < self.pull_frac * w.lots and 2 * w.traded_lots < w.lots - now:  # mostly cancelled
                    self.pulls += 1
                    self.last_pulled = pulled = w
                    self.last_pulled_ns = ts_ns
                    self.wall = None
        if ts_ns >= self.next_scan_ns:
            self.next_scan_ns = ts_ns + self.scan_ns
            self._scan(book, ts_ns)
        return pulled

    def _scan(self, book: OrderBook, ts_ns: int) -> None:
        lv = book.bids(self.levels) if self.is_bid else book.asks(self.levels)
        if len(lv) < 3:
            return
        total = 0
        big_t, big_q = 0, -1
        for t, q in lv:
            total += q
            if q > big_q:
                big_t, big_q = t, q
        rest_mean = (total - big_q) / (len(lv) - 1)
        if big_q >= self.min_lots and big_q >= self.mult * rest_mean:
            w = self.wall
            if w is None or w.price_ticks != big_t:
                self.wall = Wall(big_t, big_q, ts_ns)
            else:
                w.lots = max(w.lots, big_q)
        elif self.wall is not None and self.wall.price_ticks == big_t:
            pass  # still the largest but the book around it grew: keep watching it
        elif self.wall is not None:
            t = self.wall.price_ticks
            cur = book.bid_size(t) if self.is_bid else book.ask_size(t)
            if cur < self.min_lots:
                self.wall = None

    def on_trade_at(self, price_ticks: int, lots: int) -> None:
        w = self.wall
        if w is not None and w.price_ticks == price_ticks:
            w.traded_lots += lots

    def distance_ticks(self, ref_ticks: float) -> float:
        """Ticks from `ref_ticks` to the wall (positive), or inf with no wall."""
        w = self.wall
        if w is None:
            return math.inf
        return abs(ref_ticks - w.price_ticks)


def round_step_ticks_for(price: float, tick: float) -> int:
    """Round-number step: 1/100 of the price's power of ten (BTC 61,800 -> 100.0; ETH 3,400 -> 10.00)."""
    if price <= 0:
        return 1
    step = 10.0 ** (math.floor(math.log10(price)) - 2)
    return max(1, round(step / tick))
