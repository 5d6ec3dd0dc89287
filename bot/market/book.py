"""The depth of market: one L2 book per symbol, prices in integer ticks, sizes in integer lots.

Layout (chosen by measurement; `scalper bench book` reproduces it): a *price-indexed ladder*. Each
side is a Python list of lots indexed by `ticks - base`, over one window of `cap` ticks shared by both
sides and centred on the mid. A level update is one float conversion and one list store; the best
bid/ask are tracked indices (O(1) to read, a short walk when the best level is removed); top-N reads
slice the ladder next to the touch and let `filter(None, …)` skip the empty ticks at C speed.

Measured alternatives (BTCUSDT 2024-08-08, 68 levels/message): a dict + sorted key list spent ~40 µs a
message re-inserting and pruning far levels that `@depth@0ms` keeps touching; a dict with a cached
string->int converter lost to plain `float()` (hashing a fresh string costs more than parsing it).

Depth is bounded by the window: levels further than `depth_ticks` from the touch fall outside it and
are dropped on arrival, and when the mid drifts far enough the window re-centres (a C-speed slice
copy), so a 24 h session keeps memory flat. Far levels are unreliable anyway (exchange-facts A1).

No Decimal, no per-level objects, no pydantic on this path.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal

from bot.domain.instrument import Instrument
from bot.market.book_reads import EMPTY as _EMPTY
from bot.market.book_reads import BookReads

__all__ = ["OrderBook", "default_depth_ticks"]

_MAX_TICKS = 1 << 52  # beyond this a float price no longer maps exactly onto the tick grid


def default_depth_ticks(
    instrument: Instrument, ref_price: float | None = None, depth_bps: float = 200.0
) -> int:
    """Ticks to keep on each side of the touch: `depth_bps` of the price, clamped to [200, 200_000]."""
    if ref_price is None or ref_price <= 0:
        return 20_000
    ticks = int(ref_price * depth_bps / 10_000 / instrument.tick)
    return max(200, min(200_000, ticks))


def _check_levels(levels: list[tuple[int, int]]) -> None:
    """Snapshots and the first diff of an empty book (not the hot path): every level on the grid."""
    for t, q in levels:
        if not 0 < t < _MAX_TICKS or q < 0:
            raise ValueError(f"level out of range: {t} ticks, {q} lots")


class OrderBook(BookReads):
    """L2 book of one symbol. All public prices are absolute integer ticks, sizes integer lots."""

    __slots__ = (
        "_ask",
        "_ask_scan",
        "_ba",
        "_base",
        "_bb",
        "_bid",
        "_bid_scan",
        "_cap",
        "_inv_step",
        "_inv_tick",
        "depth_ticks",
        "instrument",
        "recenters",
        "symbol",
        "updates",
    )

    def __init__(self, instrument: Instrument, depth_ticks: int = 20_000) -> None:
        if depth_ticks < 10:
            raise ValueError(f"depth_ticks must be >= 10, got {depth_ticks}")
        self.instrument = instrument
        self.symbol = instrument.symbol
        self.depth_ticks = depth_ticks
        # The window holds depth on both sides plus half a depth of drift before it must re-centre.
        self._cap = 3 * depth_ticks
        self._base: int | None = None  # tick at index 0; None until the first level arrives
        self._bid: list[int] = []
        self._ask: list[int] = []
        self._bb = _EMPTY  # index of best bid
        self._ba = _EMPTY  # index of best ask
        # 1/tick via Decimal so the multiplier itself carries no 1/0.1 float noise. For any decimal
        # string on the grid, float(s) * inv is within 1e-9 of an integer well below 2**52, so +0.5
        # and truncation is exact (sizes and prices are never negative).
        self._inv_tick = float(1 / Decimal(instrument.tick_size))
        self._inv_step = float(1 / Decimal(instrument.step_size))
        self._bid_scan = 32  # slice width that last held the top 10 (adapts to the book's density)
        self._ask_scan = 32
        self.updates = 0
        self.recenters = 0

    # ================================================================= window management
    def _reset_window(self, center_ticks: int) -> None:
        self._base = center_ticks - self._cap // 2
        self._bid = [0] * self._cap
        self._ask = [0] * self._cap
        self._bb = self._ba = _EMPTY

    def _recenter(self, center_ticks: int) -> None:
        """Move the window so `center_ticks` is in its middle; levels that fall outside are dropped."""
        old_base = self._base
        assert old_base is not None
        cap = self._cap
        new_base = center_ticks - cap // 2
        shift = new_base - old_base
        if shift == 0:
            return
        bb = self._bb + old_base if self._bb != _EMPTY else None
        ba = self._ba + old_base if self._ba != _EMPTY else None
        for name in ("_bid", "_ask"):
            old = getattr(self, name)
            if shift > 0:
                new = old[shift:] + [0] * min(shift, cap) if shift < cap else [0] * cap
            else:
                s = -shift
                new = [0] * min(s, cap) + old[: cap - s] if s < cap else [0] * cap
            setattr(self, name, new)
        self._base = new_base
        self.recenters += 1
        self._bb = self._find_best_bid(bb - new_base if bb is not None else _EMPTY)
        self._ba = self._find_best_ask(ba - new_base if ba is not None else _EMPTY)

    def _find_best_bid(self, start: int) -> int:
        """Highest non-empty bid index at or below `start` (clamped into the window)."""
        bid = self._bid
        i = min(start, self._cap - 1)
        while i > 0 and not bid[i]:
            i -= 1
        return i if i > 0 else _EMPTY

    def _find_best_ask(self, start: int) -> int:
        ask = self._ask
        cap = self._cap
        i = max(start, 1) if start != _EMPTY else 1
        while i < cap and not ask[i]:
            i += 1
        return i if i < cap else _EMPTY

    def _maybe_recenter(self) -> None:
        """Keep `depth_ticks` of room behind each touch; re-centre on the mid when the touch drifts."""
        bb, ba = self._bb, self._ba
        d = self.depth_ticks
        if (bb != _EMPTY and bb - d < 0) or (ba != _EMPTY and ba + d >= self._cap):
            assert self._base is not None
            if bb != _EMPTY and ba != _EMPTY:
                center = self._base + (bb + ba) // 2
            else:
                center = self._base + (bb if bb != _EMPTY else ba)
            self._recenter(center)

    # ================================================================= writes
    def clear(self) -> None:
        self._base = None
        self._bid = []
        self._ask = []
        self._bb = self._ba = _EMPTY

    def apply_snapshot(self, bids: Iterable[Sequence[str]], asks: Iterable[Sequence[str]]) -> None:
        """Replace the book with a snapshot of decimal-string levels ([price, size] pairs)."""
        it, iq = self._inv_tick, self._inv_step
        b = [(int(float(p) * it + 0.5), int(float(q) * iq + 0.5)) for p, q in bids]
        a = [(int(float(p) * it + 0.5), int(float(q) * iq + 0.5)) for p, q in asks]
        _check_levels(b)
        _check_levels(a)
        self.apply_snapshot_ticks(b, a)

    def apply_snapshot_ticks(self, bids: Sequence[tuple[int, int]], asks: Sequence[tuple[int, int]]) -> None:
        bb = max((t for t, q in bids if q > 0), default=None)
        ba = min((t for t, q in asks if q > 0), default=None)
        center: int | None
        if bb is not None and ba is not None:
            center = (bb + ba) // 2
        elif bb is not None or ba is not None:
            center = bb if bb is not None else ba
        else:
            self.clear()
            self.updates += 1
            return
        assert center is not None
        self._reset_window(center)
        base, cap = self._base, self._cap
        assert base is not None
        bid, ask = self._bid, self._ask
        for t, q in bids:
            i = t - base
            if q > 0 and 0 < i < cap:
                bid[i] = q
        for t, q in asks:
            i = t - base
            if q > 0 and 0 < i < cap:
                ask[i] = q
        self._bb = self._find_best_bid(cap - 1)
        self._ba = self._find_best_ask(0)
        self.updates += 1

    def apply_diff(self, bids: Sequence[Sequence[str]], asks: Sequence[Sequence[str]]) -> None:
        """Apply absolute-size decimal-string levels. Size 0 removes the level; removing an absent
        level is a no-op (Binance "How to manage a local order book", steps 7-9; Bybit delta rules)."""
        base = self._base
        if base is None:
            self._apply_diff_cold(bids, asks)
            return
        it, iq, cap = self._inv_tick, self._inv_step, self._cap
        # int(x + off) with off = 0.5 - base rounds and rebases in one step. For a level below the
        # window, int() truncates towards zero and can give 0, so index 0 is never a valid slot: the
        # window is [1, cap). A level outside the window costs one float(): its size is never parsed
        # (measured: converting every size up front with map(float, ...) was 25 % slower on @depth@0ms).
        off = 0.5 - base
        # NaN/inf/non-numbers raise in int(float(...)) (ValueError/OverflowError/TypeError) and a
        # wrong-arity level in the unpacking: the sync turns them into MalformedMessage and resyncs.
        # A price below zero gives an index below -base (`low`); one comparison, only for levels that
        # are already outside the window.
        low = -base
        if bids:
            ladder = self._bid
            best = self._bb
            lost_best = False
            for p, q in bids:
                i = int(float(p) * it + off)
                if 0 < i < cap:
                    n = int(float(q) * iq + 0.5)  # sizes of far levels are never parsed
                    if n > 0:
                        ladder[i] = n
                        if i > best:
                            best = i
                    elif n:
                        raise ValueError(f"negative size {q!r:.40}")
                    else:
                        ladder[i] = 0
                        if i == best:
                            lost_best = True
                elif i < low:
                    raise ValueError(f"negative price {p!r:.40}")
                elif i >= cap and float(q) > 0:
                    # A bid above the window: the price jumped further than the window's slack.
                    self._bb = best
                    self._store_outside(True, i + base, int(float(q) * iq + 0.5))
                    base = self._base
                    assert base is not None
                    off = 0.5 - base
                    low = -base
                    ladder = self._bid
                    best = self._bb
            if lost_best:
                while best > 0 and not ladder[best]:
                    best -= 1
                if best == 0:
                    best = _EMPTY
            self._bb = best
        if asks:
            ladder = self._ask
            best = self._ba if self._ba != _EMPTY else cap
            lost_best = False
            for p, q in asks:
                i = int(float(p) * it + off)
                if 0 < i < cap:
                    n = int(float(q) * iq + 0.5)
                    if n > 0:
                        ladder[i] = n
                        if i < best:
                            best = i
                    elif n:
                        raise ValueError(f"negative size {q!r:.40}")
                    else:
                        ladder[i] = 0
                        if i == best:
                            lost_best = True
                elif i < low:
                    raise ValueError(f"negative price {p!r:.40}")
                elif i <= 0 and float(q) > 0:
                    self._ba = best if best < cap else _EMPTY
                    self._store_outside(False, int(float(p) * it + 0.5), int(float(q) * iq + 0.5))
                    base = self._base
                    assert base is not None
                    off = 0.5 - base
                    low = -base
                    ladder = self._ask
                    best = self._ba if self._ba != _EMPTY else cap
            if lost_best:
                while best < cap and not ladder[best]:
                    best += 1
            self._ba = best if best < cap else _EMPTY
        self.updates += 1
        bb, ba, d = self._bb, self._ba, self.depth_ticks
        if (bb != _EMPTY and bb < d) or (ba != _EMPTY and ba + d >= cap):
            self._maybe_recenter()

    def _apply_diff_cold(self, bids: Iterable[Sequence[str]], asks: Iterable[Sequence[str]]) -> None:
        it, iq = self._inv_tick, self._inv_step
        b = [(int(float(p) * it + 0.5), int(float(q) * iq + 0.5)) for p, q in bids]
        a = [(int(float(p) * it + 0.5), int(float(q) * iq + 0.5)) for p, q in asks]
        _check_levels(b)
        _check_levels(a)
        self.apply_diff_ticks(b, a)

    def _store_outside(self, is_bid: bool, ticks: int, lots: int) -> None:
        """A non-zero level beyond the touch side of the window: re-centre on it, then store."""
        if not 0 < ticks < _MAX_TICKS or lots < 0:
            # Rare path, so the check is free here: a bid at 1e300 would otherwise re-centre the
            # window onto it and wipe the book; a negative ask price would do the same.
            raise ValueError(f"level out of range: {ticks} ticks, {lots} lots")
        self._recenter(ticks)
        assert self._base is not None
        i = ticks - self._base
        if is_bid:
            self._bid[i] = lots
            if i > self._bb:
                self._bb = i
        else:
            self._ask[i] = lots
            if self._ba == _EMPTY or i < self._ba:
                self._ba = i

    def apply_diff_ticks(self, bids: Iterable[tuple[int, int]], asks: Iterable[tuple[int, int]]) -> None:
        """Apply levels already in (ticks, lots): the simulator's and the tests' entry point."""
        for t, n in bids:
            self.set_bid(t, n)
        for t, n in asks:
            self.set_ask(t, n)
        self.updates += 1

    def set_bid(self, ticks: int, lots: int) -> None:
        self._set(True, ticks, lots)

    def set_ask(self, ticks: int, lots: int) -> None:
        self._set(False, ticks, lots)

    def _set(self, is_bid: bool, ticks: int, lots: int) -> None:
        if lots < 0:
            raise ValueError(f"negative size {lots} at {ticks}")
        if self._base is None:
            if not lots:
                return
            self._reset_window(ticks)
        assert self._base is not None
        i = ticks - self._base
        if not 0 < i < self._cap:
            if not lots:
                return
            near_touch = (i >= self._cap) if is_bid else (i < 0)
            if not near_touch and (self._bb if is_bid else self._ba) != _EMPTY:
                return  # beyond the kept depth on the far side: dropped, as on the fast path
            self._store_outside(is_bid, ticks, lots)
            return
        if is_bid:
            self._bid[i] = lots
            if lots and i > self._bb:
                self._bb = i
            elif not lots and i == self._bb:
                self._bb = self._find_best_bid(i)
        else:
            self._ask[i] = lots
            if lots and (self._ba == _EMPTY or i < self._ba):
                self._ba = i
            elif not lots and i == self._ba:
                self._ba = self._find_best_ask(i)
        self._maybe_recenter()
