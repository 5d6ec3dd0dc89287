"""Config section: the trade lifecycle (entries, stops, take-profits, time exits)."""

from __future__ import annotations

from bot.settings.core import FrozenModel

__all__ = ["ExecutionSection"]


class ExecutionSection(FrozenModel):
    """[execution] keys. Owned by the execution layer; every key has a unit in its name and a comment."""
