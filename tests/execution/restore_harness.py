"""Restart harness: a fake venue that survives the bot (open orders, look-ups by client id, positions,
fills listed like userTrades) and `Life`, one lifetime of the bot (engine + journal + Recovery) over it.
A crash is `Life.crash()`: the engine task is cancelled and nothing else runs; the next `Life` opens the same
journal file, adopts and reconciles."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from pathlib import Path
from typing import Any

from bot.domain.types import OrderStatus
from bot.execution.engine import ExecutionEngine
from bot.execution.reconcile import ReconcileConfig
from bot.execution.recovery import Recovery
from bot.journal import Journal
from bot.risk import RiskManager
from bot.settings.execution import ExecutionSection
from bot.settings.risk import RiskSection
from bot.venues.binance_usdm.instruments import KNOWN
from bot.venues.errors import VenueUnavailable
from bot.venues.ports import GatewayCapabilities, OrderUpdate
from tests.execution.fakes import FakeGateway
from tests.execution.harness import NO_FEES, Clock


class Venue(FakeGateway):
    """FakeGateway plus what reconciliation asks: open orders, look-ups, the account's fills."""

    capabilities = GatewayCapabilities(account_trades=True)

    def __init__(self, clock: Clock, equity: float = 5_000.0) -> None:
        super().__init__(dict(KNOWN), clock, equity)
        self.trades: list[dict[str, Any]] = []
        self.down = False  # every REST call fails (VenueUnavailable)
        self._tids = itertools.count(1)

    def _check(self) -> None:
        if self.down:
            raise VenueUnavailable("venue unreachable (test)")

    def _update(self, cid: str) -> OrderUpdate:
        req = self.orders[cid]
        return OrderUpdate(cid, "v" + cid, req.symbol, req.side, req.kind, self.status[cid], req.qty_lots,
                           self.filled[cid], self.avg[cid], reduce_only=req.reduce_only)

    async def open_orders(self, symbol: str | None = None) -> list[OrderUpdate]:
        self._check()
        return [self._update(c) for c, r in self.orders.items()
                if (symbol is None or r.symbol == symbol) and not self.status[c].is_final]

    async def fetch_order(self, symbol: str, client_id: str, conditional: bool = False) -> OrderUpdate | None:
        self._check()
        return self._update(client_id) if client_id in self.orders else None

    async def account(self) -> Any:
        self._check()
        return await super().account()

    def fill(self, cid: str, lots: int, price: float, fee: float = 0.0, as_child: bool = False) -> None:
        super().fill(cid, lots, price, fee, as_child)
        req = self.orders[cid]
        self.trades.append({"id": next(self._tids), "orderId": "v" + cid, "side": req.side.value, "price": str(price),
                            "qty": str(KNOWN[req.symbol].lots_to_qty(lots)), "commission": str(fee),
                            "maker": False, "time": self.clock() // 1_000_000})

    def by_hand(self, symbol: str, lots: int, price: float, fee: float = 0.0) -> None:
        """An order that is not ours fills `lots` (signed) at `price`: the position moves, nothing streams."""
        self.position[symbol] = self.position.get(symbol, 0) + lots
        self.last_price[symbol] = price
        self.trades.append({"id": next(self._tids), "orderId": "hand", "side": "BUY" if lots > 0 else "SELL",
                            "price": str(price), "qty": str(KNOWN[symbol].lots_to_qty(abs(lots))),
                            "commission": str(fee), "maker": False, "time": self.clock() // 1_000_000})

    def cancel_quietly(self, cid: str) -> None:
        self.status[cid] = OrderStatus.CANCELED  # someone else cancels it while the bot is away

    async def user_trades(self, symbol: str, order_id: str = "", start_ms: int = 0) -> list[dict[str, Any]]:
        self._check()
        return [t for t in self.trades if (not order_id or t["orderId"] == order_id) and t["time"] >= start_ms]

    def missed(self) -> int:
        """The bot was not listening: every queued update is lost. Returns how many."""
        n = 0
        while not self._q.empty():
            self._q.get_nowait()
            n += 1
        return n


class Life:
    """One lifetime of the bot: engine, risk, journal (file in `tmp`) and Recovery over the shared `venue`."""

    def __init__(self, tmp: Path, venue: Venue, *, risk: dict[str, Any] | None = None,
                 execution: dict[str, Any] | None = None, time_limits_s: dict[str, float] | None = None) -> None:
        self.venue, self.clock = venue, venue.clock
        self.risk_cfg = RiskSection(**{**NO_FEES, **(risk or {})})
        self.cfg = ExecutionSection(**{"entry_offset_ticks": 0, **(execution or {})})
        self.journal = Journal(str(tmp / "journal.sqlite"))
        self.rm = RiskManager(self.risk_cfg, venue.start_equity, self.clock())
        self.engine = ExecutionEngine(venue, self.rm, self.journal, self.cfg, self.risk_cfg, clock=self.clock)
        self.alerts: list[tuple[str, str, str]] = []
        self.recovery = Recovery(self.engine, ReconcileConfig(dict(KNOWN)), symbols=("BTCUSDT",),
                                 time_limits_s=time_limits_s, alert=lambda k, m, s: self.alerts.append((k, m, s)))
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> list[str]:
        await self.engine.refresh_account()
        adopted = await self.recovery.adopt()
        self.task = asyncio.create_task(self.engine.run(timers=False))
        await asyncio.sleep(0)
        return adopted

    async def settle(self) -> None:
        for _ in range(300):
            await asyncio.sleep(0)
            if self.venue._q.empty() and all(t.done() for t in self.engine._pending):
                await asyncio.sleep(0)
                if self.venue._q.empty():
                    return
        raise AssertionError("engine did not settle")

    async def crash(self) -> None:
        """SIGKILL: the engine stops mid-flight; no shutdown code, no flush (the journal commits as it goes)."""
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self.task, 5)
        self.journal.close()

    def rows(self, table: str, **where: Any) -> list[dict[str, Any]]:
        return [r for r in self.journal.rows(table) if all(r.get(k) == v for k, v in where.items())]

    def trade(self, tid: str = "t1") -> dict[str, Any]:
        (row,) = self.rows("trades", trade_id=tid)
        return row
