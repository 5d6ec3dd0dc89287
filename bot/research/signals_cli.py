"""The driver of `scalper research signals` (bot.research.signal_study) and its text/HTML output."""

from __future__ import annotations

import html
import json
import sys
from typing import Any

from bot.errors import ConfigError

__all__ = ["DEFAULT_HORIZONS", "run_signals"]

DEFAULT_HORIZONS = "1s,5s,10s,30s,60s"  # the CLI default (on candles: candles_cli.CANDLE_HORIZONS)


def _horizons(text: str) -> tuple[list[int], list[str]]:
    from bot.cli.features import parse_interval_ns

    labels = [h.strip() for h in text.split(",") if h.strip()]
    try:
        ns = [parse_interval_ns(h) for h in labels]
    except ValueError as e:
        raise ConfigError(f"--horizons: {e}") from None
    if not ns:
        raise ConfigError("--horizons: give at least one, e.g. 1s,10s,60s")
    base = min(ns)
    if any(h % base for h in ns):
        raise ConfigError(f"--horizons: each must be a multiple of the shortest ({labels[ns.index(base)]})")
    return ns, labels


def run_signals(args: Any) -> int:
    from bot.cli.features import feature_rows
    from bot.replay.reader import check_paths
    from bot.research.signal_study import feature_table, score_intents, study_intents
    from bot.settings import load_settings
    from bot.signals.plugins import load_plugins

    settings = load_settings(args.config)
    load_plugins(settings.signals)
    from bot.research.candles_cli import CANDLE_HORIZONS, is_candle_file, run_candle_signals

    candles = [is_candle_file(f) for f in args.files]
    if any(candles):  # freqtrade candles (issue 14, item 4): the bar rules, fills from the bar
        if not all(candles):
            raise ConfigError("give either *.feather candle files or recorded sessions, not both")
        text = CANDLE_HORIZONS if args.horizons == DEFAULT_HORIZONS else args.horizons
        return run_candle_signals(args, settings, *_horizons(text))
    horizons_ns, labels = _horizons(args.horizons)
    missing = check_paths(args.files)
    if missing:
        raise ConfigError("; ".join(missing))
    stats: dict[str, Any] = {}
    intents, mids = study_intents(list(args.files), settings.signals, None, stats)
    for line in stats.get("problems", ()):
        print(f"error: {line}", file=sys.stderr)
    cost_bps = settings.risk.maker_fee_bps + settings.risk.taker_fee_bps
    setups = score_intents(intents, mids, horizons_ns, labels, cost_bps, seed=args.seed)
    base = min(horizons_ns)
    rows = {sym: list(feature_rows(args.files, base, sym)) for sym in sorted(mids)}
    feats = feature_table(rows, base, horizons_ns, labels)
    res = {"horizons": labels, "cost_bps": cost_bps, "setups": setups, "features": feats,
           "problems": stats.get("problems", [])}
    if args.html:
        with open(args.html, "w") as fh:
            fh.write(_html(res))
    if args.json:
        sys.stdout.write(json.dumps(res, indent=1) + "\n")
    else:
        _text(res)
    return 1 if res["problems"] else 0


def _v(x: Any) -> str:
    return "-" if x is None else (f"{x:+.2f}" if isinstance(x, float) else str(x))


def _setup_lines(res: dict[str, Any]) -> list[list[str]]:
    out = []
    for name, s in res["setups"].items():
        for lb, r in s["horizons"].items():
            out.append([name, lb, str(r["n"]), _v(r["hit_rate"]), _v(r["mean_bps"]),
                        f"[{_v(r['ci_low'])}, {_v(r['ci_high'])}]", _v(r["median_bps"]), _v(r["net_mean_bps"])])
    return out


SETUP_HEAD = ["setup", "horizon", "n", "hit rate", "mean bps", "95 % CI", "median bps", "net bps"]
FEAT_HEAD = ["symbol", "horizon", "feature", "n", "R² next", "R² same", "sign hit", "95 % CI"]


def _feat_lines(res: dict[str, Any]) -> list[list[str]]:
    return [[f["symbol"], f["horizon"], f["feature"], str(f["n"]), _v(f["r2_next"]), _v(f["r2_same"]),
             _v(f["sign_hit_rate"]), f"[{_v(f['ci_low'])}, {_v(f['ci_high'])}]"] for f in res["features"]]


def _text(res: dict[str, Any]) -> None:
    print(f"forward returns on the recorded mid, signed by side; net = mean - {res['cost_bps']:g} bps round trip")
    for line in [SETUP_HEAD, *_setup_lines(res)]:
        print("  ".join(f"{c:<14}" for c in line))
    for name, s in res["setups"].items():
        print(f"{name}: first target before the stop {s['hits']} / {s['hits'] + s['stops']} "
              f"(hit rate {_v(s['hit_rate'])}, 95 % CI {s['hit_ci']}), {s['timeouts']} timed out")
    print()
    for line in [FEAT_HEAD, *_feat_lines(res)]:
        print("  ".join(f"{c:<12}" for c in line))


def _table(head: list[str], lines: list[list[str]]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in ln) + "</tr>" for ln in lines)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _html(res: dict[str, Any]) -> str:
    return ("<!doctype html><meta charset='utf-8'><title>scalper research signals</title>"
            "<style>body{font-family:sans-serif}td,th{padding:2px 8px;text-align:right}</style>"
            f"<h1>Signals scored on the recorded mid</h1><p>net = mean − {res['cost_bps']:g} bps round trip</p>"
            + _table(SETUP_HEAD, _setup_lines(res)) + "<h2>Order-flow features vs the next mid change</h2>"
            + _table(FEAT_HEAD, _feat_lines(res)))
