"""`scalper bench memory FILE [FILE ...] [--hours 24] [--json]`: resident memory over a long replay.
`scalper bench memory --generated [--rate 10] [--minutes 10] [--json]`: the same over a live-paced,
in-process generated market (bot.venues.sim.generator) whose order flow is `--rate` times the default.

Generated mode (issue 11, "memory bounded by size, not by time"): the generator's arrival knobs
(`gen_market_orders_per_s`, `gen_limit_orders_per_s`, `gen_cancels_per_s`) are multiplied by `--rate`
(its semantics unchanged) and its messages go, paced by the wall clock as in `scalper run` in sim
mode, through the whole market path: parse -> sync -> DOM -> signals (trade flow, OFI, the 300 s
volume profile, bars...). No orders are placed. RSS is printed at every minute; the figure that
matters is minute 1 vs the last minute (a 300 s rolling window that kept every print grew for 5 min).

Replays a recorded session through parse -> sync -> DOM (the check-data path, BBO cross-check
included) again and again until the replayed span reaches `--hours` of exchange time: each loop shifts
receive times by the session span and restarts every book from the session's snapshot (the diff ids
restart too, so the sync is reset at each loop start, as after a reconnect). RSS is sampled from
/proc/self/statm. Flat memory means no per-message state survives: the DOM bounds its depth by its
window, the sync's buffer and the checker's id maps are bounded.

Reported: RSS at start (after loading the session into memory), after the first loop (warm), at the
end, the maximum, and the growth over the second half of the run.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from typing import Any

import orjson

__all__ = ["add_arguments", "rss_mb", "run"]

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_mb() -> float:
    """Resident set size from /proc/self/statm (second field, in pages)."""
    try:
        with open("/proc/self/statm", "rb") as fh:
            return int(fh.read().split()[1]) * _PAGE / 1e6
    except OSError:  # not Linux: fall back to the peak, which still shows growth
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="*", metavar="FILE", help="a recorded session (a day pair in order)")
    p.add_argument("--generated", action="store_true", help="live-paced generated market instead of files")
    p.add_argument("--rate", type=float, default=10.0, help="generated: order-flow multiplier (default 10)")
    p.add_argument("--minutes", type=float, default=10.0, help="generated: wall minutes to run (default 10)")
    p.add_argument("--hours", type=float, default=24.0, help="exchange time to replay (default 24)")
    p.add_argument("--sample-every", type=int, default=20_000, help="records between RSS samples")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    if args.generated:
        import asyncio

        return asyncio.run(_run_generated(args))
    if not args.files:
        print("error: give recorded FILEs or --generated", file=sys.stderr)
        return 2
    from bot.replay.check import SessionChecker
    from bot.replay.reader import Record, read_session

    records = [r for r in read_session(args.files) if isinstance(r, Record)]
    if len(records) < 2:
        print("error: the session has fewer than two records", file=sys.stderr)
        return 2
    span_ns = records[-1].ts_recv_ns - records[0].ts_recv_ns + 1_000_000
    loops = max(1, math.ceil(args.hours * 3600e9 / span_ns))
    chk = SessionChecker()
    rss_start = rss_mb()
    samples: list[tuple[int, float]] = [(0, rss_start)]
    rss_warm = rss_start
    n = 0
    t0 = time.perf_counter()
    every = max(1, args.sample_every)
    for loop in range(loops):
        shift = loop * span_ns
        if loop:
            for sync in chk.session.syncs.values():  # the books live in the checker's market session
                sync.reset("bench loop restart", records[0].ts_recv_ns + shift)
        for rec in records:
            chk.feed(rec._replace(ts_recv_ns=rec.ts_recv_ns + shift) if shift else rec)
            n += 1
            if n % every == 0:
                samples.append((n, rss_mb()))
        if loop == 0:
            rss_warm = rss_mb()
    samples.append((n, rss_mb()))
    wall_s = time.perf_counter() - t0
    rss_end = samples[-1][1]
    rss_max = max(v for _, v in samples)
    half = next(v for k, v in samples if k >= n // 2)
    res = chk.result()
    out = {
        "messages": n,
        "loops": loops,
        "hours": round(loops * span_ns / 3600e9, 2),
        "rss_start_mb": round(rss_start, 1),
        "rss_warm_mb": round(rss_warm, 1),
        "rss_end_mb": round(rss_end, 1),
        "rss_max_mb": round(rss_max, 1),
        "growth_second_half_mb": round(rss_end - half, 1),
        "wall_s": round(wall_s, 1),
        "gaps": sum(s["gaps"] for s in res["symbols"].values()),
        "bbo_mismatched": sum(s["bbo_mismatched"] for s in res["symbols"].values()),
    }
    if args.json:
        sys.stdout.write(orjson.dumps(out).decode() + "\n")
    else:
        print(f"replayed {n} messages in {loops} loops = {out['hours']} h of exchange time ({wall_s:.1f} s)")
        print(f"RSS start {rss_start:.1f} MB, after one loop {rss_warm:.1f} MB, end {rss_end:.1f} MB, "
              f"max {rss_max:.1f} MB, growth over the second half {out['growth_second_half_mb']:+.1f} MB")
        print(f"gaps {out['gaps']}, bbo mismatches {out['bbo_mismatched']}")
    return 0


async def _run_generated(args: argparse.Namespace) -> int:
    import asyncio

    from bot.ops.state import RuntimeState
    from bot.pipeline import Pipeline
    from bot.settings import load_settings
    from bot.signals import SignalEngine
    from bot.venues.binance_usdm.instruments import instrument_for
    from bot.venues.sim.generator import MarketGenerator

    s = load_settings()
    g = s.sim
    sim = g.model_copy(update={
        "gen_market_orders_per_s": g.gen_market_orders_per_s * args.rate,
        "gen_limit_orders_per_s": g.gen_limit_orders_per_s * args.rate,
        "gen_cancels_per_s": g.gen_cancels_per_s * args.rate,
    })
    instruments = {sym: instrument_for(sym) for sym in s.venue.symbols}
    gen = MarketGenerator(list(instruments.values()), sim, start_ns=time.time_ns())
    pipeline = Pipeline(instruments, SignalEngine(s.signals, instruments), None, RuntimeState(),
                        depth_bps=s.market.depth_bps, clock=time.time_ns)
    minutes = max(1, math.ceil(args.minutes))
    per_min: list[float] = []
    n = trades = 0
    t0 = time.monotonic()
    next_mark = t0 + 60.0
    end = t0 + args.minutes * 60.0
    while True:
        now = time.monotonic()
        if now >= next_mark or now >= end:
            per_min.append(round(rss_mb(), 1))
            if not args.json:
                print(f"minute {len(per_min)}: RSS {per_min[-1]:.1f} MB, {n} messages "
                      f"({n / (now - t0):.0f}/s), {trades} trades", flush=True)
            next_mark += 60.0
            if now >= end or len(per_min) >= minutes:
                break
        for m in gen.take(time.time_ns()):
            pipeline.on_raw(m.raw, time.time_ns())
            n += 1
            trades += m.kind == "aggTrade"
        await asyncio.sleep(0.005)
    wall_s = time.monotonic() - t0
    profiles = [getattr(st.profile, "stored_entries", None) for st in _feature_states(pipeline)]
    out = {
        "rate": args.rate,
        "minutes": len(per_min),
        "messages": n,
        "messages_per_s": round(n / wall_s, 1),
        "trades": trades,
        "rss_per_minute_mb": per_min,
        "rss_minute1_mb": per_min[0],
        "rss_last_mb": per_min[-1],
        "rss_change_mb": round(per_min[-1] - per_min[0], 1),
        "profile_cells": profiles,
        "malformed": pipeline.malformed,
    }
    if args.json:
        sys.stdout.write(orjson.dumps(out).decode() + "\n")
    else:
        print(f"{args.rate:g}x generated market, {out['messages_per_s']} msgs/s, {trades} trades: RSS minute 1 "
              f"{per_min[0]:.1f} MB, minute {len(per_min)} {per_min[-1]:.1f} MB "
              f"({out['rss_change_mb']:+.1f} MB); profile cells {profiles}")
    return 0


def _feature_states(pipeline: object) -> list[Any]:
    """The per-symbol feature states that own a volume profile (for the report only)."""
    out = []
    for st in getattr(getattr(pipeline, "signals", None), "_syms", {}).values():
        f = getattr(st, "f", None)
        if f is not None and hasattr(f, "profile"):
            out.append(f)
    return out
