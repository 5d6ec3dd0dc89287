"""Issue 11 item 8: the rolling volume profile's memory depends on price levels x time slots, not on the
trade rate, and it gives the profile of keeping every print.

`PerPrint` below is the implementation the slots replaced (every print kept in a deque, expired one by
one), kept here as the reference.
"""

from __future__ import annotations

import random
import tracemalloc
from collections import deque

import pytest

from bot.domain.events import Trade
from bot.replay.reader import Record, read_session
from bot.signals.profile import ProfileLevels, VolumeProfile
from bot.signals.rolling import RollingFlow, RollingSum
from bot.venues.binance_usdm.instruments import KNOWN
from bot.venues.binance_usdm.parse import parse_message
from tests.conftest import SESSIONS, needs_data

S = 1_000_000_000
WINDOW = 300 * S


class PerPrint(VolumeProfile):
    """The old profile: one deque entry per print, exact expiry (levels() is inherited unchanged)."""

    def __init__(self, window_ns: int, bucket_ticks: int) -> None:
        super().__init__(window_ns, bucket_ticks)
        self.prints: deque[tuple[int, int, int]] = deque()

    def add(self, ts_ns: int, price_ticks: int, lots: int) -> None:
        b = price_ticks // self.bucket_ticks
        self.prints.append((ts_ns, b, lots))
        self._vol[b] = self._vol.get(b, 0) + lots
        self.total_lots += lots
        self.last_price_ticks = price_ticks
        self._cache = None
        cutoff = ts_ns - self.window_ns
        while self.prints and self.prints[0][0] <= cutoff:
            _, ob, ol = self.prints.popleft()
            left = self._vol[ob] - ol
            if left:
                self._vol[ob] = left
            else:
                del self._vol[ob]
            self.total_lots -= ol


def _key(lv: ProfileLevels | None) -> tuple[object, ...]:
    assert lv is not None
    return lv.poc_ticks, lv.vah_ticks, lv.val_ticks, lv.hvn_ticks, lv.total_lots


def _trades(files: list[str]) -> list[Trade]:
    out = []
    for r in read_session(files):
        if isinstance(r, Record) and b'"trade"' in r.raw[:80]:
            ev = parse_message(r.raw, r.ts_recv_ns)
            if type(ev) is Trade:
                out.append(ev)
    return out


@needs_data
@pytest.mark.parametrize("session", sorted(SESSIONS))
def test_same_levels_as_keeping_every_print_on_recorded_data(session: str) -> None:
    sym = session.split("_")[0].upper()
    inst = KNOWN[sym]
    trades = _trades([str(f) for f in SESSIONS[session]])
    bucket = max(1, round(float(trades[0].price) * 0.5 / 1e4 / inst.tick))  # signals.profile_bucket_bps
    ours, ref = VolumeProfile(WINDOW, bucket), PerPrint(WINDOW, bucket)
    t0 = trades[0].ts_event_ns
    n = same_poc = same_va = 0
    for tr in trades:
        p, q = inst.price_to_ticks(tr.price), inst.qty_to_lots(tr.qty)
        ours.add(tr.ts_event_ns, p, q)
        ref.add(tr.ts_event_ns, p, q)
        if tr.ts_event_ns - t0 < WINDOW:
            assert _key(ours.levels()) == _key(ref.levels())  # nothing expired yet: identical
            continue
        a, b = ours.levels(), ref.levels()
        assert a is not None and b is not None
        n += 1
        same_poc += a.poc_ticks == b.poc_ticks
        same_va += (a.vah_ticks, a.val_ticks) == (b.vah_ticks, b.val_ticks)
        # a print lives at most one 250 ms slot longer: the value area's edge moves by a bucket at most
        assert abs(a.vah_ticks - b.vah_ticks) <= bucket and abs(a.val_ticks - b.val_ticks) <= bucket
    assert n > 1000  # the window did slide over the session
    assert same_poc >= 0.999 * n, f"POC equal in {same_poc}/{n}"
    assert same_va >= 0.99 * n, f"VAH/VAL equal in {same_va}/{n}"
    assert ours.stored_entries < len(ref.prints) / 4  # and it holds a fraction of the entries


def test_exact_against_every_print_with_slot_aligned_expiry() -> None:
    """The aggregation loses nothing: it equals keeping every print and dropping, at each add, exactly the
    prints of the slots whose last instant has left the window."""
    rng = random.Random(7)
    slot, window = 250_000_000, 30 * S  # (a slot is capped at 1 % of the window)
    ours = VolumeProfile(window, 3, slot_ns=slot)
    assert ours.slot_ns == slot
    prints: list[tuple[int, int, int]] = []
    t = 0
    for _ in range(3_000):
        t += rng.randrange(0, 40_000_000)
        p, q = 6_000_000 + rng.randrange(-60, 60), rng.randrange(1, 50)
        ours.add(t, p, q)
        prints.append((t, p, q))
        first_kept = (t - window + 1) // slot
        kept = [(ts, pp, qq) for ts, pp, qq in prints if ts // slot >= first_kept]
        ref = PerPrint(10**18, 3)
        for ts, pp, qq in kept:
            ref.add(ts, pp, qq)
        ref.last_price_ticks = p
        assert _key(ours.levels()) == _key(ref.levels())


def _fill(profile: VolumeProfile, rate_per_s: int, seconds: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    n = rate_per_s * seconds
    mid = 6_000_000
    for i in range(n):
        mid += rng.choice((-1, 0, 0, 1))
        profile.add(i * S // rate_per_s, mid + rng.randrange(-20, 21), rng.randrange(1, 100))


def _traced_size(make: type[VolumeProfile] | object, rate: int) -> tuple[int, int]:
    tracemalloc.start()
    try:
        p = make(WINDOW, 30)  # type: ignore[operator]  # BTCUSDT's 0.5 bps bucket: 30 ticks
        base = tracemalloc.get_traced_memory()[0]
        _fill(p, rate, 400)
        size = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    cells = p.stored_entries if not isinstance(p, PerPrint) else len(p.prints)
    return cells, size


def test_memory_does_not_follow_the_trade_rate() -> None:
    """Same 300 s window, 10x the prints: the slot profile grows by a small factor, the per-print one 10x."""
    cells_1, bytes_1 = _traced_size(VolumeProfile, 40)
    cells_10, bytes_10 = _traced_size(VolumeProfile, 400)
    # measured: 2563 -> 3039 cells, 489 -> 499 kB (the per-print profile: 12,000 -> 120,000 entries, 1.6 -> 16 MB)
    assert cells_10 < 1.5 * cells_1 and bytes_10 < 1.5 * bytes_1, (cells_1, cells_10, bytes_1, bytes_10)
    old_1, old_bytes_1 = _traced_size(PerPrint, 40)
    old_10, old_bytes_10 = _traced_size(PerPrint, 400)
    assert old_10 >= 9.5 * old_1 and old_bytes_10 > 8 * old_bytes_1  # what it replaced did follow it
    assert bytes_10 < old_bytes_10 / 5


def test_rolling_sums_merge_same_time_entries_exactly() -> None:
    rng = random.Random(3)
    flow, total = RollingFlow(S), RollingSum(S)
    # the naive reference: every print, those out of the window dropped (t never goes back, so what left
    # the window stays out: dropping it from the front is exact and keeps the reference O(window) per step)
    live: deque[tuple[int, int, int]] = deque()
    t = 0
    for _ in range(20_000):
        t += rng.choice((0, 0, 0, 1_000_000, 7_000_000))  # venue times are ms: many prints share one
        b, s = rng.randrange(0, 5), rng.randrange(0, 5)
        flow.add(t, b, s)
        total.add(t, b - s)
        live.append((t, b, s))
        while live[0][0] <= t - S:
            live.popleft()
        assert (flow.buy_lots, flow.sell_lots, flow.trades) == (
            sum(x[1] for x in live), sum(x[2] for x in live), len(live))
        assert (total.total, total.count) == (sum(x[1] - x[2] for x in live), len(live))
    assert len(flow._q) <= 1000  # at most one entry per ms of the 1 s window
