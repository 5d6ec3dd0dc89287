"""The data of `scalper research report STUDY --html OUT`: everything read from the study, nothing re-run.

- trials and their metrics: what `research sweep` stored (bot.research.sweep.trial_rows);
- parameter importance: Optuna's PED-ANOVA (`optuna.importance.PedAnovaImportanceEvaluator`, Watanabe et al.,
  "PED-ANOVA: Efficiently Quantifying Hyperparameter Importance in Arbitrary Subspaces", IJCAI 2023): how much
  each parameter's distribution among the top trials (the best 10 % by value) differs from its distribution
  over all trials, normalised to sum to 1. Chosen over fANOVA (Optuna's default) because it needs neither
  scikit-learn nor scipy, only what the `research` extra already brings;
- validation (folds, DSR, PBO, cost and latency sensitivity): the result `research validate --save` stored in
  the study (user attribute `validation`), computed by bot.research.validate: the report never recomputes a
  statistic. The sensitivity re-runs are backtests (minutes on the full sessions), so the report reads them
  instead of re-running them; a study without a saved validation gets a report that says so;
- equity per walk-forward fold: the fold's selected trial's out-of-sample trades (stored by the sweep), split
  by bot.research.folds.split_trades on the saved timeline, the same assignment validate made.
"""

from __future__ import annotations

import warnings
from typing import Any

from bot.errors import ConfigError

__all__ = ["VALIDATION_ATTR", "build_research_report", "importance", "plain_words", "save_validation"]

VALIDATION_ATTR = "validation"


def save_validation(study: Any, res: dict[str, Any]) -> None:
    """Store a `research validate` result (JSON-safe: no NaN) in the study for the report."""
    study.set_user_attr(VALIDATION_ATTR, res)


def importance(study: Any) -> dict[str, Any]:
    """{"method", "values": {param: share}} by PED-ANOVA, or {"method", "note"} when it is undefined."""
    import optuna

    method = "PED-ANOVA (optuna.importance.PedAnovaImportanceEvaluator, top 10 % of trials vs all)"
    try:
        with warnings.catch_warnings():  # ExperimentalWarning: the evaluator is marked experimental in Optuna
            warnings.simplefilter("ignore")
            vals = optuna.importance.get_param_importances(
                study, evaluator=optuna.importance.PedAnovaImportanceEvaluator())
    except (ValueError, RuntimeError, ZeroDivisionError) as e:
        return {"method": method, "values": {}, "note": f"not defined: {e}"}
    return {"method": method, "values": {k: float(v) for k, v in vals.items()}}


def plain_words(val: dict[str, Any]) -> dict[str, str]:
    """The DSR and PBO sentences of the report (numbers from the saved validation)."""
    d, p = val.get("dsr") or {}, val.get("pbo") or {}
    out = {}
    if d.get("dsr") is not None:
        n = d["n_trials"]
        out["dsr"] = (f"Deflated Sharpe ratio {d['dsr']:.3f}: the best of {n} trials is expected to be luck with "
                      f"probability {1 - d['dsr']:.3f}. Its Sharpe ratio per trade is {d['sr']:.3f} over "
                      f"{d['n_obs']} trades; luck alone would let the best of {n} trials reach {d['sr0']:.3f} "
                      f"(Bailey & López de Prado 2014). 0.95 or more is the usual bar; 0.5 is a coin flip.")
    else:
        out["dsr"] = f"Deflated Sharpe ratio: not defined ({d.get('note', 'no data')})."
    if p.get("pbo") is not None:
        out["pbo"] = (f"Probability of backtest overfitting {p['pbo']:.3f}: in {p['pbo']:.0%} of the "
                      f"{p['combinations']} ways to split the time into in-sample and out-of-sample halves, the "
                      f"trial that was best in-sample ranked at or below the median of the {p['trials']} trials "
                      f"out-of-sample (CSCV, Bailey, Borwein, López de Prado & Zhu 2015). 0 means the choice "
                      f"carries over, 0.5 that it is no better than picking at random.")
    else:
        out["pbo"] = f"Probability of backtest overfitting: not defined ({p.get('note', 'no data')})."
    return out


def _fold_equity(val: dict[str, Any], trades: dict[int, list[tuple[int, int, float]]]) -> list[dict[str, Any]]:
    """Per walk-forward fold: the selected trial's OOS trades as a cumulative net R curve (by exit time)."""
    from bot.research.folds import Timeline, split_trades

    spans = val.get("timeline_ns") or []
    wf = [f for f in val.get("folds", []) if f["kind"] == "walk_forward"]
    if not spans or not wf:
        return []
    tl = Timeline.of([(int(a), int(b)) for a, b in spans])
    k = len(wf) + 1  # folds 1..k-1 of k blocks (bot.research.folds.walk_forward)
    out = []
    for f in wf:
        sel = f.get("selected")
        oos = split_trades(trades.get(sel, []), tl, k, f)[1] if sel is not None else []
        ts, cum, acc = [], [], 0.0
        for _entry, exit_ns, r in sorted(oos, key=lambda t: t[1]):
            acc += r
            ts.append(exit_ns)
            cum.append(round(acc, 6))
        out.append({"fold": f["fold"], "selected": sel, "oos_blocks": f["oos_blocks"], "ts_ns": ts, "cum_r": cum})
    return out


def build_research_report(path: str) -> dict[str, Any]:
    """Read the study at `path` (made by `research sweep`) into the report's data."""
    try:
        import optuna  # noqa: F401
    except ImportError:
        raise ConfigError("research report needs Optuna: pip install '.[research]'") from None
    from bot.research.sweep import open_study, trial_rows
    from bot.research.validate_cli import _study_trials

    study = open_study(path, create=False)
    rows = trial_rows(study)
    if not rows:
        raise ConfigError(f"{path}: no finished trial (run `scalper research sweep --study {path}` first)")
    trades = {n: t["trades"] for n, t in _study_trials(study).items()}
    val = study.user_attrs.get(VALIDATION_ATTR)
    rep: dict[str, Any] = {
        "study": path, "trials": rows, "objective": study.user_attrs.get("objective"),
        "files": study.user_attrs.get("files") or [], "importance": importance(study), "validation": val,
    }
    if val:
        rep["words"] = plain_words(val)
        rep["fold_equity"] = _fold_equity(val, trades)
        rep["stale"] = len(rows) != (val.get("dsr") or {}).get("n_trials", len(rows))
    return rep
