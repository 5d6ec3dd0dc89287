"""Reads of the order book (bot/market/book.py): at the touch in O(1), and of depth (top-N sizes, levels,
cumulative depth, the sweep, VWAP and impact of a market order). A mixin so book.py keeps the ladder and its
updates; `OrderBook` owns the slots these methods read.
"""

from __future__ import annotations

from itertools import islice

__all__ = ["EMPTY", "BookReads"]

EMPTY = -1  # index of the best level of an empty side
_EMPTY = EMPTY


class BookReads:
    """The read half of OrderBook (prices in integer ticks, sizes in integer lots)."""

    __slots__ = ()
    _base: int | None
    _bid: list[int]
    _ask: list[int]
    _bb: int
    _ba: int
    _cap: int
    _bid_scan: int
    _ask_scan: int

    # ================================================================= reads at the touch: O(1)
    @property
    def best_bid_ticks(self) -> int | None:
        return self._bb + self._base if self._bb != _EMPTY and self._base is not None else None

    @property
    def best_ask_ticks(self) -> int | None:
        return self._ba + self._base if self._ba != _EMPTY and self._base is not None else None

    def best_bid(self) -> tuple[int, int] | None:
        """(ticks, lots) of the best bid, or None when the side is empty."""
        bb = self._bb
        if bb == _EMPTY or self._base is None:
            return None
        return bb + self._base, self._bid[bb]

    def best_ask(self) -> tuple[int, int] | None:
        ba = self._ba
        if ba == _EMPTY or self._base is None:
            return None
        return ba + self._base, self._ask[ba]

    def bbo(self) -> tuple[int, int, int, int] | None:
        """(bid ticks, bid lots, ask ticks, ask lots), or None if either side is empty."""
        bb, ba, base = self._bb, self._ba, self._base
        if bb == _EMPTY or ba == _EMPTY or base is None:
            return None
        return bb + base, self._bid[bb], ba + base, self._ask[ba]

    def is_crossed(self) -> bool:
        return self._bb != _EMPTY and self._ba != _EMPTY and self._bb >= self._ba

    def spread_ticks(self) -> int | None:
        if self._bb == _EMPTY or self._ba == _EMPTY:
            return None
        return self._ba - self._bb

    def mid_ticks(self) -> float | None:
        if self._bb == _EMPTY or self._ba == _EMPTY or self._base is None:
            return None
        return self._base + (self._bb + self._ba) / 2.0

    # ================================================================= reads of depth
    def _top_bid_sizes(self, n: int) -> list[int]:
        """Sizes of the top n bid levels, best first. A reversed slice next to the touch, filtered and
        cut at the n-th level in C; the slice width adapts to the book's density."""
        bb = self._bb
        if bb == _EMPTY:
            return []
        bid = self._bid
        w = self._bid_scan
        first = True
        while True:
            lo = bb - w
            got = list(islice(filter(None, bid[bb:lo:-1] if lo > 0 else bid[bb:0:-1]), n))
            if len(got) >= n or lo <= 0:
                break
            w *= 2
            first = False
        # Found at the first try: narrow a little, so a book that thickens again is sliced less.
        self._bid_scan = (w - (w >> 3) if w > 16 else w) if first else (w if w <= 4096 else 4096)  # type: ignore[misc]  # OrderBook.__slots__ holds it
        return got

    def _top_ask_sizes(self, n: int) -> list[int]:
        """Sizes of the top n ask levels, best first."""
        ba = self._ba
        if ba == _EMPTY:
            return []
        ask = self._ask
        w = self._ask_scan
        cap = self._cap
        first = True
        while True:
            got = list(islice(filter(None, ask[ba : ba + w]), n))
            if len(got) >= n or ba + w >= cap:
                break
            w *= 2
            first = False
        self._ask_scan = (w - (w >> 3) if w > 16 else w) if first else (w if w <= 4096 else 4096)  # type: ignore[misc]  # OrderBook.__slots__ holds it
        return got

    def depth_lots(self, n: int) -> tuple[int, int]:
        """(bid lots, ask lots) summed over the top n levels of each side."""
        return sum(self._top_bid_sizes(n)), sum(self._top_ask_sizes(n))

    def imbalance(self, n: int = 10) -> float:
        """Top-n depth imbalance (bid - ask) / (bid + ask) in [-1, 1]; 0.0 on an empty book."""
        b = sum(self._top_bid_sizes(n))
        a = sum(self._top_ask_sizes(n))
        tot = b + a
        return (b - a) / tot if tot else 0.0

    def bids(self, n: int | None = None) -> list[tuple[int, int]]:
        """Top n bid levels (all when n is None), best first, as (ticks, lots)."""
        out: list[tuple[int, int]] = []
        bb, base = self._bb, self._base
        if bb == _EMPTY or base is None:
            return out
        bid = self._bid
        limit = n if n is not None else 1 << 62
        for i in range(bb, 0, -1):
            q = bid[i]
            if q:
                out.append((i + base, q))
                if len(out) >= limit:
                    break
        return out

    def asks(self, n: int | None = None) -> list[tuple[int, int]]:
        out: list[tuple[int, int]] = []
        ba, base = self._ba, self._base
        if ba == _EMPTY or base is None:
            return out
        ask = self._ask
        limit = n if n is not None else 1 << 62
        for i in range(ba, self._cap):
            q = ask[i]
            if q:
                out.append((i + base, q))
                if len(out) >= limit:
                    break
        return out

    def bid_size(self, ticks: int) -> int:
        if self._base is None:
            return 0
        i = ticks - self._base
        return self._bid[i] if 0 <= i < self._cap else 0

    def ask_size(self, ticks: int) -> int:
        if self._base is None:
            return 0
        i = ticks - self._base
        return self._ask[i] if 0 <= i < self._cap else 0

    @property
    def bid_count(self) -> int:
        return len(self._bid) - self._bid.count(0)

    @property
    def ask_count(self) -> int:
        return len(self._ask) - self._ask.count(0)

    def cumulative_bids(self, n: int) -> list[tuple[int, int]]:
        """Top n bid levels with the running total of lots: (ticks, cumulative lots)."""
        acc = 0
        out = []
        for t, q in self.bids(n):
            acc += q
            out.append((t, acc))
        return out

    def cumulative_asks(self, n: int) -> list[tuple[int, int]]:
        acc = 0
        out = []
        for t, q in self.asks(n):
            acc += q
            out.append((t, acc))
        return out

    def sweep(self, side_buy: bool, lots: int) -> tuple[int, int, int]:
        """Walk the opposite side for a market order of `lots`.

        Returns (filled lots, notional in ticks*lots, worst price in ticks); filled < lots when the
        book is too thin. The average fill price in ticks is notional / filled. The walk stops at the
        level that completes the order (the risk gate prices every entry's impact with it, so it must not
        scan the whole window).
        """
        filled = notional = worst = 0
        base = self._base
        if lots <= 0 or base is None:
            return 0, 0, 0
        if side_buy:
            start, end, step, side = self._ba, self._cap, 1, self._ask
        else:
            start, end, step, side = self._bb, 0, -1, self._bid  # index 0 is never read (bids() neither)
        if start == _EMPTY:
            return 0, 0, 0
        for i in range(start, end, step):
            q = side[i]
            if not q:
                continue
            take = q if q < lots - filled else lots - filled
            filled += take
            t = i + base
            notional += take * t
            worst = t
            if filled >= lots:
                break
        return filled, notional, worst

    def vwap_ticks(self, side_buy: bool, lots: int) -> float | None:
        """Average fill price (ticks) of a market order of `lots`; None if the book cannot fill it."""
        filled, notional, _ = self.sweep(side_buy, lots)
        if filled == 0 or filled < lots:
            return None
        return notional / filled

    def impact_ticks(self, side_buy: bool, lots: int) -> float | None:
        """Price impact of a market order: |VWAP - touch| in ticks (None if unfillable)."""
        v = self.vwap_ticks(side_buy, lots)
        touch = self.best_ask_ticks if side_buy else self.best_bid_ticks
        if v is None or touch is None:
            return None
        return abs(v - touch)
