"""`scalper bench latency --venue exchange-sim`: tick-to-order against the loopback exchange, through the
real venue code.

The loopback exchange (`bot.venues.sim.server`, what `scalper exchange-sim` serves) runs as its own process,
`scalper exchange-sim --unlimited` on a free port, as a venue is another machine (`--exchange inprocess`: in this
process, sharing its event loop, core and caches with the bot: faster to start, for tests) and plays the recorded
session (default: the in-process bench's file) at `--speed` through its websockets, or its seeded generator
(`--source generated`, 50 depth messages/s per symbol). The bot side is composed as `App._run_binance`
composes it: `BinanceMarketFeed` (raw websockets) -> the pipeline called synchronously in the feed's step
(App._dispatch; no task per market event) -> `Pipeline` (signals) -> `ExecutionEngine` (risk, journal,
planning) -> a task per order (started eagerly) -> `BinanceGateway.submit` -> its order fast path
(orders.order_params, signer.OrderSigner) -> ccxt's `fetch` over our aiohttp session.
One entry is measured from the receive time of the depth message that triggered it (the feed's
`ts_recv_ns`, taken when the websocket frame is returned) to the moment ccxt hands the signed POST
/fapi/v1/order to aiohttp (a wrapper around the session given to ccxt; gateway.py is untouched).

Steps (medians and p99 of each; they add up to the total, less the microsecond between the receive stamp and
the feed callback): parse, book (the feed's sync + DOM, its health bookkeeping), dispatch (the feed callback to
the pipeline: a plain call since issue 12; `--dispatch-ab` compares the old task per event), features, setups,
risk, planning (a journal commit before the send would count here: there is none, the entry's record is
written right after its hand-off and reported apart as journal_after_send_us), order_task (the engine's
hand-off to the gateway's task: an eagerly started one, or a loop turn for fastpath_task), gateway (clock check,
order_params: the Binance request, limiter), ccxt_build_sign (the send: signing and ccxt's fetch preamble up
to the session call; for the A/B modes that build in ccxt, create_order's request building too; split in
`ccxt_detail` into build, sign and the fetch preamble; the step keeps its name from when ccxt built every
request). The acknowledgement round trip (hand-off -> the gateway returns the OrderAck, including the loopback
exchange's own work and ccxt's response parsing) is reported apart: it is not ours to shorten.
`--ccxt-ab` interleaves the entries over the shipped fast path and the paths it replaced
(bench/latency_ccxt.py: fastpath, create_order, implicit, and fastpath_task: the entry handed to the
gateway in a plain task instead of an eagerly started one) and reports each.

`--transport rest|ws|both` (execution.order_transport): `ws` sends the entries as order.place on the
loopback exchange's Binance WebSocket API (binance_usdm/wsapi.py over bot/venues/ws_orders.py), `both`
interleaves REST and websocket entries in one run; `transports` reports each one's tick-to-wire (receive stamp
-> the request handed to aiohttp / the frame handed to websockets' send) and tick-to-ack (-> the gateway's
OrderAck) medians and p99. For a ws entry the send step is the ws-fapi signing (`ccxt_sign`: the sorted
payload's HMAC and the JSON frame) and the transport check (`ccxt_fetch`).

Rounds of triggers alternate between timed (the step stamps above: wrappers around parse, features, risk and
the signing) and bare (only what the total needs: the receive stamp, the trigger, the hand-off hooks, the
gateway's answer): the headline total and every table's totals come from the bare rounds, the steps from the
timed ones, and `instrumented` gives the timed rounds' own total (their difference is what the wrappers cost).
The run stops when every order path of the run has `--entries` bare entries. The entry path is kept warm as the
app keeps it (`execution.warm_interval_ms`, bot/execution/warm.py; `--warm-ms` overrides it); `--warm-ab` leaves it
cold every other pair of rounds and reports both under `warm_ab`.

Triggers as in the in-process bench: every `--every`-th LIVE depth message runs the real signal engine, and
when it emits nothing a long intent goes down the same path. Its limit IOC is priced 20 ticks under the
bid, so it expires unfilled at the exchange: nothing is left open, no margin is used, and the request is
built, signed and sent exactly as a filling one. A real intent that fills is flattened before the next
entry. Entries are sequential (the next trigger waits until the previous trade has ended). The loopback
exchange's request-rate limits are lifted for this process (the bench measures latency, not the venue's
300 orders/10 s pacing); the gateway's limiter still does its bookkeeping on every order.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
from typing import Any

from bench.latency_ccxt import MODES

__all__ = ["STEPS", "add_venue_arguments", "rows_of", "run_venue", "summary"]

# no "journal" step any more: the entry's record is written right after its hand-off (engine.on_intent),
# reported apart as journal_after_send_us; a commit before the send would show as planning
STEPS = ("parse", "book", "dispatch", "features", "setups", "risk", "planning", "order_task",
         "gateway", "ccxt_build_sign")
CCXT_DETAIL = ("ccxt_build", "ccxt_sign", "ccxt_fetch")
TARGET_MEDIAN_US, TARGET_P99_US = 200.0, 1000.0


def add_venue_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("--venue exchange-sim")
    g.add_argument("--source", default=None, choices=("generated",),
                   help="market of the loopback exchange: its seeded generator instead of the recorded FILEs")
    g.add_argument("--speed", type=float, default=4.0, help="replay speed of recorded FILEs")
    g.add_argument("--symbols", default="BTCUSDT,ETHUSDT", help="generated symbols")
    g.add_argument("--every", type=int, default=2, help="every k-th LIVE depth message is a trigger")
    g.add_argument("--exchange", choices=("inprocess", "subprocess"), default="subprocess",
                   help="the loopback exchange as `scalper exchange-sim` beside the bot (default: what the issue's "
                        "target is stated against) or in this process (shares the bot's loop and core)")
    g.add_argument("--ccxt-ab", action="store_true",
                   help=f"interleave the entries over the paths {', '.join(MODES)} (bench/latency_ccxt.py)"
                        f"; the headline stays the shipped path ({MODES[0]})")
    g.add_argument("--transport", choices=("rest", "ws", "both"), default="rest",
                   help="the order path of the entries: REST, the Binance WebSocket API, or both interleaved "
                        "(tick-to-wire and tick-to-ack of each under `transports`)")
    g.add_argument("--dispatch-ab", action="store_true",
                   help="every other round of triggers, hand the market event to the pipeline in a task of its own "
                        "(the app before issue 12) instead of the synchronous call; reported under dispatch_ab")
    g.add_argument("--warm-ab", action="store_true",
                   help="every other round of triggers, the entry path is not kept warm before it (execution."
                        "warm_interval_ms = 0, bot/execution/warm.py); the headline stays the warm rounds, both "
                        "under warm_ab")
    g.add_argument("--warm-ms", type=float, default=None,
                   help="execution.warm_interval_ms for this run (default: the config's; 0: off)")
    g.add_argument("--no-reference", action="store_true",
                   help="leave out the minimal reference (parse -> dict book -> trivial rule -> signed request -> the "
                        "same transport) measured beside the bot in the same run (bench/latency_reference.py)")
    g.add_argument("--min-entries", type=int, default=1000, help="refuse --entries below this (tests lower it)")
    g.add_argument("--timeout", type=float, default=300.0, help="give up after this many seconds")


def _row(r: dict[str, Any]) -> dict[str, Any]:
    """One entry's record (timestamps) -> its step durations in ns. The total runs from the feed's receive
    stamp (wall clock, as the bot journals it) to the hand-off (wall clock), less the bench's own intent
    construction; the steps are perf_counter differences."""
    if r.get("bare"):  # a round without step wrappers: the total and the answer only
        return {"mode": r["mode"], "bare": True, "cold": bool(r.get("cold")),
                "total": r["h0_wall"] - r["ts_recv"] - r["inject"], "ack_rtt": r["a1"] - r["h0"],
                "dispatch_task": bool(r.get("dispatch_task"))}
    sig, feats = r.get("signals", 0), r.get("features", 0)
    rsk = r.get("risk", 0)
    e0, p0, s1, g0, c0, h0 = r["e0"], r["p0"], r["s1"], r["g0"], r["c0"], r["h0"]
    return {
        "mode": r["mode"],
        "total": r["h0_wall"] - r["ts_recv"] - r["inject"],
        "parse": r["parse"], "book": e0 - r["r0"] - r["parse"], "dispatch": p0 - e0,
        "features": feats, "setups": sig - feats, "risk": rsk,
        # a commit before the send (none since the record follows the hand-off) stays in planning
        "planning": (s1 - p0) - sig - r["inject"] - rsk,
        "order_task": g0 - s1, "gateway": c0 - g0, "ccxt_build_sign": h0 - c0,
        "ccxt_build": r["sign0"] - c0, "ccxt_sign": r["sign1"] - r["sign0"], "ccxt_fetch": h0 - r["sign1"],
        "ack_rtt": r["a1"] - h0,
        "journal_after_send": r.get("journal_after_send", 0),
        "dispatch_task": bool(r.get("dispatch_task")),
        "cold": bool(r.get("cold")),
    }


def rows_of(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [_row(r) for r in records]


def _q(xs: list[int], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] / 1000.0


def _mp(xs: list[int]) -> dict[str, float]:
    return {"median": round(statistics.median(xs) / 1000.0, 2), "p99": round(_q(xs, 0.99), 2)}


_TRANSPORTS = (("rest", MODES[0]), ("ws", "ws"))


def modes_of(transport: str, ccxt_ab: bool) -> tuple[str, ...]:
    """The interleaved order paths of a run; the first is the headline (and the count the run stops at)."""
    rest = MODES if ccxt_ab else MODES[:1]
    if transport == "ws":
        return ("ws",)
    return rest if transport == "rest" else (rest[0], "ws", *rest[1:])


def _timed(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of timed rounds (every step stamped)."""
    return [r for r in rows if not r.get("bare")]


def _bare(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of bare rounds (no step wrappers: the totals), or the timed ones when there are none."""
    return [r for r in rows if r.get("bare")] or _timed(rows)


def summary(rows: list[dict[str, Any]], facts: dict[str, Any] | None = None, head: str = MODES[0]) -> dict[str, Any]:
    """The JSON of the bench. The headline is the shipped path (`head`: MODES[0], fastpath, or ws with
    --transport ws); with --ccxt-ab the other REST paths' entries (interleaved with it) are summarised under
    `ccxt_ab`, and each transport's tick-to-wire and tick-to-ack under `transports`."""
    # the headline is the shipped configuration (the entry path kept warm: --warm-ab's cold rounds apart), timed
    # in the rounds without step wrappers ("bare"); the steps come from the other rounds, whose own total is
    # reported beside it (instrumented): the difference is what the wrappers cost
    warm = [r for r in rows if r["mode"] == head and not r.get("cold")]
    timed = [r for r in warm if not r.get("bare")]
    main = timed
    bare = [r for r in warm if r.get("bare")] or timed
    out: dict[str, Any] = {"venue": "exchange-sim", "entries": len(bare), "headline_path": head}
    if main:
        total = _mp([r["total"] for r in bare])
        inst = _mp([r["total"] for r in main])
        out["instrumented"] = {"entries": len(main), "tick_to_order_us": inst,
                               "wrappers_cost_median_us": round(inst["median"] - total["median"], 2)}
        ccxt = _mp([r["ccxt_build_sign"] for r in main])
        out.update({
            "tick_to_order_us": total,
            "steps": {k: _mp([r[k] for r in main]) for k in STEPS},
            "ccxt_detail": {k: _mp([r[k] for r in main]) for k in CCXT_DETAIL},
            "ccxt_share_of_median_pct": round(100 * ccxt["median"] / max(total["median"], 1e-9), 1),
            "tick_to_order_without_ccxt_us": _mp([r["total"] - r["ccxt_build_sign"] for r in main]),
            # what the steps do not account for, per entry: the receive stamp -> the feed callback (and the
            # wall clock vs perf_counter); a large value would mean a step is missing
            "unattributed_us": _mp([r["total"] - sum(r[k] for k in STEPS) for r in main]),
            "ack_rtt_us": _mp([r["ack_rtt"] for r in bare]),
            # the entry's journal record written after its hand-off (engine.on_intent): outside tick-to-order
            "journal_after_send_us": _mp([r.get("journal_after_send", 0) for r in main]),
            "target": {"median_us": TARGET_MEDIAN_US, "p99_us": TARGET_P99_US},
            "met": {"median": total["median"] < TARGET_MEDIAN_US, "p99": total["p99"] < TARGET_P99_US},
        })
    # each table: totals (tick-to-wire, tick-to-order, the answer) from its bare rounds, steps from its timed ones
    out["transports"] = {
        name: {"entries": len(b), "tick_to_wire_us": _mp([r["total"] for r in b]),
               "tick_to_ack_us": _mp([r["total"] + r["ack_rtt"] for r in b]),
               "send_us": _mp([r["ccxt_build_sign"] for r in t]), "sign_us": _mp([r["ccxt_sign"] for r in t]),
               "ack_rtt_us": _mp([r["ack_rtt"] for r in b])}
        for name, mode in _TRANSPORTS
        if (t := _timed(rs := [r for r in rows if r["mode"] == mode and not r.get("cold")])) and (b := _bare(rs))}
    modes = sorted({r["mode"] for r in rows if r["mode"] in MODES}, key=MODES.index)
    if len(modes) > 1:
        out["ccxt_ab"] = {m: {"entries": len(b), "tick_to_order_us": _mp([r["total"] for r in b]),
                              "gateway": _mp([r["gateway"] for r in t]),
                              "ccxt_build_sign": _mp([r["ccxt_build_sign"] for r in t]),
                              **{k: _mp([r[k] for r in t]) for k in CCXT_DETAIL},
                              "ack_rtt_us": _mp([r["ack_rtt"] for r in b])}
                          for m in modes
                          if (t := _timed(rs := [r for r in rows if r["mode"] == m and not r.get("cold")]))
                          and (b := _bare(rs))}
    if any(r.get("dispatch_task") for r in rows):
        out["dispatch_ab"] = {name: {"entries": len(b), "tick_to_order_us": _mp([r["total"] for r in b]),
                                     "dispatch": _mp([r["dispatch"] for r in t])}
                              for name, task in (("sync", False), ("task", True))
                              if (t := _timed(rs := [r for r in warm if bool(r.get("dispatch_task")) is task]))
                              and (b := _bare(rs))}
    cold = [r for r in rows if r["mode"] == head and r.get("cold")]
    if cold:
        # per kind: the total of its bare rounds, the steps of its timed ones
        out["warm_ab"] = {name: {"entries": len(b), "tick_to_order_us": _mp([r["total"] for r in b]),
                                 **{k: _mp([r[k] for r in t]) for k in STEPS}}
                          for name, rs in (("warm", warm), ("cold", cold))
                          if (t := [r for r in rs if not r.get("bare")])
                          and (b := [r for r in rs if r.get("bare")] or t)}
    facts = dict(facts or {})
    ref = facts.pop("_reference_rows", None)
    if ref:
        # the minimal reference (bench/latency_reference.py), interleaved with the bot's entries
        rt = _mp([r["total"] for r in ref])
        out["reference"] = {"entries": len(ref), "tick_to_order_us": rt,
                            "steps": {k: _mp([r[k] for r in ref]) for k in ("parse_book", "sign_send")}}
        if main:
            t = out["tick_to_order_us"]
            out["ratio_to_reference"] = {"median": round(t["median"] / max(rt["median"], 1e-9), 2),
                                         "p99": round(t["p99"] / max(rt["p99"], 1e-9), 2)}
    out.update(facts)
    return out


def run_venue(args: argparse.Namespace) -> int:
    import orjson

    from bench.latency_venue_bench import bench

    if args.entries is None:
        args.entries = 1000
    if args.entries < args.min_entries:
        print(f"error: --entries must be >= {args.min_entries}")
        return 2
    from bench.latency import _DEFAULT

    sources = ["generated"] if args.source == "generated" else [os.path.abspath(f) for f in args.files or [_DEFAULT]]
    for p in sources:
        if p != "generated" and not os.path.exists(p):
            print(f"error: {p} not found")
            return 2
    symbols = tuple(x.strip().upper() for x in args.symbols.split(",") if x.strip())
    from bot.logging import configure_logging

    configure_logging("ERROR", "json")
    modes = modes_of(args.transport, args.ccxt_ab)
    with tempfile.TemporaryDirectory() as tmp:
        coro = bench(entries=args.entries, journal_path=args.journal or os.path.join(tmp, "bench.sqlite"),
                     sources=sources, symbols=symbols, speed=args.speed, every=args.every, timeout_s=args.timeout,
                     gc_freeze=not args.no_gc_freeze, exchange=args.exchange,
                     modes=modes, dispatch_ab=args.dispatch_ab,
                     reference=not args.no_reference, warm_ab=args.warm_ab, warm_ms=args.warm_ms)
        try:
            import uvloop  # what `scalper run` uses

            records, facts = uvloop.run(coro)
        except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
            records, facts = asyncio.run(coro)
    res = summary(rows_of(records), {**facts, "exchange": args.exchange, "source": sources}, head=modes[0])
    if args.json:
        print(orjson.dumps(res, option=orjson.OPT_INDENT_2).decode())
        return 0 if res["entries"] else 1
    if not res["entries"]:
        print(f"no entries measured ({facts})")
        return 1
    _print(res)
    return 0


def _print(res: dict[str, Any]) -> None:
    t, met = res["tick_to_order_us"], res["met"]
    print(f"tick-to-order against the loopback exchange ({res['exchange']}; ccxt + aiohttp + websockets): "
          f"{res['entries']} entries in {res['elapsed_s']} s; median {t['median']} us, p99 {t['p99']} us")
    if res.get("stopped") or res.get("stalls") or res.get("pipeline_errors"):
        print(f"WARNING: stopped early: {res.get('stopped') or '-'}; stalls {res.get('stalls')}, pipeline errors "
              f"{res.get('pipeline_errors')} {res.get('first_errors') or ''}")
    print(f"target: median < {TARGET_MEDIAN_US:g} us {'met' if met['median'] else 'NOT met'}, p99 < "
          f"{TARGET_P99_US:g} us {'met' if met['p99'] else 'NOT met'}")
    if "reference" in res:
        r, q = res["reference"], res["ratio_to_reference"]
        print(f"minimal reference, same run ({r['entries']} entries): median {r['tick_to_order_us']['median']} us, "
              f"p99 {r['tick_to_order_us']['p99']} us; the bot is {q['median']}x its median, {q['p99']}x its p99")
    w, a = res["tick_to_order_without_ccxt_us"], res["ack_rtt_us"]
    print(f"the send (signing + ccxt fetch preamble): {res['ccxt_share_of_median_pct']}% of the median; without it: "
          f"median {w['median']} us, p99 {w['p99']} us")
    print(f"ack round trip (hand-off -> OrderAck, the exchange's work included): median {a['median']} us, "
          f"p99 {a['p99']} us")
    j = res["journal_after_send_us"]
    print(f"journal record after the send (not in tick-to-order): median {j['median']} us, p99 {j['p99']} us")
    print(f"{'step':<18}{'median us':>10}{'p99 us':>10}")
    for k, v in [*res["steps"].items(), *(("  " + k, v) for k, v in res["ccxt_detail"].items())]:
        print(f"{k:<18}{v['median']:>10}{v['p99']:>10}")
    if len(res["transports"]) > 1 or res["headline_path"] == "ws":
        print("order transports, interleaved (median / p99 us):")
        print(f"{'transport':<14}{'entries':>8}{'send':>18}{'tick-to-wire':>20}{'tick-to-ack':>20}")
        for m, v in res["transports"].items():
            sd, w, k = v["send_us"], v["tick_to_wire_us"], v["tick_to_ack_us"]
            print(f"{m:<14}{v['entries']:>8}{sd['median']:>9} /{sd['p99']:>7}{w['median']:>11} /{w['p99']:>7}"
                  f"{k['median']:>11} /{k['p99']:>7}")
    if "ccxt_ab" in res:
        print("order paths, interleaved (median / p99 us):")
        print(f"{'path':<14}{'entries':>8}{'gateway':>18}{'build+sign':>18}{'tick-to-order':>20}")
        for m, v in res["ccxt_ab"].items():
            g, b, tt = v["gateway"], v["ccxt_build_sign"], v["tick_to_order_us"]
            print(f"{m:<14}{v['entries']:>8}{g['median']:>9} /{g['p99']:>7}{b['median']:>9} /{b['p99']:>7}"
                  f"{tt['median']:>11} /{tt['p99']:>7}")
    _print_ab(res, "warm_ab", "entry path kept warm or not", "path", "risk")
    _print_ab(res, "dispatch_ab", "market event dispatch", "dispatch", "dispatch")


def _print_ab(res: dict[str, Any], key: str, title: str, kind: str, step: str) -> None:
    """An interleaved A/B of the run: per arm, its entries, one step and tick-to-order (median / p99)."""
    if key not in res:
        return
    print(f"{title}, interleaved rounds (median / p99 us):")
    print(f"{kind:<14}{'entries':>8}{step:>18}{'tick-to-order':>20}")
    for m, v in res[key].items():
        d, tt = v[step], v["tick_to_order_us"]
        print(f"{m:<14}{v['entries']:>8}{d['median']:>9} /{d['p99']:>7}{tt['median']:>11} /{tt['p99']:>7}")
