"""Cheap value checks for the venue parsers: one type test or one float comparison per field.

A venue message is untrusted input (issue 11: `"NaN"`, `"1e400"`, `["abc","1"]`, `u` as a string, a
negative size each ended the process). The parsers check every *per-message* field here; the depth
*levels* are checked where the book converts them (market/book.py: `int(float(p) * inv + off)` raises
on NaN/inf/non-numbers, a negative size is refused at the store), so the hot path walks each level
once. Each helper raises ValueError/TypeError, which the parser turns into MalformedMessage.

`0.0 < x < _INF` is False for NaN, inf, zero and negatives in one comparison chain.
"""

from __future__ import annotations

from typing import Any

__all__ = ["as_bool", "as_id", "as_ms", "as_price", "as_size", "as_str", "finite", "opt_finite"]

_INF = float("inf")


def as_id(v: Any) -> int:
    """A sequence or trade id: a JSON integer (not a bool, not a string, not a float)."""
    if type(v) is not int:
        raise TypeError(f"id must be an integer, got {type(v).__name__}")
    return v


def as_ms(v: Any) -> int:
    """A millisecond timestamp: a non-negative JSON integer. (`"abc" * 1_000_000` is a string, not an
    error, so a string time must be refused before it is scaled to ns.)"""
    if type(v) is not int or v < 0:
        raise ValueError(f"time must be a non-negative integer ms, got {v!r:.40}")
    return v


def as_bool(v: Any) -> bool:
    if type(v) is not bool:
        raise TypeError(f"expected true/false, got {type(v).__name__}")
    return v


def as_str(v: Any) -> str:
    if type(v) is not str:
        raise TypeError(f"expected a string, got {type(v).__name__}")
    return v


def as_price(v: Any) -> Any:
    """A price as sent (kept as its decimal string): must parse as a float in (0, inf)."""
    if not 0.0 < float(v) < _INF:
        raise ValueError(f"price out of range: {v!r:.40}")
    return v


def as_size(v: Any) -> Any:
    """A size as sent: must parse as a float in [0, inf)."""
    if not 0.0 <= float(v) < _INF:
        raise ValueError(f"size out of range: {v!r:.40}")
    return v


def finite(v: Any) -> float:
    """A signed amount (funding rate, pnl, fee): any finite float."""
    x = float(v)
    if not -_INF < x < _INF:
        raise ValueError(f"not a finite number: {v!r:.40}")
    return x


def opt_finite(v: Any) -> float | None:
    """An optional signed amount: absent or "" is None, anything else must be finite."""
    return None if v is None or v == "" else finite(v)
