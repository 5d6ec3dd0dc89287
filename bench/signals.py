"""`scalper bench signals FILE [FILE ...] [--rounds N] [--json]`: cost of the signal layer per market event.

The session is parsed once up front (parsing is not what is measured). Then, in interleaved rounds on
fresh state, (A) the DOM alone: the market session's sequence -> book (BinanceBookSync + OrderBook) per
depth message, and (B) the same DOM
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
    """The session's events, parsed once by the market session (bare snapshots placed with their symbol)."""
    from bot.domain.events import DepthDiff, DepthSnapshot, Trade
    from bot.market.session import MarketSession
    from bot.replay.reader import LineError, read_session

    ses = MarketSession(book_tickers=False)
    out: list[tuple[str, Any, int]] = []
    for rec in read_session(paths):
        if isinstance(rec, LineError):
            continue
        for ev in ses.decode(rec.raw, rec.ts_recv_ns, rec.path, rec.lineno) or ():
            t = type(ev)
            if t is DepthDiff or t is DepthSnapshot:
                out.append(("depth", ev, rec.ts_recv_ns))
            elif t is Trade:
                out.append(("trade", ev, rec.ts_recv_ns))
    return out


def _round(events: list[tuple[str, Any, int]], with_signals: bool, cfg: Any = None,
           ) -> tuple[list[int], list[int], list[int]]:
    from bot.market.session import MarketSession
    from bot.settings.signals import SignalsSection
    from bot.signals.engine import SignalEngine

    clock = time.perf_counter_ns
    ses = MarketSession()  # fresh books every round: sequence -> book through the market session
    apply = ses.apply
    engine = SignalEngine(cfg or SignalsSection(), {})
    dom: list[int] = []
    sig_depth: list[int] = []
    sig_trade: list[int] = []
    for kind, ev, now in events:
        if kind == "trade":
            if with_signals and ev.symbol in ses.syncs:
                t0 = clock()
                engine.on_trade(ev, now)
                sig_trade.append(clock() - t0)
            continue
        t0 = clock()
        ups = apply(ev, now)
        t1 = clock()
        if not ups:
            continue
        dom.append(t1 - t0)
        if with_signals:
            up = ups[0]
            sync = up.sync
            t1 = clock()
            engine.on_depth(up.symbol, sync.book, sync.health.status, up.ts_event_ns, now)
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
