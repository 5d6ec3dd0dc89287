"""`scalper bench sim FILE [FILE...]`: market events per second through the matching engine.

The session's lines are read into memory first (no I/O or gzip in the timings). Per round:
- reference: the DOM-only replay through the market session (parse -> BinanceBookSync -> OrderBook),
  what `check-data` does, bookTickers skipped undecoded as the engine skips them;
- engine (raw): `SimExchange.on_message` for every line: the same parse and book, plus matching,
  our resting orders' queues, stops, marks, funding; a scripted trader keeps a resting bid near the
  touch, a reduce-only stop, and does a market round trip every 2,000 events, so the order paths run;
- engine (parsed): the same with the events parsed beforehand by the session (`on_event`; bookTickers
  still go to `on_message`, which only moves the clock): the engine's own cost.
Reported: medians over the rounds, and the engine/DOM ratio measured in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Any

import orjson

from bot.domain.orders import OrderRequest
from bot.domain.types import OrderKind, Side, TriggerPrice
from bot.market.session import MarketSession
from bot.replay.reader import LineError, read_session
from bot.venues.binance_usdm.instruments import instrument_for
from bot.venues.sim.exchange import SimExchange
from bot.venues.sim.orders import SimError
from bot.venues.sim.sources import split_raw

__all__ = ["add_arguments", "run"]

TARGET_EVENTS_PER_S = 200_000


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="+", help="one recorded Binance session (a day pair in order)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def _load(files: list[str]) -> tuple[list[tuple[int, bytes]], dict[str, Any]]:
    records: list[tuple[int, bytes]] = []
    insts: dict[str, Any] = {}
    last = ""
    for rec in read_session(files):
        if isinstance(rec, LineError):
            continue
        records.append((rec.ts_recv_ns, rec.raw))
        got = split_raw(rec.raw, last)
        if got and got[1] == "depth":
            last = got[0]
            if got[0] not in insts:
                d = orjson.loads(got[2])
                lv = (d.get("b") or d.get("a"))[0]
                insts[got[0]] = instrument_for(got[0], lv[0], lv[1])
    return records, insts


def _dom_only(records: list[tuple[int, bytes]], insts: dict[str, Any]) -> float:
    ses = MarketSession(dict(insts), book_tickers=False)  # the engine skips bookTickers undecoded too
    feed = ses.feed
    t0 = time.perf_counter()
    for ts, raw in records:
        feed(raw, ts)
    return time.perf_counter() - t0


def _trader(ex: SimExchange, n: int) -> None:
    for sym, m in ex.markets.items():
        bbo = m.book.bbo()
        if bbo is None or not m.sync.health.is_live:
            continue
        inst = m.inst
        lots = int(float(inst.min_notional or 5) * 1.5 / (bbo[0] * inst.tick * inst.step)) + 1
        try:
            ex.cancel_all(sym)
            ex.cancel_all_algos(sym)
            q = ex.position_lots(sym)
            if q:
                ex.place(OrderRequest(f"x{n}", sym, Side.SELL if q > 0 else Side.BUY, OrderKind.MARKET, abs(q),
                                      reduce_only=True))
            ex.place(OrderRequest(f"e{n}", sym, Side.BUY, OrderKind.MARKET, lots))
            ex.place(OrderRequest(f"s{n}", sym, Side.SELL, OrderKind.STOP_MARKET, 0, trigger_ticks=bbo[0] - 200,
                                  working_type=TriggerPrice.MARK, close_position=True))
            ex.place(OrderRequest(f"b{n}", sym, Side.BUY, OrderKind.LIMIT, lots, bbo[0] - 1))
        except SimError:
            pass


def _engine(records: list[tuple[int, bytes]], insts: dict[str, Any],
            parsed: list[list[Any] | None] | None) -> tuple[float, int]:
    ex = SimExchange(insts, balance=1_000_000.0, default_leverage=20, keep_reports=False)
    fills = 0

    def count(r: Any) -> None:
        nonlocal fills
        fills += getattr(r, "exec_type", "") == "TRADE"

    ex.listeners.append(count)
    every = 2000
    t0 = time.perf_counter()
    if parsed is None:
        on = ex.on_message
        for i, (ts, raw) in enumerate(records):
            on(raw, ts)
            if i % every == every - 1:
                _trader(ex, i)
    else:
        on_ev, on_msg = ex.on_event, ex.on_message
        for i, ((ts, raw), evs) in enumerate(zip(records, parsed, strict=True)):
            if evs is None:
                on_msg(raw, ts)  # a bookTicker (undecoded: it only moves the clock) or a bad line
            else:
                for ev in evs:
                    on_ev(ev, ts)
            if i % every == every - 1:
                _trader(ex, i)
    return time.perf_counter() - t0, fills


def run(args: argparse.Namespace) -> int:
    records, insts = _load(args.files)
    if not records or not insts:
        print("error: no Binance depth messages in those files", file=sys.stderr)
        return 2
    ses = MarketSession(book_tickers=False)  # parsed once, bare snapshots placed with their symbol
    parsed = [ses.decode(raw, ts) for ts, raw in records]
    n = len(records)
    dom, raw_t, pre_t = [], [], []
    fills = 0
    for _ in range(max(1, args.rounds)):
        dom.append(_dom_only(records, insts))
        t, fills = _engine(records, insts, None)
        raw_t.append(t)
        pre_t.append(_engine(records, insts, parsed)[0])
    res = {
        "files": args.files,
        "events": n,
        "rounds": len(dom),
        "dom_only_events_per_s": round(n / statistics.median(dom)),
        "engine_events_per_s": round(n / statistics.median(raw_t)),
        "engine_parsed_events_per_s": round(n / statistics.median(pre_t)),
        "engine_vs_dom_ratio": round(statistics.median(dom) / statistics.median(raw_t), 3),
        "engine_fills_per_round": fills,
        "target_events_per_s": TARGET_EVENTS_PER_S,
    }
    res["meets_target_raw"] = res["engine_events_per_s"] >= TARGET_EVENTS_PER_S
    res["meets_target_parsed"] = res["engine_parsed_events_per_s"] >= TARGET_EVENTS_PER_S
    if args.json:
        print(orjson.dumps(res, option=orjson.OPT_INDENT_2).decode())
    else:
        print(f"session: {n:,} market events ({', '.join(sorted(insts))}), {res['rounds']} rounds, medians")
        print(f"  DOM-only replay (parse+sync+book):   {res['dom_only_events_per_s']:>10,} events/s  (reference)")
        print(f"  engine, raw messages (on_message):   {res['engine_events_per_s']:>10,} events/s  "
              f"({res['engine_vs_dom_ratio']:.2f}x of DOM-only)")
        print(f"  engine, pre-parsed events (on_event): {res['engine_parsed_events_per_s']:>9,} events/s")
        ok = {True: "met", False: "NOT met"}
        print(f"  fills per round: {fills}; target >= {TARGET_EVENTS_PER_S:,}/s: raw {ok[res['meets_target_raw']]}, "
              f"parsed {ok[res['meets_target_parsed']]}")
    return 0
