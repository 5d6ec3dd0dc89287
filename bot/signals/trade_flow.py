"""Trade-tape features: aggressor-signed volume, cumulative volume delta, rolling flow, large trades.

Definitions (sizes in lots):
- signed volume of a print = +qty if the aggressor bought (Binance `m` false: the buyer was the taker),
  -qty if it sold (Lee & Ready's trade sign, here given exactly by the venue's maker flag).
- CVD (cumulative volume delta) = running sum of signed volume since the start of the feed.
- per rolling window (exchange event time): buy lots, sell lots, number of prints, trade-flow imbalance
  (buy - sell) / (buy + sell) (Chordia & Subrahmanyam 2004 "order imbalance"), trade rate in prints/s.
- large trade: one aggressor order's volume at or above `large_lots`. Binance prints one `trade` per
  maker fill, so the prints of one taker order share the event time and side; consecutive prints with
  the same `T` and side are summed into one "burst" before the threshold is applied.
"""

from __future__ import annotations

from bot.signals.rolling import RollingFlow

__all__ = ["LargeTrade", "TradeFlow"]


class LargeTrade:
    __slots__ = ("buy", "lots", "price_ticks", "ts_ns")

    def __init__(self, ts_ns: int, buy: bool, lots: int, price_ticks: int) -> None:
        self.ts_ns = ts_ns
        self.buy = buy
        self.lots = lots
        self.price_ticks = price_ticks  # last price of the burst (the deepest level it reached)

    def __repr__(self) -> str:
        side = "buy" if self.buy else "sell"
        return f"LargeTrade({side} {self.lots} lots @ {self.price_ticks} t={self.ts_ns})"


class TradeFlow:
    __slots__ = (
        "_burst_buy",
        "_burst_lots",
        "_burst_ts",
        "cvd_lots",
        "large_count",
        "large_lots",
        "last_buy",
        "last_large",
        "last_lots",
        "last_price_ticks",
        "last_ts_ns",
        "trades_total",
        "windows",
    )

    def __init__(self, windows_ns: tuple[int, ...] = (1_000_000_000, 10_000_000_000),
                 large_lots: int = 1 << 62) -> None:
        self.windows = tuple(RollingFlow(w) for w in windows_ns)
        self.large_lots = large_lots
        self.cvd_lots = 0
        self.trades_total = 0
        self.last_price_ticks = 0
        self.last_lots = 0
        self.last_buy = True
        self.last_ts_ns = 0
        self.last_large: LargeTrade | None = None
        self.large_count = 0
        self._burst_ts = -1
        self._burst_buy = True
        self._burst_lots = 0

    def on_trade(self, ts_event_ns: int, price_ticks: int, lots: int,
                 aggressor_buy: bool) -> LargeTrade | None:
        """Add one print; returns a LargeTrade the moment a burst first crosses the threshold."""
        if aggressor_buy:
            self.cvd_lots += lots
            for w in self.windows:
                w.add(ts_event_ns, lots, 0)
        else:
            self.cvd_lots -= lots
            for w in self.windows:
                w.add(ts_event_ns, 0, lots)
        self.trades_total += 1
        self.last_price_ticks = price_ticks
        self.last_lots = lots
        self.last_buy = aggressor_buy
        self.last_ts_ns = ts_event_ns
        if ts_event_ns == self._burst_ts and aggressor_buy == self._burst_buy:
            before = self._burst_lots
            self._burst_lots += lots
        else:
            self._burst_ts = ts_event_ns
            self._burst_buy = aggressor_buy
            before = 0
            self._burst_lots = lots
        if before < self.large_lots <= self._burst_lots:
            self.large_count += 1
            self.last_large = LargeTrade(ts_event_ns, aggressor_buy, self._burst_lots, price_ticks)
            return self.last_large
        if self.last_large is not None and self.last_large.ts_ns == ts_event_ns and before >= self.large_lots:
            self.last_large.lots = self._burst_lots  # the burst keeps growing
            self.last_large.price_ticks = price_ticks
        return None

    def window(self, i: int, now_ns: int | None = None) -> RollingFlow:
        w = self.windows[i]
        if now_ns is not None:
            w.expire(now_ns)
        return w
