"""`scalper bench backtest FILE [FILE ...] [--rounds N] [--json]`: market events/s, whole bot vs book alone.

Same files, same run, interleaved rounds (medians):
- book: `check-data` (read -> parse -> sequence -> book, plus its bookTicker cross-check): the book alone;
- bot:  `scalper backtest` (read -> parse -> sequence -> book -> signals -> risk -> execution engine ->
        journal (SQLite in memory) -> simulated exchange with its latency, queue and funding models).
Both read the files themselves (gzip and all), so I/O is in both figures. A market event is one line
of the session (depth diff, snapshot, trade, bookTicker, markPrice). Reported: events/s of each and
bot time / book time (the issue's target: within 2x).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from typing import Any

__all__ = ["add_arguments", "run"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="+", metavar="FILE", help="recorded files (a day pair in order, several symbols)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median reported)")
    p.add_argument("-c", "--config", metavar="CONFIG", help="TOML config for the backtest")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _events(files: list[str]) -> int:
    from bot.replay.reader import Record, read_session

    return sum(1 for r in read_session(files) if isinstance(r, Record))


def run(args: argparse.Namespace) -> int:
    import orjson

    from bot.cli.backtest import run_backtest
    from bot.replay.check import check_files
    from bot.settings import load_settings

    settings = load_settings(args.config)
    n = _events(args.files)
    if not n:
        print("error: no market messages in these files", file=sys.stderr)
        return 1
    book_s: list[float] = []
    bot_s: list[float] = []
    trades = 0
    for _ in range(max(1, args.rounds)):
        t0 = time.perf_counter()
        check_files(args.files)
        book_s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        res: dict[str, Any] = asyncio.run(run_backtest(args.files, settings))
        bot_s.append(time.perf_counter() - t0)
        trades = res["summary"]["trades"]
    book, bot = statistics.median(book_s), statistics.median(bot_s)
    out = {"files": args.files, "events": n, "rounds": len(book_s), "trades": trades,
           "book_events_per_s": round(n / book), "bot_events_per_s": round(n / bot),
           "bot_over_book": round(bot / book, 2),
           "bot_over_book_per_round_median": round(statistics.median(b / a for a, b in zip(book_s, bot_s)), 2)}
    if args.json:
        sys.stdout.write(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    print(f"{n:,} market events, {out['rounds']} interleaved rounds (median), {trades} trades")
    print(f"  book alone (check-data):  {out['book_events_per_s']:>10,} events/s")
    print(f"  whole bot (backtest):     {out['bot_events_per_s']:>10,} events/s   "
          f"{out['bot_over_book']:.2f}x the book's time "
          f"(per-round median {out['bot_over_book_per_round_median']:.2f}x)")
    return 0
