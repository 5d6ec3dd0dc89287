"""Hops of one depth message to its order: `python -m bench.latency_hops [FILE] [--json]`.

What it counts, for one triggering depth message of a recorded session, from the app's market-event
dispatch to the moment the engine hands the entry to the gateway (`gateway.submit` called: what follows,
the gateway's request building and signing, is the same code whichever way the pipeline is driven):
- Python function calls (sys.setprofile "call" events) and C calls ("c_call"), the distinct functions and
  the distinct source files they belong to (the project's own files apart);
- loop callbacks run in between (asyncio's `Handle._run`, on the pure-Python event loop): each is a task
  switch the message waits for.

The path is the app's (`App._dispatch` -> `Pipeline`; before issue 12: `App._spawn`, a task per event
running the pipeline's coroutine), fed by the market session from raw bytes (the in-process sim and replay
path; the venue feeds run the same sync + book before calling back). The gateway is a null one whose
`submit` records its call. It runs against the code it is imported with, sync or async pipeline, so the
same file gives the before/after figures of docs/architecture.md.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import os
import sys
import tempfile
import time
from typing import Any

__all__ = ["count_hops"]

_BENCH = os.path.dirname(os.path.abspath(__file__))  # bench/ (not counted: the harness)
_ROOT = os.path.join(os.path.dirname(_BENCH), "bot")  # the bot's own files


async def _count(path: str, journal_path: str) -> dict[str, Any]:
    from bench.latency import _NullGateway
    from bot.domain.types import EntryIntent
    from bot.execution.engine import ExecutionEngine
    from bot.journal import Journal
    from bot.market.health import BookStatus
    from bot.pipeline import Pipeline
    from bot.replay.reader import LineError, read_session
    from bot.risk import RiskManager
    from bot.settings import load_settings
    from bot.signals.engine import SignalEngine
    from bot.venues.binance_usdm.instruments import KNOWN
    from bot.venues.ports import GatewayCapabilities

    s = load_settings(overrides={"risk": {"max_orders_per_s": 10**6, "max_orders_per_min": 10**6,
                                          "max_open_positions": 50, "max_notional_per_symbol_usd": 1e12,
                                          "max_total_notional_usd": 1e12, "max_spread_bps": 1000.0,
                                          "funding_window_s": 0.0,
                                          # the bench's tight stops cannot pay a round trip: costs are not
                                          # what it counts (as in bench latency)
                                          "max_cost_r": 1.0, "min_target_net_r": -1.0}})
    instruments = dict(KNOWN)
    rm = RiskManager(s.risk, 10_000.0, 0)
    journal = Journal(journal_path, s.journal.synchronous)
    calls: list[int] = []

    class _Gw(_NullGateway):
        capabilities = GatewayCapabilities(eager_submit=True)

        async def submit(self, req: Any) -> Any:
            calls.append(time.perf_counter_ns())
            return await super().submit(req)

    gw = _Gw(instruments)
    engine = ExecutionEngine(gw, rm, journal, s.execution, s.risk, clock=time.time_ns)
    await engine.refresh_account()
    signals = SignalEngine(s.signals, instruments)
    pipeline = Pipeline(instruments, signals, engine, None, depth_bps=s.market.depth_bps, clock=time.time_ns,
                        max_book_age_ms=1e12)
    orig = signals.on_depth
    armed = [False]

    def on_depth(symbol: str, book: Any, status: Any, ts_event_ns: int, now_ns: int) -> Any:
        out = orig(symbol, book, status, ts_event_ns, now_ns)
        if not armed[0] or status is not BookStatus.LIVE:
            return out
        armed[0] = False
        bid = book.best_bid_ticks
        return [EntryIntent(symbol, "long", "bench", now_ns, bid - 20, bid - 40, (), 60.0)]

    signals.on_depth = on_depth  # type: ignore[method-assign,assignment]
    tasks: set[asyncio.Task[Any]] = set()
    on_raw: Any = pipeline.on_raw

    def dispatch(raw: bytes, recv_ns: int) -> None:
        """What the app does with a market message: a call (now) or a task running the coroutine (before)."""
        res = on_raw(raw, recv_ns)  # None now; a coroutine with the code of before issue 12
        if inspect.iscoroutine(res):
            t = asyncio.get_running_loop().create_task(res)
            tasks.add(t)
            t.add_done_callback(tasks.discard)

    prof: dict[str, Any] = {"calls": 0, "c_calls": 0, "funcs": set(), "files": set(), "loop_callbacks": 0}

    def profiler(frame: Any, event: str, arg: Any) -> None:
        if event == "call":
            code = frame.f_code
            if code.co_name == "submit" and code.co_filename == __file__:
                sys.setprofile(None)  # the order reached the gateway
                return
            prof["calls"] += 1
            prof["funcs"].add((code.co_filename, code.co_name))
            prof["files"].add(code.co_filename)
            if code.co_name == "_run" and code.co_filename.endswith(os.path.join("asyncio", "events.py")):
                prof["loop_callbacks"] += 1
        elif event == "c_call":
            prof["c_calls"] += 1

    measured = 0
    records = iter(read_session([path]))
    for phase in ("warm-up", "measured"):  # the warm-up entry sets the symbol's leverage (a venue round trip)
        done = len(calls)
        armed[0] = True
        for rec in records:
            if isinstance(rec, LineError):
                continue
            if phase == "measured" and b"depth" in rec.raw[:40]:
                prof.update(calls=0, c_calls=0, funcs=set(), files=set(), loop_callbacks=0)
                sys.setprofile(profiler)
            dispatch(rec.raw, rec.ts_recv_ns)
            for _ in range(20):  # before: the event's own task runs at the loop's next turns
                if not tasks:
                    break
                await asyncio.sleep(0)
            sys.setprofile(None)
            if not armed[0]:  # this message triggered the entry
                measured = len(calls) - done
                break
        await engine.drain(5.0)
        engine.trades.clear()  # the IOC never answers here: the next trigger must not see a position
        rm.gate.open_notional.clear()
    await engine.drain(5.0)
    journal.close()
    # the bench's own wrappers (the trigger, the null gateway) are counted in the totals, not listed
    ours = sorted({f[len(_ROOT) - 3:] for f in prof["files"] if f.startswith(_ROOT) and not f.startswith(_BENCH)})
    return {"entries_reaching_gateway": measured, "python_calls": prof["calls"], "c_calls": prof["c_calls"],
            "distinct_functions": len(prof["funcs"]), "files": len(prof["files"]), "project_files": len(ours),
            "project_file_list": ours, "loop_callbacks_between": prof["loop_callbacks"]}


def count_hops(path: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        return asyncio.run(_count(path, os.path.join(tmp, "hops.sqlite")))


def main(argv: list[str] | None = None) -> int:
    import orjson

    from bench.latency import _DEFAULT

    p = argparse.ArgumentParser(prog="python -m bench.latency_hops", description=__doc__.split("\n")[0])
    p.add_argument("file", nargs="?", default=_DEFAULT)
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    res = count_hops(os.path.abspath(a.file))
    if a.json:
        print(orjson.dumps(res, option=orjson.OPT_INDENT_2).decode())
    else:
        for k, v in res.items():
            print(f"{k}: {v}")
    return 0 if res["entries_reaching_gateway"] else 1


if __name__ == "__main__":
    sys.exit(main())
