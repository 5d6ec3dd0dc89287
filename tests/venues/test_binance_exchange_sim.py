"""BinanceGateway (real ccxt + websockets) against the loopback exchange simulator server (bot.venues.sim)."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from pydantic import SecretStr

from bot.domain.types import OrderKind, OrderStatus, Side
from bot.execution.reconcile import ReconcileConfig, decide
from bot.execution.reconcile_io import fetch_exchange_state
from bot.settings.core import VenueSection
from bot.venues.binance_usdm.errors import ClockUnsynced
from bot.venues.binance_usdm.gateway import BinanceGateway
from bot.venues.errors import RateLimited
from bot.venues.ports import OrderRequest, OrderUpdate
from tests.sim.server_helpers import running_server


@pytest.fixture
async def sim():
    async with running_server() as (server, base):
        v = VenueSection(name="binance-usdm", environment="exchange-sim", rest_url=base,
                         ws_private_url=base.replace("http", "ws") + "/private", symbols=("BTCUSDT",),
                         api_key=SecretStr("sim-key"), api_secret=SecretStr("sim-secret"))
        g = BinanceGateway(v)
        await asyncio.wait_for(g.start(), 10)
        assert g.user_stream is not None
        await asyncio.wait_for(g.user_stream.caught_up.wait(), 10)
        await asyncio.wait_for(server.next_depth("BTCUSDT", 5.0), 10)  # a market to trade on
        try:
            yield server, base, g
        finally:
            await asyncio.wait_for(g.close(), 10)


async def fault(base: str, body: dict) -> None:
    async with aiohttp.ClientSession() as s, s.post(f"{base}/_sim/fault", json=body) as r:
        assert r.status == 200, await r.text()


async def until(g: BinanceGateway, pred, timeout_s: float = 5.0) -> OrderUpdate:
    async def go() -> OrderUpdate:
        async for u in g.updates():
            if pred(u):
                return u
        raise AssertionError("stream ended")
    return await asyncio.wait_for(go(), timeout_s)


async def test_open_protect_close_through_ccxt_and_the_user_stream(sim):
    _server, _base, g = sim
    await g.submit(OrderRequest("t1-entry", "BTCUSDT", Side.BUY, OrderKind.MARKET, 2))
    fill = await until(g, lambda u: u.client_id == "t1-entry" and u.last_fill_lots > 0)
    assert fill.last_fill_price > 0
    acc = await g.account()
    pos = next(p for p in acc.positions if p.symbol == "BTCUSDT")
    assert pos.qty_lots == 2
    inst = g.instrument("BTCUSDT")
    stop_t = inst.price_to_ticks(pos.entry_price * 0.99)
    ack = await g.submit(OrderRequest("t1-sl", "BTCUSDT", Side.SELL, OrderKind.STOP_MARKET, 2, trigger_ticks=stop_t,
                                      reduce_only=True))
    assert ack.status is OrderStatus.NEW
    opened = await g.open_orders("BTCUSDT")
    assert [(o.client_id, o.kind, o.qty_lots) for o in opened] == [("t1-sl", OrderKind.STOP_MARKET, 2)]
    # reconciliation sees a protected position: nothing to do
    from bot.execution.reconcile import JournalLeg, JournalTrade
    jt = JournalTrade("t1", "BTCUSDT", "long", "PROTECTED", inst.ticks_to_price(stop_t), (
        JournalLeg("t1-entry", "entry", OrderKind.MARKET, Side.BUY, OrderStatus.FILLED, 2),
        JournalLeg("t1-sl", "stop", OrderKind.STOP_MARKET, Side.SELL, OrderStatus.NEW)))
    ex = await fetch_exchange_state(g, ["BTCUSDT"], [jt])
    assert decide(ex, [jt], ReconcileConfig(g.instruments), 0) == []
    await g.cancel("BTCUSDT", "t1-sl", conditional=True)
    await g.submit(OrderRequest("t1-exit", "BTCUSDT", Side.SELL, OrderKind.MARKET, 2, reduce_only=True))
    await until(g, lambda u: u.client_id == "t1-exit" and u.status is OrderStatus.FILLED)
    assert (await g.account()).positions == ()
    assert await g.open_orders("BTCUSDT") == []


async def test_5xx_after_execution_found_by_client_id_not_duplicated(sim):
    _server, base, g = sim
    await fault(base, {"kind": "error_after_execute", "count": 1, "status": 503})
    ack = await g.submit(OrderRequest("t2-entry", "BTCUSDT", Side.BUY, OrderKind.MARKET, 2))
    assert ack.status is OrderStatus.FILLED and g.stats["ambiguous_found"] == 1
    assert next(p for p in (await g.account()).positions).qty_lots == 2  # one order, not two


async def test_clock_skew_and_rate_limit_faults(sim):
    _server, base, g = sim
    await fault(base, {"kind": "clock_skew_ms", "ms": 8000})
    with pytest.raises(ClockUnsynced):
        await g.submit(OrderRequest("t3-entry", "BTCUSDT", Side.BUY, OrderKind.MARKET, 2))
    assert g.clock.offset_ms > 7000 and g.clock.entry_refusal()
    await fault(base, {"kind": "clock_skew_ms", "ms": 0})
    await g.sync_clock()
    assert g.clock.entry_refusal() == ""
    await fault(base, {"kind": "rate_limit", "retry_after_s": 3})
    with pytest.raises(RateLimited) as ei:
        await g.submit(OrderRequest("t4-entry", "BTCUSDT", Side.BUY, OrderKind.MARKET, 2))
    assert 1.0 <= ei.value.retry_after_s <= 3.0
