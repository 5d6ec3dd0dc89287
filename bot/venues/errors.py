"""Venue errors, translated once at the boundary (`raise ... from e`), named by what to do."""

from __future__ import annotations

__all__ = ["AmbiguousOutcome", "OrderRejected", "RateLimited", "VenueError", "VenueUnavailable"]


class VenueError(Exception):
    """Base of errors raised by gateways."""


class OrderRejected(VenueError):
    """The venue refused the order (its code in `code`). Not retried; the trade logic decides."""

    def __init__(self, message: str, code: int | str | None = None) -> None:
        super().__init__(message)
        self.code = code


class AmbiguousOutcome(VenueError):
    """Timeout or 5xx: execution status unknown. Look the order up by client id before anything else."""


class VenueUnavailable(VenueError):
    """Network or exchange down: usually resolves itself; back off and reconnect."""


class RateLimited(VenueError):
    """429/418: stop sending until `retry_after_s` has passed."""

    def __init__(self, message: str, retry_after_s: float = 1.0, banned: bool = False) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.banned = banned
