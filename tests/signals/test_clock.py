"""A venue clock that goes backwards (a replay out of order, a venue time jump): the signal layer's time-keyed
windows keep a bounded size and keep expiring, bars stay in order with consistent OHLC, and the features
recover (bot/signals/clock.py)."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable

import pytest

from bot.settings.signals import SignalsSection
from bot.signals.bars import TimeBars
from bot.signals.clock import EventClock
from bot.signals.engine import SignalEngine
from bot.signals.features import SymbolFeatures
from tests.signals.helpers import INST, Feed, S

MS = 1_000_000
H = 3600 * S


def test_jitter_passes_a_jump_rebases_and_the_clock_returns() -> None:
    c = EventClock()
    assert [c.at(t) for t in (10 * S, 10 * S + 5 * MS, 10 * S - 300 * MS)] == [10 * S, 10 * S + 5 * MS,
                                                                              10 * S - 300 * MS]
    assert (c.late, c.backwards, c.offset_ns) == (1, 0, 0)  # stream jitter keeps its own time
    # the venue clock jumps back 1 h: time goes on from the newest time seen, at the venue's pace
    assert c.at(10 * S - H) == 10 * S + 5 * MS and c.backwards == 1
    assert c.at(10 * S - H + 100 * MS) == 10 * S + 105 * MS
    assert c.raw_ns == 10 * S - H + 100 * MS
    # the replay is back in order (a forward step >= jump_ns): the offset is given back, never going back
    assert c.at(11 * S) == 11 * S and c.offset_ns == 0
    assert c.at(11 * S + 1) == 11 * S + 1
    with pytest.raises(ValueError):
        EventClock(0)


def _stream(feed: Feed, seconds: float, shift: Callable[[int], int], step_ms: int = 50, seed: int = 1,
            check: Callable[[int], None] | None = None) -> None:
    """One symbol: a random-walk touch, one print a step, a depth event every other step. Event time is
    `true time - shift(true time)`; `check(true time)` runs every simulated second."""
    rng = random.Random(seed)
    mid = 100_000
    for k in range(1, int(seconds * 1000 / step_ms) + 1):
        t = k * step_ms * MS
        ts = t - shift(t)
        mid += rng.choice((-1, 0, 0, 1))
        buy = rng.random() < 0.5
        feed.trade(ts, mid + 1 if buy else mid, rng.randint(1, 5), buy)
        if k % 2 == 0:
            feed.set_touch(mid, rng.randint(1, 30), mid + 1, rng.randint(1, 30), ts=ts)
        if check is not None and t % S == 0:
            check(t)


def _engine() -> SignalEngine:
    return SignalEngine(SignalsSection(), {INST.symbol: INST})


def _bounded(f: SymbolFeatures, step_ms: int) -> None:
    """Every time-keyed window holds at most (window / event spacing + 2) entries (+ one clock jump)."""
    for w in (*f.book.ofi_windows, *f.flow.windows):
        assert len(w._q) <= w.window_ns // (step_ms * MS) + 2 + 1000 // step_ms, (w.window_ns, len(w._q))
    assert f.profile is not None and len(f.profile._q) <= f.profile.window_ns // f.profile.slot_ns + 2


def _bars_ok(tb: TimeBars) -> None:
    bars = list(tb.series.bars)
    for a, b in itertools.pairwise(bars):
        assert b.t_start_ns - a.t_start_ns == tb.interval_ns  # in order, one per interval, none reopened
    for b in bars:
        assert b.low <= min(b.open, b.close) <= max(b.open, b.close) <= b.high
        assert b.t_start_ns % tb.interval_ns == 0


@pytest.mark.parametrize("jump_ns", [S, H])
def test_a_jump_back_keeps_windows_expiring_bars_in_order_and_features_recover(jump_ns: int) -> None:
    at_ns = 60 * S  # the venue clock jumps back `jump_ns` 60 s into a 150 s stream
    ref, jumped = Feed(_engine()), Feed(_engine())
    _stream(ref, 150, lambda t: 0)
    f = jumped.engine.features(INST.symbol)
    assert f is not None
    seen: list[tuple[int, int]] = []

    def check(t: int) -> None:
        _bounded(f, 50)
        if t > at_ns + 2 * S:  # the 1 s windows keep expiring: ~20 prints in 1 s, not everything since the jump
            w = f.flow.window(0)
            seen.append((w.trades, len(w._q)))
            assert 15 <= w.trades <= 21, (t, w.trades)

    _stream(jumped, 150, lambda t: jump_ns if t > at_ns else 0, check=check)
    if jump_ns >= f.clock.jump_ns + 50 * MS:  # a jump: re-based, counted
        assert seen and jumped.engine.stats.as_dict()["clock_backwards"] == {INST.symbol: 1}
    else:  # 950 ms back between two events: within the jitter bound, the events keep their own times
        assert seen and f.clock.late >= 19 and f.clock.backwards == 0
    g = ref.engine.features(INST.symbol)
    assert g is not None
    # recovered: one longest window after the jump, the windows hold exactly what the in-order stream's do
    for a, b in zip((*f.book.ofi_windows, *f.flow.windows), (*g.book.ofi_windows, *g.flow.windows), strict=True):
        assert (a.total if hasattr(a, "total") else (a.buy_lots, a.sell_lots, a.trades)) == \
            (b.total if hasattr(b, "total") else (b.buy_lots, b.sell_lots, b.trades))
    for ms, tb in f.bars.items():
        _bars_ok(tb)
        assert tb.series.closed >= 2, ms
        # time went on: as many bars closed as in the in-order stream (one fewer at most: re-based by a step)
        assert abs(tb.series.closed - g.bars[ms].series.closed) <= 1, ms
    assert f.book.mid_ticks == g.book.mid_ticks and f.flow.cvd_lots == g.flow.cvd_lots


def test_memory_stays_bounded_over_a_long_run_with_periodic_jumps_back() -> None:
    """An hour of event time, the venue clock jumping back 1 h every 5 minutes (and 1 s every 2): the
    windows, the profile and the bars stay within their bounds the whole time (~5 s)."""
    feed = Feed(_engine())
    f = feed.engine.features(INST.symbol)
    assert f is not None
    sizes: list[int] = []

    def shift(t: int) -> int:
        return (t // (300 * S)) * H + (t // (120 * S)) * S

    def check(t: int) -> None:
        if t % (60 * S) == 0:
            _bounded(f, 200)
            sizes.append(sum(len(w._q) for w in (*f.book.ofi_windows, *f.flow.windows)))

    _stream(feed, 3600, shift, step_ms=200, seed=2, check=check)
    assert f.clock.backwards == 12 and f.clock.late > 0  # every 1 h jump counted; the 1 s ones: jitter
    assert max(sizes) <= 2 * min(sizes[1:]) + 50, sizes  # flat, not growing with the jumps
    for tb in f.bars.values():
        _bars_ok(tb)
        # bars kept closing through every jump: the whole span the clock saw (the 30 1-s steps back are time lost)
        assert tb.series.closed >= (3600 - 30) * S // tb.interval_ns - 3, (tb.interval_ns, tb.series.closed)
