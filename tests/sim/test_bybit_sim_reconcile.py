"""Reconciliation against the loopback exchange's Bybit v5 protocol (issue 16 item 1: "Reconciliation cancels
hand-placed orders by venue id"): an order placed by hand has no orderLinkId, so the bot's cancel by client id
cannot name it; the real BybitGateway cancels it by its orderId. In process (the sim server and the gateway on
one loop), ~2 s.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import SecretStr

from bot.domain.types import CloseReason
from bot.execution.reconcile import CancelOrder, PlaceStop, ReconcileConfig, decide
from bot.execution.reconcile_io import apply, fetch_exchange_state
from bot.settings.core import VenueSection
from bot.venues.bybit.gateway import BybitGateway
from bot.venues.errors import OrderRejected
from bot.venues.ports import OrderUpdate
from tests.sim.server_helpers import running_server
from tests.sim.test_bybit_sim_gateway import _urls


class Sink:
    def __init__(self) -> None:
        self.alerts: list[str] = []

    def on_update(self, u: OrderUpdate, quiet: bool = False) -> None: ...

    async def place_stop(self, a: PlaceStop) -> bool:
        return False

    def before_cancel(self, a: CancelOrder) -> None: ...

    def on_trade_closed(self, trade_id: str, reason: CloseReason, detail: str) -> None: ...

    def alert(self, kind: str, message: str, symbol: str = "") -> None:
        self.alerts.append(f"{kind}: {message}")


async def test_an_order_placed_by_hand_without_order_link_id_is_cancelled_by_its_order_id() -> None:
    async with running_server() as (server, base):
        v = VenueSection(name="bybit", environment="exchange-sim", symbols=("BTCUSDT",),
                         api_key=SecretStr("sim-key"), api_secret=SecretStr("sim-secret"), **_urls(base))
        gw = BybitGateway(v)
        await asyncio.wait_for(gw.start(autorun=False), 10)
        try:
            await asyncio.wait_for(server.next_depth("BTCUSDT", 5.0), 10)
            m = server.ex.markets["BTCUSDT"]
            bid = m.inst.ticks_to_price(m.book.bbo()[0])
            # by hand: a resting Buy far under the market, sent without an orderLinkId
            got: dict[str, Any] = server.faults.apply({"kind": "outside_order", "symbol": "BTCUSDT", "side": "BUY",
                                                       "type": "LIMIT", "qty": 0.01, "price": round(bid * 0.9, 1)})
            assert got["status"] == "NEW"
            (hand,) = await gw.open_orders("BTCUSDT")
            assert hand.client_id == "" and hand.venue_order_id  # Bybit lists it with orderLinkId ""
            # what reconciliation sent before: a cancel by client id "" names no order (10001)
            with pytest.raises(OrderRejected):
                await gw.cancel("BTCUSDT", "")
            cfg = ReconcileConfig(instruments={"BTCUSDT": gw.instrument("BTCUSDT")})
            ex = await fetch_exchange_state(gw, ("BTCUSDT",), [])
            acts = decide(ex, [], cfg, 0)
            assert acts == [CancelOrder("BTCUSDT", "", False, "entry order of no open trade", hand.venue_order_id)]
            sink = Sink()
            await apply(acts, gw, sink)  # type: ignore[arg-type]
            assert server.ex.open_orders("BTCUSDT") == [] and sink.alerts == []
            assert await gw.open_orders("BTCUSDT") == []
            # a second pass finds nothing to do, and a cancel of the gone order is not an error
            assert decide(await fetch_exchange_state(gw, ("BTCUSDT",), []), [], cfg, 0) == []
            await gw.cancel_venue_order("BTCUSDT", hand.venue_order_id)
        finally:
            await asyncio.wait_for(gw.close(), 10)
