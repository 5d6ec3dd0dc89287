"""`scalper check-config -c FILE [--json]`: validate and print the effective config, secrets redacted."""

from __future__ import annotations

import argparse
import sys

import orjson


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", required=True, metavar="FILE", help="TOML config file")
    p.add_argument("--json", action="store_true", help="print the effective config as JSON")


def run(args: argparse.Namespace) -> int:
    from bot.settings import load_settings, redacted

    settings = load_settings(args.config)
    eff = redacted(settings)
    if args.json:
        sys.stdout.write(
            orjson.dumps({"ok": True, "config": eff}, option=orjson.OPT_INDENT_2).decode() + "\n"
        )
        return 0
    print(f"{args.config}: OK")
    for section, values in eff.items():
        print(f"[{section}]")
        for k, v in values.items():
            print(f"  {k} = {orjson.dumps(v).decode()}")
    return 0
