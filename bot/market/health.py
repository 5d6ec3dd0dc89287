"""Book health per symbol: SYNCING / LIVE / STALE / CROSSED, with the reason and since when.

Later layers (signals, risk) refuse to open trades on anything but LIVE, and the risk gate also on a
LIVE book older than `market.max_book_age_ms` (see `BookHealth.age_ms`).
"""

from __future__ import annotations

from enum import Enum

__all__ = ["BookHealth", "BookStatus"]


class BookStatus(str, Enum):
    SYNCING = "SYNCING"  # no valid book yet, or resynchronising after a gap / reconnect
    LIVE = "LIVE"  # in sequence, not crossed, fresh
    STALE = "STALE"  # no message on the stream for longer than the watchdog allows
    CROSSED = "CROSSED"  # best bid >= best ask after applying an update: the book is wrong


_NO_FLOOR = 1 << 62
# The lag floor rises this much per ns of receive time (>> 13: ~0.12 ms a second), so a forward step of
# the local clock is forgotten in time (50 ms in ~7 min) while a stream that stays seconds behind is
# flagged for hours. Used as a shift: `(recv - floor_at) >> _FLOOR_RISE_SHIFT`.
_FLOOR_RISE_SHIFT = 13


class BookHealth:
    __slots__ = ("changes", "floor_at_ns", "lag_floor_ns", "last_event_ns", "last_recv_ns", "reason", "since_ns",
                 "status", "symbol")

    def __init__(self, symbol: str, now_ns: int = 0) -> None:
        self.symbol = symbol
        self.status = BookStatus.SYNCING
        self.reason = "waiting for snapshot"
        self.since_ns = now_ns
        self.changes = 0
        # Exchange event time and local receive time of the last update applied to the book (0: none
        # yet). Written by the sync on every applied update: the freshness an entry needs.
        self.last_event_ns = 0
        self.last_recv_ns = 0
        # Lowest event -> receive lag seen (see _FLOOR_RISE_SHIFT): the exchange-vs-local clock offset
        # plus the best-case wire time. A lag is measured above it, so an offset clock or a recording
        # replayed with its original event times is not "old"; a stream falling behind is.
        self.lag_floor_ns = _NO_FLOOR
        self.floor_at_ns = 0

    def stamp(self, event_ns: int, recv_ns: int) -> None:
        """An update was applied to the book (the syncs inline this on their hot path)."""
        self.last_event_ns = event_ns
        self.last_recv_ns = recv_ns
        if event_ns:
            lag = recv_ns - event_ns
            if lag < self.lag_floor_ns + ((recv_ns - self.floor_at_ns) >> _FLOOR_RISE_SHIFT):
                self.lag_floor_ns = lag
                self.floor_at_ns = recv_ns

    def lag_ms(self) -> float:
        """How far behind the stream delivered the last update, above the lowest lag seen."""
        if not self.last_event_ns or self.lag_floor_ns == _NO_FLOOR:
            return 0.0
        recv = self.last_recv_ns
        floor = self.lag_floor_ns + ((recv - self.floor_at_ns) >> _FLOOR_RISE_SHIFT)
        return max(0, recv - self.last_event_ns - floor) / 1e6

    def age_ms(self, now_ns: int) -> float:
        """How old the book is: the larger of the stream's lag (event -> receive, above its floor) and
        the silence since (receive -> now). Infinite before the first update. A silent stream makes
        the book old long before the watchdog (stale_after_ms) marks it STALE."""
        recv = self.last_recv_ns
        if not recv:
            return float("inf")
        lag = self.lag_ms()
        silence = (now_ns - recv) / 1e6
        return lag if lag > silence else silence

    def is_fresh(self, now_ns: int, max_age_ms: float) -> bool:
        """LIVE and not older than `max_age_ms` (0: age not checked)."""
        return self.status is BookStatus.LIVE and (not max_age_ms or self.age_ms(now_ns) <= max_age_ms)

    def set(self, status: BookStatus, reason: str, now_ns: int) -> bool:
        """Move to `status`; returns True when the status changed (reason updates either way)."""
        self.reason = reason
        if status is self.status:
            return False
        self.status = status
        self.since_ns = now_ns
        self.changes += 1
        return True

    @property
    def is_live(self) -> bool:
        return self.status is BookStatus.LIVE

    def as_dict(self) -> dict[str, object]:
        return {"status": self.status.value, "reason": self.reason, "since_ns": self.since_ns,
                "last_event_ns": self.last_event_ns, "last_recv_ns": self.last_recv_ns}

    def __repr__(self) -> str:
        return f"BookHealth({self.symbol} {self.status.value}: {self.reason})"
