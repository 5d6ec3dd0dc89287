"""EMA cross with an RSI filter: a strategy plug-in for scalper (docs/strategies.md).

On every closed `bar_s` bar: when the fast EMA crosses above the slow one and the RSI is between 50
and `rsi_long_max` (momentum, not yet stretched) -> long; crosses below with the RSI between
`rsi_short_min` and 50 -> short. Stop `stop_atr` ATRs beyond the last bar's extreme; target
`target_r` times the risk from the last close.

Config (examples/strategies/ema_rsi.toml):

    [signals.plugins.ema_rsi]
    path = "ema_rsi.py"
    object = "EmaCrossRsi"
    bar_s = 5.0
"""

from __future__ import annotations

from bot.strategy import Candidate, MarketView


class EmaCrossRsi:
    def __init__(self, bar_s: float = 5.0, fast: int = 9, slow: int = 21, rsi_n: int = 14,
                 rsi_long_max: float = 70.0, rsi_short_min: float = 30.0, atr_n: int = 14, stop_atr: float = 1.0,
                 target_r: float = 1.5, time_limit_s: float = 120.0) -> None:
        if not 0 < fast < slow:
            raise ValueError(f"need 0 < fast < slow, got fast={fast} slow={slow}")
        self.bar_s = bar_s  # read by the engine: propose() runs once per closed bar of this interval
        self.fast, self.slow, self.rsi_n, self.atr_n = fast, slow, rsi_n, atr_n
        self.rsi_long_max, self.rsi_short_min = rsi_long_max, rsi_short_min
        self.stop_atr, self.target_r = stop_atr, target_r
        self.time_limit_s = time_limit_s  # read by the engine: the trade's time exit
        self._prev_diff: dict[str, float] = {}  # per symbol: fast - slow at the previous bar

    def propose(self, view: MarketView) -> Candidate | None:
        b = self.bar_s
        fast, slow = view.ema(b, self.fast), view.ema(b, self.slow)
        rsi, atr = view.rsi(b, self.rsi_n), view.atr(b, self.atr_n)
        bars = view.bars(b)
        if fast is None or slow is None or rsi is None or atr is None or len(bars) < self.slow:
            return None
        diff = fast - slow
        prev = self._prev_diff.get(view.symbol)
        self._prev_diff[view.symbol] = diff
        if prev is None:
            return None
        last = bars[-1]
        feats = {"ema_fast": fast, "ema_slow": slow, "rsi": rsi, "atr": atr}
        if prev <= 0 < diff and 50 <= rsi <= self.rsi_long_max:
            stop = last.low - self.stop_atr * atr
            return Candidate(side="long", stop=stop, target=last.close + self.target_r * (last.close - stop),
                             tag="ema_cross_up", features=feats)
        if prev >= 0 > diff and self.rsi_short_min <= rsi <= 50:
            stop = last.high + self.stop_atr * atr
            return Candidate(side="short", stop=stop, target=last.close - self.target_r * (stop - last.close),
                             tag="ema_cross_down", features=feats)
        return None
