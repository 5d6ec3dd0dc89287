"""WAL checkpoints off the writer's path.

SQLite's automatic checkpoint (wal_autocheckpoint, 1000 pages) runs inside the COMMIT that crosses the
threshold: that one commit copies the WAL into the database file and fsyncs it, milliseconds on this
machine. The journal commits each trade's durable intent right before its entry order goes out, so every
~100th entry paid those milliseconds (the journal step's p99 of `bench latency` was 1-5 ms, its median
~0.1-0.3 ms). The journal's connection turns the automatic checkpoint off and this thread, with a
connection of its own, runs PASSIVE checkpoints (never waiting on the writer or readers) when the WAL has
changed since the last one, at most every `min_interval_s`. With the GIL released inside SQLite, the
writer keeps committing meanwhile. A checkpoint still slows the commits it overlaps (its copy and fsync
share the disk): against the loopback exchange (38 entries/s) checkpoints every 0.1 s put the journal
step's p90 at 0.8 ms, every 3 s (a larger WAL to copy) its p99 at 1.2 ms; every 1 s gave p90 0.45 ms,
p99 0.95 ms, max 1.5 ms (autocheckpoint: p99 2.2 ms, p99.5 5.7 ms, max 9.4 ms).

The writer rewinds the WAL to its start only when a checkpoint has copied every frame; a writer that
commits during every checkpoint (a long burst of activity) would make it grow without end. When a
checkpoint finds more than `overflow_frames` frames in the WAL (1000: the automatic checkpoint's own
threshold), `overflow` is raised and the journal runs one PASSIVE checkpoint on its own connection right
after its next commit that does not precede an order (store.Journal._tx): what the automatic checkpoint
did, only during a long burst and never on the entry path. (1000 rather than 4000: in a tight loop of
entries the larger WAL slowed every commit: p99 0.85 vs 1.3 ms, p99.9 1.8 vs 4.5 ms.) The journal does the
same after 100 commits with no background checkpoint in between (`_BURST_COMMITS`): checked once a second,
the frame count let a tight loop's WAL grow for a second, which cost every commit (p90 0.23 vs 0.15 ms).

Durability is unchanged: a commit is in the WAL when it returns (synchronous=NORMAL: safe against a crash
of the process; FULL: fsynced per commit); the checkpoint only moves committed pages into the main file.
If checkpoints fail (I/O error), the WAL grows and the failure is counted and logged once; nothing is lost.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading

from bot.logging import get_logger

__all__ = ["WalCheckpointer"]


class WalCheckpointer:
    def __init__(self, path: str, *, poll_s: float = 0.25, min_interval_s: float = 1.0,
                 overflow_frames: int = 1000, busy_timeout_ms: int = 2000) -> None:
        self.path = path
        self.checkpoints = 0
        self.errors = 0
        self._poll_s = poll_s
        self._min_interval_s = min_interval_s
        self._overflow_frames = overflow_frames
        # set here, cleared by the journal once it has checkpointed on its own connection (a plain flag: the
        # journal reads it after each commit, no lock on that path)
        self.overflow = False
        self._busy_timeout_ms = busy_timeout_ms
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="journal-checkpoint", daemon=True)
        self._thread.start()

    def _wal_state(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path + "-wal")
        except FileNotFoundError:
            return None
        return st.st_mtime_ns, st.st_size

    def _run(self) -> None:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            db.execute(f"PRAGMA busy_timeout={int(self._busy_timeout_ms)}")
            done: tuple[int, int] | None = None  # whatever the WAL holds at start is checkpointed at once
            ticks_per_interval = max(1, round(self._min_interval_s / self._poll_s))
            idle = ticks_per_interval  # the first change is checkpointed at the next poll
            while not self._stop.wait(self._poll_s):
                idle += 1
                state = self._wal_state()
                if state is None or state == done or idle < ticks_per_interval:
                    continue
                try:  # a commit landing during the checkpoint changes the state again: next poll takes it
                    _busy, wal_frames, _copied = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                except sqlite3.Error as e:
                    self.errors += 1
                    if self.errors == 1:
                        get_logger("journal").error("wal checkpoint failed; the WAL grows until it works",
                                                    path=self.path, error=str(e))
                    continue
                self.checkpoints += 1
                if wal_frames > self._overflow_frames:
                    self.overflow = True
                done, idle = state, 0
        finally:
            db.close()

    def stop(self) -> None:
        """Ask the thread to end (returns at once)."""
        self._stop.set()

    def close(self, timeout_s: float = 10.0) -> None:
        """End the thread and close its connection (a checkpoint in progress finishes first)."""
        self._stop.set()
        with contextlib.suppress(RuntimeError):
            self._thread.join(timeout_s)
