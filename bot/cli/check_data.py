"""`scalper check-data FILE [FILE ...] [--json] [--exchange-info FILE]`."""

from __future__ import annotations

import argparse
import sys

import orjson


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "files",
        nargs="+",
        metavar="FILE",
        help="recorded files; a day pair given in order is read as one session",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--exchange-info", metavar="FILE", help="fapi/v1/exchangeInfo JSON for tick/step sizes")


_COLS = ("depth_events", "applied", "gaps", "resyncs", "crossed", "bbo_checked", "bbo_mismatched")


def run(args: argparse.Namespace) -> int:
    from bot.replay.check import check_files
    from bot.replay.reader import report_unreadable

    if report_unreadable(args.files):
        return 2

    instruments = None
    if args.exchange_info:
        from bot.venues.binance_usdm.instruments import load_exchange_info

        instruments = load_exchange_info(args.exchange_info)
    res = check_files(args.files, instruments, progress=None)  # a bar on a terminal only
    # a file with no market message at all is one line (in problems), not one per unreadable line
    dead = [p for p in args.files if f"{p}: no market message could be read" in " ".join(res["problems"])]
    for line in res["error_lines"]:
        if not any(line.startswith(f"{p}:") for p in dead):
            print(f"error: {line}", file=sys.stderr)
    for line in res["problems"]:
        print(f"error: {line}", file=sys.stderr)
    if args.json:
        sys.stdout.write(orjson.dumps(res, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        print(f"{'symbol':<12}" + "".join(f"{c:>16}" for c in _COLS) + f"{'status':>10}")
        for sym, r in res["symbols"].items():
            print(f"{sym:<12}" + "".join(f"{r[c]:>16}" for c in _COLS) + f"{r['status']:>10}")
            if "first_mismatch" in r:
                print(f"  first mismatch: {r['first_mismatch']}")
        print(f"{res['records']} records, {res['errors']} bad lines")
    bad = any(r["gaps"] or r["crossed"] or r["bbo_mismatched"] for r in res["symbols"].values())
    if not res["symbols"] and not res["problems"]:
        print("error: no order book in these files (no depth message)", file=sys.stderr)
    return 1 if (bad or res["errors"] or res["problems"] or not res["symbols"]) else 0
