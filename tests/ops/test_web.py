"""The live web view's server side (bot.ops.web) on a real OpsServer, and the stops/targets/resting orders
it shows (bot.ops.legs) from a real trade machine. The browser test is tests/test_web_view_e2e.py."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import orjson
import pytest

from bot.ops.legs import protection_and_orders, publish
from bot.ops.server import OpsServer
from bot.ops.state import RuntimeState
from bot.ops.web import COOKIE, view_cookie_value
from bot.settings.ops import OpsSection
from tests.execution.test_trade_machine import machine, opened
from tests.ops.conftest import AUTH, TOKEN

TIMEOUT = aiohttp.ClientTimeout(total=5)


def test_an_open_trade_shows_its_stop_targets_and_resting_legs() -> None:
    m = machine()
    opened(m)  # entry filled, stop acknowledged, take-profits sent
    prot, orders = protection_and_orders([m])
    lim = m.lim
    assert prot["BTCUSDT"]["stop_price"] == lim.px(m.plan.stop_ticks) > 0
    assert prot["BTCUSDT"]["stop_confirmed"] is True
    assert prot["BTCUSDT"]["targets"] == sorted(lim.px(px) for px, _ in m.plan.tp_tiers)
    by_cid = {o["client_id"]: o for o in orders}
    assert set(by_cid) == {"t7-sl", "t7-tp1", "t7-tp2"}  # the filled entry is not resting
    assert by_cid["t7-sl"]["kind"] == "STOP_MARKET" and by_cid["t7-sl"]["price"] == prot["BTCUSDT"]["stop_price"]
    assert by_cid["t7-sl"]["status"] == "NEW" and by_cid["t7-sl"]["confirmed"] is True
    assert by_cid["t7-tp1"]["status"] == "PENDING_NEW" and by_cid["t7-tp1"]["confirmed"] is False
    assert sum(o["qty"] for o in orders if o["role"] == "tp") == pytest.approx(lim.qty(m.pos_lots))

    # into the runtime state: a position refreshed from the account (no stop) still shows the stop
    st = RuntimeState(now_ns=1)
    st.set_position("BTCUSDT", side="long", qty=lim.qty(m.pos_lots), entry_price=50_000.0)
    publish(st, [m])
    pos = st.status(2)["positions"][0]
    assert pos["stop_price"] == prot["BTCUSDT"]["stop_price"] and pos["targets"] == prot["BTCUSDT"]["targets"]
    assert {o["client_id"] for o in st.status(2)["open_orders"]} == {"t7-sl", "t7-tp1", "t7-tp2"}
    # closed: nothing resting, nothing protected
    publish(st, [])
    assert st.status(3)["open_orders"] == [] and st.protection == {}


async def test_token_once_then_a_cookie_that_opens_the_view_only(server: OpsServer) -> None:
    jar = aiohttp.CookieJar(unsafe=True)  # keep cookies for 127.0.0.1
    async with aiohttp.ClientSession(timeout=TIMEOUT, cookie_jar=jar) as s:
        async with s.get(server.url + "/view") as r:
            assert r.status == 401 and "/view?token=" in await r.text()
        async with s.get(server.url + "/view?token=wrong", allow_redirects=False) as r:
            assert r.status == 401 and "Set-Cookie" not in r.headers
        async with s.get(server.url + f"/view?token={TOKEN}", allow_redirects=False) as r:
            assert r.status == 303 and r.headers["Location"] == "/view"
            cookie = r.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/view" in cookie
        assert TOKEN not in cookie and view_cookie_value(TOKEN) in cookie  # a derived value, not the token
        async with s.get(server.url + "/view") as r:
            page = await r.text()
            assert r.status == 200 and "/view/static/app.js" in page
            assert "script-src 'self'" in r.headers["Content-Security-Policy"]
        async with s.get(server.url + "/view/static/app.js") as r:
            assert r.status == 200 and "EventSource" in await r.text()
        async with s.get(server.url + "/view/static/../server.py") as r:
            assert r.status in (401, 404)
        # the cookie opens nothing else: /status and /control still need the bearer header
        async with s.get(server.url + "/status", headers={"Cookie": f"{COOKIE}={view_cookie_value(TOKEN)}"}) as r:
            assert r.status == 401
    async with aiohttp.ClientSession(timeout=TIMEOUT) as s, s.get(server.url + "/view/snapshot", headers=AUTH) as r:
        assert r.status == 200 and "status" in await r.json()


async def test_a_foreign_host_header_is_refused_on_loopback(server: OpsServer) -> None:
    async with aiohttp.ClientSession(timeout=TIMEOUT) as s, \
            s.get(server.url + f"/view?token={TOKEN}", headers={"Host": "evil.example:80"},
                  allow_redirects=False) as r:
        assert r.status == 403


async def test_events_carry_the_state_as_it_changes_and_stop_does_not_wait_for_them(
        state: RuntimeState, clock: list[int]) -> None:
    srv = OpsServer(state, OpsSection(port=0), clock=lambda: clock[0], token=TOKEN)
    srv.web.interval_s = 0.05
    srv.web.extras = lambda: {"books": {"BTCUSDT": {"bid": 1.0, "ask": 1.1, "price_decimals": 1}}, "trades": [],
                              "equity": {"equity": 1000.0, "drawdown_pct": 0.0}}
    await srv.start()
    try:
        seen: list[dict] = []
        async with aiohttp.ClientSession(timeout=TIMEOUT) as s, s.get(srv.url + "/view/events", headers=AUTH) as r:
            assert r.headers["Content-Type"].startswith("text/event-stream")
            async for line in r.content:
                if line.startswith(b"data: "):
                    seen.append(orjson.loads(line[6:]))
                    if len(seen) == 1:  # the bot's state changes: the next event says so
                        state.set_position("ETHUSDT", side="short", qty=0.5, entry_price=3000.0)
                    if len(seen) == 3:
                        break
        assert seen[0]["status"]["positions"] == []
        assert seen[-1]["status"]["positions"][0]["symbol"] == "ETHUSDT"
        assert seen[-1]["books"]["BTCUSDT"]["bid"] == 1.0 and seen[-1]["equity"]["equity"] == 1000.0
        assert seen[-1]["equity"]["series"][-1][1] == 1000.0  # the chart ends at the equity shown
        # a page left open: stopping the server ends its stream at once (not at aiohttp's shutdown timeout)
        async with aiohttp.ClientSession(timeout=TIMEOUT) as s, s.get(srv.url + "/view/events", headers=AUTH) as r:
            await r.content.readline()
            t0 = time.monotonic()
            await asyncio.wait_for(srv.stop(), 5)
            assert time.monotonic() - t0 < 2.0
    finally:
        await srv.stop()
