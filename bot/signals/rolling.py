"""Rolling sums over a window of exchange event time: O(1) amortised per add.

Values are kept in a deque with their timestamp; the running total is adjusted on add and on expiry,
so reading it is O(1). Values with the same timestamp as the newest entry are summed into it (with
their count), so the deque holds at most one entry per distinct time in the window: venue times are
milliseconds, so a 10 s window holds at most 10,000 entries however many prints a burst brings (issue
11: memory bounded by size, not by the trade rate). Expiry is exactly the same as one entry per value.
Integer values (lots, CKS e_n in lots) keep the total exact: a float
running sum would drift over a 24 h session.
"""

from __future__ import annotations

from collections import deque

__all__ = ["RollingFlow", "RollingSum"]


class RollingSum:
    """Sum (and count) of the values whose timestamp lies in (now - window_ns, now]."""

    __slots__ = ("_q", "count", "total", "window_ns")

    def __init__(self, window_ns: int) -> None:
        if window_ns <= 0:
            raise ValueError(f"window_ns must be > 0, got {window_ns}")
        self.window_ns = window_ns
        self._q: deque[tuple[int, int, int]] = deque()  # (ts, sum of values, how many)
        self.total = 0
        self.count = 0

    def add(self, ts_ns: int, value: int) -> None:
        q = self._q
        if q and q[-1][0] == ts_ns:
            _, v, n = q[-1]
            q[-1] = (ts_ns, v + value, n + 1)
        else:
            q.append((ts_ns, value, 1))
        self.total += value
        self.count += 1
        self.expire(ts_ns)

    def expire(self, now_ns: int) -> None:
        q = self._q
        cutoff = now_ns - self.window_ns
        while q and q[0][0] <= cutoff:
            _, v, n = q.popleft()
            self.total -= v
            self.count -= n


class RollingFlow:
    """Aggressor buy lots, sell lots and number of prints over one window (the trade-flow windows)."""

    __slots__ = ("_q", "buy_lots", "sell_lots", "trades", "window_ns")

    def __init__(self, window_ns: int) -> None:
        if window_ns <= 0:
            raise ValueError(f"window_ns must be > 0, got {window_ns}")
        self.window_ns = window_ns
        self._q: deque[tuple[int, int, int, int]] = deque()  # (ts, buy lots, sell lots, prints)
        self.buy_lots = 0
        self.sell_lots = 0
        self.trades = 0

    def add(self, ts_ns: int, buy_lots: int, sell_lots: int) -> None:
        q = self._q
        if q and q[-1][0] == ts_ns:  # same time as the newest entry: one entry (see the module doc)
            _, b, s, n = q[-1]
            q[-1] = (ts_ns, b + buy_lots, s + sell_lots, n + 1)
        else:
            q.append((ts_ns, buy_lots, sell_lots, 1))
        self.buy_lots += buy_lots
        self.sell_lots += sell_lots
        self.trades += 1
        self.expire(ts_ns)

    def expire(self, now_ns: int) -> None:
        q = self._q
        cutoff = now_ns - self.window_ns
        while q and q[0][0] <= cutoff:
            _, b, s, n = q.popleft()
            self.buy_lots -= b
            self.sell_lots -= s
            self.trades -= n

    @property
    def imbalance(self) -> float:
        """(buy - sell) / (buy + sell) in [-1, 1]; 0.0 with no volume."""
        tot = self.buy_lots + self.sell_lots
        return (self.buy_lots - self.sell_lots) / tot if tot else 0.0

    @property
    def delta_lots(self) -> int:
        return self.buy_lots - self.sell_lots

    def rate_per_s(self) -> float:
        return self.trades * 1e9 / self.window_ns
