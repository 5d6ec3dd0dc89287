"""Fills from the order's own answer (Binance newOrderRespType=RESULT, gateway_common.ack_fill) and the
bounded positions of the stream: BinanceGateway (real ccxt + websockets) against the loopback exchange."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from pydantic import SecretStr

from bot.domain.types import OrderKind, Side
from bot.settings.core import VenueSection
from bot.venues.binance_usdm.gateway import BinanceGateway
from bot.venues.ports import OrderRequest, OrderUpdate, PositionSnapshot
from tests.sim.server_helpers import running_server


@pytest.fixture
async def sim():
    async with running_server() as (server, base):
        v = VenueSection(name="binance-usdm", environment="exchange-sim", rest_url=base,
                         ws_private_url=base.replace("http", "ws") + "/private", symbols=("BTCUSDT",),
                         api_key=SecretStr("sim-key"), api_secret=SecretStr("sim-secret"), ack_fill_grace_ms=200)
        g = BinanceGateway(v)
        await asyncio.wait_for(g.start(), 10)
        assert g.user_stream is not None
        await asyncio.wait_for(g.user_stream.caught_up.wait(), 10)
        await asyncio.wait_for(server.next_depth("BTCUSDT", 5.0), 10)
        try:
            yield server, g
        finally:
            await asyncio.wait_for(g.close(), 10)


async def collect(g: BinanceGateway, seconds: float) -> list[OrderUpdate]:
    got: list[OrderUpdate] = []

    async def go() -> None:
        async for u in g.updates():
            got.append(u)

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(go(), seconds)
    return got


async def test_a_fill_the_muted_stream_never_delivers_comes_from_the_answer_exactly_once(sim):
    server, g = sim
    missed: list[tuple[str, str]] = []
    g.on_stream_missed = lambda sym, detail: missed.append((sym, detail))
    server.faults.apply({"kind": "mute_user_stream", "ms": 60_000})
    await g.submit(OrderRequest("t1-entry", "BTCUSDT", Side.BUY, OrderKind.MARKET, 7))
    got = [u for u in await collect(g, 2.0) if u.client_id == "t1-entry"]
    fills = [u for u in got if u.last_fill_lots > 0]
    assert fills, got
    assert sum(u.last_fill_lots for u in fills) == 7 and fills[-1].filled_lots == 7
    # the exact fills (userTrades): trade ids and fees, as the stream would have sent them
    assert all(u.trade_id and u.fee > 0 for u in fills)
    assert g.ack_fills["fetched"] == 1 and g.ack_fills["from_answer"] == 0
    assert missed and missed[0][0] == "BTCUSDT" and "t1-entry" in missed[0][1]
    # the stream comes back and its catch-up runs: the same fills are not delivered a second time
    server.faults.apply({"kind": "mute_user_stream", "ms": 0})
    assert g.user_stream is not None
    await g.user_stream.catch_up()
    again = [u for u in await collect(g, 1.0) if u.client_id == "t1-entry" and u.last_fill_lots > 0]
    assert again == []


async def test_a_fill_the_stream_delivers_is_not_fetched_again(sim):
    _server, g = sim
    missed: list[tuple[str, str]] = []
    g.on_stream_missed = lambda sym, detail: missed.append((sym, detail))
    await g.submit(OrderRequest("t2-entry", "BTCUSDT", Side.BUY, OrderKind.MARKET, 3))
    got = [u for u in await collect(g, 1.5) if u.client_id == "t2-entry" and u.last_fill_lots > 0]
    assert sum(u.last_fill_lots for u in got) == 3  # from the stream, once
    assert g.ack_fills == {"checked": 1, "fetched": 0, "from_answer": 0, "stream_first": 1}
    assert missed == []


async def test_positions_keep_only_the_latest_per_symbol(sim):
    _server, g = sim
    for i in range(1, 2001):  # a burst of ACCOUNT_UPDATEs
        g.publish(PositionSnapshot("BTCUSDT", i, 60_000.0))
        g.publish(PositionSnapshot("ETHUSDT", -i, 3_000.0))
    assert len(g._positions) == 2
    seen: list[PositionSnapshot] = []

    async def take() -> None:
        async for p in g.position_updates():
            seen.append(p)
            if len(seen) == 2:
                return

    await asyncio.wait_for(take(), 2)
    assert {(p.symbol, p.qty_lots) for p in seen} == {("BTCUSDT", 2000), ("ETHUSDT", -2000)}
    assert g._positions == {}
