"""`scalper check-config -c FILE [--json] [--live]`: validate and print the effective config, secrets redacted.

Also runs the live-money guard (bot/guard.py) that `scalper run` runs before connecting: a production host
without `app.mode = "live"`, or a URL override that is not the loopback exchange-sim, fails here too.
Without --live the check assumes `scalper run` gets --live exactly when the config says mode "live"."""

from __future__ import annotations

import argparse
import sys

import orjson


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", required=True, metavar="FILE", help="TOML config file")
    p.add_argument("--json", action="store_true", help="print the effective config as JSON")
    p.add_argument("--live", action="store_true", help="check as `scalper run --live` would")


def run(args: argparse.Namespace) -> int:
    from bot.cli.preflight import check_instruments
    from bot.guard import check
    from bot.settings import load_settings, redacted
    from bot.signals.plugins import describe, load_plugins

    settings = load_settings(args.config)
    live = settings.app.mode == "live"
    check(settings, live_flag=args.live or live)
    check_instruments(settings)  # the same symbol check `scalper run` makes before it connects
    eff = redacted(settings)
    # strategy plug-ins ([signals.plugins.NAME]) are imported, instantiated and listed: a bad one -> exit 2
    plugins = [describe(p) for p in load_plugins(settings.signals)]
    if args.json:
        sys.stdout.write(
            orjson.dumps({"ok": True, "config": eff, "plugins": plugins}, option=orjson.OPT_INDENT_2).decode() + "\n"
        )
        return 0
    print(f"{args.config}: OK" + ("  (real money: `scalper run` needs --live)" if live else ""))
    for section, values in eff.items():
        print(f"[{section}]")
        for k, v in values.items():
            print(f"  {k} = {orjson.dumps(v).decode()}")
    if plugins:
        print("strategy plug-ins (loaded):")
    for d in plugins:
        print(f"  {d['name']}: {d['source']}, called on {d['called']}; cooldown {d['cooldown_s']:g} s, time limit "
              f"{d['time_limit_s']:g} s, stop +{d['stop_buffer_bps']:g} bps in [{d['min_stop_bps']:g}, "
              f"{d['max_stop_bps']:g}] bps, TP {d['tp_r_multiples']} R x {d['tp_fractions']}")
    return 0
