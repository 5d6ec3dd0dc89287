"""Test harness: an ExecutionEngine on the fake gateway, an explicit clock and a real journal file."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from bot.domain.types import EntryIntent, TakeProfitTier
from bot.execution.engine import ExecutionEngine
from bot.journal import Journal
from bot.risk import MarketView, RiskManager
from bot.settings.execution import ExecutionSection
from bot.settings.risk import RiskSection
from bot.venues.binance_usdm.instruments import KNOWN
from tests.execution.fakes import FakeGateway

S = 1_000_000_000
MS = 1_000_000
T0 = 1_721_347_200 * S + 3_600 * S  # 2024-07-19 01:00 UTC
LIVE = MarketView(book_live=True, spread_bps=0.5)
NO_FEES = {"maker_fee_bps": 0.0, "taker_fee_bps": 0.0, "slippage_bps": 0.0}


class Clock:
    def __init__(self, t: int = T0) -> None:
        self.t = t

    def __call__(self) -> int:
        return self.t

    def advance_ms(self, ms: float) -> int:
        self.t += int(ms * MS)
        return self.t


def intent(side: str = "long", price: int = 500_000, stop: int = 499_500, targets: tuple[tuple[int, float], ...] = (
        (501_000, 0.5), (502_000, 0.5)), time_limit_s: float = 0.0, setup: str = "sweep",
           ts: int = T0) -> EntryIntent:
    return EntryIntent("BTCUSDT", side, setup, ts, price, stop, tuple(TakeProfitTier(p, f) for p, f in targets),
                       time_limit_s, {"imbalance": 0.7})


class Rig:
    def __init__(self, tmp: Path, risk: dict[str, Any] | None = None, execution: dict[str, Any] | None = None,
                 equity: float = 5_000.0) -> None:
        self.clock = Clock()
        self.risk_cfg = RiskSection(**{**NO_FEES, **(risk or {})})
        self.cfg = ExecutionSection(**{"entry_offset_ticks": 0, **(execution or {})})
        self.gw = FakeGateway(dict(KNOWN), self.clock, equity)
        self.journal = Journal(str(tmp / "journal.sqlite"))
        self.rm = RiskManager(self.risk_cfg, equity, self.clock())
        self.engine = ExecutionEngine(self.gw, self.rm, self.journal, self.cfg, self.risk_cfg, clock=self.clock)

    async def settle(self) -> None:
        """Let the engine consume every queued update and finish every order task (bounded)."""
        for _ in range(200):
            await asyncio.sleep(0)
            live = [t for t in self.engine._pending if not t.done()]
            if self.gw._q.empty() and all(self._held(t) for t in live):
                await asyncio.sleep(0)
                if self.gw._q.empty():
                    return
        raise AssertionError("engine did not settle")

    def _held(self, task: asyncio.Task[None]) -> bool:
        # a submit the fake never answers (hold) stays pending by design
        return bool(self.gw.hold)

    def rows(self, table: str, **where: Any) -> list[dict[str, Any]]:
        rows = self.journal.rows(table)
        return [r for r in rows if all(r.get(k) == v for k, v in where.items())]

    def trade_states(self, tid: str = "t1") -> list[str]:
        return [r["to_state"] for r in self.rows("state_changes", entity="trade", entity_id=tid)]

    def leg(self, cid: str) -> dict[str, Any]:
        (row,) = self.rows("legs", client_id=cid)
        return row


@contextlib.asynccontextmanager
async def running(rig: Rig) -> AsyncIterator[Rig]:
    await rig.engine.refresh_account()
    task = asyncio.create_task(rig.engine.run(timers=False))
    await asyncio.sleep(0)
    try:
        yield rig
    finally:
        task.cancel()
        await rig.gw.close()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(task, 5)
        rig.journal.close()
