"""The last check before exiting with positions kept (a mixin of bot.execution.recovery.Recovery).

`protect_for_exit()`: on a shutdown that keeps positions, every position must have a stop the exchange
shows as open; a trade without one is flattened, a position of no trade is closed at market. When the
exchange cannot be asked, the machines' own view decides (confirmed and live stop = protected).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from bot.domain.orders import OrderRequest, OrderUpdate
from bot.domain.types import CloseReason, OrderKind, OrderStatus, Side
from bot.execution.trade import TradeMachine
from bot.venues.errors import VenueError

if TYPE_CHECKING:
    from bot.execution.engine import ExecutionEngine
    from bot.execution.reconcile import ReconcileConfig

__all__ = ["ExitCheck"]

_STOPS = (OrderKind.STOP_MARKET, OrderKind.TRAILING_STOP_MARKET)


class ExitCheck:
    engine: ExecutionEngine
    gw: Any
    cfg: ReconcileConfig
    symbols: Sequence[str]
    log: Any
    _lock: asyncio.Lock

    def alert(self, kind: str, message: str, symbol: str = "") -> None:
        raise NotImplementedError

    async def protect_for_exit(self) -> list[str]:
        """Positions kept over a shutdown must have a stop the exchange shows as open. A trade without one
        is flattened (its id is returned: wait for it); a position of no trade is closed at market. When the
        exchange cannot be asked, the machines' own view decides (confirmed and live stop = protected)."""
        try:  # not while a reconciliation pass acts (bounded: a hung pass must not hold the exit)
            await asyncio.wait_for(self._lock.acquire(), 5.0)
            locked = True
        except TimeoutError:
            locked = False
        try:
            return await self._protect_for_exit(self.engine.clock())
        finally:
            if locked:
                self._lock.release()

    async def _protect_for_exit(self, now: int) -> list[str]:
        eng = self.engine
        to_flatten: list[TradeMachine] = []
        try:
            acc = await self.gw.account()
            orders: list[OrderUpdate] = []
            for s in self.symbols:
                orders.extend(await self.gw.open_orders(s))
        except VenueError as e:
            self.log.error("exit_check_failed", error=str(e))
            to_flatten = [m for m in eng.trades.values() if m.pos_lots > 0 and not (
                m.stop_leg is not None and m.stop_leg.confirmed and not m.stop_leg.done)]
        else:
            for p in acc.positions:
                if not p.qty_lots or p.symbol not in self.symbols:
                    continue
                side = "SELL" if p.qty_lots > 0 else "BUY"
                if any(o.symbol == p.symbol and o.kind in _STOPS and o.side.value == side
                       and o.status in (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED) for o in orders):
                    continue
                owner = [m for m in eng.trades.values() if m.plan.symbol == p.symbol and m.pos_lots > 0]
                if owner:
                    to_flatten.extend(owner)
                    continue
                inst = self.cfg.instruments[p.symbol]
                self.alert("emergency", f"position {inst.lots_to_qty(p.qty_lots):g} without a stop at shutdown; "
                                        "closing at market", p.symbol)
                req = OrderRequest(f"exit-flat-{now // 1_000_000 % 36**6:x}", p.symbol, Side(side), OrderKind.MARKET,
                                   abs(p.qty_lots), reduce_only=True)
                try:
                    await self.gw.submit(req)
                except VenueError as e:
                    self.alert("emergency", f"closing {inst.lots_to_qty(abs(p.qty_lots))} failed: {e}", p.symbol)
        for m in to_flatten:
            self.alert("emergency", f"{m.tid}: no confirmed stop at the exchange at shutdown; flattening",
                       m.plan.symbol)
            eng.act(m, m.flatten(CloseReason.RISK_HALT, now, "shutdown: stop not confirmed at the exchange"))
        return [m.tid for m in to_flatten]

