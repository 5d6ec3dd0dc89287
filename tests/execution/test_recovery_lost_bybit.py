"""A lost entry on Bybit (bot.execution.recovery_lost through the real BybitGateway against the loopback
exchange's Bybit v5 protocol, in process): "t1-entry" with its attached stopLoss reached the venue and filled,
and the process died before its record. The next start finds it by orderLinkId (/v5/order/realtime, then
/history), its fills in the execution list, and the stop it carried (the order's `stopLoss`): the trade is
journaled with that stop, not the configured distance, and its stop leg t1-sl owns the position's stop."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import orjson
from pydantic import SecretStr

from bot.domain.types import OrderKind, Side
from bot.execution.engine import ExecutionEngine
from bot.execution.reconcile import ReconcileConfig
from bot.execution.recovery import Recovery
from bot.journal import Journal
from bot.risk import RiskManager
from bot.settings.core import VenueSection
from bot.settings.execution import ExecutionSection
from bot.settings.risk import RiskSection
from bot.venues.bybit.gateway import BybitGateway
from bot.venues.ports import OrderRequest
from tests.sim.server_helpers import running_server
from tests.support import until

SYM = "BTCUSDT"


def _gateway(base: str) -> BybitGateway:
    ws = base.replace("http", "ws")
    return BybitGateway(VenueSection(name="bybit", environment="exchange-sim", symbols=(SYM,), rest_url=base,
                                     ws_public_url=ws + "/v5/public/linear", ws_private_url=ws + "/v5/private",
                                     api_key=SecretStr("sim-key"), api_secret=SecretStr("sim-secret")))


def _engine(gw: BybitGateway, journal: Journal, equity: float) -> ExecutionEngine:
    risk_cfg = RiskSection()
    return ExecutionEngine(gw, RiskManager(risk_cfg, equity, time.time_ns()), journal, ExecutionSection(), risk_cfg)


async def test_a_lost_bybit_entry_is_recovered_with_the_stop_it_carried(tmp_path: Path) -> None:
    async with running_server() as (server, base):
        journal = Journal(str(tmp_path / "j.sqlite"))
        g1 = _gateway(base)
        await asyncio.wait_for(g1.start(), 10)
        try:
            await asyncio.wait_for(server.next_depth(SYM, 5.0), 10)
            _engine(g1, journal, 10_000.0)  # the crashed run: it reserved ids 1..20, recorded nothing
            inst = g1.instrument(SYM)
            bbo = server.ex.markets[SYM].book.bbo()
            assert bbo is not None
            stop_ticks = bbo[0] - 500  # 50 $ under the bid
            lots = inst.qty_to_lots(0.01)
            await g1.submit(OrderRequest("t1-entry", SYM, Side.BUY, OrderKind.MARKET, lots,
                                         attached_stop_ticks=stop_ticks))
            await until(lambda: server.ex.position_lots(SYM) == lots, 10)
        finally:
            await asyncio.wait_for(g1.close(), 10)
        journal.close()

        journal = Journal(str(tmp_path / "j.sqlite"))
        g2 = _gateway(base)
        await asyncio.wait_for(g2.start(), 10)
        try:
            acct = await g2.account()
            eng = _engine(g2, journal, acct.equity)
            eng.set_account(acct)
            alerts: list[tuple[str, str, str]] = []
            rec = Recovery(eng, ReconcileConfig(dict(g2.instruments)), symbols=(SYM,),
                           alert=lambda k, m, s: alerts.append((k, m, s)))
            await rec.adopt()
            assert rec.candidates() == ["t1"]
            await rec.reconcile()
            await eng.drain()
            (t,) = journal.rows("trades", "trade_id='t1'")
            assert (t["setup"], t["side"], t["planned_stop_price"]) == ("recovered", "long",
                                                                          inst.ticks_to_price(stop_ticks))
            assert orjson.loads(t["features"]) == {"recovered_from": "t1-entry", "stop": "venue"}
            fills = journal.rows("fills", "trade_id='t1'")
            assert sum(inst.qty_to_lots(f["qty"]) for f in fills) == lots and all(f["venue_trade_id"] for f in fills)
            assert [r["client_id"] for r in journal.rows("legs", "trade_id='t1' AND role='stop'")] == ["t1-sl"]
            # the position's one stop, at the price the entry carried (no second stop, no reconcile stop)
            stops = [(a.trigger_ticks, a.close_position) for a in server.ex.open_algo_orders(SYM)]
            assert stops == [(stop_ticks, True)], stops
            assert eng.trades["t1"].state.value == "PROTECTED"
            assert any(k == "emergency" and "t1-entry" in m and "its own stop at the venue" in m for k, m, _ in alerts)
            assert eng.risk.gate.halted_symbols == {}
        finally:
            await asyncio.wait_for(g2.close(), 10)
            journal.close()
