"""Book health per symbol: SYNCING / LIVE / STALE / CROSSED, with the reason and since when.

Later layers (signals, risk) refuse to open trades on anything but LIVE.
"""

from __future__ import annotations

from enum import Enum

__all__ = ["BookHealth", "BookStatus"]


class BookStatus(str, Enum):
    SYNCING = "SYNCING"  # no valid book yet, or resynchronising after a gap / reconnect
    LIVE = "LIVE"  # in sequence, not crossed, fresh
    STALE = "STALE"  # no message on the stream for longer than the watchdog allows
    CROSSED = "CROSSED"  # best bid >= best ask after applying an update: the book is wrong


class BookHealth:
    __slots__ = ("changes", "reason", "since_ns", "status", "symbol")

    def __init__(self, symbol: str, now_ns: int = 0) -> None:
        self.symbol = symbol
        self.status = BookStatus.SYNCING
        self.reason = "waiting for snapshot"
        self.since_ns = now_ns
        self.changes = 0

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
        return {"status": self.status.value, "reason": self.reason, "since_ns": self.since_ns}

    def __repr__(self) -> str:
        return f"BookHealth({self.symbol} {self.status.value}: {self.reason})"
