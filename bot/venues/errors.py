"""Venue errors, translated once at the boundary (`raise ... from e`), named by what to do."""

from __future__ import annotations

from bot.domain.types import RejectReason

__all__ = [
    "AmbiguousOutcome",
    "DuplicateClientId",
    "OrderRejected",
    "RateLimited",
    "StopWouldTrigger",
    "VenueError",
    "VenueUnavailable",
]


class VenueError(Exception):
    """Base of errors raised by gateways."""


class OrderRejected(VenueError):
    """The venue refused the order (its code in `code`, for people and the journal; what it means to the
    trade in `reason`, set by the venue adapter). Not retried; the trade logic decides."""

    reason = RejectReason.OTHER

    def __init__(self, message: str, code: int | str | None = None) -> None:
        super().__init__(message)
        self.code = code


class StopWouldTrigger(OrderRejected):
    """A stop whose trigger the price has already crossed: it would fire at once. The position is through
    its stop: take the loss now (flatten), do not halt the symbol."""

    reason = RejectReason.STOP_WOULD_TRIGGER


class DuplicateClientId(OrderRejected):
    """An order with this client id exists already: an earlier attempt of ours landed. Look it up by client
    id; never send it again."""

    reason = RejectReason.DUPLICATE_CLIENT_ID


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
