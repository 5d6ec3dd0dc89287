"""BybitGateway with execution.order_transport = "ws" against the in-process loopback exchange: orders go over
/v5/trade with the REST path's body and orderLinkId, the same error translation, REST while the socket is
down. (The real-process drills are in tests/test_bybit_trade_ws_e2e.py.)"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from pydantic import SecretStr

from bot.domain.types import OrderKind, OrderStatus, Side, TimeInForce, TriggerPrice
from bot.settings.core import VenueSection
from bot.venues.bybit.gateway import BybitGateway
from bot.venues.bybit.orders import create_args, create_body
from bot.venues.bybit.trade_ws import trade_url
from bot.venues.errors import DuplicateClientId, OrderRejected
from bot.venues.ports import OrderRequest
from tests.sim.server_helpers import running_server
from tests.sim.test_bybit_sim_gateway import _urls


def venue(base: str, **kw: Any) -> VenueSection:
    return VenueSection(name="bybit", environment="exchange-sim", symbols=("BTCUSDT",),
                        api_key=SecretStr("sim-key"), api_secret=SecretStr("sim-secret"), **_urls(base), **kw)


@pytest.fixture
async def sim():
    async with running_server() as (server, base):
        g = BybitGateway(venue(base), order_transport="ws")
        await asyncio.wait_for(g.start(), 10)
        assert g.trade_ws is not None and g.user_stream is not None
        await asyncio.wait_for(g.trade_ws.ready.wait(), 10)
        await asyncio.wait_for(g.user_stream.caught_up.wait(), 10)
        await asyncio.wait_for(server.next_depth("BTCUSDT", 5.0), 10)
        try:
            yield server, base, g
        finally:
            await asyncio.wait_for(g.close(), 10)


def test_trade_url_per_environment() -> None:
    v = VenueSection(name="bybit", environment="testnet")
    assert trade_url(v) == "wss://stream-testnet.bybit.com/v5/trade"
    assert trade_url(v.model_copy(update={"environment": "mainnet"})) == "wss://stream.bybit.com/v5/trade"
    assert trade_url(v.model_copy(update={"environment": "demo"})) is None  # B2: demo has no /v5/trade
    loop = v.model_copy(update={"ws_private_url": "ws://127.0.0.1:9/v5/private"})
    assert trade_url(loop) == "ws://127.0.0.1:9/v5/trade"


async def test_ws_body_is_the_rest_body(sim):
    """create_body (the socket's order.create args) equals what ccxt's create_order_request makes of the same
    create_args for REST: same fields, same orderLinkId (a re-sent leg's '.' travels as '_')."""
    _server, _base, g = sim
    inst = g.instrument("BTCUSDT")
    bid = inst.price_to_ticks("60000")
    reqs = [OrderRequest("t1-e", "BTCUSDT", Side.BUY, OrderKind.MARKET, 10, attached_stop_ticks=bid - 500),
            OrderRequest("t1-e.2", "BTCUSDT", Side.SELL, OrderKind.LIMIT, 10, price_ticks=bid,
                         time_in_force=TimeInForce.GTX, attached_stop_ticks=bid + 500, working_type=TriggerPrice.LAST),
            OrderRequest("t1-tp1", "BTCUSDT", Side.SELL, OrderKind.LIMIT, 10, price_ticks=bid, reduce_only=True),
            OrderRequest("t1-x", "BTCUSDT", Side.BUY, OrderKind.MARKET, 10, reduce_only=True),
            OrderRequest("t1-tp", "BTCUSDT", Side.SELL, OrderKind.TAKE_PROFIT_MARKET, 10, trigger_ticks=bid,
                         reduce_only=True),
            OrderRequest("t1-tq", "BTCUSDT", Side.BUY, OrderKind.TAKE_PROFIT_MARKET, 10, trigger_ticks=bid,
                         reduce_only=True),
            OrderRequest("t1-se", "BTCUSDT", Side.BUY, OrderKind.STOP_MARKET, 10, trigger_ticks=bid),
            OrderRequest("t1-sf", "BTCUSDT", Side.SELL, OrderKind.STOP_MARKET, 10, trigger_ticks=bid)]
    assert g.ex is not None
    for r in reqs:
        rest = g.ex.create_order_request(*create_args(r, inst, g._ccxt_symbol["BTCUSDT"]))
        assert create_body(r, inst) == rest, r.client_id


async def test_orders_go_over_the_socket_with_the_same_errors(sim):
    server, _base, g = sim
    inst = g.instrument("BTCUSDT")
    bid = server.ex.markets["BTCUSDT"].book.bbo()[0]
    req = OrderRequest("t7-e.2", "BTCUSDT", Side.BUY, OrderKind.LIMIT, inst.qty_to_lots("0.01"),
                       price_ticks=bid - 300, time_in_force=TimeInForce.GTX)
    ack = await g.submit(req)
    assert ack.status is OrderStatus.NEW and ack.venue_order_id
    o = server.ex.by_client[("BTCUSDT", "t7-e_2")]  # the REST path's orderLinkId
    assert str(o.order_id) == ack.venue_order_id and o.price_ticks == bid - 300
    assert server.requests.get("WS order.create") == 1 and "POST /v5/order/create" not in server.requests
    with pytest.raises(DuplicateClientId):  # 110072, translated as on REST
        await g.submit(req)
    with pytest.raises(OrderRejected) as e:  # a stop entry on the wrong side: 110092 -> StopWouldTrigger
        await g.submit(OrderRequest("t8-se", "BTCUSDT", Side.BUY, OrderKind.STOP_MARKET, 1, trigger_ticks=bid - 900))
    assert e.value.code == 110092 and type(e.value).__name__ == "StopWouldTrigger"
    await g.cancel("BTCUSDT", "t7-e.2")
    assert not server.ex.by_client[("BTCUSDT", "t7-e_2")].is_open
    await g.cancel("BTCUSDT", "t7-e.2")  # 110001 over the socket: not open, not an error
    assert server.requests.get("WS order.cancel") == 2 and "POST /v5/order/cancel" not in server.requests
    u = await g.fetch_order("BTCUSDT", "t7-e.2")
    assert u is not None and u.status is OrderStatus.CANCELED and u.client_id == "t7-e.2"
    assert g.stats["ws_fallbacks"] == 0 and g.limiter is not None


async def test_10019_goes_over_rest_once_and_the_socket_comes_back(sim):
    server, _base, g = sim
    assert g.trade_ws is not None
    first = g.trade_ws.stats["connects"]
    inst = g.instrument("BTCUSDT")
    bid = server.ex.markets["BTCUSDT"].book.bbo()[0]
    server.faults.apply({"kind": "ws_trade_restart", "count": 1})
    await g.submit(OrderRequest("t9-e", "BTCUSDT", Side.BUY, OrderKind.LIMIT, inst.qty_to_lots("0.01"),
                                price_ticks=bid - 300))
    # refused unprocessed over the socket, then placed once over REST
    assert server.requests.get("WS order.create") == 1 and server.requests.get("POST /v5/order/create") == 1
    assert len([o for o in server.ex.orders.values() if o.client_id == "t9-e"]) == 1
    assert g.stats["ws_fallbacks"] == 1
    await asyncio.wait_for(g.trade_ws.ready.wait(), 10)  # a new connection (10019: reconnect)
    assert g.trade_ws.stats["connects"] == first + 1
    await g.cancel("BTCUSDT", "t9-e")
    assert server.requests.get("WS order.cancel") == 1


async def test_what_the_operator_sees_of_the_socket_down_and_back(sim):
    """order_transport_state (ports.OrderTransportReport): up; dropped and refused: down, with why, and the
    orders meanwhile counted as REST fallbacks; back: up, one reconnect."""
    server, _base, g = sim
    assert g.trade_ws is not None
    inst = g.instrument("BTCUSDT")
    bid = server.ex.markets["BTCUSDT"].book.bbo()[0]
    up = g.order_transport_state()
    assert (up.venue, up.configured, up.state, up.reconnects, up.rest_fallbacks) == ("bybit", "ws", "up", 0, 0)
    await g.submit(OrderRequest("t10-e", "BTCUSDT", Side.BUY, OrderKind.LIMIT, inst.qty_to_lots("0.01"),
                                price_ticks=bid - 300))
    assert g.order_transport_state().ws_requests == up.ws_requests + 1
    server.faults.apply({"kind": "drop_ws", "route": "bybit-trade", "refuse_ms": 600})
    for _ in range(500):  # bounded: 5 s
        if g.order_transport_state().state == "down":
            break
        await asyncio.sleep(0.01)
    down = g.order_transport_state()
    assert down.state == "down" and down.last_error and "sim-secret" not in down.last_error
    await g.cancel("BTCUSDT", "t10-e")  # the socket is down: over REST, counted
    assert server.requests.get("POST /v5/order/cancel") == 1
    assert g.order_transport_state().rest_fallbacks == 1
    await asyncio.wait_for(g.trade_ws.ready.wait(), 10)  # reconnected in the background after the refusal
    back = g.order_transport_state()
    assert (back.state, back.reconnects, back.rest_fallbacks) == ("up", 1, 1) and back.since_ns > down.since_ns


def test_socket_ops_share_the_uid_limit_but_not_the_http_ip_budget() -> None:
    """B2: 600 HTTP requests / 5 s per IP is the HTTP gateway's; an order.create over /v5/trade still spends
    /v5/order/create's per-UID 10/s."""
    from bot.venues.bybit.limiter import BybitLimiter

    lim = BybitLimiter(budget_frac=1.0, ip_per_5s=3)
    now = 100.0
    for _ in range(3):
        lim.spend("/v5/order/realtime", now)  # the HTTP IP budget used up
    assert lim.delay_s("/v5/order/create", now) > 0
    assert lim.delay_s("/v5/order/create", now, http=False) == 0
    for _ in range(10):
        lim.spend("/v5/order/create", now + 0.5, http=False)
    assert lim.delay_s("/v5/order/create", now + 0.5, http=False) == pytest.approx(0.5)  # the UID's 10/s


async def _peer(answer_auth: str | None) -> tuple[Any, int, list[int]]:
    """A /v5/trade peer: answers auth with `answer_auth` (None: Bybit's OK) and then nothing at all."""
    from aiohttp import web

    conns: list[int] = []

    async def trade(request: web.Request) -> web.WebSocketResponse:
        conns.append(1)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            if '"auth"' in msg.data:
                if answer_auth is None:
                    await ws.send_json({"retCode": 0, "retMsg": "OK", "op": "auth", "connId": f"c{len(conns)}"})
                else:
                    await ws.send_str(answer_auth)
        return ws

    app = web.Application()
    app.router.add_get("/v5/trade", trade)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1], conns  # type: ignore[union-attr]


async def test_a_silent_trade_socket_is_left_and_reopened() -> None:
    """A /v5/trade peer that authenticates and then answers nothing (no pong): after two ping periods the
    socket is left (ready cleared: orders over REST) and a new one is opened."""
    from bot.venues.bybit.trade_ws import BybitTradeSocket

    runner, port, conns = await _peer(None)
    g = BybitGateway(venue(f"http://127.0.0.1:{port}"))
    tw = BybitTradeSocket(g, f"ws://127.0.0.1:{port}/v5/trade", ping_interval_s=0.1, reconnect_min_ms=10)
    task = asyncio.create_task(tw.run())
    try:
        await asyncio.wait_for(tw.ready.wait(), 5)
        for _ in range(100):
            if tw.stats["silent"] >= 1 and tw.stats["connects"] >= 2:
                break
            await asyncio.sleep(0.05)
        assert tw.stats["silent"] >= 1 and tw.stats["connects"] >= 2 and len(conns) >= 2, tw.stats
        assert tw.stats["pings"] >= 1  # it did ask before giving up
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await runner.cleanup()


async def test_a_garbled_auth_answer_never_ends_the_gateway() -> None:
    """Not JSON, or a refusal: the socket is retried with backoff, never up, and its task stays alive (the
    orders go over REST); nothing of the fast path may end the gateway."""
    from bot.venues.bybit.trade_ws import BybitTradeSocket

    for answer in ("not json", '{"retCode":10004,"retMsg":"Invalid sign","op":"auth"}'):
        runner, port, conns = await _peer(answer)
        g = BybitGateway(venue(f"http://127.0.0.1:{port}"))
        tw = BybitTradeSocket(g, f"ws://127.0.0.1:{port}/v5/trade", reconnect_min_ms=10, reconnect_max_ms=20)
        task = asyncio.create_task(tw.run())
        try:
            for _ in range(100):
                if len(conns) >= 3:
                    break
                await asyncio.sleep(0.02)
            assert len(conns) >= 3 and not task.done() and not tw.ready.is_set(), (answer, tw.stats)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await runner.cleanup()


async def test_10002_over_the_socket_resyncs_and_a_protective_order_goes_once_more(sim):
    """The header's X-BAPI-TIMESTAMP outside the recv window -> 10002 -> ClockUnsynced, as over REST: the
    clock is resynced, the protective order (refused unprocessed) sent once more over the socket with the
    exchange's time; entries are refused before sending while the offset is too large."""
    from bot.venues.bybit.errors import ClockUnsynced

    server, _base, g = sim
    inst = g.instrument("BTCUSDT")
    bid = server.ex.markets["BTCUSDT"].book.bbo()[0]
    await g.submit(OrderRequest("t4-e", "BTCUSDT", Side.BUY, OrderKind.MARKET, inst.qty_to_lots("0.01")))
    assert server.ex.position_lots("BTCUSDT") > 0  # a position for the reduce-only order below
    server.faults.apply({"kind": "clock_skew_ms", "ms": -4000})  # the exchange 4 s behind us
    tp = OrderRequest("t4-tp", "BTCUSDT", Side.SELL, OrderKind.TAKE_PROFIT_MARKET, inst.qty_to_lots("0.01"),
                      trigger_ticks=bid + 2000, reduce_only=True)
    ack = await g.submit(tp)
    assert ack.status is OrderStatus.NEW
    assert server.requests.get("WS order.create") == 3 and "POST /v5/order/create" not in server.requests
    assert [a.client_algo_id for a in server.ex.algos.values()].count("t4-tp") == 1
    assert -4500 < g.clock.offset_ms < -3500
    with pytest.raises(ClockUnsynced):  # 4 s > 25 % of recv_window: refused before anything is sent
        await g.submit(OrderRequest("t5-e", "BTCUSDT", Side.BUY, OrderKind.LIMIT, inst.qty_to_lots("0.01"),
                                    price_ticks=bid - 300))
    assert server.requests.get("WS order.create") == 3
    server.faults.apply({"kind": "clock_skew_ms", "ms": 0})
    await g.sync_clock()
    await g.cancel("BTCUSDT", "t4-tp")
    await g.submit(OrderRequest("t4-x", "BTCUSDT", Side.SELL, OrderKind.MARKET, inst.qty_to_lots("0.01"),
                                reduce_only=True))
    assert server.ex.position_lots("BTCUSDT") == 0
