"""Top-of-book features and the Cont-Kukanov-Stoikov order-flow imbalance, per depth event.

Definitions (prices in ticks, sizes in lots of the symbol's instrument):

- spread_ticks = P^a - P^b.
- mid_ticks = (P^a + P^b) / 2.
- microprice_ticks = (q^b P^a + q^a P^b) / (q^b + q^a): the imbalance-weighted mid, i.e. the mid plus
  (I - 1/2) x spread with I = q^b / (q^b + q^a). Stoikov (2018), "The micro-price: a high-frequency
  estimator of future prices", Quantitative Finance 18(12), introduces it as the weighted mid-price and
  shows it tracks the next mid better than the mid; his full micro-price adds a Markov-chain correction
  g(I, S) that must be calibrated offline on the symbol's history (not done here).
- imbalance = (sum_i w_i b_i - sum_i w_i a_i) / (sum_i w_i b_i + sum_i w_i a_i) over the top N levels of
  each side (b_i, a_i = lots at the i-th level from the touch), w_i = decay^i; decay 1.0 is the plain
  top-N depth imbalance (Cartea, Jaimungal & Penalva 2015, ch. 4; Cao, Hansch & Wang 2009).
- OFI: Cont, Kukanov & Stoikov (2014), "The price impact of order book events", J. Financial
  Econometrics 12(1), eq. (2): for consecutive book states n-1, n (best prices P, best sizes q),
      e_n = 1{P^b_n >= P^b_{n-1}} q^b_n - 1{P^b_n <= P^b_{n-1}} q^b_{n-1}
          - 1{P^a_n <= P^a_{n-1}} q^a_n + 1{P^a_n >= P^a_{n-1}} q^a_{n-1},
  and OFI over an interval is the sum of e_n over the events in it. Here one event is one applied
  depth message (Binance `depthUpdate`), state n is the book right after it. Rolling sums use the
  exchange event time `E` (not our receive time), so replay and live agree.
"""

from __future__ import annotations

from bot.market.book import OrderBook
from bot.signals.rolling import RollingSum

__all__ = ["BookFeatures", "cks_event"]


def cks_event(pb0: int, qb0: int, pa0: int, qa0: int, pb1: int, qb1: int, pa1: int, qa1: int) -> int:
    """CKS (2014) e_n from the best bid/ask (price, size) before (…0) and after (…1) one event."""
    e = 0
    if pb1 >= pb0:
        e += qb1
    if pb1 <= pb0:
        e -= qb0
    if pa1 <= pa0:
        e -= qa1
    if pa1 >= pa0:
        e += qa0
    return e


class BookFeatures:
    """Updated once per applied depth event with `update(book, ts_event_ns)`: O(1) plus the top-N read."""

    __slots__ = ("_have_prev", "ask_lots", "ask_ticks", "bid_lots", "bid_ticks", "imbalance",
                 "imbalance_decay", "imbalance_levels", "last_e", "ofi_cum", "ofi_windows", "ts_ns", "valid")

    def __init__(self, imbalance_levels: int = 10, imbalance_decay: float = 1.0,
                 ofi_windows_ns: tuple[int, ...] = (1_000_000_000, 10_000_000_000)) -> None:
        if imbalance_levels < 1:
            raise ValueError("imbalance_levels must be >= 1")
        self.imbalance_levels = imbalance_levels
        self.imbalance_decay = imbalance_decay
        self.ofi_windows = tuple(RollingSum(w) for w in ofi_windows_ns)
        self._have_prev = False
        self.valid = False  # both sides present
        self.bid_ticks = self.bid_lots = self.ask_ticks = self.ask_lots = 0
        self.imbalance = 0.0
        self.last_e = 0  # e_n of the last event
        self.ofi_cum = 0  # running sum of e_n since start (differences give any interval's OFI)
        self.ts_ns = 0

    def update(self, book: OrderBook, ts_event_ns: int) -> None:
        bbo = book.bbo()
        if bbo is None:
            self.valid = False
            self._have_prev = False  # an empty side breaks the before/after pairing
            return
        pb, qb, pa, qa = bbo
        if self._have_prev:
            e = cks_event(self.bid_ticks, self.bid_lots, self.ask_ticks, self.ask_lots, pb, qb, pa, qa)
            self.last_e = e
            self.ofi_cum += e
            for w in self.ofi_windows:
                w.add(ts_event_ns, e)
        self._have_prev = True
        self.valid = True
        self.bid_ticks, self.bid_lots, self.ask_ticks, self.ask_lots = pb, qb, pa, qa
        self.ts_ns = ts_event_ns
        if self.imbalance_decay == 1.0:
            self.imbalance = book.imbalance(self.imbalance_levels)
        else:
            self.imbalance = weighted_imbalance(book, self.imbalance_levels, self.imbalance_decay)

    def reset(self) -> None:
        """Forget the previous state (after a resync: the next event must not pair with a stale book)."""
        self._have_prev = False
        self.valid = False

    def ofi(self, window: int = 0, now_ns: int | None = None) -> int:
        """OFI in lots over the `window`-th configured window (expired up to now_ns when given)."""
        w = self.ofi_windows[window]
        if now_ns is not None:
            w.expire(now_ns)
        return w.total

    @property
    def spread_ticks(self) -> int:
        return self.ask_ticks - self.bid_ticks

    @property
    def mid_ticks(self) -> float:
        return (self.bid_ticks + self.ask_ticks) / 2.0

    @property
    def microprice_ticks(self) -> float:
        tot = self.bid_lots + self.ask_lots
        if not tot:
            return self.mid_ticks
        return (self.bid_lots * self.ask_ticks + self.ask_lots * self.bid_ticks) / tot


def weighted_imbalance(book: OrderBook, levels: int, decay: float) -> float:
    """Top-N imbalance with level weights decay**i (i = 0 at the touch), each side over its own levels."""
    b = a = 0.0
    w = 1.0
    for _, lots in book.bids(levels):
        b += w * lots
        w *= decay
    w = 1.0
    for _, lots in book.asks(levels):
        a += w * lots
        w *= decay
    return (b - a) / (b + a) if b + a else 0.0
