"""`research sweep` on freqtrade *.feather candles: one trial = the candle study (bot.research.candles)
with the trial's config, its trades under the bar-fill rule turned into the sweep's metrics.

Same metric names as a backtest trial (bot.research.objective.metrics_of), in R of each trade's own stop
distance: net R = net bps / risk bps (fees and funding included), gross R = the move / the risk. There is
no position size on candles, so `net_pnl_quote` and `fees_quote` are None (an objective on them is
penalised), and `max_drawdown` is the deepest peak-to-trough of the cumulative net R.
"""

from __future__ import annotations

import statistics
from typing import Any

__all__ = ["candle_trial", "is_funding_file"]


def is_funding_file(path: str) -> bool:
    return path.endswith("funding_rate.feather") or path.endswith("mark.feather")


def candle_trial(paths: list[str], settings: Any) -> dict[str, Any]:
    """{metrics, trades: [[entry_ts_ns, exit_ts_ns, r_net], ...]} of the bar rules on the candle files."""
    from bot.research.candle_data import read_candles, tick_of
    from bot.research.candles import candle_intents, fill

    cost_bps = settings.risk.maker_fee_bps + settings.risk.taker_fee_bps
    rows: list[tuple[int, int, float, float]] = []
    intents = 0
    for p in paths:
        if is_funding_file(p):
            continue  # shipped beside its candles (read_candles finds it there)
        cd = read_candles(p)
        tick = float(tick_of(cd.close))
        got, _ = candle_intents(cd, settings.signals)
        intents += len(got)
        for it in got:
            outcome, net_bps, r_gross, exit_t, risk_bps = fill(it, cd, tick, cost_bps)
            if outcome != "censored" and risk_bps > 0:
                rows.append((it.ts_ns, exit_t, net_bps / risk_bps, r_gross))
    rows.sort()
    r = [x[2] for x in rows]
    sd = statistics.stdev(r) if len(r) > 1 else 0.0
    wins, losses = sum(x for x in r if x > 0), -sum(x for x in r if x < 0)
    peak = cum = dd = 0.0
    for x in r:
        cum += x
        peak = max(peak, cum)
        dd = max(dd, peak - cum)
    metrics = {
        "trades": len(r),
        "win_rate": round(sum(1 for x in r if x > 0) / len(r), 6) if r else None,
        "net_expectancy_r": round(statistics.fmean(r), 6) if r else None,
        "gross_expectancy_r": round(statistics.fmean(x[3] for x in rows), 6) if r else None,
        "net_pnl_quote": None,
        "fees_quote": None,
        "sharpe_per_trade": round(statistics.fmean(r) / sd, 6) if sd > 0 else None,
        "profit_factor": round(wins / losses, 6) if losses > 0 else None,
        "max_drawdown": round(dd, 6),
        "intents": intents,
        "denials": 0,
    }
    return {"metrics": metrics, "trades": [[a, b, round(x, 6)] for a, b, x, _ in rows]}
