"""An update whose client id is one of ours but whose symbol is not the trade's is not the trade's order.

A fresh journal starts its trade ids at t1 again; on an account with history (here: the loopback exchange
shared by two drills) Bybit's execution catch-up returned an earlier `t1-entry` filled on ETHUSDT, which the
engine applied to the new BTCUSDT t1 (ETH prices and a negative one in its fills, the trade closed MANUAL with
no exit price). The engine now drops such an update, counted in `stats["foreign_updates"]`. ~0.1 s.
"""

from __future__ import annotations

from pathlib import Path

from bot.domain.orders import OrderUpdate
from bot.domain.types import OrderKind, OrderStatus, Side
from bot.execution.actions import TradeState
from tests.execution.harness import LIVE, intent, running
from tests.execution.test_engine_protect import rig_of, until


async def test_an_update_of_the_same_client_id_on_another_symbol_is_not_applied(tmp_path: Path) -> None:
    rig, gw, _ = rig_of(tmp_path)
    async with running(rig) as r:
        eng = r.engine
        assert await eng.submit_intent(intent(), LIVE) == "t1"
        await until("t1 entry sent", lambda: "t1-entry" in gw.orders)
        m = eng.trades["t1"]
        assert m.plan.symbol == "BTCUSDT"
        foreign = OrderUpdate("t1-entry", "9", "ETHUSDT", Side.BUY, OrderKind.LIMIT, OrderStatus.FILLED, 500, 500,
                              2989.14, last_fill_lots=500, last_fill_price=2989.14, trade_id="e1")
        eng.on_update(foreign)
        assert eng.stats["foreign_updates"] == 1
        assert m.pos_lots == 0 and m.state is TradeState.ENTERING
        # its own fill still applies
        gw.fill("t1-entry", 500, 50_000.0)
        await until("t1 protected", lambda: eng.trades["t1"].state is TradeState.PROTECTED)
        assert m.pos_lots == 500 and m.avg_entry == 50_000.0 and eng.stats["errors"] == 0
