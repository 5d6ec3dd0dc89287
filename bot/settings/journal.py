"""Config section: the SQLite journal."""

from __future__ import annotations

from typing import Literal

from bot.settings.core import FrozenModel

__all__ = ["JournalSection"]


class JournalSection(FrozenModel):
    """[journal] keys. Owned by the journal layer; every key has a unit in its name and a comment."""

    # SQLite file (WAL mode). Relative paths are under app.state_dir. ":memory:" keeps nothing (tests, benches).
    path: str = "journal.sqlite"
    # PRAGMA synchronous: NORMAL survives a crash of the process (every committed transaction is in the
    # WAL); FULL also survives a power cut, at one fsync per state change (milliseconds on a slow disk).
    synchronous: Literal["NORMAL", "FULL"] = "NORMAL"
    busy_timeout_ms: int = 2000  # a reader (`scalper trades`, the report) may hold the lock briefly
