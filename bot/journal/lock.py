"""One bot per journal: an exclusive advisory lock on `<journal>.lock`, held for the whole run.

Two bots writing one journal would interleave their trades and each reconcile the other's orders as unknown.
`fcntl.flock` is released by the kernel when the process ends, however it ends (kill -9 included), so a
crashed bot never leaves a stale lock; the file itself stays and only says who held it last.
Readers (`scalper report`, `scalper trades`) never take the lock: SQLite's WAL lets them read beside the bot.
"""

from __future__ import annotations

import fcntl
import os
from typing import IO

from bot.errors import ConfigError

__all__ = ["JournalLock", "lock_journal"]


class JournalLock:
    def __init__(self, path: str, fh: IO[str]) -> None:
        self.path = path
        self._fh: IO[str] | None = fh

    def release(self) -> None:
        if self._fh is not None:
            self._fh.close()  # closing the descriptor drops the flock
            self._fh = None


def lock_journal(journal_path: str) -> JournalLock | None:
    """Take `<journal_path>.lock` or raise ConfigError naming the journal and the holder's pid.
    None for an in-memory journal (nothing to share)."""
    if journal_path == ":memory:":
        return None
    path = journal_path + ".lock"
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    fh = open(path, "a+")  # noqa: SIM115 - held open for the life of the run
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        holder = fh.read().strip() or "?"
        fh.close()
        raise ConfigError(f"journal {journal_path} is in use by another scalper (pid {holder}); stop that bot or "
                          "give this one its own journal.path / app.state_dir") from None
    fh.seek(0)
    fh.truncate()
    fh.write(f"{os.getpid()}\n")
    fh.flush()
    return JournalLock(path, fh)
