"""Rolling volume profile: traded volume per price bucket over a window of exchange event time.

Definitions (Steidlmayer's Market Profile, CBOT 1984; the usual volume-profile reading):
- bucket = price_ticks // bucket_ticks; a bucket's volume is the lots printed in it within the window.
- POC (point of control): the bucket with the most volume (ties: the one nearest the last price).
- value area (70 %): start at the POC and repeatedly add the neighbouring bucket (above or below)
  with more volume until the area holds >= value_area_frac of the window's volume; VAH/VAL are the
  top of its highest bucket and the bottom of its lowest.
- high-volume nodes: buckets that are local maxima (>= both neighbours) with volume >= `hvn_mult` x the
  mean volume of the non-empty buckets.
Adding a print and expiring old ones is O(1) amortised; the POC/value area/HVN are computed on demand
in O(buckets) and cached until the next change (setups read them at most once per bar).

Memory is bounded by size, not by the trade rate (issue 11: keeping every print cost +10.8 MB under a
10x market): prints are summed per price bucket into time slots of `slot_ns` (signals.profile_slot_ms, 250 ms),
and whole slots expire. So the window holds at most window/slot slots x the buckets traded in each,
whatever the rate. A slot leaves once its last instant is older than the window, so a print counts for
between `window` and `window + slot`. The value area's edge is that sensitive by nature (the per-print
profile itself moves VAH/VAL in 6-33 % of trades when its window grows by 0.5 s); on the recorded
sessions 250 ms slots gave the same POC always and the same VAH/VAL in >= 99.5 % of trades
(tests/signals/test_profile_memory.py).
"""

from __future__ import annotations

from collections import deque

__all__ = ["ProfileLevels", "VolumeProfile"]


class ProfileLevels:
    __slots__ = ("hvn_ticks", "poc_ticks", "total_lots", "vah_ticks", "val_ticks")

    def __init__(self, poc_ticks: int, vah_ticks: int, val_ticks: int, hvn_ticks: tuple[int, ...],
                 total_lots: int) -> None:
        self.poc_ticks = poc_ticks  # centre of the POC bucket
        self.vah_ticks = vah_ticks
        self.val_ticks = val_ticks
        self.hvn_ticks = hvn_ticks  # centres of the high-volume-node buckets, ascending
        self.total_lots = total_lots

    def __repr__(self) -> str:
        return (f"ProfileLevels(poc={self.poc_ticks} vah={self.vah_ticks} val={self.val_ticks} "
                f"hvn={self.hvn_ticks})")


class VolumeProfile:
    __slots__ = ("_cache", "_q", "_vol", "bucket_ticks", "hvn_mult", "last_price_ticks", "slot_ns", "total_lots",
                 "value_area_frac", "window_ns")

    def __init__(self, window_ns: int, bucket_ticks: int = 1, value_area_frac: float = 0.70,
                 hvn_mult: float = 1.5, slot_ns: int = 250_000_000) -> None:
        if bucket_ticks < 1:
            raise ValueError("bucket_ticks must be >= 1")
        if slot_ns < 1:
            raise ValueError("slot_ns must be >= 1")
        self.window_ns = window_ns
        self.bucket_ticks = bucket_ticks
        self.value_area_frac = value_area_frac
        self.hvn_mult = hvn_mult
        # at most 1 % of the window, so a print's extra life (< one slot) stays small for any window
        self.slot_ns = max(1, min(slot_ns, window_ns // 100))
        # (slot index, {price bucket: lots printed in that slot}), oldest first
        self._q: deque[tuple[int, dict[int, int]]] = deque()
        self._vol: dict[int, int] = {}
        self.total_lots = 0
        self.last_price_ticks = 0
        self._cache: ProfileLevels | None = None

    @property
    def stored_entries(self) -> int:
        """(slot, bucket) cells held: what the memory is proportional to (levels x slots, not prints)."""
        return sum(len(d) for _, d in self._q)

    def add(self, ts_ns: int, price_ticks: int, lots: int) -> None:
        b = price_ticks // self.bucket_ticks
        slot = ts_ns // self.slot_ns
        q = self._q
        if q and q[-1][0] >= slot:  # the current slot (a print stamped a little earlier joins it too)
            cur = q[-1][1]
        else:
            cur = {}
            q.append((slot, cur))
        cur[b] = cur.get(b, 0) + lots
        vol = self._vol
        vol[b] = vol.get(b, 0) + lots
        self.total_lots += lots
        self.last_price_ticks = price_ticks
        self._cache = None
        self.expire(ts_ns)

    def expire(self, now_ns: int) -> None:
        q = self._q
        # Slot s covers [s*slot, (s+1)*slot); it leaves when its last instant is <= now - window.
        first_kept = (now_ns - self.window_ns + 1) // self.slot_ns
        if q and q[0][0] < first_kept:
            vol = self._vol
            while q and q[0][0] < first_kept:
                _, cells = q.popleft()
                for b, lots in cells.items():
                    left = vol[b] - lots
                    if left:
                        vol[b] = left
                    else:
                        del vol[b]
                    self.total_lots -= lots
            self._cache = None

    def levels(self) -> ProfileLevels | None:
        """POC, VAH, VAL and HVNs of the current window, or None when it is empty."""
        if self._cache is not None:
            return self._cache
        vol = self._vol
        if not vol:
            return None
        bt = self.bucket_ticks
        keys = sorted(vol)
        vals = [vol[k] for k in keys]
        last_b = self.last_price_ticks // bt
        best = max(vals)
        poc_i = min((i for i, v in enumerate(vals) if v == best), key=lambda i: abs(keys[i] - last_b))
        # Value area: grow from the POC towards the heavier neighbour (empty buckets count as 0).
        target = self.value_area_frac * self.total_lots
        lo = hi = keys[poc_i]
        acc = best
        while acc < target:
            up = vol.get(hi + 1, 0) if hi < keys[-1] else -1
            dn = vol.get(lo - 1, 0) if lo > keys[0] else -1
            if up < 0 and dn < 0:
                break
            if up >= dn:
                hi += 1
                acc += up
            else:
                lo -= 1
                acc += dn
        mean = self.total_lots / len(vals)
        hvn = []
        for i, k in enumerate(keys):
            v = vals[i]
            if v < self.hvn_mult * mean:
                continue
            if v >= vol.get(k - 1, 0) and v >= vol.get(k + 1, 0):
                hvn.append(k * bt + bt // 2)
        self._cache = ProfileLevels(keys[poc_i] * bt + bt // 2, hi * bt + bt - 1, lo * bt, tuple(hvn),
                                    self.total_lots)
        return self._cache
