"""A progress bar with ETA for long commands (backtests, replays, research sweeps), on stderr only when
stderr is a terminal: nothing in `--json` output, pipes, logs or CI.

    bar = Progress(total=len(items), label="sweep")        # enabled only on a tty
    for item in items:
        ...
        bar.advance()                                     # or bar.update(done)
    bar.close()                                           # ends the line (nothing when disabled)

    with Progress(total, "backtest") as bar: ...          # the same, closed on exit
    for rec in tracked(read_session(paths), count_lines(paths), "replay"): ...   # any iterable

`total` is in any unit (records, lines, configurations); ETA = elapsed × (total − done) ÷ done, so it is
only as good as the unit's uniformity. Redraws at most every `min_interval_s` (a redraw costs a write; a
tight loop calls `advance` millions of times: the check is one clock read every `check_every` calls).
`count_lines(paths)` gives a replay's total: the lines of recorded files (gzip and zip read as the
replay reader reads them).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any, TypeVar

_T = TypeVar("_T")

__all__ = ["Progress", "count_lines", "format_duration", "replay_progress", "tracked"]


def format_duration(seconds: float) -> str:
    s = max(0, int(seconds + 0.5))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _human(n: float) -> str:
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.1f}{unit}"
    return f"{n:.0f}"


class Progress:
    def __init__(self, total: float, label: str = "", stream: IO[str] | None = None, enabled: bool | None = None,
                 min_interval_s: float = 0.25, width: int = 28, check_every: int = 256,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream if stream is not None else sys.stderr
        if enabled is None:
            isatty = getattr(self.stream, "isatty", None)
            enabled = bool(isatty and isatty())
        self.enabled = enabled
        self.total = max(0.0, float(total))
        self.label = label
        self.done = 0.0
        self.width = width
        self.min_interval_s = min_interval_s
        self.check_every = max(1, check_every)
        self._clock = clock
        self._start = clock()
        self._last_draw = -1e18
        self._calls = 0
        self._drawn = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def advance(self, n: float = 1) -> None:
        self.done += n
        if not self.enabled:
            return
        self._calls += 1
        if self._calls % self.check_every == 0:
            self._maybe_draw()

    def update(self, done: float) -> None:
        self.done = done
        if self.enabled:
            self._maybe_draw()

    def eta_s(self) -> float | None:
        """Seconds left at the rate so far (None before any progress or without a total)."""
        if self.done <= 0 or self.total <= 0:
            return None
        elapsed = self._clock() - self._start
        return elapsed * max(0.0, self.total - self.done) / self.done

    def line(self) -> str:
        """The bar as text (also what tests read)."""
        frac = min(1.0, self.done / self.total) if self.total > 0 else 0.0
        filled = int(frac * self.width)
        bar = "#" * filled + "." * (self.width - filled)
        eta = self.eta_s()
        elapsed = self._clock() - self._start
        return (f"{self.label} [{bar}] {frac * 100:5.1f}% {_human(min(self.done, self.total))}/{_human(self.total)}"
                f" {format_duration(elapsed)} elapsed, ETA {'-' if eta is None else format_duration(eta)}")

    def _maybe_draw(self) -> None:
        now = self._clock()
        if now - self._last_draw < self.min_interval_s:
            return
        self._last_draw = now
        self.stream.write("\r" + self.line() + "\x1b[K")  # \x1b[K: clear what a longer line left
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        if not self.enabled:
            return
        if self._drawn or self.done:
            self.done = max(self.done, self.total)
            self._last_draw = -1e18
            self._maybe_draw()
            self.stream.write("\n")
            self.stream.flush()
        self.enabled = False


def count_lines(paths: Iterable[str]) -> int:
    """Lines in recorded files (decompressed as the replay reader reads them): a replay's total."""
    from bot.replay.reader import _open

    n = 0
    for p in paths:
        try:
            with _open(p) as fh:
                while chunk := fh.read(1 << 20):
                    n += chunk.count(b"\n")
        except OSError:
            continue  # the replay reports the file itself
    return n


def tracked(items: Iterable[_T], total: float, label: str = "", enabled: bool | None = None,
            stream: IO[str] | None = None) -> Iterator[_T]:
    """`items`, one step of a bar per item (a terminal only, unless `enabled` says otherwise); the bar ends
    with the iteration, also when it is abandoned (the generator's close)."""
    bar = Progress(total, label, stream=stream, enabled=enabled)
    advance = bar.advance
    try:
        for item in items:
            advance()
            yield item
    finally:
        bar.close()


def replay_progress(records: Iterable[_T], paths: Iterable[str], label: str, enabled: bool | None = False,
                    stream: IO[str] | None = None) -> Iterable[_T]:
    """A replay's records with a bar (one step per recorded line, total from `count_lines`): drawn when
    `enabled`, or on a terminal when None; False (library callers, sweeps with their own bar) changes
    nothing and costs nothing (the files are not counted)."""
    if enabled is False:
        return records
    out = stream if stream is not None else sys.stderr
    if enabled is None and not (getattr(out, "isatty", None) and out.isatty()):
        return records
    return tracked(records, count_lines(paths), label, enabled=True, stream=out)
