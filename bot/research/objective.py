"""One trial = one run of the bot's own backtest (bot.cli.backtest.run_backtest) on a config with the
trial's keys merged on top, loaded by bot.settings.load_settings (the one validation path).

The objective (maximised) is a metric of the run's closed trades; a run with fewer than `min_trades`
closed trades gets the penalised value PENALTY + trades (far below any real expectancy in R, and still
ordered by trade count so the sampler is pushed towards configurations that trade at all).
"""

from __future__ import annotations

import asyncio
import math
import statistics
import time
from typing import Any

from bot.research.space import deep_merge, overrides

__all__ = ["METRICS", "PENALTY", "closed_trades", "evaluate", "metrics_of", "objective_value"]

PENALTY = -1000.0
# name -> what it is (the --objective choices)
METRICS = {
    "net_expectancy_r": "mean net R per trade (after fees and funding)",
    "gross_expectancy_r": "mean gross R per trade (before fees)",
    "net_pnl_quote": "sum of the net PnL in quote currency",
    "win_rate": "share of closed trades with a positive PnL",
    "sharpe_per_trade": "mean / standard deviation of net R per trade",
    "profit_factor": "sum of winning net R / sum of losing net R",
}


def metrics_of(res: dict[str, Any]) -> dict[str, Any]:
    """The trial's metrics from a run_backtest result (JSON-safe, None where undefined)."""
    trades = closed_trades(res)
    r = [float(t["r_net"]) for t in trades]
    s = res["summary"]
    sd = statistics.stdev(r) if len(r) > 1 else 0.0
    wins = sum(x for x in r if x > 0)
    losses = -sum(x for x in r if x < 0)
    return {
        "trades": len(r),
        "win_rate": s["win_rate"],
        "net_expectancy_r": round(statistics.fmean(r), 6) if r else None,
        "gross_expectancy_r": round(statistics.fmean(float(t["r_gross"]) for t in trades), 6) if r else None,
        "net_pnl_quote": round(sum(float(t["net_pnl_quote"]) for t in trades), 6),
        "fees_quote": round(sum(float(t["fees_quote"]) for t in trades), 6),
        "sharpe_per_trade": round(statistics.fmean(r) / sd, 6) if sd > 0 else None,
        "profit_factor": round(wins / losses, 6) if losses > 0 else None,
        "max_drawdown": s["max_drawdown"],
        "intents": s["intents"],
        "denials": sum(s["denials"].values()),
    }


def closed_trades(res: dict[str, Any]) -> list[dict[str, Any]]:
    """Trades that held and closed a position, with a net R (a zero risk budget has none)."""
    return [t for t in res["trades"] if t["pnl"] is not None and t.get("r_net") is not None]


def objective_value(metrics: dict[str, Any], objective: str, min_trades: int) -> float:
    """Below `min_trades` (or an undefined metric): PENALTY + trades."""
    v = metrics.get(objective)
    if metrics["trades"] < min_trades or v is None or not math.isfinite(v):
        return PENALTY + metrics["trades"]
    return float(v)


def evaluate(paths: list[str], base: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """Run the backtest on `paths` with `base` (the config file's data) and the trial's dotted keys on top.
    Returns {metrics, trades: [[entry_ts_ns, exit_ts_ns, r_net], ...], seconds}."""
    from bot.cli.backtest import run_backtest
    from bot.settings import load_settings

    t0 = time.perf_counter()
    settings = load_settings(None, deep_merge(base, overrides(params)))
    if paths and all(p.endswith(".feather") for p in paths):  # candles: the bar rules (candle_sweep.py)
        from bot.research.candle_sweep import candle_trial

        return {**candle_trial(paths, settings), "seconds": round(time.perf_counter() - t0, 3)}
    res = asyncio.run(run_backtest(paths, settings))
    closed = closed_trades(res)
    return {"metrics": metrics_of(res),
            "trades": [[t["entry_ts_ns"], t["exit_ts_ns"], float(t["r_net"])] for t in closed],
            "seconds": round(time.perf_counter() - t0, 3)}
