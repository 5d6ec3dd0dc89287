"""Bars built from the trade tape, and the indicators on them.

Bars (prices in ticks, volume in lots):
- time bars of `interval_ns`, aligned to multiples of the interval in exchange event time; a bar
  closes when the first print (or `advance(ts)` call) at or after its end arrives. Intervals with no
  print become flat bars at the last close with zero volume (capped at `max_fill` per gap), so
  indicators see time pass (a 1 s RSI must not ignore a silent minute);
- tick bars: every `n` prints; volume bars: every `v` lots (a print that crosses the threshold closes
  the bar; the bar may exceed `v`, no print is split) (Lopez de Prado 2018, "Advances in Financial
  Machine Learning", ch. 2.3).

Indicators, updated once per closed bar, O(1):
- EMA(n): alpha = 2 / (n + 1), seeded with the first close.
- RSI(n), Wilder (1978): first average gain/loss = simple mean of the first n changes, then
  avg = (avg * (n - 1) + x) / n; RSI = 100 - 100 / (1 + avg_gain / avg_loss) (100 when avg_loss = 0,
  50 when both are 0).
- ATR(n), Wilder (1978): TR = max(high - low, |high - prev close|, |low - prev close|) (high - low on
  the first bar); first ATR = mean of the first n TRs, then Wilder smoothing as above.
"""

from __future__ import annotations

from collections import deque

__all__ = ["ATR", "EMA", "RSI", "Bar", "BarSeries", "TickBars", "TimeBars", "VolumeBars"]


class Bar:
    __slots__ = ("buy_lots", "close", "high", "low", "open", "sell_lots", "t_start_ns", "trades")

    def __init__(self, t_start_ns: int, price: int) -> None:
        self.t_start_ns = t_start_ns
        self.open = self.high = self.low = self.close = price
        self.buy_lots = self.sell_lots = 0
        self.trades = 0

    @property
    def volume(self) -> int:
        return self.buy_lots + self.sell_lots

    def add(self, price: int, lots: int, buy: bool) -> None:
        if price > self.high:
            self.high = price
        elif price < self.low:
            self.low = price
        self.close = price
        if buy:
            self.buy_lots += lots
        else:
            self.sell_lots += lots
        self.trades += 1

    def __repr__(self) -> str:
        return (f"Bar(t={self.t_start_ns} o={self.open} h={self.high} l={self.low} c={self.close} "
                f"v={self.volume})")


class EMA:
    __slots__ = ("alpha", "n", "value")

    def __init__(self, n: int) -> None:
        self.n = n
        self.alpha = 2.0 / (n + 1)
        self.value: float | None = None

    def update(self, x: float) -> float:
        v = self.value
        self.value = x if v is None else v + self.alpha * (x - v)
        return self.value


class RSI:
    __slots__ = ("_gain", "_loss", "_prev", "_seen", "n", "value")

    def __init__(self, n: int = 14) -> None:
        self.n = n
        self._prev: float | None = None
        self._gain = self._loss = 0.0
        self._seen = 0
        self.value: float | None = None

    def update(self, close: float) -> float | None:
        prev = self._prev
        self._prev = close
        if prev is None:
            return None
        ch = close - prev
        g = ch if ch > 0 else 0.0
        lo = -ch if ch < 0 else 0.0
        n = self.n
        if self._seen < n:
            self._gain += g
            self._loss += lo
            self._seen += 1
            if self._seen < n:
                return None
            self._gain /= n
            self._loss /= n
        else:
            self._gain = (self._gain * (n - 1) + g) / n
            self._loss = (self._loss * (n - 1) + lo) / n
        if self._loss == 0.0:
            self.value = 50.0 if self._gain == 0.0 else 100.0
        else:
            self.value = 100.0 - 100.0 / (1.0 + self._gain / self._loss)
        return self.value


class ATR:
    __slots__ = ("_prev_close", "_seen", "_sum", "n", "value")

    def __init__(self, n: int = 14) -> None:
        self.n = n
        self._prev_close: float | None = None
        self._seen = 0
        self._sum = 0.0
        self.value: float | None = None

    def update(self, high: float, low: float, close: float) -> float | None:
        pc = self._prev_close
        tr = high - low if pc is None else max(high - low, abs(high - pc), abs(low - pc))
        self._prev_close = close
        n = self.n
        if self._seen < n:
            self._sum += tr
            self._seen += 1
            if self._seen == n:
                self.value = self._sum / n
        else:
            assert self.value is not None
            self.value = (self.value * (n - 1) + tr) / n
        return self.value


class BarSeries:
    """Closed bars (the last `keep`) with EMA fast/slow, RSI and ATR on the closes."""

    __slots__ = ("atr", "bars", "children", "closed", "ema_fast", "ema_slow", "prev_rsi", "rsi")

    def __init__(self, keep: int = 300, ema_fast: int = 5, ema_slow: int = 13, rsi: int = 14,
                 atr: int = 14) -> None:
        self.bars: deque[Bar] = deque(maxlen=keep)
        self.ema_fast = EMA(ema_fast)
        self.ema_slow = EMA(ema_slow)
        self.rsi = RSI(rsi)
        self.atr = ATR(atr)
        self.prev_rsi: float | None = None
        self.closed = 0
        self.children: list[TimeBars] = []  # longer time bars built from these bars (one merge per bar)

    def on_close(self, bar: Bar) -> None:
        self.bars.append(bar)
        self.closed += 1
        c = float(bar.close)
        self.ema_fast.update(c)
        self.ema_slow.update(c)
        self.prev_rsi = self.rsi.value
        self.rsi.update(c)
        self.atr.update(float(bar.high), float(bar.low), c)
        for ch in self.children:
            ch.on_bar(bar)


class TimeBars:
    """Time bars of `interval_ns` feeding a BarSeries. `on_trade`/`advance` return the number closed."""

    __slots__ = ("_cur", "_start_ns", "interval_ns", "last_close", "max_fill", "series")

    def __init__(self, interval_ns: int, series: BarSeries | None = None, max_fill: int = 600) -> None:
        if interval_ns <= 0:
            raise ValueError("interval_ns must be > 0")
        self.interval_ns = interval_ns
        self.series = series if series is not None else BarSeries()
        self.max_fill = max_fill
        self._cur: Bar | None = None  # the open interval's bar; None while it has no print yet
        self._start_ns = 0  # start of the open interval
        self.last_close: int | None = None

    def advance(self, ts_ns: int) -> int:
        """Close every interval that ended at or before ts_ns; returns how many bars closed."""
        last = self.last_close
        if last is None:
            return 0
        iv = self.interval_ns
        n = (ts_ns - self._start_ns) // iv
        if n <= 0:
            return 0
        series = self.series
        cur = self._cur
        if cur is not None:
            series.on_close(cur)
            last = self.last_close = cur.close
            self._cur = None
        else:
            series.on_close(Bar(self._start_ns, last))
        rest = n - 1
        start = self._start_ns + iv
        if rest > self.max_fill:  # a long silence: only the last max_fill flat bars matter
            start += (rest - self.max_fill) * iv
            rest = self.max_fill
        for k in range(rest):
            series.on_close(Bar(start + k * iv, last))
        self._start_ns = start + rest * iv
        return 1 + rest

    def on_trade(self, ts_ns: int, price: int, lots: int, buy: bool) -> int:
        closed = 0
        if self.last_close is None:
            self._start_ns = ts_ns - ts_ns % self.interval_ns
            self.last_close = price
        elif ts_ns - self._start_ns >= self.interval_ns:
            closed = self.advance(ts_ns)
        cur = self._cur
        if cur is None:
            cur = self._cur = Bar(self._start_ns, price)
        cur.add(price, lots, buy)
        return closed

    def on_bar(self, b: Bar) -> int:
        """Merge a closed shorter bar (its interval must divide this one's and be aligned the same way):
        the same bars as feeding every print, for one merge per short bar instead of one per print."""
        if b.trades == 0:  # a flat fill bar: time passing, which advance() turns into flat bars
            return self.advance(b.t_start_ns) if self.last_close is not None else 0
        closed = 0
        if self.last_close is None:
            self._start_ns = b.t_start_ns - b.t_start_ns % self.interval_ns
            self.last_close = b.open
        elif b.t_start_ns - self._start_ns >= self.interval_ns:
            closed = self.advance(b.t_start_ns)
        cur = self._cur
        if cur is None:
            cur = self._cur = Bar(self._start_ns, b.open)
            cur.high, cur.low = b.high, b.low
        else:
            if b.high > cur.high:
                cur.high = b.high
            if b.low < cur.low:
                cur.low = b.low
        cur.close = b.close
        cur.buy_lots += b.buy_lots
        cur.sell_lots += b.sell_lots
        cur.trades += b.trades
        return closed

    @property
    def current(self) -> Bar | None:
        return self._cur


class TickBars:
    """A bar every `n` prints."""

    __slots__ = ("_cur", "n", "series")

    def __init__(self, n: int, series: BarSeries | None = None) -> None:
        self.n = n
        self.series = series if series is not None else BarSeries()
        self._cur: Bar | None = None

    def on_trade(self, ts_ns: int, price: int, lots: int, buy: bool) -> int:
        cur = self._cur
        if cur is None:
            cur = self._cur = Bar(ts_ns, price)
        cur.add(price, lots, buy)
        if cur.trades >= self.n:
            self.series.on_close(cur)
            self._cur = None
            return 1
        return 0


class VolumeBars:
    """A bar every `lots` of traded volume (the print that crosses the threshold closes the bar)."""

    __slots__ = ("_cur", "lots", "series")

    def __init__(self, lots: int, series: BarSeries | None = None) -> None:
        if lots <= 0:
            raise ValueError("lots must be > 0")
        self.lots = lots
        self.series = series if series is not None else BarSeries()
        self._cur: Bar | None = None

    def on_trade(self, ts_ns: int, price: int, lots: int, buy: bool) -> int:
        cur = self._cur
        if cur is None:
            cur = self._cur = Bar(ts_ns, price)
        cur.add(price, lots, buy)
        if cur.volume >= self.lots:
            self.series.on_close(cur)
            self._cur = None
            return 1
        return 0
