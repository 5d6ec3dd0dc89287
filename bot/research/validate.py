"""`scalper research validate`: is the sweep's choice real or luck?

From a study (its trials keep every closed trade: entry, exit, net R) and the sessions it ran on:
- walk-forward folds (anchored or rolling) and combinatorially purged CV splits (bot.research.folds):
  per fold the trial with the best IS mean net R is selected and its OOS shown; the chosen configuration
  (the study's best, or --trial) is shown IS and OOS in every fold too;
- the deflated Sharpe ratio of the chosen configuration's per-trade net R, given the number of trials;
- the PBO by CSCV over the trials' net R per time bin (bot.research.stats);
- cost (fees × 0.5 … × 2) and latency (+0 … +100 ms on both one-way delays) sensitivity: the chosen
  configuration re-run through the same backtest with those keys changed.
"""

from __future__ import annotations

import statistics
import sys
from typing import Any

from bot.research.folds import Timeline, cpcv_splits, split_trades, walk_forward
from bot.research.stats import deflated_sharpe, moments, pbo_cscv, sharpe

__all__ = ["FEE_MULTS", "LATENCY_ADD_MS", "perf", "run_cli", "sensitivity_params", "validate_trials"]

FEE_MULTS = (0.5, 0.75, 1.0, 1.5, 2.0)
LATENCY_ADD_MS = (0.0, 10.0, 25.0, 50.0, 100.0)
Trade = tuple[int, int, float]


def perf(trades: list[Trade]) -> dict[str, Any]:
    r = [t[2] for t in trades]
    return {"trades": len(r), "mean_r": round(statistics.fmean(r), 6) if r else None, "sum_r": round(sum(r), 6)}


def _select(per_trial: dict[int, list[Trade]], min_trades: int) -> int | None:
    """The trial with the best mean net R among those with >= min_trades (ties: the lower number)."""
    ok = [(statistics.fmean(t[2] for t in ts), -n) for n, ts in per_trial.items() if len(ts) >= max(1, min_trades)]
    return -max(ok)[1] if ok else None


def _fold_rows(kind: str, splits: list[dict[str, Any]], trials: dict[int, list[Trade]], tl: Timeline, k: int,
               chosen: int, embargo_ns: int, min_trades: int) -> list[dict[str, Any]]:
    blocks = tl.blocks(k)
    rows = []
    for i, sp in enumerate(splits):
        parts = {n: split_trades(ts, tl, k, sp, embargo_ns) for n, ts in trials.items()}
        sel = _select({n: p[0] for n, p in parts.items()}, min_trades)
        rows.append({
            "kind": kind, "fold": i, "is_blocks": sp["is_blocks"], "oos_blocks": sp["oos_blocks"],
            "oos_ranges_ns": [list(blocks[b]) for b in sp["oos_blocks"]],
            "selected": sel,
            "is": perf(parts[sel][0]) if sel is not None else None,
            "oos": perf(parts[sel][1]) if sel is not None else None,
            "chosen_is": perf(parts[chosen][0]), "chosen_oos": perf(parts[chosen][1]),
        })
    return rows


def validate_trials(trials: dict[int, list[Trade]], chosen: int, tl: Timeline, *, folds: int = 5,
                    mode: str = "anchored", window: int = 2, groups: int = 6, test_groups: int = 2,
                    pbo_blocks: int = 8, rows_per_block: int = 2, embargo_ns: int = 0,
                    min_trades: int = 1) -> dict[str, Any]:
    """Folds, DSR and PBO from each trial's trades (no backtest re-run)."""
    fold_rows = _fold_rows("walk_forward", walk_forward(tl, folds, mode, window), trials, tl, folds, chosen,
                           embargo_ns, min_trades)
    fold_rows += _fold_rows("cpcv", cpcv_splits(groups, test_groups), trials, tl, groups, chosen, embargo_ns,
                            min_trades)
    # DSR: the chosen trial's per-trade Sharpe against the best of N trials' expected luck
    r = [t[2] for t in trials[chosen]]
    srs = [s for s in (sharpe([t[2] for t in ts]) for ts in trials.values()) if s == s and abs(s) != float("inf")]
    var_sr = statistics.variance(srs) if len(srs) > 1 else 0.0
    dsr: dict[str, Any]
    if len(r) >= 2:
        g3, g4 = moments(r)
        dsr = deflated_sharpe(sharpe(r), len(r), len(trials), var_sr, g3, g4)
    else:
        dsr = {"dsr": None, "sr": None, "n_obs": len(r), "n_trials": len(trials), "var_sr": var_sr,
               "note": "the chosen trial has fewer than 2 trades"}
    # PBO: rows = time bins (in order), columns = trials, cell = sum of net R entered in the bin
    nrows = pbo_blocks * rows_per_block
    numbers = sorted(trials)
    matrix = [[0.0] * len(numbers) for _ in range(nrows)]
    for j, n in enumerate(numbers):
        for t in trials[n]:
            matrix[tl.block_of(t[0], nrows)][j] += t[2]
    try:
        pbo: dict[str, Any] = pbo_cscv(matrix, pbo_blocks)
        pbo["rows"] = nrows
    except ValueError as e:
        pbo = {"pbo": None, "note": str(e)}
    return {"chosen": chosen, "folds": fold_rows, "dsr": dsr, "pbo": pbo, "summary": _summary(fold_rows)}


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out = {}
    for kind in ("walk_forward", "cpcv"):
        oos = [r["oos"]["mean_r"] for r in rows if r["kind"] == kind and r["oos"] and r["oos"]["mean_r"] is not None]
        out[kind] = {"folds": sum(1 for r in rows if r["kind"] == kind), "oos_folds_with_trades": len(oos),
                     "oos_mean_r": round(statistics.fmean(oos), 6) if oos else None,
                     "oos_positive_share": round(sum(1 for x in oos if x > 0) / len(oos), 4) if oos else None}
    return out


def sensitivity_params(settings: Any, params: dict[str, Any]) -> list[tuple[str, float, dict[str, Any]]]:
    """(kind, value, dotted keys) for each cost and latency variation of `params` on `settings`."""
    sim, risk = settings.sim, settings.risk
    out = []
    for m in FEE_MULTS:
        out.append(("fees", m, {**params, "sim.maker_fee_bps": sim.maker_fee_bps * m,
                                "sim.taker_fee_bps": sim.taker_fee_bps * m,
                                "risk.maker_fee_bps": risk.maker_fee_bps * m,
                                "risk.taker_fee_bps": risk.taker_fee_bps * m}))
    for add in LATENCY_ADD_MS[1:]:  # +0 is fees x 1
        out.append(("latency", add, {**params, "sim.order_latency_ms": sim.order_latency_ms + add,
                                     "sim.market_data_latency_ms": sim.market_data_latency_ms + add}))
    return out


def _fmt(p: dict[str, Any] | None) -> str:
    if not p:
        return "-"
    m = "-" if p["mean_r"] is None else f"{p['mean_r']:+.3f}"
    return f"{p['trades']:>3} tr {m} R"


def print_text(res: dict[str, Any], out: Any = None) -> None:
    out = sys.stdout if out is None else out  # looked up per call: a default bound at import goes stale
    ch = res["chosen"]
    print(f"chosen configuration: trial {ch['number']} {ch['params']}", file=out)
    print("fold  kind          IS blocks    OOS    selected  IS(selected)       OOS(selected)      "
          "IS(chosen)         OOS(chosen)", file=out)
    for r in res["folds"]:
        print(f"{r['fold']:>4}  {r['kind']:<12}  {','.join(map(str, r['is_blocks'])):<11}  "
              f"{','.join(map(str, r['oos_blocks'])):<5}  {r['selected']!s:>8}  {_fmt(r['is']):<17}  "
              f"{_fmt(r['oos']):<17}  {_fmt(r['chosen_is']):<17}  {_fmt(r['chosen_oos'])}", file=out)
    for kind, s in res["summary"].items():
        print(f"{kind}: OOS mean net R of the selected trial {s['oos_mean_r']} over "
              f"{s['oos_folds_with_trades']}/{s['folds']} folds; positive in {s['oos_positive_share']}", file=out)
    d = res["dsr"]
    if d.get("dsr") is not None:
        print(f"DSR {d['dsr']:.4f}: probability that the chosen per-trade Sharpe {d['sr']:.4f} ({d['n_obs']} trades) "
              f"beats SR0 {d['sr0']:.4f}, the best that {d['n_trials']} trials reach by luck", file=out)
    else:
        print(f"DSR: not defined ({d.get('note')})", file=out)
    p = res["pbo"]
    if p.get("pbo") is not None:
        print(f"PBO {p['pbo']:.3f}: the best of {p['trials']} trials in-sample lands at or below the median "
              f"out-of-sample in {p['pbo']:.0%} of {p['combinations']} CSCV splits", file=out)
    else:
        print(f"PBO: not defined ({p.get('note')})", file=out)
    for row in res.get("sensitivity", []):
        m = row["metrics"]
        what = f"fees x{row['value']:g}" if row["kind"] == "fees" else f"latency +{row['value']:g} ms"
        print(f"{what:<18} trades {m['trades']:>3}  net expectancy R {m['net_expectancy_r']}  "
              f"net PnL {m['net_pnl_quote']}", file=out)


__all__ += ["print_text"]


def run_cli(args: Any) -> int:
    from bot.research.validate_cli import run_validate

    return run_validate(args)
