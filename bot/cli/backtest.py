"""`scalper backtest [-c CONFIG] [--journal PATH] [--json] FILE …`: the whole bot on a recorded session.

The same code as live: parse -> BinanceBookSync -> OrderBook -> SignalEngine -> RiskManager ->
ExecutionEngine -> SimGateway, with the simulator's queue and latency models. Two clocks, as in life
(issue 13 item 3): the simulated exchange sees every message at its recorded time; the bot sees it
`market_data_latency` later (one connection: never out of order). An order leaves the bot at the bot's
clock (the receive time of the message it reacts to) + `compute_latency`, reaches the matching engine
`order_latency` later (stamped on the bot's clock, never the exchange's), and the bot sees the answer
`ack_latency` after the engine handled it and each fill/cancel `user_stream_latency` after it happened
(bot/venues/sim/gateway.py). The loop merges the market deliveries and those answers in time order. The
matching top is the recorded bookTicker when newer than the depth diffs ([sim] book_ticker_top); stops
trigger on the exchange's mark (the markPrice stream, else that mid) and the bot follows its own mid.

The journal is the live one: funding the simulator settles on a held position is journaled and
attributed to the trade (bot.journal.funding). Funding comes only from the recorded markPrice stream
(`sim.funding_source = "recorded"`, the default: a session without one pays none), or, with "assumed",
at `sim.funding_rate_bps` every `sim.funding_interval_s` (the summary then says `funding_source:
assumed`); "none" turns it off. Every trade carries its latency trail in simulated time: exchange event
(the recorded receive time) -> receive is the simulated `market_data_latency`; receive -> signal is 0
(the clock does not move while the bot computes; the compute time is charged on the way out); order ->
ack is compute + order + ack latency. Each backtest is a run of its own in the journal
(`summary.run_id`; a second backtest into the same journal is reported apart), and its config is
journaled (the report reads the fee rates from it). On a terminal, stderr shows a progress bar with ETA
(bot.progress); nothing in --json or piped output.

JSON: {"verdict" (the summary's verdict, first), "trades": [{setup, symbol, side, entry_ts_ns, entry_price,
qty, stop_price, stop_confirm_ms,
max_open_risk, exit_ts_ns, exit_price, exit_reason, pnl, fees, r_multiple, trade_id, state, risk_budget,
cost_bps, cost_r, gross_pnl_quote, fees_quote, funding_quote, net_pnl_quote, r_gross, r_net,
fills: [{ts_ns, kind: entry|exit, price, qty, liquidity: maker|taker, fee_quote}]}, …],
"summary": {verdict, trades, wins, win_rate, pnl, fees, max_drawdown, risk_budget_per_trade, max_cost_r,
min_target_net_r, intents, denials, aborted, max_open_risk, stop_confirm_ms_max, end_equity, funding,
expectancy, by_setup, run_id}} (funding: the sum of the settlements, negative = paid; net_pnl_quote = gross -
fees + funding; expectancy / by_setup: gross and net expectancy in R and quote with 95 % Student t
intervals, win rates and the break-even win rate: bot.journal.costs). Trades still open at the end of the
data are flattened at market (exit_reason MANUAL).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import os
import sys
import time
from collections import Counter, deque
from collections.abc import Iterable
from typing import Any

__all__ = ["add_arguments", "funding_label", "run", "run_backtest", "summarize"]

_S = 1_000_000_000


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="+", metavar="FILE", help="recorded files (a day pair in order)")
    p.add_argument("-c", "--config", metavar="CONFIG", help="TOML config (signals, risk, execution, sim)")
    p.add_argument("--journal", metavar="PATH", default=":memory:", help="write the journal here (SQLite)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


async def run_backtest(paths: Iterable[str], settings: Any, journal_path: str = ":memory:",
                       problems: list[str] | None = None, progress: bool | None = False) -> dict[str, Any]:
    """`problems` (when given) receives one line per file with no market message, snapshot no diff
    bridged, book that never went LIVE (bot.market.session.MarketSession.finish). `progress`: a bar
    with ETA on stderr (None: only when stderr is a terminal; bot.progress)."""
    import orjson

    from bot.domain.events import FundingInfo, Trade
    from bot.domain.types import CloseReason
    from bot.execution.engine import ExecutionEngine
    from bot.journal import Journal
    from bot.journal.funding import FundingRecorder
    from bot.logging import configure_logging
    from bot.market.health import BookStatus
    from bot.market.session import DepthUpdate, MarketSession
    from bot.progress import Progress, count_lines
    from bot.replay.reader import LineError, read_session
    from bot.risk import MarketView, RiskManager
    from bot.settings import redacted
    from bot.signals.engine import SignalEngine
    from bot.venues.binance_usdm.instruments import KNOWN
    from bot.venues.sim.brackets import risk_brackets
    from bot.venues.sim.gateway import SimGateway, exchange_from_settings
    from bot.venues.sim.latency import Latency, SimLatencies, latency_kwargs

    paths = list(paths)
    # the process's own stderr (a cancel that finds nothing is routine here): never a caller's replaced
    # sys.stderr, which may be closed when later code logs (an in-process test's capture)
    configure_logging("ERROR", "json", stream=sys.__stderr__ or sys.stderr)
    instruments = dict(KNOWN)
    sim = settings.sim
    ex = exchange_from_settings(sim, instruments)
    now = [0]

    def clock() -> int:
        return now[0]

    gw = SimGateway(ex, clock=clock, latencies=SimLatencies.from_settings(sim))
    # size against the very tables the simulator margins and liquidates with
    brackets = risk_brackets()

    rm = RiskManager(settings.risk, sim.starting_balance_usdt, 0, brackets)
    journal = Journal(journal_path, settings.journal.synchronous)
    # A run of its own: a second backtest into the same journal is reported apart (trades, config, funding
    # carry its run_id); the config tells `scalper report` the fee rates this run priced with.
    run_id = journal.begin_run(time.time_ns(), "backtest", " ".join(os.path.basename(p) for p in paths))
    body = orjson.dumps(redacted(settings), option=orjson.OPT_SORT_KEYS).decode()
    journal.record_config(0, hashlib.sha256(body.encode()).hexdigest()[:16], body)
    engine = ExecutionEngine(gw, rm, journal, settings.execution, settings.risk, clock=clock)
    signals = SignalEngine(settings.signals, instruments)
    # The bot's market session (as live): parse once, here; the simulated exchange gets the same parsed
    # events at their recorded time. bookTickers are not decoded here: the bot trades on its depth book;
    # the exchange keeps them raw for its matching top.
    market = MarketSession(instruments, settings.market.depth_bps, book_tickers=False, bybit=False)
    md_latency = Latency.from_ms(sim.market_data_latency_ms, sim.market_data_jitter_ms, sim.latency_kind,
                                 sim.seed + 1, **latency_kwargs(sim))
    intents = 0
    denials: Counter[str] = Counter()
    next_funding_ns: dict[str, int] = {}
    funding_rate_bps: dict[str, float] = {}  # recorded markPrice rates only: the cost gate never assumes one
    fundings = 0

    def submit(out: list[Any], sync: Any) -> None:
        nonlocal intents
        book = sync.book
        bid, ask = book.best_bid_ticks, book.best_ask_ticks
        view = MarketView(book_live=sync.health.status is BookStatus.LIVE,
                          spread_bps=(ask - bid) / ((ask + bid) / 2) * 1e4,
                          next_funding_ns=next_funding_ns.get(sync.symbol, 0),
                          funding_rate_bps=funding_rate_bps.get(sync.symbol, 0.0), book=book)
        for intent in out:
            intents += 1
            res = engine.on_intent(intent, view)
            if not isinstance(res, str):
                denials[res.reason.value] += 1

    def deliver(arrive: int, evs: list[Any], ts: int) -> None:
        nonlocal fundings
        now[0] = arrive
        if engine.next_deadline_ns() is not None:
            engine.fire_due(arrive)
        for ev in evs:
            ev.ts_recv_ns = arrive  # the bot receives it now (the exchange saw it at `ts`)
            for up in market.apply(ev, arrive):
                t = type(up)
                if t is DepthUpdate:
                    sync, sym = up.sync, up.symbol
                    book = sync.book
                    bbo = book.bbo()
                    if bbo is None:
                        continue
                    out = signals.on_depth(sym, book, sync.health.status, up.ts_event_ns, arrive)
                    mid = book.mid_ticks()
                    if mid is not None:
                        if engine.trades:
                            engine.on_price(sym, int(mid))
                            engine.on_touch(sym, bbo[0], bbo[2])  # a resting maker entry follows the touch
                        else:
                            engine.mark(sym, int(mid))  # the minute before a trade, for its price path
                    if out:
                        submit([i.stamped(ts, arrive, clock()) for i in out], sync)
                elif t is Trade:
                    out = signals.on_trade(up, arrive)
                    sync = market.syncs.get(up.symbol)
                    if out and sync is not None and sync.book.bbo() is not None:
                        submit([i.stamped(ts, arrive, clock()) for i in out], sync)
                elif t is FundingInfo:
                    # mark price / funding (markPrice stream): the funding rules see it as live
                    fundings += 1
                    if up.next_funding_ns:
                        next_funding_ns[up.symbol] = up.next_funding_ns
                    if up.funding_rate is not None:
                        funding_rate_bps[up.symbol] = up.funding_rate * 1e4
                    out = signals.on_funding(up, arrive)
                    sync = market.syncs.get(up.symbol)
                    if out and sync is not None and sync.book.bbo() is not None:
                        submit([i.stamped(ts, arrive, clock()) for i in out], sync)

    def busy() -> bool:
        # Anything for the engine's tasks to do: open trades, orders in flight, updates not consumed.
        return bool(engine.trades or engine._pending or gw._queue.qsize() or gw._funding.qsize() or gw.in_flight)

    delayed = gw._delayed  # (deliver ns, ...) heap: answers and user-stream events on their way to the bot

    async def catch_up(ts: int) -> None:
        """The bot's side up to `ts`, in time order: market deliveries and the gateway's answers/events."""
        while True:
            na = pending[0][0] if pending else None
            nr = delayed[0][0] if delayed else None
            if na is not None and na <= ts and (nr is None or na <= nr):
                deliver(*pending.popleft())
                if busy():
                    await settle()
            elif nr is not None and nr <= ts:
                if nr > now[0]:
                    now[0] = nr
                if engine.next_deadline_ns() is not None:
                    engine.fire_due(now[0])
                gw.release(nr)
                await settle()
            else:
                return

    # The bot's tasks wait on the simulated exchange (acks, fills, funding): they can only move on after
    # it reported something, so between deliveries the loop gets control only when a report was emitted.
    reports = [0]

    def count(_r: Any) -> None:
        reports[0] += 1

    ex.listeners.append(count)
    seen_reports = 0

    async def settle(n: int = 3) -> None:
        for _ in range(n):
            await asyncio.sleep(0)

    funding = FundingRecorder(journal)
    await engine.refresh_account()
    runner = asyncio.create_task(engine.run(timers=False))
    funding_task = asyncio.create_task(funding.run(gw))
    await asyncio.sleep(0)
    pending: deque[tuple[int, list[Any], int]] = deque()
    last_arrive = 0
    last_ts = 0
    decode = market.decode
    show = sys.stderr.isatty() if progress is None else progress
    bar = Progress(count_lines(paths) if show else 0, "backtest", enabled=show)  # total: the files' lines
    advance = bar.advance
    try:
        for rec in read_session(paths):
            advance()
            if isinstance(rec, LineError):
                market.feed_record(rec)  # counted against its file
                continue
            ts = rec.ts_recv_ns
            if delayed and delayed[0][0] <= ts:
                await catch_up(ts)  # answers or user-stream events are due: merge them in time order
            else:
                while pending and pending[0][0] <= ts:  # the common case: market deliveries only
                    deliver(*pending.popleft())
                    if busy():
                        await settle()
                        if delayed and delayed[0][0] <= ts:
                            await catch_up(ts)
                            break
            skipped = market.skipped
            evs = decode(rec.raw, ts, rec.path, rec.lineno)
            if evs is None:
                if market.skipped != skipped:
                    ex.on_message(rec.raw, ts)  # a bookTicker: moves the exchange's clock, undecoded
                    # ... and the bot's, while it waits on something (acks, deadlines): the same draw and
                    # arrival as the message had, with nothing to decode
                    last_arrive = max(last_arrive, ts + md_latency.draw())
                    if busy():
                        pending.append((last_arrive, [], ts))
                    if reports[0] != seen_reports:
                        seen_reports = reports[0]
                        await settle()
                continue
            for ev in evs:
                ex.on_event(ev, ts)
            last_ts = max(last_ts, ts)
            if evs:
                last_arrive = max(last_arrive, ts + md_latency.draw())
                pending.append((last_arrive, evs, ts))
            if reports[0] != seen_reports:
                seen_reports = reports[0]
                await settle()
        await catch_up(last_arrive)
        # end of data: flatten what is still open and let the simulator answer
        now[0] = max(now[0], last_arrive)
        engine.flatten_all(CloseReason.MANUAL)
        for step in range(1, 50):
            t = max(last_ts, last_arrive) + step * 100_000_000
            ex.advance_to(t)
            await settle(5)
            await catch_up(t)
            now[0] = max(now[0], t)
            await settle(5)
            if not engine.trades and not engine._pending and not gw.in_flight:
                break
        await engine.drain(5.0)
        acct = await gw.account()
    finally:
        bar.close()
        runner.cancel()
        funding_task.cancel()
        await gw.close()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
        with contextlib.suppress(asyncio.CancelledError):
            await funding_task
        for p in gw.pending_funding():  # settled in the last steps, not yet consumed
            funding.record(p)
    if problems is not None:
        problems.extend(market.finish(paths))
    damage = market.damage(paths)
    trades = _trades_from(journal, settings.risk, run_id)
    aborted = sum(1 for r in journal.rows("trades", "run_id=?", (run_id,)) if r["state"] == "ABORTED")
    journal.close()
    budget = sim.starting_balance_usdt * settings.risk.risk_per_trade_pct / 100.0
    summary = summarize(trades, budget, settings.risk)
    summary.update(intents=intents, denials=dict(sorted(denials.items())), aborted=aborted,
                   end_equity=round(acct.equity, 4), funding=round(funding.total_quote, 6),
                   market_events=market.records, funding_events=fundings, bad_lines=market.malformed,
                   symbols=sorted(market.syncs), run_id=run_id, **funding_label(sim),
                   **({"damage": damage} if damage else {}))
    return {"trades": trades, "summary": summary}


def funding_label(sim: Any) -> dict[str, Any]:
    """Where the run's funding came from (issue 13): an assumed rate is said so, with the rate."""
    out: dict[str, Any] = {"funding_source": sim.funding_source}
    if sim.funding_source == "assumed":
        out["funding_assumed"] = (f"assumed {sim.funding_rate_bps:g} bps every {sim.funding_interval_s} s "
                                  "(sim.funding_rate_bps) where the session has no markPrice stream")
    return out


def _trades_from(journal: Any, risk: Any, run_id: int | None = None) -> list[dict[str, Any]]:
    """The trades of run `run_id` (all when None) that held a position, with their cost fields
    (bot.journal.costs.trade_costs)."""
    from bot.cli.trades import REPORT_FIELDS
    from bot.journal.costs import FeeConfig, trade_costs

    fees = FeeConfig.from_risk(risk)
    full = {r["trade_id"]: r for r in journal.rows("trades")}
    fills: dict[str, list[dict[str, Any]]] = {}
    for f in journal.rows("fills"):
        fills.setdefault(f["trade_id"], []).append(f)
    out = []
    for r in journal.trades():
        if r["entry_ts_ns"] is None or (run_id is not None and full[r["trade_id"]].get("run_id") != run_id):
            continue
        row = full[r["trade_id"]]
        out.append({"trade_id": r["trade_id"], **{k: r[k] for k in REPORT_FIELDS}, "state": r["state"],
                    "risk_budget": row["risk_budget"],
                    **trade_costs(row, fills.get(r["trade_id"], []), fees)})
    return out


def summarize(trades: list[dict[str, Any]], risk_budget: float, risk: Any = None) -> dict[str, Any]:
    from bot.journal.costs import by_setup, expectancy, verdict

    closed = [t for t in trades if t["pnl"] is not None]
    pnl = [t["pnl"] for t in closed]
    wins = sum(1 for p in pnl if p > 0)
    equity = peak = max_dd = 0.0
    for p in pnl:
        equity += p
        peak = max(peak, equity)
        max_dd = max(max_dd, peak - equity)
    overall = expectancy(closed) if closed and "r_net" in closed[0] else None
    return {
        **({"verdict": verdict(overall)} if overall is not None else {}),
        "trades": len(closed), "wins": wins, "win_rate": round(wins / len(closed), 4) if closed else 0.0,
        "pnl": round(sum(pnl), 4), "fees": round(sum(t["fees"] or 0.0 for t in closed), 4),
        "max_drawdown": round(max_dd, 4), "risk_budget_per_trade": round(risk_budget, 4),
        "max_cost_r": None if risk is None else risk.max_cost_r,
        "min_target_net_r": None if risk is None else risk.min_target_net_r,
        "max_open_risk": round(max((t["max_open_risk"] or 0.0 for t in closed), default=0.0), 4),
        "stop_confirm_ms_max": max((t["stop_confirm_ms"] or 0.0 for t in closed), default=0.0),
        "exit_reasons": dict(Counter(t["exit_reason"] for t in closed)),
        **({"expectancy": overall, "by_setup": by_setup(closed)} if overall is not None else {}),
    }


def run(args: argparse.Namespace) -> int:
    import orjson

    from bot.cli.trades import format_table
    from bot.replay.reader import report_unreadable
    from bot.settings import load_settings

    if report_unreadable(args.files):
        return 2
    settings = load_settings(args.config)
    try:
        import uvloop

        runner: Any = uvloop.run  # uvloop.run takes asyncio.run's arguments and a loop_factory
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        runner = asyncio.run
    problems: list[str] = []
    # the bar only on a terminal: nothing in --json or piped output
    res = runner(run_backtest(args.files, settings, args.journal, problems, progress=None))
    for line in res["summary"].get("damage", ()):
        print(f"warning: {line}", file=sys.stderr)  # partial damage: file and line; the rest was used
    for line in problems:
        print(f"error: {line}", file=sys.stderr)
    rc = 1 if problems else 0
    if args.json:
        from bot.journal.costs import expectancy, verdict

        # "verdict" first (as in `scalper report --json`): says so when the net expectancy is negative
        first = res["summary"].get("verdict") or verdict(expectancy([]))
        sys.stdout.write(orjson.dumps({"verdict": first, **res, "problems": problems},
                                      option=orjson.OPT_INDENT_2).decode() + "\n")
        return rc
    if "verdict" in res["summary"]:
        print(res["summary"]["verdict"])  # first line: says so when net expectancy is negative
    print(format_table(res["trades"]))
    print()
    for k, v in res["summary"].items():
        print(f"{k:<24}{v}")
    return rc
