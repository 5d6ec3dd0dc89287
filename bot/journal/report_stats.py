"""Performance of a report's closed trades (bot.journal.report "performance"): risk-adjusted ratios, the
daily breakdown, streaks, best and worst trades, and the MAE/MFE of each trade.

Everything is on the NET result (net_pnl_quote = gross − fees + funding, r_net; bot.journal.costs).

Ratios, annualised from DAILY net PnL: the UTC calendar days from the first to the last exit, days without
a trade counted as 0 (a day the bot stood aside is a day of the strategy too). Crypto futures trade every
day, so a year is 365 days:
    sharpe   mean(daily) ÷ stdev(daily) × √365 (sample stdev; risk-free rate 0)
    sortino  mean(daily) ÷ downside deviation × √365, downside deviation = √(mean(min(0, daily)²)) over all days
    calmar   mean(daily) × 365 ÷ max drawdown of the cumulative net PnL (by trade)
All three are ratios of quote to quote, so no capital base is needed; each is None with fewer than 2 days
(or no dispersion / no downside / no drawdown). `per_trade` gives the unannualised mean ÷ stdev of r_net.

Streaks: runs of net winners (> 0) and net losers (≤ 0) in exit order; `current` is signed (+ wins, − losses).
"""

from __future__ import annotations

import math
import statistics
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = ["ANNUALISATION", "max_drawdown", "performance"]

ANNUALISATION = ("daily net PnL over the UTC calendar days from the first to the last exit (days without trades "
                 "= 0), x sqrt(365) for Sharpe/Sortino, x 365 for Calmar; risk-free rate 0")
_DAYS_PER_YEAR = 365
_BEST_WORST = 5


def _net(t: dict[str, Any]) -> float:
    v = t.get("net_pnl_quote")
    return float(v if v is not None else t["pnl"])


def _day(ts_ns: int) -> str:
    return datetime.fromtimestamp(ts_ns / 1e9, UTC).strftime("%Y-%m-%d")


def _daily(trades: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for t in trades:
        d = rows.setdefault(_day(t["exit_ts_ns"]), {"trades": 0, "wins": 0, "net_pnl_quote": 0.0,
                                                     "fees_quote": 0.0, "r_net": 0.0})
        net = _net(t)
        d["trades"] += 1
        d["wins"] += net > 0
        d["net_pnl_quote"] += net
        d["fees_quote"] += t.get("fees_quote") or t.get("fees") or 0.0
        d["r_net"] += t.get("r_net") or 0.0
    if not rows:
        return []
    first = datetime.strptime(min(rows), "%Y-%m-%d").replace(tzinfo=UTC)
    last = datetime.strptime(max(rows), "%Y-%m-%d").replace(tzinfo=UTC)
    out = []
    day = first
    while day <= last:
        key = day.strftime("%Y-%m-%d")
        d = rows.get(key, {"trades": 0, "wins": 0, "net_pnl_quote": 0.0, "fees_quote": 0.0, "r_net": 0.0})
        out.append({"date": key, "trades": d["trades"], "wins": d["wins"],
                    "net_pnl_quote": round(d["net_pnl_quote"], 6), "fees_quote": round(d["fees_quote"], 6),
                    "r_net": round(d["r_net"], 4)})
        day += timedelta(days=1)
    return out


def max_drawdown(values: list[float]) -> float:
    """Largest fall of the running sum of `values` from its running peak (quote units)."""
    peak = cum = dd = 0.0
    for v in values:
        cum += v
        peak = max(peak, cum)
        dd = max(dd, peak - cum)
    return dd


def _ratios(daily: list[float], trade_nets: list[float], r_nets: list[float]) -> dict[str, Any]:
    out: dict[str, Any] = {"sharpe": None, "sortino": None, "calmar": None, "days": len(daily),
                           "annualisation": ANNUALISATION, "per_trade": None}
    if len(r_nets) >= 2 and statistics.stdev(r_nets) > 0:
        out["per_trade"] = round(statistics.fmean(r_nets) / statistics.stdev(r_nets), 4)
    if len(daily) < 2:
        return out
    mean = statistics.fmean(daily)
    sd = statistics.stdev(daily)
    if sd > 0:
        out["sharpe"] = round(mean / sd * math.sqrt(_DAYS_PER_YEAR), 4)
    down = math.sqrt(statistics.fmean([min(0.0, d) ** 2 for d in daily]))
    if down > 0:
        out["sortino"] = round(mean / down * math.sqrt(_DAYS_PER_YEAR), 4)
    dd = max_drawdown(trade_nets)
    if dd > 0:
        out["calmar"] = round(mean * _DAYS_PER_YEAR / dd, 4)
    return out


def _streaks(nets: list[float]) -> dict[str, int]:
    best_win = best_loss = cur = 0
    for v in nets:
        if v > 0:
            cur = cur + 1 if cur > 0 else 1
            best_win = max(best_win, cur)
        else:
            cur = cur - 1 if cur < 0 else -1
            best_loss = max(best_loss, -cur)
    return {"longest_win": best_win, "longest_loss": best_loss, "current": cur}


def _brief(t: dict[str, Any]) -> dict[str, Any]:
    return {"trade_id": t["trade_id"], "setup": t["setup"], "symbol": t["symbol"], "side": t["side"],
            "exit_ts_ns": t["exit_ts_ns"], "exit_reason": t["exit_reason"], "net_pnl_quote": round(_net(t), 6),
            "r_net": t.get("r_net"), "mae_r": t.get("mae_r"), "mfe_r": t.get("mfe_r")}


def performance(trades: list[dict[str, Any]]) -> dict[str, Any]:
    """Ratios, daily breakdown, streaks, best/worst trades and per-trade MAE/MFE of closed trades in exit
    order (module docstring)."""
    trades = sorted(trades, key=lambda t: t["exit_ts_ns"])
    nets = [_net(t) for t in trades]
    daily = _daily(trades)
    ranked = sorted(trades, key=_net)
    return {
        "ratios": _ratios([d["net_pnl_quote"] for d in daily], nets,
                          [t["r_net"] for t in trades if t.get("r_net") is not None]),
        "daily": daily,
        "streaks": _streaks(nets),
        "best": [_brief(t) for t in reversed(ranked[-_BEST_WORST:])],
        "worst": [_brief(t) for t in ranked[:_BEST_WORST]],
        # per trade (for the MAE/MFE scatter): the engine's excursions from the first entry fill, in R
        "excursions": [{"trade_id": t["trade_id"], "mae_r": t.get("mae_r"), "mfe_r": t.get("mfe_r"),
                        "mae_ticks": t.get("mae_ticks"), "mfe_ticks": t.get("mfe_ticks"), "r_net": t.get("r_net")}
                       for t in trades],
    }
