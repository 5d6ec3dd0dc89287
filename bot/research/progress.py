"""A one-line progress bar with ETA, on a terminal only (minimal; the report work may bring a shared one).

Written to stderr with a carriage return; when stderr is not a terminal nothing is drawn, so JSON on
stdout and logs stay clean.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress", "eta_s"]


def eta_s(done: int, total: int, elapsed_s: float) -> float | None:
    """Seconds left at the mean rate so far (None before the first item)."""
    if done <= 0:
        return None
    return max(0.0, (total - done) * elapsed_s / done)


class Progress:
    def __init__(self, total: int, label: str = "", stream: TextIO | None = None, start: int = 0) -> None:
        self.total, self.label, self.start = total, label, start
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self._t0 = time.monotonic()

    def update(self, done: int, note: str = "") -> None:
        if not self.enabled:
            return
        new = done - self.start
        eta = eta_s(new, self.total - self.start, time.monotonic() - self._t0)
        width = 24
        filled = int(width * min(done, self.total) / max(1, self.total))
        left = "?" if eta is None else f"{int(eta // 60)}m{int(eta % 60):02d}s"
        self.stream.write(f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] {done}/{self.total}"
                          f" ETA {left} {note}\x1b[K")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()
