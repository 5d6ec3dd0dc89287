"""Shared by the real-process drill tests (tests/test_restart_drills.py and test_bybit_restart_drills.py,
test_drills_protect.py, test_drills_reconcile.py): the loopback exchange asked over signed Binance REST and
its /_sim endpoints, a watcher task's lifetime, the shorter indicator warm-up, and the checks of a trade
adopted and completed after a restart (the same on Binance and Bybit).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any, Protocol, TypeVar

import aiohttp
import pytest

from bot.drill.procs import Bot, Sim, rows
from tests.sim.server_helpers import call

__all__ = ["QUICK_WARMUP", "assert_closed_from_its_fills", "assert_completed_after_adoption", "binance_rest",
           "new_protected_trade", "sim_fault", "sim_state", "watching"]

# Shorter indicator warm-up: momentum on 1 s bars needs the slow EMA (13 bars) and 2 x swing_bars (8)
# before its first intent, ~13 s of the ~18 s to a drill's first trade; with these ~8 s. The drills are about
# restarts and faults, not the setup (bot.drill.procs.FAST_SIGNALS keeps the demo pace otherwise).
QUICK_WARMUP = dict(SCALPER__SIGNALS__EMA_FAST_BARS="3", SCALPER__SIGNALS__EMA_SLOW_BARS="6",
                    SCALPER__SIGNALS__MOMENTUM__SWING_BARS="2")


async def binance_rest(sim: Sim, method: str, path: str, **params: Any) -> Any:
    """A signed Binance request to the loopback exchange; its body (status 200 asserted)."""
    async with aiohttp.ClientSession() as http:
        status, body, _ = await call(http, sim.base, method, path, params)
    assert status == 200, (method, path, params, body)
    return body


async def sim_fault(sim: Sim, **body: Any) -> dict[str, Any]:
    """POST /_sim/fault (status 200 asserted); the exchange's answer."""
    async with aiohttp.ClientSession() as http, http.post(f"{sim.base}/_sim/fault", json=body) as r:
        assert r.status == 200, await r.text()
        return dict(await r.json())


async def sim_state(sim: Sim, history: bool = False) -> dict[str, Any]:
    """GET /_sim/state: the exchange's own picture (positions, open orders, faults; `history` adds orders
    and fills)."""
    async with aiohttp.ClientSession() as http, http.get(
            f"{sim.base}/_sim/state" + ("?history=1" if history else "")) as r:
        assert r.status == 200
        return dict(await r.json())


class _Runs(Protocol):
    def run(self) -> Awaitable[None]: ...


W = TypeVar("W", bound=_Runs)


@contextlib.asynccontextmanager
async def watching(watcher: W) -> AsyncIterator[W]:
    """`watcher.run()` as a task for the block's duration (cancelled at its end)."""
    task = asyncio.create_task(watcher.run())
    try:
        yield watcher
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def new_protected_trade(state: Path, seen: set[str] | frozenset[str] = frozenset()) -> dict[str, Any] | None:
    """The journal's first PROTECTED trade not in `seen`."""
    got = rows(state, "SELECT * FROM trades WHERE state='PROTECTED'")
    return next((t for t in got if t["trade_id"] not in seen), None)


def assert_closed_from_its_fills(state: Path, t: dict[str, Any], closed: dict[str, Any]) -> list[dict[str, Any]]:
    """The closed trade's exit price, fees and PnL are its journaled fills' (entries and exits of equal
    quantity); returns the fills."""
    fills = rows(state, "SELECT * FROM fills WHERE trade_id=?", (t["trade_id"],))
    exits = [f for f in fills if f["role"] in ("exit", "stop", "tp")]
    entries = [f for f in fills if f["role"] == "entry"]
    assert exits and entries
    assert sum(f["qty"] for f in exits) == pytest.approx(sum(f["qty"] for f in entries))
    exit_px = sum(f["qty"] * f["price"] for f in exits) / sum(f["qty"] for f in exits)
    assert closed["exit_price"] == pytest.approx(exit_px)
    assert closed["fees"] == pytest.approx(sum(f["fee"] for f in fills)) and closed["fees"] > 0
    sign = 1 if t["side"] == "long" else -1
    avg_entry = sum(f["qty"] * f["price"] for f in entries) / sum(f["qty"] for f in entries)
    gross = sum(sign * (f["price"] - avg_entry) * f["qty"] for f in exits)
    assert closed["pnl"] == pytest.approx(gross - closed["fees"], abs=1e-6)
    return fills


def assert_completed_after_adoption(state: Path, t: dict[str, Any], closed: dict[str, Any],
                                    bot: Bot) -> list[dict[str, Any]]:
    """Restart drill A's checks on the restarted `bot`: the trade `t` was adopted and `closed` by the bot's
    own exit, entries stayed halted until the exchange and the journal agreed, and the trade's numbers are
    its fills'. Returns the fills."""
    tid = t["trade_id"]
    assert closed["exit_reason"] in ("TIME_LIMIT", "STOP_LOSS", "TAKE_PROFIT"), closed
    assert any(e.get("event") == "trade_adopted" and e.get("trade_id") == tid for e in bot.events())
    gate = [(r["to_state"], r["reason"]) for r in rows(
        state, "SELECT * FROM state_changes WHERE entity='gate' ORDER BY id")]
    assert gate[-2:] == [("HALTED", "reconciling"), ("ACTIVE", "reconciled")], gate
    return assert_closed_from_its_fills(state, t, closed)
