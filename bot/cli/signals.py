"""`scalper signals FILE [FILE ...] [-c CONFIG] [--json]`: replay a recorded session through the signal
layer (read_session -> the market session: parse -> BinanceBookSync -> book -> SignalEngine) and list the
entry intents. Several symbols and days are merged by receive time. Exit 2 for a missing file, 1 (one
line each) for a file with no market message, a snapshot no diff bridged or a book never LIVE.

JSON: {"intents": [{"setup", "symbol", "side", "ts_ns", "price", "stop", "targets": [{"price",
"fraction"}], "time_limit_s", "features": {...}}, ...], "counts": {setup: n}, "stats": {...}} with
prices as floats in quote currency. Without --json: a table and the counts per setup.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from typing import Any

__all__ = ["add_arguments", "intent_to_dict", "replay_intents", "run"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="+", metavar="FILE", help="recorded files (a day pair in order)")
    p.add_argument("-c", "--config", metavar="CONFIG", help="TOML config (its [signals] section is used)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--exchange-info", metavar="FILE", help="fapi/v1/exchangeInfo JSON for tick/step sizes")


def replay_intents(paths: Iterable[str], signals: Any = None, instruments: dict[str, Any] | None = None,
                   stats: dict[str, Any] | None = None, progress: bool | None = False) -> tuple[list[Any], Any]:
    """(intents, engine) of one replay. `signals` is a SignalsSection (defaults when None); `stats` gets
    the replay's errors and problems (bot.cli.features.replay_events)."""
    from bot.cli.features import replay_events
    from bot.settings.signals import SignalsSection
    from bot.signals.engine import SignalEngine

    engine = SignalEngine(signals or SignalsSection(), instruments or {})
    intents: list[Any] = []
    for ev in replay_events(paths, instruments, stats=stats, progress=progress, label="signals"):
        kind = ev[0]
        if kind == "depth":
            _, sym, book, status, ts, now = ev
            intents += engine.on_depth(sym, book, status, ts, now)
        elif kind == "trade":
            intents += engine.on_trade(ev[1], ev[2])
        else:
            intents += engine.on_funding(ev[1], ev[2])
    return intents, engine


def intent_to_dict(intent: Any, engine: Any) -> dict[str, Any]:
    inst = engine.features(intent.symbol).instrument
    d = {
        "setup": intent.setup, "symbol": intent.symbol, "side": intent.side, "ts_ns": intent.ts_ns,
        "price": inst.ticks_to_price(intent.price_ticks), "stop": inst.ticks_to_price(intent.stop_ticks),
        "targets": [{"price": inst.ticks_to_price(t.price_ticks), "fraction": t.fraction} for t in intent.targets],
        "time_limit_s": intent.time_limit_s,
        "features": {k: round(v, 6) for k, v in intent.features.items()},
    }
    if intent.tag:  # a strategy plug-in's label (the built-ins set none)
        d["tag"] = intent.tag
    return d


def run(args: argparse.Namespace) -> int:
    import orjson

    from bot.replay.reader import report_unreadable
    from bot.settings import load_settings
    from bot.signals.plugins import load_plugins

    # the config (plug-ins included) is judged before the data: a bad config is its own one-line error
    settings = load_settings(args.config)
    load_plugins(settings.signals)
    if report_unreadable(args.files):
        return 2
    instruments = None
    if args.exchange_info:
        from bot.venues.binance_usdm.instruments import load_exchange_info

        instruments = load_exchange_info(args.exchange_info)
    stats: dict[str, Any] = {}
    intents, engine = replay_intents(args.files, settings.signals, instruments, stats, progress=None)  # tty only
    for line in stats.get("damage", ()):
        print(f"warning: {line}", file=sys.stderr)
    for line in stats.get("problems", ()):
        print(f"error: {line}", file=sys.stderr)
    rc = 1 if stats.get("problems") else 0
    rows = [intent_to_dict(i, engine) for i in intents]
    counts = dict(sorted(engine.stats.intents.items()))
    if args.json:
        out = {"intents": rows, "counts": counts, "stats": engine.stats.as_dict(),
               "problems": stats.get("problems", [])}
        sys.stdout.write(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode() + "\n")
        return rc
    print(f"{'time (exchange, UTC)':<24}{'symbol':<10}{'setup':<15}{'side':<7}{'price':>12}{'stop':>12}"
          f"{'targets':>26}{'limit s':>9}")
    import datetime as dt

    for r in rows:
        t = dt.datetime.fromtimestamp(r["ts_ns"] / 1e9, dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        tg = " ".join(f"{x['price']:g}" for x in r["targets"])
        print(f"{t:<24}{r['symbol']:<10}{r['setup']:<15}{r['side']:<7}{r['price']:>12g}{r['stop']:>12g}"
              f"{tg:>26}{r['time_limit_s']:>9g}")
    print()
    for name, n in counts.items():
        print(f"{name:<15}{n:>6}")
    print(f"{'total':<15}{len(rows):>6}")
    vetoes = engine.stats.vetoes
    if vetoes:
        print("vetoed: " + ", ".join(f"{k} {v}" for k, v in sorted(vetoes.items())))
    return rc
