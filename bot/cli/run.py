"""`scalper run [-c CONFIG] [--live] [--no-view] [--for SECONDS]`: run the bot.

The default config is the embedded simulator (no keys, no network). Real money needs both
`app.mode = "live"` in the config and `--live` here.
"""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", metavar="CONFIG", help="TOML config (default: the embedded defaults)")
    p.add_argument("--live", action="store_true", help="confirm live trading (the config must say mode = 'live')")
    p.add_argument("--no-view", action="store_true", help="no live terminal view even on a TTY (JSON logs)")
    p.add_argument("--for", dest="run_for_s", type=float, metavar="SECONDS",
                   help="stop by itself after this many seconds (demos, smoke tests)")


def run(args: argparse.Namespace) -> int:
    from bot.app import run_app
    from bot.cli.preflight import preflight
    from bot.settings import load_settings

    settings = load_settings(args.config)
    # Before any connection: live guard, symbols, ops port, journal lock (held until we return); each a
    # one-line exit 2.
    lock = preflight(settings, args.live)
    try:
        return run_app(settings, live=args.live, view=False if args.no_view else None, run_for_s=args.run_for_s,
                       config_path=args.config)
    finally:
        if lock is not None:
            lock.release()
