"""`scalper bench NAME ...`: benchmarks compare against a reference in the same run (medians, ratios).

Each benchmark lives in bench/<name>.py with `add_arguments(parser)` and `run(args) -> int`.
"""

from __future__ import annotations

import argparse
import importlib
import sys

BENCHES = {
    "book": "DOM update vs the orjson+float floor vs ccxt's order book, per depth message",
    "sim": "matching-engine events per second on a recorded session",
    "signals": "features + setups cost per market event vs the DOM-only cost",
    "latency": "tick-to-order latency, in process or against the loopback exchange",
    "memory": "resident memory over a long (24 h-equivalent) replay",
    "backtest": "market events/s through the whole bot (backtest) vs the book alone (check-data)",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", choices=sorted(BENCHES), help="; ".join(f"{k}: {v}" for k, v in BENCHES.items()))
    p.add_argument("rest", nargs=argparse.REMAINDER, help="arguments of that benchmark")


def run(args: argparse.Namespace) -> int:
    try:
        module = importlib.import_module(f"bench.{args.name}")
    except ModuleNotFoundError as e:
        if e.name in ("bench", f"bench.{args.name}"):  # a build without the benches (the Docker image)
            print(f"error: benchmark {args.name!r} is not available in this build", file=sys.stderr)
            return 2
        raise
    p = argparse.ArgumentParser(prog=f"scalper bench {args.name}", description=BENCHES[args.name])
    module.add_arguments(p)
    return int(module.run(p.parse_args(args.rest)) or 0)
