"""`scalper drill [--list] [--only NAME[,NAME]] [--venue binance|bybit|both] [--json] [--keep]`: the fault
drills against the loopback
exchange, with the real processes, before going live (issue 11). Each drill starts `scalper exchange-sim`
and `scalper run` itself, injects its fault, and an independent watcher polling the exchange measures how
long any position had no stop there. `--venue bybit` runs them against its Bybit v5 protocol (`both`: each
drill on both); a drill that does not apply to a venue is listed as skipped with the reason. Exit status 1
if any drill fails.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--list", action="store_true", help="list the drills and exit")
    p.add_argument("--only", default="", metavar="NAME[,NAME]", help="run only these drills")
    p.add_argument("--venue", "--protocol", dest="venue", default="binance", choices=("binance", "bybit", "both"),
                   help="the loopback exchange's protocol the drills run against (both: each drill on each)")
    p.add_argument("--json", action="store_true", help="print the rows and a summary as JSON")
    p.add_argument("--keep", action="store_true", help="keep the work dir (logs, journals) and print its path")
    p.add_argument("--work", default="", metavar="DIR", help="work dir (default: a new temporary one)")
    p.add_argument("--seed", type=int, default=7, help="seed of the generated market")


def _label(r: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """The drill's name, with its venue when the rows cover more than one."""
    return f"{r['name']}@{r['venue']}" if len({x.get("venue") for x in rows}) > 1 else str(r["name"])


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    run = [r for r in rows if r.get("passed") is not None]
    return {
        "drills": len(run),
        "passed": sum(1 for r in run if r["passed"]),
        "failed": [_label(r, rows) for r in run if not r["passed"]],
        "skipped": {_label(r, rows): r["skipped"] for r in rows if r.get("passed") is None},
        "max_naked_s": max((r["max_naked_s"] for r in rows), default=0.0),
        "naked_beyond_limit": sum(1 for r in rows if r["max_naked_s"] > r["naked_limit_s"]),
        "duplicates": sum(r["duplicates"] for r in rows),
        "orphans": sum(r["orphans"] for r in rows),
        "lost_rows": sum(r["lost_rows"] for r in rows),
        "not_survived": [_label(r, rows) for r in rows if r["survived"] is False],
    }


def table(rows: list[dict[str, Any]]) -> str:
    head = ("drill", "venue", "naked_s", "limit_s", "dup", "orph", "journal", "lost", "survived", "alerts",
            "result")
    lines = []
    for r in rows:
        if r.get("passed") is None:  # does not apply on this venue
            lines.append((r["name"], r["venue"], *["-"] * 8, "SKIP"))
            continue
        surv = "n/a" if r["survived"] is None else ("yes" if r["survived"] else f"NO ({r['exit_code']})")
        al = r["alerts"]
        alerts = str(al["count"]) + (f" (missing {','.join(al['missing'])})" if al["missing"] else "")
        lines.append((r["name"], r["venue"], f"{r['max_naked_s']:.2f}", f"{r['naked_limit_s']:.2f}",
                      str(r["duplicates"]), str(r["orphans"]), "ok" if r["journal_vs_exchange"] else "MISMATCH",
                      str(r["lost_rows"]), surv, alerts, "PASS" if r["passed"] else "FAIL"))
    widths = [max(len(h), *(len(ln[i]) for ln in lines)) for i, h in enumerate(head)]
    out = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True))]
    out += ["  ".join(c.ljust(w) for c, w in zip(ln, widths, strict=True)) for ln in lines]
    for r in rows:
        if r["reasons"]:
            out.append(f"{_label(r, rows)}: " + "; ".join(r["reasons"][:6]))
        if r.get("skipped"):
            out.append(f"{_label(r, rows)}: skipped: {r['skipped']}")
    s = summary(rows)
    out.append(f"{s['passed']}/{s['drills']} passed" + (f"; failed: {', '.join(s['failed'])}" if s["failed"] else "")
               + (f"; {len(s['skipped'])} skipped" if s["skipped"] else ""))
    return "\n".join(out)


async def run_all(names: list[str], work: Path, seed: int, progress: bool = True,
                  venue: str = "binance") -> list[dict[str, Any]]:
    from bot.drill.drills import by_name
    from bot.drill.runner import error_row, run_drill, skipped_row
    from bot.drill.venue import venues_of

    venues = venues_of(venue)
    rows = []
    for drill in by_name(names):
        for v in venues:
            # one venue: the work dir as before (work/NAME); several: work/VENUE/NAME
            wd = work / drill.name if len(venues) == 1 else work / v.name / drill.name
            if v.name in drill.skip:
                rows.append(skipped_row(drill, v))
                continue
            if progress:
                print(f"drill {drill.name} ({v.name}) ...", file=sys.stderr, flush=True)
            try:
                row = await run_drill(drill, wd, seed=seed, venue=v)
            except Exception as e:  # the harness itself failed (e.g. the exchange did not start): a failed row
                row = error_row(drill, wd, f"{type(e).__name__}: {e}", venue=v)
            rows.append(row)
            if progress:
                print(f"drill {drill.name} ({v.name}): {'PASS' if row['passed'] else 'FAIL'} ({row['wall_s']} s)",
                      file=sys.stderr, flush=True)
    return rows


def run(args: argparse.Namespace) -> int:
    from bot.drill.drills import DRILLS

    if args.list:
        for d in DRILLS:
            skips = "".join(f" [not on {v}: {why}]" for v, why in d.skip.items())
            print(f"{d.name:30} {d.summary}{skips}")
        return 0
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    try:
        from bot.drill.drills import by_name

        by_name(names)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="scalper-drill-"))
    try:
        rows = asyncio.run(run_all(names, work, args.seed, venue=args.venue))
    finally:
        if not args.keep and not args.work:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(orjson.dumps({"drills": rows, "summary": summary(rows)}, option=orjson.OPT_INDENT_2).decode())
    else:
        print(table(rows))
    if args.keep or args.work:
        print(f"work dir: {work}", file=sys.stderr)
    return 0 if all(r["passed"] is not False for r in rows) else 1
