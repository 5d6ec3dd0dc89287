"""What costs did to each trade, and to each setup's expectancy (read by `scalper report` and
`scalper backtest --json`: one definition for both).

Per trade (`trade_costs`), from the journal's trade row, its fills and its funding:
    cost_bps        the round trip the cost model (bot.risk.costs) expected at entry: the first entry
                    fill's fee rate (maker or taker, by its liquidity) + a taker exit + risk.slippage_bps
    cost_r          cost_bps × qty × entry price ÷ risk budget (the R of r_multiple)
    gross_pnl_quote price PnL of the fills (journaled pnl + fees)
    fees_quote      the fills' fees;  funding_quote: funding attributed to the trade (negative = paid)
    net_pnl_quote   gross − fees + funding;  r_gross / r_net: gross / net ÷ risk budget
    fills           [{ts_ns, kind: entry|exit, price, qty, liquidity: maker|taker, fee_quote}]

Per group (`expectancy`): gross and net expectancy in R and in quote with a two-sided 95 % Student t
interval on the mean (mean ± t(0.975, n−1) × s ÷ √n; none for fewer than 2 trades), the measured win
rate (net winners) and the break-even win rate at the costs: with W the mean gross R of the gross winners,
L the mean gross loss (R) of the gross losers and c the mean cost_r, p = (L + c) ÷ (W + L), the rate at
which p (W − c) = (1 − p)(L + c); 1.0 when the mean gross win does not even cover the mean cost (no win
rate breaks even), None without both gross winners and gross losers.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

__all__ = ["FeeConfig", "by_setup", "expectancy", "mean_ci95", "trade_costs", "verdict"]

# Student t quantile t(0.975, df) for df = 1..30; beyond 30 the normal 1.96 is within 2 %.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042)


class FeeConfig:
    """The costs the model priced with (risk.maker_fee_bps, taker_fee_bps, slippage_bps)."""

    __slots__ = ("maker_bps", "slippage_bps", "taker_bps")

    def __init__(self, maker_bps: float = 2.0, taker_bps: float = 5.0, slippage_bps: float = 1.0) -> None:
        self.maker_bps, self.taker_bps, self.slippage_bps = maker_bps, taker_bps, slippage_bps

    @classmethod
    def from_risk(cls, risk: Any) -> FeeConfig:
        return cls(risk.maker_fee_bps, risk.taker_fee_bps, risk.slippage_bps)

    @classmethod
    def from_config_body(cls, body: dict[str, Any] | None) -> FeeConfig:
        """From a journaled config body (the `config` table's JSON); defaults where it says nothing."""
        risk = (body or {}).get("risk") or {}
        d = cls()
        return cls(float(risk.get("maker_fee_bps", d.maker_bps)), float(risk.get("taker_fee_bps", d.taker_bps)),
                   float(risk.get("slippage_bps", d.slippage_bps)))


def _r(v: float | None, nd: int = 6) -> float | None:
    return None if v is None else round(v, nd)


def trade_costs(trade: dict[str, Any], fills: list[dict[str, Any]], fees: FeeConfig) -> dict[str, Any]:
    """The cost fields of one closed trade (module docstring). `trade` is the journal's row."""
    budget = trade.get("risk_budget") or 0.0
    entry_fills = [f for f in fills if f["role"] in ("entry", "add")]
    first_maker = bool(entry_fills[0]["is_maker"]) if entry_fills else False
    cost_bps = (fees.maker_bps if first_maker else fees.taker_bps) + fees.taker_bps + fees.slippage_bps
    qty, entry = trade.get("qty") or 0.0, trade.get("entry_price") or 0.0
    cost_quote = qty * entry * cost_bps / 1e4
    fees_quote = sum(f["fee"] for f in fills) if fills else (trade.get("fees") or 0.0)
    pnl = trade.get("pnl")
    funding = trade.get("funding_quote") or 0.0
    gross = None if pnl is None else pnl + (trade.get("fees") or 0.0)
    net = None if gross is None else gross - fees_quote + funding
    return {
        "cost_bps": round(cost_bps, 4),
        "cost_r": round(cost_quote / budget, 6) if budget > 0 else None,
        "gross_pnl_quote": _r(gross),
        "fees_quote": round(fees_quote, 6),
        "funding_quote": round(funding, 6),
        "net_pnl_quote": _r(net),
        "r_gross": _r(gross / budget) if gross is not None and budget > 0 else None,
        "r_net": _r(net / budget) if net is not None and budget > 0 else None,
        "fills": [{"ts_ns": f["ts_ns"], "kind": "entry" if f["role"] in ("entry", "add") else "exit",
                   "price": f["price"], "qty": f["qty"],
                   # a journal that records the venue's liquidity per fill (a `liquidity` column) is read as is
                   "liquidity": f.get("liquidity") or ("maker" if f["is_maker"] else "taker"),
                   "fee_quote": f["fee"]} for f in fills],
    }


def mean_ci95(values: list[float]) -> dict[str, Any]:
    """Mean with a two-sided 95 % Student t interval (None bounds for fewer than 2 values)."""
    n = len(values)
    if not n:
        return {"n": 0, "mean": None, "ci95": [None, None], "method": "t"}
    mean = statistics.fmean(values)
    if n < 2:
        return {"n": 1, "mean": round(mean, 6), "ci95": [None, None], "method": "t"}
    t = _T975[n - 2] if n - 1 <= len(_T975) else 1.96
    half = t * statistics.stdev(values) / math.sqrt(n)
    return {"n": n, "mean": round(mean, 6), "ci95": [round(mean - half, 6), round(mean + half, 6)], "method": "t"}


def expectancy(trades: list[dict[str, Any]]) -> dict[str, Any]:
    """Gross and net expectancy (R and quote) with 95 % t intervals, win rates and the break-even win
    rate of trades carrying `trade_costs` fields (those without a result are left out)."""
    done = [t for t in trades if t.get("r_net") is not None and t.get("r_gross") is not None]
    gross_r = [t["r_gross"] for t in done]
    wins = [r for r in gross_r if r > 0]
    losses = [-r for r in gross_r if r <= 0]
    costs = [t["cost_r"] for t in done if t.get("cost_r") is not None]
    be = None
    if wins and losses and costs:
        w, loss, c = statistics.fmean(wins), statistics.fmean(losses), statistics.fmean(costs)
        be = round(min(1.0, (loss + c) / (w + loss)), 4)
    n = len(done)
    return {
        "trades": n,
        "gross_expectancy_r": mean_ci95(gross_r),
        "net_expectancy_r": mean_ci95([t["r_net"] for t in done]),
        "gross_expectancy_quote": mean_ci95([t["gross_pnl_quote"] for t in done]),
        "net_expectancy_quote": mean_ci95([t["net_pnl_quote"] for t in done]),
        "mean_cost_r": round(statistics.fmean(costs), 6) if costs else None,
        "mean_cost_bps": round(statistics.fmean([t["cost_bps"] for t in done]), 4) if done else None,
        "win_rate_gross": round(len(wins) / n, 4) if n else None,
        "win_rate_net": round(sum(1 for t in done if t["r_net"] > 0) / n, 4) if n else None,
        "breakeven_win_rate": be,
    }


def by_setup(trades: list[dict[str, Any]]) -> dict[str, Any]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for t in trades:
        groups.setdefault(str(t["setup"]), []).append(t)
    return {k: expectancy(v) for k, v in sorted(groups.items())}


def verdict(overall: dict[str, Any]) -> str:
    """The report's first line: says so when net expectancy is negative."""
    net = overall["net_expectancy_r"]
    if not overall["trades"] or net["mean"] is None:
        return "No closed trades: no expectancy to report."
    lo, hi = net["ci95"]
    ci = f" (95 % CI {lo:+.3f} .. {hi:+.3f})" if lo is not None else ""
    gross = overall["gross_expectancy_r"]["mean"]
    head = "NET EXPECTANCY IS NEGATIVE" if net["mean"] < 0 else "Net expectancy is positive"
    return (f"{head}: {net['mean']:+.3f} R per trade after costs{ci}, gross {gross:+.3f} R, "
            f"over {overall['trades']} trades; mean cost {overall['mean_cost_r'] or 0:.3f} R.")
