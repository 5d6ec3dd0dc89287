"""Rolling sums over a window of exchange event time: O(1) amortised per add.

Every value added is kept in a deque with its timestamp; the running total is adjusted on add and on
expiry, so reading it is O(1). Integer values (lots, CKS e_n in lots) keep the total exact: a float
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
        self._q: deque[tuple[int, int]] = deque()
        self.total = 0
        self.count = 0

    def add(self, ts_ns: int, value: int) -> None:
        self._q.append((ts_ns, value))
        self.total += value
        self.count += 1
        self.expire(ts_ns)

    def expire(self, now_ns: int) -> None:
        q = self._q
        cutoff = now_ns - self.window_ns
        while q and q[0][0] <= cutoff:
            self.total -= q.popleft()[1]
            self.count -= 1


class RollingFlow:
    """Aggressor buy lots, sell lots and number of prints over one window (the trade-flow windows)."""

    __slots__ = ("_q", "buy_lots", "sell_lots", "trades", "window_ns")

    def __init__(self, window_ns: int) -> None:
        if window_ns <= 0:
            raise ValueError(f"window_ns must be > 0, got {window_ns}")
        self.window_ns = window_ns
        self._q: deque[tuple[int, int, int]] = deque()
        self.buy_lots = 0
        self.sell_lots = 0
        self.trades = 0

    def add(self, ts_ns: int, buy_lots: int, sell_lots: int) -> None:
        self._q.append((ts_ns, buy_lots, sell_lots))
        self.buy_lots += buy_lots
        self.sell_lots += sell_lots
        self.trades += 1
        self.expire(ts_ns)

    def expire(self, now_ns: int) -> None:
        q = self._q
        cutoff = now_ns - self.window_ns
        while q and q[0][0] <= cutoff:
            _, b, s = q.popleft()
            self.buy_lots -= b
            self.sell_lots -= s
            self.trades -= 1

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
