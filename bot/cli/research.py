"""`scalper research sweep|validate|signals …`: parameter sweeps and validation on the bot's own backtest
(issue 14; docs/research.md)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

__all__ = ["add_arguments", "run"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    from bot.research.objective import METRICS

    sub = p.add_subparsers(dest="research_command", metavar="SUBCOMMAND", required=True)
    s = sub.add_parser("sweep", help="Optuna search over config keys on the recorded sessions")
    s.add_argument("files", nargs="+", metavar="FILE", help="recorded files (as for `scalper backtest`)")
    s.add_argument("-c", "--config", metavar="CONFIG", help="base TOML config")
    s.add_argument("--space", required=True, metavar="SPACE.toml", help="one table per dotted config key")
    s.add_argument("--trials", type=int, default=20, help="the study holds at least N finished trials after")
    s.add_argument("--workers", type=int, default=None, help="trials at once (local: 1; ray: cluster CPUs)")
    s.add_argument("--backend", choices=("local", "ray"), default="local")
    s.add_argument("--ray-address", default=None, help="ray.init address: auto, ray://host:10001, local")
    s.add_argument("--study", default="research-study.sqlite", metavar="PATH", help="SQLite study (resumed)")
    s.add_argument("--sampler", choices=("tpe", "random", "grid"), default="tpe")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--objective", choices=sorted(METRICS), default="net_expectancy_r")
    s.add_argument("--min-trades", type=int, default=10,
                   help="fewer closed trades: penalised value -1000 + trades")
    s.add_argument("--export", action="append", default=[], metavar="PATH", help=".csv, .json or .parquet")
    s.add_argument("--json", action="store_true", help="print {trials, best}")

    g = sub.add_parser("signals", help="every intent scored on the recorded mid; features vs the next move")
    g.add_argument("files", nargs="+", metavar="FILE",
                   help="recorded files, or freqtrade *.feather candle files (the bar rules, docs/research.md)")
    g.add_argument("-c", "--config", metavar="CONFIG", help="TOML config (signals, plug-ins, fees)")
    g.add_argument("--horizons", default="1s,5s,10s,30s,60s",
                   help="comma list, multiples of the shortest (candles: default 1m,5m,15m,30m,60m)")
    g.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    g.add_argument("--json", action="store_true", help="print {setups, features, ...}")
    g.add_argument("--html", metavar="OUT", help="also write an HTML page")

    v = sub.add_parser("validate", help="walk-forward and purged CV folds, deflated Sharpe, PBO, sensitivity")
    v.add_argument("files", nargs="*", metavar="FILE", help="recorded files (default: the study's)")
    v.add_argument("--study", required=True, metavar="PATH", help="a study made by `research sweep`")
    v.add_argument("-c", "--config", metavar="CONFIG", help="base TOML config (default: the study's)")
    v.add_argument("--trial", type=int, default=None, help="the chosen configuration (default: the best)")
    v.add_argument("--folds", type=int, default=5, help="walk-forward blocks of equal market time")
    v.add_argument("--mode", choices=("anchored", "rolling"), default="anchored")
    v.add_argument("--window", type=int, default=2, help="rolling: in-sample blocks before each fold")
    v.add_argument("--groups", type=int, default=6, help="purged CV: groups of equal market time")
    v.add_argument("--test-groups", type=int, default=2, help="purged CV: groups tested per split")
    v.add_argument("--embargo-s", type=float, default=60.0, help="purged CV: embargo after a test group")
    v.add_argument("--pbo-blocks", type=int, default=8, help="CSCV blocks (even)")
    v.add_argument("--fold-min-trades", type=int, default=1, help="in-sample trades a trial needs to be picked")
    v.add_argument("--workers", type=int, default=1, help="local processes for the sensitivity runs")
    v.add_argument("--no-sensitivity", action="store_true", help="skip the cost and latency re-runs")
    v.add_argument("--json", action="store_true", help="print {folds, dsr, pbo, sensitivity, ...}")
    v.add_argument("--save", action="store_true", help="store the result in the study for `research report`")

    r = sub.add_parser("report", help="one HTML page: importance, IS vs OOS, equity per fold, sensitivity, DSR/PBO")
    r.add_argument("study", metavar="STUDY", help="a study made by `research sweep` (validated with --save)")
    r.add_argument("--html", required=True, metavar="OUT", help="the page to write")


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _sweep(args: argparse.Namespace) -> int:
    from bot.errors import ConfigError
    from bot.replay.reader import report_unreadable
    from bot.research.config import base_config, check_space
    from bot.research.export import export_trials
    from bot.research.progress import Progress
    from bot.research.space import load_space
    from bot.research.sweep import open_study, run_sweep, trial_rows
    from bot.research.workers import make_backend, pack_sessions

    if report_unreadable(args.files):
        return 2
    if args.trials < 1 or (args.workers is not None and args.workers < 1) or args.min_trades < 0:
        raise ConfigError("--trials and --workers must be >= 1, --min-trades >= 0")
    space = load_space(args.space)
    base = base_config(args.config)
    check_space(space, base)
    try:
        import optuna  # noqa: F401
    except ImportError:
        raise ConfigError("research sweep needs Optuna: pip install '.[research]'") from None
    attrs = {"space": [p.__dict__ | {"choices": list(p.choices) if p.choices else None} for p in space],
             "objective": args.objective, "min_trades": args.min_trades, "config": args.config,
             "files": list(args.files)}
    study = open_study(args.study, args.sampler, args.seed, space, attrs)
    backend = make_backend(args.backend, pack_sessions(args.files), base, args.workers, args.ray_address)
    from optuna.trial import TrialState

    before = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    bar = Progress(max(args.trials, before), "sweep", start=before)
    t0 = time.monotonic()
    bar.update(before)
    counts = run_sweep(study, space, backend, args.trials, args.objective, args.min_trades,
                       on_done=lambda done, t: bar.update(done, f"best {study.best_value:.4g}"))
    bar.close()
    minutes = (time.monotonic() - t0) / 60
    rows = trial_rows(study)
    best = max(rows, key=lambda r: r["value"]) if rows else None
    for path in args.export:
        export_trials(rows, path)
    if args.json:
        sys.stdout.write(json.dumps({"trials": rows, "best": best}, indent=1) + "\n")
        return 0
    print(f"study {args.study}: {len(rows)} finished trials ({counts['ran']} new, {counts['failed']} failed, "
          f"{counts['recovered']} re-queued from an interrupted run)")
    if counts["ran"] and minutes > 0:
        print(f"throughput {counts['ran'] / minutes:.2f} trials/min with {backend.workers} worker(s)")
    keys = [p.key for p in space]
    top = sorted(rows, key=lambda r: -r["value"])[:10]
    print("  ".join(["#", "value", "trades", *keys]))
    for r in top:
        print("  ".join([str(r["number"]), _fmt(r["value"]), str(r["metrics"].get("trades")),
                         *(_fmt(r["params"].get(k)) for k in keys)]))
    if best is not None:
        print(f"best: trial {best['number']} value {_fmt(best['value'])} params {json.dumps(best['params'])}")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.research_command == "sweep":
        return _sweep(args)
    if args.research_command == "signals":
        from bot.research.signals_cli import run_signals

        return run_signals(args)
    if args.research_command == "validate":
        from bot.research.validate import run_cli

        return run_cli(args)
    if args.research_command == "report":
        from bot.research.report_html import write_report

        rep = write_report(args.study, args.html)
        print(f"wrote {args.html}: {len(rep['trials'])} trials"
              + ("" if rep["validation"] else "; no saved validation (run `research validate --save`)"))
        return 0
    return 2
