"""Pipeline.keep_warm / warm_next (bot/execution/warm.py is tested with the engine in tests/execution/test_warm.py):
which symbol each warm-up takes, and how often the task runs (a timer, or a spin below 1 ms)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from bot.market.health import BookStatus
from bot.pipeline import Pipeline


def _sync(symbol: str, status: BookStatus = BookStatus.LIVE) -> Any:
    health = SimpleNamespace(status=status, age_ms=lambda now_ns: 1.0)
    return SimpleNamespace(symbol=symbol, health=health, book=SimpleNamespace(best_bid_ticks=99, best_ask_ticks=101))


def _pipeline(held: set[str]) -> tuple[Pipeline, list[str]]:
    seen: list[str] = []
    gate = SimpleNamespace(open_notional=dict.fromkeys(held))
    engine = SimpleNamespace(warm_ok=True, risk=SimpleNamespace(gate=gate),
                             warm_entry=lambda sym, view, bid, ask, now: seen.append(sym) or "signed")
    p = Pipeline({}, SimpleNamespace(), engine)  # type: ignore[arg-type]
    p.syncs.update({s: _sync(s) for s in ("AUSDT", "BUSDT", "CUSDT")})
    p.syncs["DUSDT"] = _sync("DUSDT", BookStatus.SYNCING)
    return p, seen


def test_warm_ups_go_round_the_symbols_that_could_take_an_entry() -> None:
    p, seen = _pipeline(held={"BUSDT"})
    got = [p.warm_next(0) for _ in range(4)]
    assert got == ["signed"] * 4
    assert seen == ["AUSDT", "CUSDT", "AUSDT", "CUSDT"]  # B has an open trade, D's book is not LIVE
    p.engine.risk.gate.open_notional.update(dict.fromkeys(("AUSDT", "CUSDT")))  # type: ignore[union-attr]
    assert p.warm_next(0) == "idle" and len(seen) == 4
    p.engine.warm_ok = False  # type: ignore[union-attr]
    p.engine.risk.gate.open_notional.clear()  # type: ignore[union-attr]
    assert p.warm_next(0) == "idle" and len(seen) == 4  # warming turned off (a warm-up raised)


async def test_keep_warm_runs_on_its_timer_and_spins_below_a_millisecond() -> None:
    loop = asyncio.get_running_loop()
    for interval_s in (0.02, 0.0001):
        p, seen = _pipeline(held=set())
        t0 = loop.time()
        task = asyncio.create_task(p.keep_warm(interval_s))
        await asyncio.sleep(0.1)
        elapsed_s = loop.time() - t0
        p.warming = False  # the bench's A/B switch: the task stays, no warm-up runs
        n = len(seen)
        await asyncio.sleep(0.05)
        task.cancel()
        assert len(seen) == n
        if interval_s >= 0.001:  # a timer: at most one per interval
            assert 1 <= n <= elapsed_s / interval_s + 1, (n, elapsed_s)
        else:  # a spin: more than any millisecond timer could give, the loop never sleeps
            assert n > elapsed_s * 1000, (n, elapsed_s)
