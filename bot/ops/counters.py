"""Counters the runtime state keeps cheaply: a fixed-bucket latency histogram and a per-second rate.

Pure, no clock of their own (callers pass `now_ns`); exported through bot.ops.state.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any

__all__ = ["LATENCY_BUCKETS_NS", "LatencyHistogram", "Rate"]

# Fixed buckets (upper bounds, ns): 10 µs .. 2.5 s. Fixed so dashboards and alerts rules never shift;
# wide enough for the hot path (tens of µs) and for an order ack across the internet (tens of ms).
LATENCY_BUCKETS_NS: tuple[int, ...] = (
    10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000, 25_000_000, 50_000_000,
    100_000_000, 250_000_000, 500_000_000, 1_000_000_000, 2_500_000_000,
)
_SEC_NS = 1_000_000_000


class LatencyHistogram:
    """Fixed-bucket histogram of nanosecond durations (cumulative export like Prometheus)."""

    __slots__ = ("bounds_ns", "count", "counts", "max_ns", "sum_ns")

    def __init__(self, bounds_ns: tuple[int, ...] = LATENCY_BUCKETS_NS) -> None:
        self.bounds_ns = bounds_ns
        self.counts = [0] * (len(bounds_ns) + 1)  # last slot: above the largest bound (+Inf)
        self.count = 0
        self.sum_ns = 0
        self.max_ns = 0

    def observe(self, ns: int) -> None:
        ns = max(0, int(ns))  # a clock step backwards must not corrupt the sums
        self.counts[bisect_left(self.bounds_ns, ns)] += 1
        self.count += 1
        self.sum_ns += ns
        if ns > self.max_ns:
            self.max_ns = ns

    def cumulative(self) -> list[tuple[int | None, int]]:
        """[(upper bound ns or None for +Inf, observations <= bound)], as Prometheus buckets."""
        out: list[tuple[int | None, int]] = []
        acc = 0
        for bound, c in zip((*self.bounds_ns, None), self.counts):
            acc += c
            out.append((bound, acc))
        return out

    def quantile_upper_ns(self, q: float) -> int | None:
        """Upper bound of the bucket holding quantile q (None when empty; max_ns beyond the last bound)."""
        if not self.count:
            return None
        rank = q * self.count
        acc = 0
        for bound, c in zip(self.bounds_ns, self.counts):
            acc += c
            if acc >= rank:
                return bound
        return self.max_ns

    def as_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "mean_us": round(self.sum_ns / self.count / 1000, 1) if self.count else None,
            "p50_le_us": _us(self.quantile_upper_ns(0.5)),
            "p99_le_us": _us(self.quantile_upper_ns(0.99)),
            "max_us": _us(self.max_ns) if self.count else None,
        }


def _us(ns: int | None) -> float | None:
    return None if ns is None else round(ns / 1000, 1)


class Rate:
    """Total count plus the count of the last complete second (cheap on the per-message path)."""

    __slots__ = ("cur", "last", "sec", "total")

    def __init__(self) -> None:
        self.total = 0
        self.sec = -1
        self.cur = 0
        self.last = 0

    def add(self, n: int, now_ns: int) -> None:
        self.total += n
        sec = now_ns // _SEC_NS
        if sec != self.sec:
            self.last = self.cur if sec == self.sec + 1 else 0
            self.sec = sec
            self.cur = 0
        self.cur += n

    def per_s(self, now_ns: int) -> int:
        sec = now_ns // _SEC_NS
        if sec == self.sec:
            return self.last
        if sec == self.sec + 1:
            return self.cur
        return 0
