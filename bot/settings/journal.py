"""Config section: the SQLite journal."""

from __future__ import annotations

from bot.settings.core import FrozenModel

__all__ = ["JournalSection"]


class JournalSection(FrozenModel):
    """[journal] keys. Owned by the journal layer; every key has a unit in its name and a comment."""
