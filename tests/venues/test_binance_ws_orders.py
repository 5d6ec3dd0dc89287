"""BinanceGateway with execution.order_transport = "ws" against the loopback exchange (in process): placements
and cancels go as order.place / algoOrder.place / order.cancel / algoOrder.cancel on /ws-fapi/v1 (counted by
the exchange per route), REST while the socket is down and the socket again once it is back, the same error
classes as REST, and a request whose answer never comes looked up by its client id, never sent twice."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import SecretStr

from bot.domain.types import OrderKind, OrderStatus, Side, TimeInForce, TriggerPrice
from bot.settings.core import VenueSection
from bot.venues.binance_usdm.gateway import BinanceGateway
from bot.venues.binance_usdm.wsapi import ws_api_url
from bot.venues.errors import DuplicateClientId, StopWouldTrigger
from bot.venues.ports import OrderRequest
from tests.sim.server_helpers import running_server


@pytest.fixture
async def sim():
    async with running_server() as (server, base):
        v = VenueSection(name="binance-usdm", environment="exchange-sim", rest_url=base,
                         ws_private_url=base.replace("http", "ws") + "/private", symbols=("BTCUSDT",),
                         api_key=SecretStr("sim-key"), api_secret=SecretStr("sim-secret"), request_timeout_ms=400,
                         ambiguous_lookup_delays_ms=(0, 200, 400))
        g = BinanceGateway(v, order_transport="ws")
        await asyncio.wait_for(g.start(), 10)
        assert g.ws_api is not None and await g.ws_api.socket.wait_up(10.0)
        await asyncio.wait_for(server.next_depth("BTCUSDT", 5.0), 10)
        try:
            yield server, g
        finally:
            await asyncio.wait_for(g.close(), 10)


def below_bid(server, ticks: int) -> int:
    return server.ex.markets["BTCUSDT"].book.bbo()[0] - ticks


def entry(cid: str, price_ticks: int) -> OrderRequest:
    return OrderRequest(cid, "BTCUSDT", Side.BUY, OrderKind.LIMIT, 2, price_ticks, time_in_force=TimeInForce.GTC)


def stop(cid: str, trigger_ticks: int) -> OrderRequest:
    return OrderRequest(cid, "BTCUSDT", Side.SELL, OrderKind.STOP_MARKET, 2, trigger_ticks=trigger_ticks,
                        close_position=True, working_type=TriggerPrice.MARK)


def test_ws_api_url_per_environment():
    assert ws_api_url("exchange-sim", "http://127.0.0.1:9/") == "ws://127.0.0.1:9/ws-fapi/v1"
    assert ws_api_url("mainnet", "") == "wss://ws-fapi.binance.com/ws-fapi/v1"
    assert ws_api_url("testnet", "") == "wss://testnet.binancefuture.com/ws-fapi/v1"


async def test_orders_and_cancels_go_over_the_socket_with_rest_errors(sim):
    server, g = sim
    ack = await g.submit(entry("w1-entry", below_bid(server, 40)))
    assert ack.status is OrderStatus.NEW and ack.venue_order_id
    ack = await g.submit(stop("w1-sl", below_bid(server, 400)))
    assert ack.status is OrderStatus.NEW and ack.venue_order_id
    assert server.ex.query_algo("BTCUSDT", "w1-sl", None).status == "NEW"
    await g.cancel("BTCUSDT", "w1-entry")
    await g.cancel("BTCUSDT", "w1-sl", conditional=True)
    await g.cancel("BTCUSDT", "w1-sl", conditional=True)  # not open any more: idempotent, as on REST
    assert not server.ex.open_orders("BTCUSDT") and not server.ex.open_algo_orders("BTCUSDT")
    req = server.requests
    assert req.get("WS order.place") == 1 and req.get("WS algoOrder.place") == 1
    assert req.get("WS order.cancel") == 1 and req.get("WS algoOrder.cancel") == 2
    assert "POST /fapi/v1/order" not in req and "POST /fapi/v1/algoOrder" not in req
    assert "DELETE /fapi/v1/order" not in req
    # the same error classes as REST
    server.faults.apply({"kind": "reject_next_stop", "code": -2021})
    with pytest.raises(StopWouldTrigger):
        await g.submit(stop("w2-sl", below_bid(server, 400)))
    await g.submit(entry("w3-entry", below_bid(server, 40)))
    with pytest.raises(DuplicateClientId):
        await g.submit(entry("w3-entry", below_bid(server, 41)))
    assert g.stats["rest_fallbacks"] == 0 and g.limiter.used[1] >= 4  # the rateLimits fed the limiter


async def test_socket_down_orders_go_by_rest_then_back_to_the_socket(sim):
    """... and what the operator is shown of it (order_transport_state: ports.OrderTransportReport)."""
    server, g = sim
    before = g.order_transport_state()
    assert (before.venue, before.configured, before.state, before.reconnects) == ("binance-usdm", "ws", "up", 0)
    assert (before.ws_requests, before.rest_fallbacks) == (0, 0)
    server.faults.apply({"kind": "drop_ws", "route": "ws-api", "refuse_ms": 800})
    for _ in range(500):  # bounded: 5 s
        if not g.ws_api.up:
            break
        await asyncio.sleep(0.01)
    assert not g.ws_api.up
    await g.submit(entry("d1-entry", below_bid(server, 40)))
    await g.cancel("BTCUSDT", "d1-entry")
    assert server.requests.get("POST /fapi/v1/order") == 1 and server.requests.get("DELETE /fapi/v1/order") == 1
    assert "WS order.place" not in server.requests
    down = g.order_transport_state()
    assert (down.state, down.rest_fallbacks, down.ws_requests) == ("down", 2, 0) and down.since_ns > before.since_ns
    assert down.last_error and "sim-secret" not in down.last_error and "sim-key" not in down.last_error
    assert await g.ws_api.socket.wait_up(10.0)  # reconnected in the background after the refusal
    await g.submit(entry("d2-entry", below_bid(server, 40)))
    assert server.requests.get("WS order.place") == 1 and server.requests.get("POST /fapi/v1/order") == 1
    assert g.stats["rest_fallbacks"] == 2 and g.ws_api.socket.stats["connects"] >= 2
    back = g.order_transport_state()
    assert (back.state, back.reconnects, back.ws_requests, back.rest_fallbacks) == ("up", 1, 1, 2)
    assert back.since_ns > down.since_ns and back.last_error  # why it was last down (or a refused retry)


def test_rest_transport_is_shown_disabled():
    v = VenueSection(name="binance-usdm", environment="exchange-sim", rest_url="http://127.0.0.1:9",
                     symbols=("BTCUSDT",))
    snap = BinanceGateway(v).order_transport_state()
    assert (snap.configured, snap.state, snap.ws_requests, snap.rest_fallbacks) == ("rest", "disabled", 0, 0)


@pytest.mark.parametrize("close", [False, True])
async def test_an_unanswered_placement_is_looked_up_by_client_id_not_sent_again(sim, close):
    server, g = sim
    server.faults.apply({"kind": "ws_api_silence", "count": 1, "close": close})
    ack = await g.submit(entry("q1-entry", below_bid(server, 40)))
    assert ack.status is OrderStatus.NEW and ack.venue_order_id
    assert g.stats["ambiguous"] == 1 and g.stats["ambiguous_found"] == 1
    assert server.requests.get("WS order.place") == 1 and "POST /fapi/v1/order" not in server.requests
    assert [o.client_id for o in server.ex.orders.values()].count("q1-entry") == 1


async def test_error_after_execute_on_a_stop_is_resolved_by_client_algo_id(sim):
    server, g = sim
    server.faults.apply({"kind": "error_after_execute", "count": 1, "status": 503})
    ack = await g.submit(stop("e1-sl", below_bid(server, 400)))
    assert ack.status is OrderStatus.NEW and g.stats["ambiguous_found"] == 1
    assert [a.client_algo_id for a in server.ex.algos.values()].count("e1-sl") == 1


# ---------------------------------------------------------------------------------------------- pure parts
def test_frame_is_signed_over_the_sorted_params_with_json_integers():
    import hashlib
    import hmac

    import ccxt.async_support as ccxt
    import orjson

    from bot.venues.binance_usdm.wsapi import BinanceWsApi

    ex = ccxt.binanceusdm({"apiKey": "k", "secret": "s", "options": {"recvWindow": 5000}})
    w = BinanceWsApi(ex, "ws://127.0.0.1:9/ws-fapi/v1", timeout_ms=1000, on_response=lambda *a: None)
    params = {"symbol": "BTCUSDT", "side": "SELL", "clientAlgoId": "t1-sl", "closePosition": "true"}
    rid, frame = w.frame("algoOrder.place", params)
    msg = orjson.loads(frame)
    assert msg["id"] == rid and msg["method"] == "algoOrder.place" and params == {
        "symbol": "BTCUSDT", "side": "SELL", "clientAlgoId": "t1-sl", "closePosition": "true"}  # not modified
    p = msg["params"]
    assert isinstance(p["timestamp"], int) and p["recvWindow"] == 5000 and p["apiKey"] == "k"
    payload = (f"apiKey=k&clientAlgoId=t1-sl&closePosition=true&recvWindow=5000&side=SELL&symbol=BTCUSDT"
               f"&timestamp={p['timestamp']}")
    assert p["signature"] == hmac.new(b"s", payload.encode(), hashlib.sha256).hexdigest()
    assert w.frame("order.cancel", params)[0] == rid + 1


@pytest.mark.parametrize(("status", "code", "placing", "want"), [
    (400, -1022, True, "OrderRejected"), (400, -2021, True, "StopWouldTrigger"),
    (400, -4116, True, "DuplicateClientId"), (400, -1021, True, "ClockUnsynced"),
    (503, -1007, True, "AmbiguousOutcome"), (503, -1007, False, "VenueUnavailable"),
    (429, -1003, True, "RateLimited"), (418, -1003, True, "RateLimited"), (400, -2011, False, "OrderNotFound"),
])
def test_ws_errors_translate_to_the_rest_error_classes(status, code, placing, want):
    from bot.venues.binance_usdm.errors import translate
    from bot.venues.binance_usdm.wsapi import error_of

    err = translate(error_of("order.place", {"id": 1, "status": status, "error": {"code": code, "msg": "m"}}),
                    placing=placing)
    assert type(err).__name__ == want
    if want == "RateLimited":
        assert err.banned is (status == 418)
    if want in ("OrderRejected", "StopWouldTrigger", "DuplicateClientId"):
        assert err.code == code


def test_rate_limits_become_the_rest_headers():
    from bot.venues.binance_usdm.wsapi import headers_of

    h = headers_of({"rateLimits": [
        {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 2400, "count": 7},
        {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 300, "count": 3},
        {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200, "count": 9}],
        "error": {"code": -1003, "msg": "m", "data": {"serverTime": 1000, "retryAfter": 3500}}})
    assert h == {"x-mbx-used-weight-1m": "7", "x-mbx-order-count-10s": "3", "x-mbx-order-count-1m": "9",
                 "Retry-After": "3"}
