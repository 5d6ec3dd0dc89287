"""BybitGateway declares `eager_submit` (issue 12 item 2: Bybit entries recorded after their send, like
Binance's): its submit's first step, run eagerly (bot/execution/eager.py), goes through the checks, the
request, its signature and ccxt into aiohttp before the caller goes on. Against the loopback exchange's Bybit
v5 protocol."""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import SecretStr

from bot.domain.types import OrderKind, OrderStatus, Side
from bot.execution.eager import spawn_eager
from bot.settings.core import VenueSection
from bot.venues.bybit.gateway import BybitGateway
from bot.venues.ports import OrderRequest
from tests.sim.server_helpers import running_server


async def test_bybit_submit_reaches_aiohttp_in_its_first_step() -> None:
    assert BybitGateway.capabilities.eager_submit
    async with running_server() as (server, base):
        ws = base.replace("http", "ws")
        v = VenueSection(name="bybit", environment="exchange-sim", symbols=("BTCUSDT",), rest_url=base,
                         ws_public_url=ws + "/v5/public/linear", ws_private_url=ws + "/v5/private",
                         api_key=SecretStr("sim-key"), api_secret=SecretStr("sim-secret"))
        g = BybitGateway(v)
        await asyncio.wait_for(g.start(), 10)
        try:
            await asyncio.wait_for(server.next_depth("BTCUSDT", 5.0), 10)
            session: Any = g._session
            real = session._request
            handed: list[tuple[str, str]] = []

            def spy(method: str, url: Any, **kw: Any) -> Any:  # called synchronously by request()
                handed.append((method, str(url)))
                return real(method, url, **kw)

            object.__setattr__(session, "_request", spy)
            try:
                req = OrderRequest("t1-entry", "BTCUSDT", Side.BUY, OrderKind.MARKET,
                                   g.instrument("BTCUSDT").qty_to_lots(0.01))
                task = spawn_eager(asyncio.get_running_loop().create_task, g.submit(req))
                # no loop turn yet: the signed request is already aiohttp's
                assert [m for m, u in handed if u.endswith("/v5/order/create")] == ["POST"], handed
                ack = await asyncio.wait_for(task, 10)
            finally:
                object.__setattr__(session, "_request", real)
            assert ack.client_id == "t1-entry" and ack.status is OrderStatus.NEW and ack.venue_order_id
        finally:
            await asyncio.wait_for(g.close(), 10)
