"""`scalper bench latency [FILE …] [--entries N] [--journal PATH]`: tick-to-order latency, in process.

From the receive time of the market message that triggered an entry to the entry order handed to the
gateway: parse -> book (sync + DOM) -> features -> setups -> risk (gate + sizing) -> journal (a commit
before the order, if any: the engine writes an entry's trade and planned legs right after its hand-off
now, reported apart as journal_after_send) -> planning (bracket planner, state machine, the engine's
bookkeeping up to the hand-off). Median and p99 over N entries, and the
median share of each step.

The recorded sessions trigger only a handful of real setups, so every k-th depth message after the book
is LIVE is treated as a trigger: the real signal engine runs on it (features and setups, their real cost),
and when it emits no intent a long intent at the touch, stopped 20 ticks away, goes down the same risk,
journal and planning path. The gateway is a null in-process gateway (it acknowledges at once), so no
venue time is counted. The reference printed alongside is the parse step alone (the floor of any
message), measured in the same run. Features are timed by wrapping `SymbolFeatures.on_depth` for this
process only; setups = signal engine time minus features.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import os
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from typing import Any

from bot.venues.ports import NO_EXTRAS

__all__ = ["add_arguments", "run"]

_DEFAULT = "../shared/data/binance_usdm/hftbacktest_usdm_btcusdt_20240808.gz"
STEPS = ("parse", "book", "features", "setups", "risk", "journal", "planning")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="*", metavar="FILE", help=f"recorded session (default {_DEFAULT})")
    p.add_argument("--entries", type=int, default=None,
                   help="entries to measure (>= 1000; default 2000 in process, 1000 against exchange-sim)")
    p.add_argument("--journal", metavar="PATH", help="journal file (default: a temporary file, WAL, NORMAL)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--no-gc-freeze", action="store_true", help="leave the cyclic GC as it is at start-up")
    p.add_argument("--venue", choices=("inprocess", "exchange-sim"), default="inprocess",
                   help="inprocess: null gateway (default); exchange-sim: ccxt + websockets against the loopback "
                        "exchange (bench/latency_venue.py)")
    from bench.latency_venue import add_venue_arguments

    add_venue_arguments(p)


class _NullGateway:
    name = "null"
    # eager, as the Binance gateway declares it: the entry goes out before its trade is planned (engine.on_intent)
    capabilities = dataclasses.replace(NO_EXTRAS, eager_submit=True)

    def __init__(self, instruments: dict[str, Any]) -> None:
        self.instruments = instruments

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def instrument(self, symbol: str) -> Any:
        return self.instruments[symbol]

    async def submit(self, req: Any) -> Any:
        from bot.domain.orders import OrderAck
        from bot.domain.types import OrderStatus

        return OrderAck(req.client_id, "1", OrderStatus.NEW, 0)

    async def cancel(self, symbol: str, client_id: str, conditional: bool = False) -> None: ...

    async def fetch_order(self, symbol: str, client_id: str, conditional: bool = False) -> Any:
        return None

    async def open_orders(self, symbol: str | None = None) -> list[Any]:
        return []

    async def set_leverage(self, symbol: str, leverage: int) -> None: ...

    async def account(self) -> Any:
        from bot.domain.orders import AccountSnapshot

        return AccountSnapshot(10_000.0, 10_000.0, 10_000.0)

    async def updates(self) -> AsyncIterator[Any]:
        await asyncio.Event().wait()
        yield None


async def _bench(paths: list[str], entries: int, journal_path: str, gc_freeze: bool = True) -> dict[str, Any]:
    from bot.domain.types import EntryIntent
    from bot.execution.engine import ExecutionEngine
    from bot.journal import Journal
    from bot.market.health import BookStatus
    from bot.market.session import DepthUpdate, MarketSession
    from bot.replay.reader import LineError, read_session
    from bot.risk import MarketView, RiskManager
    from bot.settings import load_settings
    from bot.signals import features as feat_mod
    from bot.signals.engine import SignalEngine
    from bot.venues.binance_usdm.instruments import KNOWN

    pc = time.perf_counter_ns
    acc = {"features": 0, "risk": 0, "journal": 0}
    orig_feat = feat_mod.SymbolFeatures.on_depth

    def timed_features(self: Any, *a: Any, **kw: Any) -> Any:
        t = pc()
        try:
            return orig_feat(self, *a, **kw)
        finally:
            acc["features"] += pc() - t

    s = load_settings(overrides={"risk": {"max_orders_per_s": 10**6, "max_orders_per_min": 10**6,
                                          "max_open_positions": 50, "max_notional_per_symbol_usd": 1e12,
                                          "max_total_notional_usd": 1e12,
                                          # its own 20-tick stops cannot pay a round trip; costs are
                                          # not what it measures
                                          "max_cost_r": 1.0, "min_target_net_r": -1.0}})
    instruments = dict(KNOWN)
    rm = RiskManager(s.risk, 10_000.0, 0)
    orig_assess = rm.assess

    def timed_assess(*a: Any, **kw: Any) -> Any:
        t = pc()
        try:
            return orig_assess(*a, **kw)
        finally:
            acc["risk"] += pc() - t

    rm.assess = timed_assess  # type: ignore[method-assign]
    journal = Journal(journal_path, s.journal.synchronous)
    orig_open = journal.open_trade

    def timed_open(*a: Any, **kw: Any) -> Any:
        t = pc()
        try:
            return orig_open(*a, **kw)
        finally:
            acc["journal"] += pc() - t
            acc["journal_t0"] = t

    journal.open_trade = timed_open  # type: ignore[method-assign]
    gw = _NullGateway(instruments)
    engine = ExecutionEngine(gw, rm, journal, s.execution, s.risk, clock=time.time_ns)
    sent: list[int] = []
    engine.on_entry_sent = lambda cid, ns: sent.append(ns)
    await engine.refresh_account()
    signals = SignalEngine(s.signals, instruments)
    # the market session, as every replay: parse ("parse" step) -> sequence -> book ("book" step)
    session = MarketSession(instruments, s.market.depth_bps, book_tickers=False)
    decode, apply = session.decode, session.apply
    rows: list[dict[str, int]] = []
    every = 3
    n_depth = 0
    feat_mod.SymbolFeatures.on_depth = timed_features  # type: ignore[method-assign]
    if gc_freeze:
        # What a latency-sensitive process does after start-up: move everything alive into the permanent
        # generation so a collection never walks it on the hot path (gc.freeze, Python >= 3.7).
        gc.collect()
        gc.freeze()
    try:
        for rec in read_session(paths):
            if len(rows) >= entries:
                break
            if isinstance(rec, LineError):
                continue
            t0 = pc()
            evs = decode(rec.raw, rec.ts_recv_ns, rec.path, rec.lineno)
            t1 = pc()
            if not evs:
                continue
            up = None
            for ev in evs:  # one, or a bare snapshot placed just before its bridging diff
                for out in apply(ev, rec.ts_recv_ns):
                    if type(out) is DepthUpdate:
                        up = out
            if up is None:
                continue
            t2 = pc()
            sync, sym = up.sync, up.symbol
            book = sync.book
            if sync.health.status is not BookStatus.LIVE or book.bbo() is None:
                continue
            acc["features"] = 0
            intents = signals.on_depth(sym, book, sync.health.status, up.ts_event_ns, rec.ts_recv_ns)
            t3 = pc()
            n_depth += 1
            if n_depth % every and not intents:
                continue
            ask = book.best_ask_ticks
            assert ask is not None  # bbo() is not None above
            intent = intents[0] if intents else EntryIntent(sym, "long", "bench", rec.ts_recv_ns, ask,
                                                            ask - 20, (), 60.0)
            mv = MarketView(book_live=True, spread_bps=0.0, book=book)  # as the pipeline: risk sweeps it
            acc["risk"] = acc["journal"] = acc["journal_t0"] = 0
            n_sent = len(sent)
            res = engine.on_intent(intent, mv)
            if isinstance(res, str) and len(sent) > n_sent:
                t4 = sent[-1]
                feats = acc["features"]
                # the engine records an entry right after its hand-off: that write is not in tick-to-order
                jnl, after = (acc["journal"], 0) if acc["journal_t0"] < t4 else (0, acc["journal"])
                rows.append({"total": t4 - t0, "parse": t1 - t0, "book": t2 - t1, "features": feats,
                             "setups": (t3 - t2) - feats, "risk": acc["risk"], "journal": jnl,
                             "planning": (t4 - t3) - acc["risk"] - jnl, "journal_after_send": after})
            # (not timed) let the null gateway ack, free the symbol for the next entry; the first entry of a
            # symbol sets the leverage in a task (a venue round trip) and is not counted
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            engine.trades.clear()
            rm.gate.open_notional.clear()
    finally:
        feat_mod.SymbolFeatures.on_depth = orig_feat  # type: ignore[method-assign]
        if gc_freeze:
            gc.unfreeze()
        await engine.drain(5.0)
        journal.close()
    return _summary(rows)


def _pct(xs: list[int], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] / 1000.0


def _summary(rows: list[dict[str, int]]) -> dict[str, Any]:
    if not rows:
        return {"entries": 0}
    total = [r["total"] for r in rows]
    med_total = statistics.median(total)
    steps = {k: statistics.median([r[k] for r in rows]) / 1000.0 for k in STEPS}
    share_sum = sum(steps.values()) or 1.0
    return {
        "entries": len(rows),
        "median_us": round(med_total / 1000.0, 2),
        "p99_us": round(_pct(total, 0.99), 2),
        "steps_median_us": {k: round(v, 2) for k, v in steps.items()},
        "steps_share_pct": {k: round(100 * v / share_sum, 1) for k, v in steps.items()},
        "median_without_journal_us": round(statistics.median([r["total"] - r["journal"] for r in rows]) / 1000, 2),
        "journal_after_send_median_us": round(statistics.median([r["journal_after_send"] for r in rows]) / 1000, 2),
        "reference_parse_median_us": round(steps["parse"], 2),
        "ratio_total_vs_parse": round(med_total / 1000.0 / max(steps["parse"], 1e-9), 1),
        "target_median_us": 100.0,
        "meets_target": med_total / 1000.0 < 100.0,
    }


def run(args: argparse.Namespace) -> int:
    import orjson

    if args.venue == "exchange-sim":
        from bench.latency_venue import run_venue

        return run_venue(args)
    if args.entries is None:
        args.entries = 2000

    paths = args.files or [_DEFAULT]
    for p in paths:
        if not os.path.exists(p):
            print(f"error: {p} not found")
            return 2
    if args.entries < 1000:
        print("error: --entries must be >= 1000")
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        path = args.journal or os.path.join(tmp, "bench.sqlite")
        from bot.logging import configure_logging

        configure_logging("ERROR", "json")
        res = asyncio.run(_bench(paths, args.entries, path, not args.no_gc_freeze))
    if args.json:
        print(orjson.dumps(res, option=orjson.OPT_INDENT_2).decode())
        return 0
    if not res.get("entries"):
        print("no entries measured")
        return 1
    print(f"tick-to-order, in process: {res['entries']} entries; median {res['median_us']} us, "
          f"p99 {res['p99_us']} us (target median < 100 us: {'met' if res['meets_target'] else 'NOT met'})")
    print(f"without a journal commit before the order: median {res['median_without_journal_us']} us; the entry's "
          f"record after its hand-off (not in tick-to-order): median {res['journal_after_send_median_us']} us")
    print(f"reference (parse alone, same run): {res['reference_parse_median_us']} us; "
          f"total/parse = {res['ratio_total_vs_parse']}x")
    print(f"{'step':<10}{'median us':>10}{'share %':>9}")
    for k in STEPS:
        print(f"{k:<10}{res['steps_median_us'][k]:>10}{res['steps_share_pct'][k]:>9}")
    return 0
