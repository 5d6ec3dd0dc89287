"""bot.execution.marks: one mark a second per symbol, the minute before a trade written when it opens, marks
until a minute after it, batched for the journal."""

from __future__ import annotations

from itertools import pairwise

from bot.execution.marks import MarkSampler

S = 1_000_000_000


def test_the_minute_before_the_trade_during_and_the_minute_after() -> None:
    ms = MarkSampler()
    t = 1_000 * S
    for i in range(120):  # two minutes, 4 prices a second, no trade: kept in memory, nothing written
        ms.sample("BTCUSDT", 100.0 + i, t + i * S // 4, trading=False)
    assert ms.pending == [] and not ms.flush_due(t + 30 * S)
    # a trade opens at +30 s: the marks of the last 60 s (one a second) come out at once, then one a second
    ms.sample("BTCUSDT", 500.0, t + 30 * S, trading=True)
    rows = list(ms.pending)
    assert len(rows) == 31 and rows[-1] == (t + 30 * S, "BTCUSDT", 500.0)  # 30 s of history at 1 Hz + now
    assert all(b[0] - a[0] >= S for a, b in pairwise(rows))
    assert ms.flush_due(t + 30 * S) and len(ms.take()) == 31 and ms.pending == []
    for i in range(1, 11):  # open: 1 Hz, sub-second prices dropped
        ms.sample("BTCUSDT", 500.0 + i, t + 30 * S + i * S, trading=True)
        ms.sample("BTCUSDT", 0.0, t + 30 * S + i * S + S // 2, trading=True)
    assert [r[2] for r in ms.pending] == [500.0 + i for i in range(1, 11)] and ms.flush_due(t + 40 * S)
    ms.take()
    # closed at +40 s: still written for 60 s after the last mark that saw it open, then nothing
    for i in range(1, 81):
        ms.sample("BTCUSDT", 600.0 + i, t + 40 * S + i * S, trading=False)
        if ms.flush_due(t + 40 * S + i * S):
            ms.take()
    assert ms.pending == []
    # another symbol is independent: never traded, never written
    ms.sample("ETHUSDT", 3.0, t + 200 * S, trading=False)
    assert ms.pending == []


def test_a_closed_window_flushes_what_is_pending() -> None:
    ms = MarkSampler(after_ns=2 * S)
    t = 5_000 * S
    ms.sample("ETHUSDT", 1.0, t, trading=True)
    ms.take()
    ms.sample("ETHUSDT", 2.0, t + S, trading=False)
    assert len(ms.pending) == 1 and not ms.flush_due(t + S)  # one row, one second: not yet worth a commit
    ms.sample("ETHUSDT", 3.0, t + 2 * S, trading=False)  # the last mark inside the window
    ms.sample("ETHUSDT", 4.0, t + 3 * S, trading=False)  # outside: the window ended
    assert ms.flush_due(t + 3 * S) and [r[2] for r in ms.take()] == [2.0, 3.0]
