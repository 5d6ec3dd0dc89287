"""Per-symbol monotonic event time for the signal layer: `EventClock`.

Every time-keyed structure of the signal layer (rolling OFI / trade-flow windows, time bars, the volume
profile's slots, the wall scan, the BTC sampling grid) assumes exchange event time never goes backwards: an
event older than the newest one seen either stops expiry (a deque expires from its head, so entries appended
behind a newer head wait there until time catches up again: a 1 h jump back froze the windows for an hour and
grew them ~70 MB/h) or lands in the wrong bar. Event time does go backwards: a replay of files out of order, a
venue clock jump, and in every live feed a few milliseconds of jitter between streams (a trade's `T` before
the last depth diff's `E`).

So the features see `at(ts)` instead of `ts` (`jump_ns` 1 s: above any stream jitter, at most the shortest
default window):
- a step back shorter than `jump_ns` (stream jitter) passes as it is: the event keeps its own time, so a
  window excludes it exactly when it is older than the window; it is expired at most that much late, and a
  time bar takes it into the open bar (bars never reopen); `late` counts them;
- a step back of `jump_ns` or more is a clock jump (`backwards` counts them): the clock re-bases, adding the
  jump to an offset, so time goes on from the newest time seen at the venue's pace: windows keep expiring and
  bars keep closing at their cadence, and the features recover after one window;
- while re-based, a forward step of `jump_ns` or more (the replay is back in order, the venue clock was
  corrected) gives back as much of the offset as it can without going back, so the clock returns to the
  venue's own time.
Funding times are absolute venue times: compare them with `raw_ns`, not with the clock's time.
"""

from __future__ import annotations

__all__ = ["EventClock"]


class EventClock:
    __slots__ = ("backwards", "jump_ns", "last_ns", "late", "max_ns", "offset_ns", "raw_ns")

    def __init__(self, jump_ns: int = 1_000_000_000) -> None:
        if jump_ns <= 0:
            raise ValueError(f"jump_ns must be > 0, got {jump_ns}")
        self.jump_ns = jump_ns
        self.last_ns = 0  # the clock's time of the latest event
        self.max_ns = 0  # the newest time handed out
        self.raw_ns = 0  # the venue time of the latest event
        self.offset_ns = 0  # clock time = venue time + offset (0 unless the venue clock jumped back)
        self.backwards = 0  # venue clock jumps back of jump_ns or more (re-based)
        self.late = 0  # smaller steps back (jitter between streams), passed as they are

    def at(self, ts_ns: int) -> int:
        """The clock's time of an event the venue stamped `ts_ns`: never more than `jump_ns` before the
        newest time handed out, and the same as `ts_ns` unless the venue clock jumped back."""
        top = self.max_ns
        t = ts_ns + self.offset_ns
        if t < top:
            if top - t < self.jump_ns:
                self.late += 1
            else:
                self.backwards += 1
                self.offset_ns += top - t
                t = top
        elif self.offset_ns and ts_ns - self.raw_ns >= self.jump_ns:
            off = top - ts_ns
            self.offset_ns = off if off > 0 else 0
            t = ts_ns + self.offset_ns
        if t > top:
            self.max_ns = t
        self.raw_ns = ts_ns
        self.last_ns = t
        return t

    def peek(self, ts_ns: int) -> int:
        """The clock's time a *read* at venue time `ts_ns` stands for, without moving the clock."""
        return ts_ns + self.offset_ns
