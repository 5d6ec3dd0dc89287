"""`scalper bench signals FILE [FILE ...] [--rounds N] [--json]`: cost of the signal layer per market event.

The session is parsed once up front (parsing is not what is measured). Then, in interleaved rounds on
fresh state, (A) the DOM alone: BinanceBookSync + OrderBook per depth message, and (B) the same DOM
plus `SignalEngine.on_depth` after each applied depth message and `SignalEngine.on_trade` per print
(all features updated, all enabled setups evaluated). Each call is timed with perf_counter_ns; the
report gives medians (and means: wall scans and bar closes are amortised, so they show in the mean)
of the DOM update per depth message, the signal layer per depth message, per print and per market
event (depth + prints), and the ratio signals / DOM. Target: signals per event <= DOM per event.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from typing import Any

__all__ = ["add_arguments", "run"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="+", metavar="FILE", help="a recorded session (a day pair in order)")
    p.add_argument("--rounds", type=int, default=3, help="rounds of each kind, interleaved (default 3)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("-c", "--config", metavar="CONFIG", help="TOML config whose [signals] is measured (strategy "
                   "plug-ins included); default: the built-in defaults")


def _load(paths: list[str]) -> list[tuple[str, Any, int]]:
    from bot.domain.events import DepthDiff, DepthSnapshot, Trade
    from bot.errors import MalformedMessage
    from bot.replay.reader import LineError, read_session
    from bot.venues.binance_usdm import parse as bn

    out: list[tuple[str, Any, int]] = []
    last_sym = ""
    for rec in read_session(paths):
        if isinstance(rec, LineError):
            continue
        try:
            ev = bn.parse_message(rec.raw, rec.ts_recv_ns)
        except MalformedMessage:
            continue
        if isinstance(ev, DepthDiff):
            last_sym = ev.symbol
            out.append(("diff", ev, rec.ts_recv_ns))
        elif isinstance(ev, DepthSnapshot):
            ev.symbol = ev.symbol or last_sym
            if ev.symbol:
                out.append(("snap", ev, rec.ts_recv_ns))
        elif isinstance(ev, Trade):
            out.append(("trade", ev, rec.ts_recv_ns))
    return out


def _round(events: list[tuple[str, Any, int]], with_signals: bool, cfg: Any = None,
           ) -> tuple[list[int], list[int], list[int]]:
    from bot.market.book import OrderBook, default_depth_ticks
    from bot.market.sync import BinanceBookSync
    from bot.settings.signals import SignalsSection
    from bot.signals.engine import SignalEngine
    from bot.venues.binance_usdm.instruments import instrument_for

    clock = time.perf_counter_ns
    syncs: dict[str, BinanceBookSync] = {}
    engine = SignalEngine(cfg or SignalsSection(), {})
    dom: list[int] = []
    sig_depth: list[int] = []
    sig_trade: list[int] = []
    for kind, ev, now in events:
        if kind == "trade":
            if with_signals and ev.symbol in syncs:
                t0 = clock()
                engine.on_trade(ev, now)
                sig_trade.append(clock() - t0)
            continue
        sync = syncs.get(ev.symbol)
        if sync is None:
            lv = ev.bids or ev.asks
            inst = instrument_for(ev.symbol, lv[0][0], lv[0][1], {})
            sync = syncs[ev.symbol] = BinanceBookSync(OrderBook(inst, default_depth_ticks(inst, float(lv[0][0]))))
        st = sync.stats
        before = st.applied + st.snapshots
        t0 = clock()
        if kind == "diff":
            sync.on_diff(ev, now)
        else:
            sync.on_snapshot(ev, now)
        t1 = clock()
        if st.applied + st.snapshots == before:
            continue
        dom.append(t1 - t0)
        if with_signals:
            ts = ev.ts_event_ns
            t1 = clock()
            engine.on_depth(ev.symbol, sync.book, sync.health.status, ts, now)
            sig_depth.append(clock() - t1)
    return dom, sig_depth, sig_trade


def run(args: argparse.Namespace) -> int:
    import orjson

    cfg = None
    if getattr(args, "config", None):
        from bot.settings import load_settings

        cfg = load_settings(args.config).signals
    events = _load(args.files)
    if not events:
        print("error: no events in these files", file=sys.stderr)
        return 1
    dom_a: list[int] = []
    dom_b: list[int] = []
    sig_d: list[int] = []
    sig_t: list[int] = []
    gc.disable()  # collections land on random events; both kinds of round run the same way
    try:
        for _ in range(max(1, args.rounds)):
            d, _, _ = _round(events, False)
            dom_a += d
            d, sd, stt = _round(events, True, cfg)
            dom_b += d
            sig_d += sd
            sig_t += stt
            gc.collect()
    finally:
        gc.enable()
    if not dom_a or not sig_d:
        print("error: no depth event was applied (no snapshot in these files?)", file=sys.stderr)
        return 1
    rounds = max(1, args.rounds)
    n_depth = len(sig_d) // rounds
    n_trade = len(sig_t) // rounds
    sig_all = sig_d + sig_t
    dom_median = statistics.median(dom_a)
    res = {
        "depth_events": n_depth, "trades": n_trade, "rounds": rounds,
        "dom_ns_per_depth_median": dom_median, "dom_ns_per_depth_mean": statistics.fmean(dom_a),
        "dom_ns_per_depth_median_in_signal_rounds": statistics.median(dom_b),
        "signals_ns_per_depth_median": statistics.median(sig_d), "signals_ns_per_depth_mean": statistics.fmean(sig_d),
        "signals_ns_per_trade_median": statistics.median(sig_t) if sig_t else 0.0,
        "signals_ns_per_trade_mean": statistics.fmean(sig_t) if sig_t else 0.0,
        "signals_ns_per_event_median": statistics.median(sig_all),
        "signals_ns_per_event_mean": statistics.fmean(sig_all),
        # per market event, the DOM costs its depth work spread over every event (prints cost it nothing)
        "dom_ns_per_event_mean": statistics.fmean(dom_a) * n_depth / (n_depth + n_trade),
    }
    res["ratio_signals_vs_dom_per_depth_median"] = res["signals_ns_per_depth_median"] / dom_median
    res["ratio_signals_vs_dom_total"] = (statistics.fmean(sig_d) * n_depth + res["signals_ns_per_trade_mean"]
                                         * n_trade) / (statistics.fmean(dom_a) * n_depth)
    if args.json:
        sys.stdout.write(orjson.dumps(res, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    print(f"{n_depth} depth events, {n_trade} prints, {rounds} interleaved rounds of each kind")
    print(f"DOM update per depth event:      median {dom_median:>8.0f} ns   "
          f"mean {res['dom_ns_per_depth_mean']:>8.0f} ns")
    print(f"signals per depth event:         median {res['signals_ns_per_depth_median']:>8.0f} ns   "
          f"mean {res['signals_ns_per_depth_mean']:>8.0f} ns")
    print(f"signals per print:               median {res['signals_ns_per_trade_median']:>8.0f} ns   "
          f"mean {res['signals_ns_per_trade_mean']:>8.0f} ns")
    print(f"signals per market event:        median {res['signals_ns_per_event_median']:>8.0f} ns   "
          f"mean {res['signals_ns_per_event_mean']:>8.0f} ns")
    print(f"signals / DOM per depth event (medians): {res['ratio_signals_vs_dom_per_depth_median']:.2f}")
    print(f"signals / DOM, total session time:       {res['ratio_signals_vs_dom_total']:.2f}")
    return 0
