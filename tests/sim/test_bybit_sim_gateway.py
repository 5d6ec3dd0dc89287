"""The bot's own Bybit venue code (BybitGateway through ccxt + its private websocket, BybitMarketFeed) against
the loopback exchange's Bybit v5 protocol: same engine as the Binance routes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import SecretStr

from bot.domain.types import OrderKind, OrderStatus, Side
from bot.market.health import BookStatus
from bot.settings import load_settings
from bot.settings.core import VenueSection
from bot.venues.bybit.feed import BybitMarketFeed
from bot.venues.bybit.gateway import BybitGateway
from bot.venues.ports import OrderRequest, OrderUpdate
from tests.sim.server_helpers import running_server


def _urls(base: str) -> dict[str, str]:
    ws = base.replace("http", "ws")
    return {"rest_url": base, "ws_public_url": ws + "/v5/public/linear", "ws_private_url": ws + "/v5/private"}


@pytest.fixture
async def sim():
    async with running_server() as (server, base):
        v = VenueSection(name="bybit", environment="exchange-sim", symbols=("BTCUSDT",),
                         api_key=SecretStr("sim-key"), api_secret=SecretStr("sim-secret"), **_urls(base))
        g = BybitGateway(v)
        await asyncio.wait_for(g.start(), 10)
        assert g.user_stream is not None
        await asyncio.wait_for(g.user_stream.caught_up.wait(), 10)
        await asyncio.wait_for(server.next_depth("BTCUSDT", 5.0), 10)
        try:
            yield server, base, g
        finally:
            await asyncio.wait_for(g.close(), 10)


async def until(g: BybitGateway, pred: Callable[[OrderUpdate], bool], timeout_s: float = 5.0) -> OrderUpdate:
    async def go() -> OrderUpdate:
        async for u in g.updates():
            if isinstance(u, OrderUpdate) and pred(u):
                return u
        raise AssertionError("stream ended")
    return await asyncio.wait_for(go(), timeout_s)


def _stops(server: Any) -> list[tuple[str, int, bool]]:
    return [(a.type, a.trigger_ticks, a.close_position) for a in server.ex.open_algo_orders("BTCUSDT")]


async def test_entry_with_attached_stop_move_and_close_through_the_gateway(sim):
    server, _base, g = sim
    inst = g.instrument("BTCUSDT")
    bid = server.ex.markets["BTCUSDT"].book.bbo()[0]
    stop_t = bid - 200
    await g.submit(OrderRequest("b1-entry", "BTCUSDT", Side.BUY, OrderKind.MARKET, 5, attached_stop_ticks=stop_t))
    fill = await until(g, lambda u: u.client_id == "b1-entry" and u.filled_lots > 0)
    assert fill.avg_price > 0
    # the attached stop rests at the exchange the moment the entry filled (the engine's state)
    assert _stops(server) == [("STOP_MARKET", stop_t, True)]
    acc = await g.account()
    pos = next(p for p in acc.positions if p.symbol == "BTCUSDT")
    assert pos.qty_lots == 5
    # the machine's "place stop" = trading-stop: the position's one stop moves, never two
    await g.submit(OrderRequest("b1-sl", "BTCUSDT", Side.SELL, OrderKind.STOP_MARKET, 5, trigger_ticks=stop_t + 50,
                                reduce_only=True))
    assert _stops(server) == [("STOP_MARKET", stop_t + 50, True)]
    opened = await g.open_orders("BTCUSDT")
    assert [(o.kind, o.status) for o in opened] == [(OrderKind.STOP_MARKET, OrderStatus.NEW)]
    # a resting limit, cancelled by its client id
    await g.submit(OrderRequest("b1-lim", "BTCUSDT", Side.BUY, OrderKind.LIMIT, 5, price_ticks=bid - 500))
    assert "b1-lim" in [o.client_id for o in await g.open_orders("BTCUSDT")]
    await g.cancel("BTCUSDT", "b1-lim")
    await until(g, lambda u: u.client_id == "b1-lim" and u.status is OrderStatus.CANCELED)
    await g.submit(OrderRequest("b1-exit", "BTCUSDT", Side.SELL, OrderKind.MARKET, 5, reduce_only=True))
    await until(g, lambda u: u.client_id == "b1-exit" and u.status is OrderStatus.FILLED)
    assert (await g.account()).positions == ()
    assert _stops(server) == []  # the position's stop went with the position
    assert await g.open_orders("BTCUSDT") == []
    fills = await g.fills("BTCUSDT", "b1-entry") if hasattr(g, "fills") else None
    assert fills is None or len(fills) >= 1
    assert inst.symbol == "BTCUSDT"


async def test_public_feeds_sync_and_follow_the_engine_book():
    """Two feeds, the second subscribing while the first streams: one `u` line, no gap, both books equal to
    the engine's."""
    async with running_server() as (server, base):
        s = load_settings(overrides={"venue": {"name": "bybit", "environment": "exchange-sim",
                                               "symbols": ["BTCUSDT"], **_urls(base)},
                                     "market": {"bybit_depth": 50}})
        inst = server.ex.markets["BTCUSDT"].inst
        events: list[Any] = []
        feeds = [BybitMarketFeed(s.venue, s.market, {"BTCUSDT": inst}, events.append) for _ in range(2)]
        tasks = [asyncio.create_task(feeds[0].run())]
        try:
            for _ in range(100):
                await asyncio.sleep(0.05)
                if feeds[0].syncs["BTCUSDT"].stats.applied >= 3 and len(tasks) == 1:
                    tasks.append(asyncio.create_task(feeds[1].run()))
                if all(f.syncs["BTCUSDT"].stats.applied >= 5 for f in feeds):
                    break
            theirs = server.ex.markets["BTCUSDT"].book
            for feed in feeds:
                sync = feed.syncs["BTCUSDT"]
                assert sync.health.status is BookStatus.LIVE
                assert sync.stats.gaps == 0 and sync.stats.applied >= 5 and feed.resubscribes == 0
                ours = feed.books["BTCUSDT"]
                same = False
                for _ in range(40):  # between two engine updates the client's top 5 equals the engine's
                    await server.next_depth("BTCUSDT", 2.0)
                    await asyncio.sleep(0.03)
                    if ours.bids(5) == theirs.bids(5) and ours.asks(5) == theirs.asks(5):
                        same = True
                        break
                assert same, (ours.bids(5), theirs.bids(5))
            kinds = {type(e).__name__ for e in events}
            assert {"DepthDiff", "FundingInfo"} <= kinds
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait_for(task, 5)


async def test_drop_ws_fault_closes_bybit_sockets_and_the_user_stream_comes_back(sim):
    server, base, g = sim
    import aiohttp

    assert g.user_stream is not None
    before = g.user_stream.stats["connects"]
    async with aiohttp.ClientSession() as http, http.post(f"{base}/_sim/fault",
                                                         json={"kind": "drop_ws", "route": "bybit-private"}) as r:
        assert (await r.json())["dropped"] == 1
    for _ in range(100):  # bounded: the stream reconnects within its backoff (250 ms first)
        if g.user_stream.stats["connects"] > before and any(c.route == "bybit-private" and c.listen_key == "authed"
                                                           for c in server.conns):
            break
        await asyncio.sleep(0.05)
    assert g.user_stream.stats["connects"] > before
    await g.submit(OrderRequest("d1-entry", "BTCUSDT", Side.BUY, OrderKind.MARKET, 2))
    fill = await until(g, lambda u: u.client_id == "d1-entry" and u.filled_lots > 0)
    assert fill.filled_lots == 2


async def test_error_after_execute_on_bybit_create_is_resolved_by_orderlinkid(sim):
    """The entry executes but the answer is HTTP 502: the gateway looks the order up by its orderLinkId
    (never resends it): one order, one position."""
    server, base, g = sim
    import aiohttp

    async with aiohttp.ClientSession() as http, http.post(f"{base}/_sim/fault", json={
            "kind": "error_after_execute", "count": 1, "status": 502, "entries_only": True}) as r:
        assert r.status == 200
    ack = await g.submit(OrderRequest("e1-entry", "BTCUSDT", Side.BUY, OrderKind.MARKET, 3))
    assert ack.client_id == "e1-entry" and ack.venue_order_id
    assert g.stats["ambiguous"] == 1 and g.stats["ambiguous_found"] == 1
    assert [o.client_id for o in server.ex.orders.values()].count("e1-entry") == 1
    assert server.ex.position_lots("BTCUSDT") == 3
