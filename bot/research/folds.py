"""Time folds over the sessions given: walk-forward (anchored or rolling) and combinatorially purged
cross-validation (López de Prado, "Advances in Financial Machine Learning", 2018, ch. 7 and 12).

Time is the sessions' *active* time: the union of the files' [first, last] receive times, gaps between
sessions removed, so K blocks each hold the same amount of market time. A trade belongs to the block
of its entry. Purging: a training trade whose [entry, exit] overlaps a test block's time is dropped (its
outcome was decided by test-period prices); embargo: a training trade entering within `embargo_ns` after
the end of a test block is dropped too (state carried over from the test period: cooldowns, book).

Why not skfolio's CombinatorialPurgedCV: it purges by a fixed count of samples around each test fold,
while a trade's label here spans [entry, exit] in time (seconds to minutes), and it brings scikit-learn,
scipy and pandas into an extra that needs none of them. The splitter is ~40 lines; tests check it.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

__all__ = ["Timeline", "cpcv_splits", "session_spans", "walk_forward"]

Trade = tuple[int, int, float]  # (entry_ts_ns, exit_ts_ns, r_net)


def session_spans(paths: list[str]) -> list[tuple[int, int]]:
    """[first, last] receive time of each file (one pass over its records)."""
    from bot.replay.reader import LineError, read_session

    spans = []
    for p in paths:
        first = last = None
        for rec in read_session([p]):
            if isinstance(rec, LineError):
                continue
            first = rec.ts_recv_ns if first is None else first
            last = rec.ts_recv_ns
        if first is not None and last is not None:
            spans.append((first, last))
    return spans


@dataclass(frozen=True)
class Timeline:
    """Union of the sessions' spans, sorted; positions in 'active time' skip the gaps."""

    spans: tuple[tuple[int, int], ...]

    @classmethod
    def of(cls, spans: list[tuple[int, int]]) -> Timeline:
        merged: list[list[int]] = []
        for a, b in sorted(spans):
            if merged and a <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], b)
            else:
                merged.append([a, b])
        return cls(tuple((a, b) for a, b in merged))

    @property
    def length_ns(self) -> int:
        return sum(b - a for a, b in self.spans)

    def active(self, ts: int) -> int:
        """Active-time offset of ts (clamped into the spans)."""
        off = 0
        for a, b in self.spans:
            if ts <= b:
                return off + max(0, ts - a)
            off += b - a
        return off

    def wall(self, off: int) -> int:
        """The wall-clock time at an active-time offset (inverse of `active`)."""
        for a, b in self.spans:
            if off <= b - a:
                return a + off
            off -= b - a
        return self.spans[-1][1]

    def blocks(self, k: int) -> list[tuple[int, int]]:
        """k blocks of equal active time, as wall-clock [start, end) (the last one closed)."""
        edges = [self.wall(self.length_ns * i // k) for i in range(k + 1)]
        return [(edges[i], edges[i + 1]) for i in range(k)]

    def block_of(self, ts: int, k: int) -> int:
        return min(k - 1, self.active(ts) * k // max(1, self.length_ns))


def _in(trades: list[Trade], tl: Timeline, k: int, blocks: set[int]) -> list[Trade]:
    return [t for t in trades if tl.block_of(t[0], k) in blocks]


def _purge(train: list[Trade], test_ranges: list[tuple[int, int]], embargo_ns: int) -> list[Trade]:
    out = []
    for t in train:
        entry, exit_ = t[0], t[1] if t[1] is not None else t[0]
        if any(entry < b and exit_ >= a for a, b in test_ranges):
            continue  # overlaps a test block: purged
        if any(b <= entry < b + embargo_ns for _, b in test_ranges):
            continue  # right after a test block: embargoed
        out.append(t)
    return out


def walk_forward(tl: Timeline, k: int, mode: str = "anchored", window: int = 2) -> list[dict[str, Any]]:
    """Folds i = 1..k-1: OOS = block i; IS = blocks 0..i-1 (anchored) or the `window` blocks before i."""
    if k < 2:
        raise ValueError("walk-forward needs at least 2 blocks")
    out = []
    for i in range(1, k):
        lo = 0 if mode == "anchored" else max(0, i - window)
        out.append({"is_blocks": list(range(lo, i)), "oos_blocks": [i]})
    return out


def cpcv_splits(k: int, n_test: int) -> list[dict[str, Any]]:
    """All C(k, n_test) choices of test blocks; the others train."""
    if not 0 < n_test < k:
        raise ValueError(f"CPCV needs 0 < test groups ({n_test}) < groups ({k})")
    return [{"is_blocks": [b for b in range(k) if b not in test], "oos_blocks": list(test)}
            for test in itertools.combinations(range(k), n_test)]


def split_trades(trades: list[Trade], tl: Timeline, k: int, split: dict[str, Any],
                 embargo_ns: int = 0) -> tuple[list[Trade], list[Trade]]:
    """(IS trades purged and embargoed against the OOS blocks, OOS trades)."""
    blocks = tl.blocks(k)
    oos = _in(trades, tl, k, set(split["oos_blocks"]))
    is_ = _purge(_in(trades, tl, k, set(split["is_blocks"])), [blocks[b] for b in split["oos_blocks"]],
                 embargo_ns)
    return is_, oos


__all__ += ["split_trades"]
