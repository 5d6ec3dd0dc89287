"""SimGateway behind the ExecutionGateway port: immediate and latency-driven requests, updates."""

from __future__ import annotations

import asyncio

import pytest

from bot.domain.types import OrderKind, OrderStatus, Side, TriggerPrice
from bot.settings.sim import SimSection
from bot.venues.binance_usdm.instruments import KNOWN
from bot.venues.errors import OrderRejected
from bot.venues.ports import ExecutionGateway, OrderRequest
from bot.venues.sim.gateway import SimGateway, exchange_from_settings
from bot.venues.sim.generator import MarketGenerator
from tests.sim.helpers import Feed, limit, market, new_exchange, standard_book


async def _drain(gw: SimGateway) -> list:  # type: ignore[type-arg]
    out = []
    it = gw.updates()
    while True:
        try:
            out.append(await asyncio.wait_for(it.__anext__(), 0.05))
        except TimeoutError:
            return out


async def test_immediate_gateway_lifecycle() -> None:
    ex = new_exchange()
    f = Feed(ex)
    standard_book(f)
    gw = SimGateway(ex)
    assert isinstance(gw, ExecutionGateway)
    await gw.start()
    ack = await gw.submit(limit("t1-entry", Side.BUY, 10, "59999.0"))
    assert ack.status is OrderStatus.NEW and ack.venue_order_id
    ack = await gw.submit(market("t2-entry", Side.BUY, 5))
    assert ack.status is OrderStatus.FILLED
    ack = await gw.submit(OrderRequest("t2-sl", "BTCUSDT", Side.SELL, OrderKind.STOP_MARKET, 0,
                                       trigger_ticks=599_000, working_type=TriggerPrice.MARK,
                                       close_position=True))
    assert ack.status is OrderStatus.NEW
    opened = await gw.open_orders("BTCUSDT")
    assert {(u.client_id, u.kind) for u in opened} == {("t1-entry", OrderKind.LIMIT),
                                                       ("t2-sl", OrderKind.STOP_MARKET)}
    await gw.cancel("BTCUSDT", "t1-entry")
    await gw.cancel("BTCUSDT", "t2-sl", conditional=True)
    with pytest.raises(OrderRejected) as e:
        await gw.cancel("BTCUSDT", "t1-entry")
    assert e.value.code == -2011
    got = await gw.fetch_order("BTCUSDT", "t2-entry")
    assert got is not None and got.status is OrderStatus.FILLED and got.filled_lots == 5
    assert got.avg_price == pytest.approx((2 * 60000.1 + 3 * 60000.2) / 5)
    assert await gw.fetch_order("BTCUSDT", "nope") is None
    ups = await _drain(gw)
    fills = [u for u in ups if u.last_fill_lots]
    assert [(u.client_id, u.last_fill_lots) for u in fills] == [("t2-entry", 2), ("t2-entry", 3)]
    assert [u.status for u in ups if u.client_id == "t2-sl"] == [OrderStatus.NEW, OrderStatus.CANCELED]
    acct = await gw.account()
    assert acct.positions[0].qty_lots == 5 and acct.positions[0].entry_price == pytest.approx(60000.16)
    await gw.set_leverage("BTCUSDT", 20)
    assert (await gw.account()).positions[0].leverage == 20
    with pytest.raises(OrderRejected) as e:
        await gw.set_leverage("BTCUSDT", 500)
    assert e.value.code == -4028
    await gw.close()


async def test_latency_gateway_waits_for_the_driver_clock() -> None:
    cfg = SimSection(order_latency_ms=20.0, order_latency_jitter_ms=0.0, latency_kind="constant")
    ex = exchange_from_settings(cfg, {"BTCUSDT": KNOWN["BTCUSDT"]})
    gw = SimGateway(ex)
    gen = MarketGenerator([KNOWN["BTCUSDT"]], cfg)
    msgs = gen.messages()
    start = gen.t_ns
    for m in msgs:  # 1 s of market first
        ex.on_message(m.raw, m.ts_ns)
        if m.ts_ns - start >= 10**9:
            break
    stop = asyncio.Event()

    async def driver() -> None:
        for m in msgs:
            ex.on_message(m.raw, m.ts_ns)
            await asyncio.sleep(0)
            if stop.is_set():
                return

    task = asyncio.create_task(driver())
    sent_ns = ex.now_ns
    ack = await asyncio.wait_for(gw.submit(market("m1", Side.BUY, 3)), 5)
    assert ack.status is OrderStatus.FILLED
    assert ack.ts_ns >= sent_ns + 20_000_000  # processed when it arrived, 20 ms later
    ack = await asyncio.wait_for(gw.submit(market("m2", Side.SELL, 1, reduce_only=True)), 5)
    assert ack.status is OrderStatus.FILLED and ex.position_lots("BTCUSDT") == 2
    with pytest.raises(OrderRejected) as e:  # the rejection comes back through the latency path too
        await asyncio.wait_for(gw.submit(market("m3", Side.BUY, 1, reduce_only=True)), 5)
    assert e.value.code == -2022
    stop.set()
    await asyncio.wait_for(task, 5)
    await gw.close()
