"""The driver of `scalper research validate`: read the study, fold, score, re-run the sensitivities."""

from __future__ import annotations

import json
import math
import sys
from typing import Any

from bot.errors import ConfigError

__all__ = ["run_validate"]


def _study_trials(study: Any) -> dict[int, dict[str, Any]]:
    from optuna.trial import TrialState

    out = {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        trades = [(int(a), int(b) if b is not None else int(a), float(r)) for a, b, r in t.user_attrs.get("trades", [])]
        out[t.number] = {"params": dict(t.params), "value": t.value, "trades": trades}
    return out


def _finite(x: Any) -> Any:
    """JSON has no NaN/inf: an undefined statistic is null."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_finite(v) for v in x]
    return x


def run_validate(args: Any) -> int:
    from bot.replay.reader import check_paths
    from bot.research.config import base_config
    from bot.research.folds import Timeline, session_spans
    from bot.research.space import deep_merge, overrides
    from bot.research.sweep import open_study
    from bot.research.validate import print_text, sensitivity_params, validate_trials
    from bot.research.workers import make_backend, pack_sessions
    from bot.settings import load_settings

    try:
        import optuna  # noqa: F401
    except ImportError:
        raise ConfigError("research validate needs Optuna: pip install '.[research]'") from None
    study = open_study(args.study, create=False)
    files = list(args.files) or list(study.user_attrs.get("files") or [])
    config = args.config if args.config is not None else study.user_attrs.get("config")
    if not files:
        raise ConfigError("no recorded files: give them after the options (the study does not name any)")
    missing = check_paths(files)
    if missing:
        raise ConfigError("; ".join(missing))
    trials = _study_trials(study)
    if len(trials) < 2:
        raise ConfigError(f"{args.study}: {len(trials)} finished trial(s); validation compares at least 2")
    chosen = args.trial if args.trial is not None else max(trials, key=lambda n: (trials[n]["value"], -n))
    if chosen not in trials:
        raise ConfigError(f"--trial {chosen}: no finished trial with that number in {args.study}")
    tl = Timeline.of(session_spans(files))
    res = validate_trials({n: t["trades"] for n, t in trials.items()}, chosen, tl, folds=args.folds,
                          mode=args.mode, window=args.window, groups=args.groups, test_groups=args.test_groups,
                          pbo_blocks=args.pbo_blocks, embargo_ns=int(args.embargo_s * 1e9),
                          min_trades=args.fold_min_trades)
    res["chosen"] = {"number": chosen, "params": trials[chosen]["params"], "value": trials[chosen]["value"]}
    res["timeline_ns"] = [list(s) for s in tl.spans]
    if not args.no_sensitivity:
        base = base_config(config)
        settings = load_settings(None, deep_merge(base, overrides(trials[chosen]["params"])))
        variants = sensitivity_params(settings, trials[chosen]["params"])
        backend = make_backend("local", pack_sessions(files), base, args.workers)
        rows: list[dict[str, Any]] = []
        try:
            for i, (_, _, params) in enumerate(variants):
                backend.submit(i, params)
            got = dict(backend.wait() for _ in variants)
        finally:
            backend.close()
        for i, (kind, value, _) in enumerate(variants):
            r = got[i]
            if isinstance(r, BaseException):
                raise r
            rows.append({"kind": kind, "value": value, "metrics": r["metrics"]})
        res["sensitivity"] = rows
    if getattr(args, "save", False):
        from bot.research.report import save_validation

        save_validation(study, _finite(res))
    if args.json:
        sys.stdout.write(json.dumps(_finite(res), indent=1) + "\n")
    else:
        print_text(res)
    return 0
