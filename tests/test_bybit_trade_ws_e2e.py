"""Bybit order entry over websocket (execution.order_transport = "ws") with a real `python -m bot exchange-sim
--protocol bybit` process: the /v5/trade socket dropped mid-run (REST meanwhile, then the socket again), a
request whose answer never comes or whose socket drops after the send (looked up by orderLinkId, never
sent twice), and the whole bot trading over it (entry with its stop at the exchange, closed; its /status and
/metrics then show the socket up with the exchange's counts, down when the exchange drops it, up again). The
exchange is read only through its own endpoints (`/_sim/state`, signed v5 REST)."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from bot.domain.types import OrderKind, OrderStatus, Side, TimeInForce
from bot.drill.procs import Sim, rows, until, webhook
from bot.drill.watcher import Watcher
from bot.settings.core import VenueSection
from bot.venues.bybit.gateway import BybitGateway
from bot.venues.ports import OrderRequest
from tests.test_bybit_exchange_sim_e2e import LIVELY
from tests.test_bybit_restart_drills import flat_everything, start_bot, v5

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    tmp = tmp_path_factory.mktemp("bybit-trade-ws")
    (tmp / "lively.toml").write_text(LIVELY)
    s = Sim(tmp, protocol="bybit", args=("--config", str(tmp / "lively.toml")))
    try:
        s.wait_ready(30)
        yield s
    finally:
        s.stop()


async def sim_get(sim: Sim, path: str) -> Any:
    async with aiohttp.ClientSession() as http, http.get(f"{sim.base}{path}") as r:
        return await r.json()


async def fault(sim: Sim, **f: Any) -> Any:
    async with aiohttp.ClientSession() as http, http.post(f"{sim.base}/_sim/fault", json=f) as r:
        assert r.status == 200
        return await r.json()


async def counts(sim: Sim) -> tuple[int, int]:
    """(order.create over the socket, POST /v5/order/create) the exchange has served since it started."""
    req = (await sim_get(sim, "/_sim/state"))["requests"]
    return req.get("WS order.create", 0), req.get("POST /v5/order/create", 0)


@pytest.fixture
async def gw(sim: Sim) -> AsyncIterator[BybitGateway]:
    ws = f"ws://127.0.0.1:{sim.port}"
    v = VenueSection(name="bybit", environment="exchange-sim", symbols=("BTCUSDT",), rest_url=sim.base,
                     ws_public_url=f"{ws}/v5/public/linear", ws_private_url=f"{ws}/v5/private",
                     api_key=SecretStr("sim-key"), api_secret=SecretStr("sim-secret"))
    g = BybitGateway(v, order_transport="ws")
    await asyncio.wait_for(g.start(), 15)
    assert g.trade_ws is not None
    try:
        await asyncio.wait_for(g.trade_ws.ready.wait(), 10)
        yield g
    finally:
        await asyncio.wait_for(g.close(), 10)


async def far_limit(sim: Sim, g: BybitGateway, cid: str) -> OrderRequest:
    for _ in range(200):  # bounded (~10 s): a just-started loopback may not have quoted the book yet
        book = (await sim_get(sim, "/_sim/state"))["books"]["BTCUSDT"]
        if book.get("best_bid"):
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the loopback's BTCUSDT book never got a bid")
    inst = g.instrument("BTCUSDT")
    return OrderRequest(cid, "BTCUSDT", Side.BUY, OrderKind.LIMIT, inst.qty_to_lots("0.01"),
                        price_ticks=int(inst.price_to_ticks(str(book["best_bid"])) * 0.97),
                        time_in_force=TimeInForce.GTX)


async def test_socket_dropped_mid_run_orders_go_over_rest_then_back_over_ws(sim: Sim, gw: BybitGateway) -> None:
    g = gw
    assert g.trade_ws is not None
    ws0, rest0 = await counts(sim)
    await g.submit(await far_limit(sim, g, "w1-a"))
    assert await counts(sim) == (ws0 + 1, rest0)
    assert (await fault(sim, kind="drop_ws", route="bybit-trade", refuse_ms=1500))["dropped"] >= 1
    await until("the trade socket seen down", lambda: not g.trade_ws.ready.is_set(), 5)  # type: ignore[union-attr]
    await g.submit(await far_limit(sim, g, "w1-b"))  # meanwhile: REST
    assert await counts(sim) == (ws0 + 1, rest0 + 1)
    await asyncio.wait_for(g.trade_ws.ready.wait(), 10)  # reconnected in the background
    await g.submit(await far_limit(sim, g, "w1-c"))
    assert await counts(sim) == (ws0 + 2, rest0 + 1)
    for cid in ("w1-a", "w1-b", "w1-c"):
        u = await g.fetch_order("BTCUSDT", cid)
        assert u is not None and u.status is OrderStatus.NEW, (cid, u)
        await g.cancel("BTCUSDT", cid)
    open_ = (await v5(sim, "GET", "/v5/order/realtime", symbol="BTCUSDT"))["list"]
    assert not [o for o in open_ if o["orderLinkId"].startswith("w1-")]


async def _one_order(sim: Sim, link: str) -> list[dict[str, Any]]:
    hist = await sim_get(sim, "/_sim/state?history=1")
    return [o for o in hist["orders"] if o["clientOrderId"] == link]


async def test_answer_never_comes_or_socket_drops_after_send_looked_up_not_duplicated(sim: Sim,
                                                                                      gw: BybitGateway) -> None:
    g = gw
    assert g.trade_ws is not None
    # 1. executed, never answered: the socket's request timeout (1 s here; venue.request_timeout_ms), then the
    # look-up by orderLinkId finds it
    g.trade_ws.timeout_s = 1.0
    await fault(sim, kind="error_after_execute", count=1)
    ws0, rest0 = await counts(sim)
    ack = await asyncio.wait_for(g.submit(await far_limit(sim, g, "w2-a")), 10)
    assert ack.status is OrderStatus.NEW and ack.venue_order_id
    assert g.trade_ws.stats["no_answer"] == 1 and g.stats["ambiguous_found"] == 1
    placed = await _one_order(sim, "w2-a")
    assert len(placed) == 1 and str(placed[0]["orderId"]) == ack.venue_order_id
    assert await counts(sim) == (ws0 + 1, rest0)  # never sent again, over either transport
    # 2. the socket drops while the (delayed) order is in flight: ambiguous, found once it exists
    await fault(sim, kind="delay_orders_ms", ms=700)
    task = asyncio.create_task(g.submit(await far_limit(sim, g, "w2-b")))
    await asyncio.sleep(0.2)
    await fault(sim, kind="drop_ws", route="bybit-trade")
    ack = await asyncio.wait_for(task, 10)
    await fault(sim, kind="delay_orders_ms", ms=0)
    assert ack.status is OrderStatus.NEW and g.trade_ws.stats["lost_in_flight"] == 1
    assert len(await _one_order(sim, "w2-b")) == 1
    assert await counts(sim) == (ws0 + 2, rest0)
    for cid in ("w2-a", "w2-b"):
        await g.cancel("BTCUSDT", cid)


async def operator_sees_the_socket(sim: Sim, bot: Any, state: Path, ws0: int, rest0: int) -> tuple[int, int]:
    """The running bot's /status and /metrics: the /v5/trade socket up, its requests those the exchange
    counted; dropped by the exchange (reconnects refused 1.5 s): down with why, then up with one reconnect.
    Returns the exchange's `counts` from before the drop (orders meanwhile go by REST)."""
    url = next(e["url"] for e in bot.events() if e.get("event") == "ops_listening")
    auth = {"Authorization": f"Bearer {(state / 'ops.token').read_text().strip()}"}

    async def transport() -> dict[str, Any]:
        async with aiohttp.ClientSession(headers=auth) as http, http.get(url + "/status") as r:
            return dict((await r.json())["order_transport"]["bybit"])

    async def ws_up() -> float:
        async with aiohttp.ClientSession(headers=auth) as http, http.get(url + "/metrics") as r:
            text = await r.text()
        return next(float(ln.split()[-1]) for ln in text.splitlines()
                    if ln.startswith('scalper_order_ws_up{venue="bybit"}'))

    async def same_counts() -> bool:  # bounded re-reads: a request the bot counted may still be on its way
        t, (ws1, rest1) = await transport(), await order_ops(sim)
        return t["state"] == "up" and (t["ws_requests"], t["rest_fallbacks"]) == (ws1 - ws0, rest1 - rest0)

    await until("the bot's /v5/trade counts equal the exchange's", same_counts, 5, bot)
    assert await ws_up() == 1.0
    before_drop = await counts(sim)
    await fault(sim, kind="drop_ws", route="bybit-trade", refuse_ms=1500)
    down = await until("/status: the socket down", lambda: _state_is(transport, "down"), 5, bot, step_s=0.05)
    assert down["last_error"] and down["configured"] == "ws", down
    back = await until("/status: the socket up again", lambda: _state_is(transport, "up"), 10, bot)
    assert back["reconnects"] == 1 and back["since_ns"] > down["since_ns"], back
    assert await ws_up() == 1.0
    return before_drop


async def order_ops(sim: Sim) -> tuple[int, int]:
    """(order ops over /v5/trade: create and cancel, by REST: create and cancel) the exchange has served."""
    req = (await sim_get(sim, "/_sim/state"))["requests"]
    return (sum(n for k, n in req.items() if k.startswith("WS order.")),
            req.get("POST /v5/order/create", 0) + req.get("POST /v5/order/cancel", 0))


async def _state_is(read: Any, state: str) -> dict[str, Any] | None:
    t = await read()
    return t if t["state"] == state else None


async def test_bot_trades_over_the_socket_with_its_stop_at_the_exchange(sim: Sim, tmp_path: Path) -> None:
    await flat_everything(sim)
    ws0, rest0 = await counts(sim)
    ops0 = await order_ops(sim)
    async with webhook() as hook:
        bot = start_bot(sim, tmp_path, hook.url, SCALPER__EXECUTION__ORDER_TRANSPORT="ws",
                        SCALPER__EXECUTION__MAX_HOLD_S="2", SCALPER__APP__ON_SHUTDOWN="flatten",
                        SCALPER__OPS__ENABLED="true", SCALPER__OPS__PORT="0")
        w = Watcher(sim.base, alive=bot.alive)
        await w.start()
        t0 = time.monotonic()
        try:
            t = await until("a trade CLOSED", lambda: rows(tmp_path, "SELECT * FROM trades WHERE state='CLOSED'"),
                            60, bot, step_s=0.1)
            t1 = time.monotonic()
            ws1, rest1 = await operator_sees_the_socket(sim, bot, tmp_path, *ops0)
            rc = await asyncio.to_thread(bot.term, 20.0)
            print(f"first trade closed after {t1 - t0:.1f} s, the bot stopped in {time.monotonic() - t1:.1f} s")
        finally:
            tracker = await w.stop()
            if bot.alive():
                bot.kill()
    assert rc == 0, f"bot exit {rc}; log {bot.log_path}"
    closed = t[0]
    assert closed["exit_reason"] in ("TIME_LIMIT", "STOP_LOSS", "TAKE_PROFIT"), closed
    sym, worst_s = tracker.worst()
    assert tracker.samples > 10 and worst_s <= 1.0, f"{sym} without an exchange-side stop {worst_s:.2f} s"
    # the entry carried its stop (attached stopLoss -> the position's stop at the exchange)
    hist = await sim_get(sim, "/_sim/state?history=1")
    entry = [o for o in hist["orders"] if o["clientOrderId"].startswith(f"{closed['trade_id']}-e")]
    assert entry, [o["clientOrderId"] for o in hist["orders"]]
    stops = [a for a in hist["algo_orders"] if a.get("orderType") == "STOP_MARKET" and a["closePosition"]]
    assert stops
    # every order over the socket until the operator check dropped it (orders go by REST meanwhile)
    assert ws1 - ws0 >= 2 and rest1 == rest0, (ws0, ws1, rest0, rest1)
    assert any(e.get("event") == "trade socket ready" for e in bot.events())
