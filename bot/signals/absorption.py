"""Absorption, icebergs and queue depletion at the touch, per side.

One `TouchTracker` follows one side's best level (the bid for sell aggression, the ask for buy
aggression) for as long as that price stays the best:

- hit_lots: aggressive volume printed at that price (sells into the bid / buys into the ask) since it
  became the touch.
- refill: between two depth events the level was hit for h lots and its size went from q0 to q1; the
  size it would show with no new orders is max(0, q0 - h), so refill = max(0, q1 - max(0, q0 - h)) are
  lots added behind the hits. Counted as one refill event when > 0.
- absorption (Harris 2003 ch. 14 "liquidity suppliers"; the footprint/DOM reading of Bookmap and
  Valtos): heavy aggressive volume into a price that does not move: `hit_lots` large while the level is
  still the touch. Reported as hit_lots, ratio hit_lots / peak visible size, and how long it held.
- iceberg (Christensen & Woodmansey 2013; Frey & Sandas 2017): a level that keeps refilling after
  being hit: hit_lots > peak visible lots (more traded than was ever shown) with at least
  `iceberg_min_refills` refills.
- queue depletion = 1 - lots / peak_lots: the fraction of the touch's largest visible queue that has
  gone (traded or cancelled) while it remained the touch (Cont & de Larrard 2013: the side whose queue
  depletes first is where the price moves).
Every update is O(1).
"""

from __future__ import annotations

__all__ = ["TouchTracker"]


class TouchTracker:
    __slots__ = ("_hit_since_depth", "hit_lots", "hits", "iceberg_min_refills", "lots", "peak_lots",
                 "price_ticks", "refill_lots", "refills", "since_ns")

    def __init__(self, iceberg_min_refills: int = 2) -> None:
        self.iceberg_min_refills = iceberg_min_refills
        self.price_ticks = 0
        self.since_ns = 0
        self.lots = 0
        self.peak_lots = 0
        self.hit_lots = 0
        self.hits = 0
        self.refills = 0
        self.refill_lots = 0
        self._hit_since_depth = 0

    def on_touch(self, price_ticks: int, lots: int, ts_ns: int) -> None:
        """The side's best (price, lots) after a depth event."""
        if price_ticks != self.price_ticks:
            self.price_ticks = price_ticks
            self.since_ns = ts_ns
            self.lots = self.peak_lots = lots
            self.hit_lots = self.hits = self.refills = self.refill_lots = 0
            self._hit_since_depth = 0
            return
        h = self._hit_since_depth
        if h:
            expected = self.lots - h
            refill = lots - (expected if expected > 0 else 0)
            if refill > 0:
                self.refills += 1
                self.refill_lots += refill
            self._hit_since_depth = 0
        self.lots = lots
        if lots > self.peak_lots:
            self.peak_lots = lots

    def on_hit(self, price_ticks: int, lots: int) -> None:
        """An aggressive print into this side at `price_ticks` (ignored unless it is the tracked level)."""
        if price_ticks == self.price_ticks:
            self.hit_lots += lots
            self.hits += 1
            self._hit_since_depth += lots

    @property
    def held_ns_at(self) -> int:
        return self.since_ns

    def held_ns(self, now_ns: int) -> int:
        return now_ns - self.since_ns

    @property
    def absorption_ratio(self) -> float:
        """hit_lots / peak visible lots: > 1 means more was absorbed than was ever displayed."""
        return self.hit_lots / self.peak_lots if self.peak_lots else 0.0

    @property
    def is_iceberg(self) -> bool:
        return self.hit_lots > self.peak_lots and self.refills >= self.iceberg_min_refills

    @property
    def depletion(self) -> float:
        return 1.0 - self.lots / self.peak_lots if self.peak_lots else 0.0
