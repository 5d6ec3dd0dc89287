"""Market context: funding, mark-last basis, and the rolling correlation/beta of a symbol to BTC.

- funding: the venue's current funding rate (per 8 h interval on Binance USD-M, exchange-facts) and
  time to the next funding in seconds; setups stay out of the window just before it (spreads widen and
  positions are re-hedged around the funding timestamp).
- basis_bps = (mark - last) / last x 1e4: the premium of the mark price (what liquidations and
  mark-triggered stops use) over the last traded price.
- correlation/beta to BTC: log returns of the symbol's mid (r_x) and BTC's mid (r_b) sampled on a fixed
  grid of exchange time (`sample_ns`), over the last `n` samples, from running sums (O(1) per sample):
  beta = cov(r_x, r_b) / var(r_b), corr = cov / (sd_x sd_b) (ordinary least squares, market-model beta).
- BTC move over `veto_window_ns`, in bps, for the veto "a BTC drop vetoes alt longs" (and, mirrored,
  a BTC jump vetoes alt shorts).
"""

from __future__ import annotations

import math
from collections import deque

__all__ = ["BtcLink", "FundingState"]


class FundingState:
    __slots__ = ("funding_rate", "index_price", "mark_price", "next_funding_ns", "ts_ns")

    def __init__(self) -> None:
        self.funding_rate: float | None = None
        self.mark_price: float | None = None
        self.index_price: float | None = None
        self.next_funding_ns: int | None = None
        self.ts_ns = 0

    def update(self, mark_price: float | None, index_price: float | None, funding_rate: float | None,
               next_funding_ns: int | None, ts_ns: int) -> None:
        if mark_price is not None:
            self.mark_price = mark_price
        if index_price is not None:
            self.index_price = index_price
        if funding_rate is not None:
            self.funding_rate = funding_rate
        if next_funding_ns:
            self.next_funding_ns = next_funding_ns
        self.ts_ns = ts_ns

    def seconds_to_funding(self, ts_ns: int) -> float | None:
        if self.next_funding_ns is None:
            return None
        return (self.next_funding_ns - ts_ns) / 1e9

    def basis_bps(self, last_price: float) -> float | None:
        if self.mark_price is None or last_price <= 0:
            return None
        return (self.mark_price - last_price) / last_price * 1e4


class BtcLink:
    """Rolling correlation/beta of one symbol's returns to BTC's, sampled on a grid of exchange time."""

    __slots__ = ("_next_ns", "_prev_b", "_prev_x", "_q", "_sb", "_sbb", "_sx", "_sxb", "_sxx", "btc_hist",
                 "n", "sample_ns", "veto_window_ns")

    def __init__(self, sample_ns: int = 1_000_000_000, n: int = 120,
                 veto_window_ns: int = 30_000_000_000) -> None:
        self.sample_ns = sample_ns
        self.n = n
        self.veto_window_ns = veto_window_ns
        self._q: deque[tuple[float, float]] = deque()
        self._sx = self._sb = self._sxx = self._sbb = self._sxb = 0.0
        self._prev_x: float | None = None
        self._prev_b: float | None = None
        self._next_ns = 0
        self.btc_hist: deque[tuple[int, float]] = deque()  # (ts, BTC mid) on the sample grid

    def sample(self, ts_ns: int, mid_x: float, mid_btc: float | None) -> None:
        """Call on every update of the symbol; takes one sample per grid step of exchange time."""
        if ts_ns < self._next_ns or mid_btc is None or mid_x <= 0 or mid_btc <= 0:
            return
        self._next_ns = ts_ns - ts_ns % self.sample_ns + self.sample_ns
        h = self.btc_hist
        h.append((ts_ns, mid_btc))
        cutoff = ts_ns - self.veto_window_ns
        while len(h) > 1 and h[1][0] <= cutoff:
            h.popleft()
        px, pb = self._prev_x, self._prev_b
        self._prev_x, self._prev_b = mid_x, mid_btc
        if px is None or pb is None:
            return
        x = math.log(mid_x / px)
        b = math.log(mid_btc / pb)
        self._q.append((x, b))
        self._sx += x
        self._sb += b
        self._sxx += x * x
        self._sbb += b * b
        self._sxb += x * b
        if len(self._q) > self.n:
            ox, ob = self._q.popleft()
            self._sx -= ox
            self._sb -= ob
            self._sxx -= ox * ox
            self._sbb -= ob * ob
            self._sxb -= ox * ob

    def _moments(self) -> tuple[float, float, float] | None:
        m = len(self._q)
        if m < 10:
            return None
        cov = self._sxb / m - (self._sx / m) * (self._sb / m)
        vx = self._sxx / m - (self._sx / m) ** 2
        vb = self._sbb / m - (self._sb / m) ** 2
        return cov, vx, vb

    @property
    def beta(self) -> float | None:
        mom = self._moments()
        if mom is None or mom[2] <= 1e-18:
            return None
        return mom[0] / mom[2]

    @property
    def corr(self) -> float | None:
        mom = self._moments()
        if mom is None or mom[1] <= 1e-18 or mom[2] <= 1e-18:
            return None
        return mom[0] / math.sqrt(mom[1] * mom[2])

    def btc_move_bps(self) -> float | None:
        """BTC's change over the veto window (first grid sample in it to the latest), in bps."""
        h = self.btc_hist
        if len(h) < 2:
            return None
        return (h[-1][1] / h[0][1] - 1.0) * 1e4
