"""`scalper bench book FILE [FILE ...]`: cost per depth message of three paths, interleaved rounds.

1. ours:  raw bytes -> the market session (`MarketSession.feed`: `parse_message` ->
          `BinanceBookSync.on_diff`, pu check + DOM update) -> best bid/ask and top-10 imbalance read;
2. floor: `orjson.loads` of the same bytes plus `float()` of every price and size, nothing else (no
          Python book can beat it: it is the decode our path must do anyway);
3. ccxt:  ccxt.pro's own order book fed the way ccxt.pro's binance feeds it (orjson decode,
          `handle_order_book_message` -> `OrderBookSide.store(float, float)`), then the same reads.

All three start from the session's REST snapshot and replay the depth messages after it. Each round
runs the three back to back (so machine noise hits them alike); the figure per path is the median over
rounds of (round time / messages). Garbage collection is paused while a path runs, for all three.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from typing import Any

import orjson

from bot.domain.events import DepthSnapshot
from bot.market.session import MarketSession
from bot.replay.reader import Record, read_session
from bot.venues.binance_usdm.instruments import instrument_for

__all__ = ["add_arguments", "run"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="+", metavar="FILE", help="a recorded Binance USD-M session (one symbol)")
    p.add_argument("--rounds", type=int, default=15, help="interleaved rounds (median reported)")
    p.add_argument("--json", action="store_true", help='print {"ours_ns", "floor_ns", "ccxt_ns", ...}')
    p.add_argument("--no-ccxt", action="store_true", help="skip the ccxt reference (it imports ccxt)")


def _load(files: list[str]) -> tuple[dict[str, Any], list[bytes], str]:
    """The first snapshot and the raw depth messages from the one that bridges it on."""
    snapshot: dict[str, Any] | None = None
    symbol = ""
    depth: list[tuple[int, bytes]] = []
    for rec in read_session(files):
        if not isinstance(rec, Record):
            continue
        raw = rec.raw
        if raw.startswith(b'{"lastUpdateId"') or b"@depthSnapshot" in raw[:60]:
            if snapshot is None:
                msg = orjson.loads(raw)
                snapshot = msg.get("data", msg)
        elif b"depthUpdate" in raw[:120]:
            d = orjson.loads(raw)["data"]
            symbol = d["s"]
            depth.append((d["u"], raw))
    if snapshot is None:
        raise SystemExit("error: no REST snapshot in these files")
    # The event that bridges the snapshot was buffered before the snapshot arrived: keep u >= lastUpdateId.
    last_id = snapshot["lastUpdateId"]
    return snapshot, [raw for u, raw in depth if u >= last_id], symbol


def _floor(msgs: list[bytes]) -> None:
    loads = orjson.loads
    for raw in msgs:
        d = loads(raw)["data"]
        for p, q in d["b"]:
            float(p)
            float(q)
        for p, q in d["a"]:
            float(p)
            float(q)


def _ours(msgs: list[bytes], snapshot: dict[str, Any], symbol: str) -> tuple[Any, float]:
    inst = instrument_for(symbol, snapshot["bids"][0][0], snapshot["bids"][0][1])
    ses = MarketSession({symbol: inst})  # the bot's market session: parse -> sequence -> book
    ses.apply(DepthSnapshot(symbol, snapshot["lastUpdateId"], snapshot["bids"], snapshot["asks"], 0, 0), 0)
    sync = ses.syncs[symbol]
    book = sync.book
    feed = ses.feed
    acc = 0.0
    t0 = time.perf_counter_ns()
    for raw in msgs:
        feed(raw, 0)
        book.bbo()
        acc += book.imbalance(10)
    dt = time.perf_counter_ns() - t0
    return sync, dt


def _ccxt_setup(snapshot: dict[str, Any]) -> tuple[Any, Any]:
    import ccxt.pro as ccxtpro

    ex = ccxtpro.binanceusdm()
    ob = ex.order_book({}, 1000)
    ob.reset(
        {
            "bids": [[float(p), float(q)] for p, q in snapshot["bids"]],
            "asks": [[float(p), float(q)] for p, q in snapshot["asks"]],
        }
    )
    return ex, ob


def _ccxt(msgs: list[bytes], ex: Any, ob: Any) -> float:
    loads = orjson.loads  # ccxt's ws client decodes with orjson when it is importable
    handle = ex.handle_order_book_message
    acc = 0.0
    t0 = time.perf_counter_ns()
    for raw in msgs:
        d = loads(raw)["data"]
        handle(None, d, ob)
        bids, asks = ob["bids"], ob["asks"]
        bids[0]
        asks[0]
        b = sum(lv[1] for lv in bids[:10])
        a = sum(lv[1] for lv in asks[:10])
        acc += (b - a) / (b + a)
    return time.perf_counter_ns() - t0


def run(args: argparse.Namespace) -> int:
    snapshot, msgs, symbol = _load(args.files)
    n = len(msgs)
    levels = sum(len(orjson.loads(m)["data"]["b"]) + len(orjson.loads(m)["data"]["a"]) for m in msgs) / n
    floor_ns: list[float] = []
    ours_ns: list[float] = []
    ccxt_ns: list[float] = []
    final_sync = None
    for _ in range(args.rounds):
        gc.collect()
        gc.disable()
        try:
            t0 = time.perf_counter_ns()
            _floor(msgs)
            floor_ns.append((time.perf_counter_ns() - t0) / n)
            final_sync, dt = _ours(msgs, snapshot, symbol)
            ours_ns.append(dt / n)
            if not args.no_ccxt:
                ex, ob = _ccxt_setup(snapshot)
                ccxt_ns.append(_ccxt(msgs, ex, ob) / n)
        finally:
            gc.enable()
    assert final_sync is not None
    st = final_sync.stats
    if st.gaps or st.applied != n:
        print(f"error: replay was not clean (applied {st.applied}/{n}, gaps {st.gaps})", file=sys.stderr)
        return 1
    res: dict[str, Any] = {
        "symbol": symbol,
        "messages": n,
        "rounds": args.rounds,
        "mean_levels_per_message": round(levels, 1),
        "floor_ns": round(statistics.median(floor_ns)),
        "ours_ns": round(statistics.median(ours_ns)),
    }
    res["ours_over_floor"] = round(res["ours_ns"] / res["floor_ns"], 2)
    # The ratio per round (same round, same noise) is the steadier figure on a shared machine.
    res["ours_over_floor_per_round_median"] = round(
        statistics.median(o / f for o, f in zip(ours_ns, floor_ns)), 2
    )
    if ccxt_ns:
        res["ccxt_ns"] = round(statistics.median(ccxt_ns))
        res["ccxt_over_ours"] = round(res["ccxt_ns"] / res["ours_ns"], 2)
    if args.json:
        sys.stdout.write(orjson.dumps(res).decode() + "\n")
        return 0
    print(
        f"{symbol}: {n} depth messages, {levels:.1f} levels/message, {args.rounds} interleaved rounds (median)"
    )
    print(f"  floor (orjson + float)   {res['floor_ns'] / 1000:8.2f} us/msg   1.00x")
    print(
        f"  ours  (parse+sync+DOM+read) {res['ours_ns'] / 1000:5.2f} us/msg   {res['ours_over_floor']:.2f}x floor"
        f"  (per-round median {res['ours_over_floor_per_round_median']:.2f}x)"
    )
    if ccxt_ns:
        print(
            f"  ccxt.pro order book      {res['ccxt_ns'] / 1000:8.2f} us/msg   {res['ccxt_ns'] / res['floor_ns']:.2f}x"
            f" floor, {res['ccxt_over_ours']:.2f}x ours"
        )
    return 0
