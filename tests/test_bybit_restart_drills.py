"""Restart drills A and B of tests/test_restart_drills.py on Bybit v5 (issue 16, "What it must show"), with
real processes: `python -m bot exchange-sim --protocol bybit` and `python -m bot run -c
config/exchange-sim-bybit.toml --no-view`, killed with SIGKILL mid-trade and started again. The exchange is
asked over signed Bybit v5 REST (HMAC as tests/sim/test_bybit_sim_rest.py), the journal read read-only.

On Bybit the protective stop is the POSITION's (attached `stopLoss` / trading-stop, exchange-facts B3): it
is not an order with our orderLinkId, it shows in `/v5/position/list` as `stopLoss` and in
`/v5/order/realtime` as a system StopLoss order with orderLinkId "", and it ends with the position.

A: SIGKILL with a trade PROTECTED -> the position keeps its stop while the bot is down; the restarted bot
   adopts the trade and completes it (a max-hold of 1 s fires at once) with reason, PnL and fees.
B: SIGKILL mid-trade, the position closed BY HAND (a reduce-only Market order) while the bot is down ->
   after the restart's reconciliation no order of the bot is left open at the exchange (no orphan
   take-profit or stop) and the journal closes the trade as MANUAL at the hand-made fill's price.

One simulator for the module (its first Bybit entry on the generated market takes ~20 s with the lively
settings of tests/test_bybit_exchange_sim_e2e.py); each drill starts by flattening it.
"""

from __future__ import annotations

import hashlib
import hmac
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import orjson
import pytest

from bot.drill.procs import Bot, Sim, rows, until, webhook
from bot.venues.bybit.orders import client_id_of
from tests.support.drills import QUICK_WARMUP, assert_completed_after_adoption, new_protected_trade
from tests.test_bybit_exchange_sim_e2e import LIVELY, bybit_env

KEY, SECRET = "sim-key", "sim-secret"  # what bot.drill.procs.Bot gives the bot
SYMBOLS = ("BTCUSDT", "ETHUSDT")
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    tmp = tmp_path_factory.mktemp("bybit-sim")
    (tmp / "lively.toml").write_text(LIVELY)
    s = Sim(tmp, protocol="bybit", args=("--config", str(tmp / "lively.toml")))
    try:
        s.wait_ready(30)
        yield s
    finally:
        s.stop()


async def v5(sim: Sim, method: str, path: str, **params: Any) -> Any:
    """A signed Bybit v5 request (X-BAPI-SIGN = HMAC of ts + key + recvWindow + query | body); its `result`."""
    params = {"category": "linear", **params}
    ts = str(int(time.time() * 1000))
    payload = orjson.dumps(params).decode() if method == "POST" else urlencode(params)
    sig = hmac.new(SECRET.encode(), (ts + KEY + "5000" + payload).encode(), hashlib.sha256).hexdigest()
    headers = {"X-BAPI-API-KEY": KEY, "X-BAPI-TIMESTAMP": ts, "X-BAPI-RECV-WINDOW": "5000", "X-BAPI-SIGN": sig,
               "Content-Type": "application/json"}
    url = f"{sim.base}{path}" + (f"?{payload}" if method == "GET" else "")
    async with aiohttp.ClientSession() as http, http.request(
            method, url, data=payload if method == "POST" else None, headers=headers) as r:
        body = await r.json()
    assert r.status == 200 and body["retCode"] == 0, (method, path, params, body)
    return body["result"]


async def position(sim: Sim, symbol: str) -> dict[str, Any]:
    """The position row with `amt` added: signed size (+ long, - short, 0 flat)."""
    (p,) = (await v5(sim, "GET", "/v5/position/list", symbol=symbol))["list"]
    size = float(p["size"] or 0)
    return {**p, "amt": size if p["side"] == "Buy" else -size if p["side"] == "Sell" else 0.0}


async def open_orders(sim: Sim, symbol: str) -> list[dict[str, Any]]:
    """Every open order on `symbol`: regular, conditional and the position's TP/SL system orders."""
    return list((await v5(sim, "GET", "/v5/order/realtime", symbol=symbol))["list"])


async def flat_everything(sim: Sim) -> None:
    """Leave the exchange flat with nothing open (the next drill starts clean)."""
    for s in SYMBOLS:
        amt = (await position(sim, s))["amt"]
        if amt:
            await v5(sim, "POST", "/v5/order/create", symbol=s, side="Sell" if amt > 0 else "Buy",
                     orderType="Market", qty=f"{abs(amt)}", reduceOnly=True)
        await v5(sim, "POST", "/v5/order/cancel-all", symbol=s)
        assert (await position(sim, s))["amt"] == 0 and await open_orders(sim, s) == []


LIVE_LEGS = "SELECT client_id, status FROM legs WHERE trade_id=? AND status IN ('PENDING_NEW', 'NEW', " \
            "'PARTIALLY_FILLED', 'TRIGGERED')"


def start_bot(sim: Sim, state: Path, hook: str, **over: str) -> Bot:
    return Bot(sim, state, hook, config="config/exchange-sim-bybit.toml",
               **{**bybit_env(sim), **QUICK_WARMUP, **over})


async def protected_then_sigkill(sim: Sim, state: Path, hook: str) -> tuple[dict[str, Any], float]:
    """A bot trades until a trade is PROTECTED, then SIGKILL; the trade and the seconds it took."""
    t0 = time.monotonic()
    bot = start_bot(sim, state, hook)
    try:
        t = await until("a trade PROTECTED", lambda: new_protected_trade(state), 75, bot, step_s=0.05)
    finally:
        bot.kill()  # SIGKILL: no shutdown code runs
    return t, time.monotonic() - t0


def bots_orders(orders: list[dict[str, Any]], tid: str) -> list[dict[str, Any]]:
    """The orders that are the bot's: its own orderLinkIds, or the position's TP/SL system orders (the
    bot's stop on Bybit; nobody else placed any in these drills)."""
    return [o for o in orders if o["orderLinkId"].startswith(tid + "-") or
            (o["orderLinkId"] == "" and o["stopOrderType"] in ("StopLoss", "TakeProfit"))]


async def test_drill_a_sigkill_mid_trade_keeps_the_stop_and_the_trade_completes(sim: Sim, tmp_path: Path) -> None:
    await flat_everything(sim)
    async with webhook() as hook:
        t, took_s = await protected_then_sigkill(sim, tmp_path, hook.url)
        tid, sym = t["trade_id"], t["symbol"]
        # while the bot is down the exchange holds the position AND its stop (the position's stopLoss, on
        # the losing side of the entry), for the whole position
        p = await position(sim, sym)
        assert p["amt"] != 0 and (p["amt"] > 0) == (t["side"] == "long"), (p, t)
        sl = float(p["stopLoss"])
        assert sl > 0 and (sl < float(p["avgPrice"])) == (t["side"] == "long"), p
        stops = [o for o in await open_orders(sim, sym) if o["stopOrderType"] == "StopLoss"]
        assert len(stops) == 1 and float(stops[0]["triggerPrice"]) == sl and stops[0]["closeOnTrigger"], stops

        # restart with a max-hold shorter than the trade's age: the adopted trade's deadline fires at once
        t1 = time.monotonic()
        bot2 = start_bot(sim, tmp_path, hook.url, SCALPER__EXECUTION__MAX_HOLD_S="1",
                         SCALPER__APP__ON_SHUTDOWN="flatten")
        try:
            done = await until(f"{tid} CLOSED after the restart", lambda: rows(
                tmp_path, "SELECT * FROM trades WHERE trade_id=? AND state='CLOSED'", (tid,)), 30, bot2)
            closed = done[0]
            # adopted, entries halted until the exchange and the journal agreed, the numbers its fills'
            fills = assert_completed_after_adoption(tmp_path, t, closed, bot2)
            # the journal's fills are the exchange's executions of the trade's orders
            venue = (await v5(sim, "GET", "/v5/execution/list", symbol=sym, limit=100))["list"]
            ids = {e["execId"] for e in venue}
            assert {f["venue_trade_id"] for f in fills} <= ids, (fills, venue)
            # and the exchange is flat with nothing of the bot's left open
            await until("flat with no order of the bot", lambda: _flat_and_clean(sim, sym, tid), 10, bot2)
            restart_s = time.monotonic() - t1
        finally:
            assert bot2.term() == 0
    print(f"drill A on Bybit: PROTECTED after {took_s:.1f} s, closed {closed['exit_reason']} "
          f"{restart_s:.1f} s after the restart")


async def _flat_and_clean(sim: Sim, sym: str, tid: str) -> bool:
    p = await position(sim, sym)
    return p["amt"] == 0 and not bots_orders(await open_orders(sim, sym), tid)


async def test_drill_b_position_closed_by_hand_while_down_leaves_no_orphan(sim: Sim, tmp_path: Path) -> None:
    await flat_everything(sim)
    async with webhook() as hook:
        t, took_s = await protected_then_sigkill(sim, tmp_path, hook.url)
        tid, sym = t["trade_id"], t["symbol"]
        amt = (await position(sim, sym))["amt"]
        assert amt != 0
        before = await open_orders(sim, sym)
        hand = await v5(sim, "POST", "/v5/order/create", symbol=sym, side="Sell" if amt > 0 else "Buy",
                        orderType="Market", qty=f"{abs(amt)}", reduceOnly=True, orderLinkId="by-hand-close")
        hand_fills = (await v5(sim, "GET", "/v5/execution/list", symbol=sym, orderId=hand["orderId"]))["list"]
        assert hand_fills and sum(float(e["execQty"]) for e in hand_fills) == pytest.approx(abs(amt))
        assert (await position(sim, sym))["amt"] == 0
        # the position's stop ends with the position (exchange-facts B3) and resting reduce-only take-profits
        # with nothing left to reduce are expired by the exchange: whatever the bot's is still open now is an
        # orphan the restart must cancel; the journal still has the trade's stop and take-profits live
        left = bots_orders(await open_orders(sim, sym), tid)
        assert not [o for o in left if o["orderLinkId"] == ""], left
        live_before = {g["client_id"] for g in rows(tmp_path, LIVE_LEGS, (tid,))}
        assert {client_id_of(o["orderLinkId"]) for o in before if o["orderLinkId"]} <= live_before, (
            before, live_before)
        print(f"open before the hand close: {[(o['orderLinkId'], o['stopOrderType']) for o in before]}; "
              f"after: {[o['orderLinkId'] for o in left]}; live in the journal: {sorted(live_before)}")

        t1 = time.monotonic()
        restart_ns = time.time_ns()
        bot2 = start_bot(sim, tmp_path, hook.url, SCALPER__APP__ON_SHUTDOWN="flatten")
        try:
            done = await until(f"{tid} CLOSED after the restart", lambda: rows(
                tmp_path, "SELECT * FROM trades WHERE trade_id=? AND state='CLOSED'", (tid,)), 30, bot2)
            closed = done[0]
            assert closed["exit_reason"] == "MANUAL", closed
            qty = sum(float(e["execQty"]) for e in hand_fills)
            px = sum(float(e["execQty"]) * float(e["execPrice"]) for e in hand_fills) / qty
            assert closed["exit_price"] == pytest.approx(px)
            assert closed["exit_ts_ns"] == max(int(e["execTime"]) for e in hand_fills) * 1_000_000
            manual = rows(tmp_path, "SELECT * FROM fills WHERE trade_id=? AND role='exit'", (tid,))
            assert sorted(f["venue_trade_id"] for f in manual) == sorted(e["execId"] for e in hand_fills)
            assert closed["pnl"] is not None and closed["fees"] > 0
            # the bot's own cancel of the orphans is not "a stop cancelled by someone": no halt, no flatten
            assert not [e for e in bot2.events() if e.get("event") == "symbol_halted"]
            # no order of the bot survives the reconciliation to fire on a later position, and the journal
            # agrees: every leg of the trade is terminal
            await until("no order of the bot left", lambda: _flat_and_clean(sim, sym, tid), 10, bot2)
            assert [o for o in await open_orders(sim, sym) if o["reduceOnly"] or o["closeOnTrigger"]] == []
            assert rows(tmp_path, LIVE_LEGS, (tid,)) == [], rows(tmp_path, "SELECT * FROM legs WHERE trade_id=?",
                                                                 (tid,))
            # the restart learnt the position was gone before re-arming any exit: the only leg it made is the
            # hand close's record, nothing was refused (no take-profit re-sent into 110017 "nothing to reduce")
            new_legs = rows(tmp_path, "SELECT client_id, role FROM legs WHERE trade_id=? AND created_ns>=?",
                            (tid, restart_ns))
            assert [g["role"] for g in new_legs] == ["exit"], new_legs
            assert rows(tmp_path, "SELECT * FROM rejections WHERE trade_id=? AND ts_ns>=?", (tid, restart_ns)) == []
            # the stop ended with the position (B3): expired, not "not found at the venue" (REJECTED)
            stops = rows(tmp_path, "SELECT client_id, status FROM legs WHERE trade_id=? AND role='stop'", (tid,))
            assert stops and all(g["status"] in ("EXPIRED", "CANCELED") for g in stops), stops
            # the bot's orders that were open when it died are final at the exchange too, and none filled
            for cid in {o["orderLinkId"] for o in before if o["orderLinkId"]}:
                (h,) = (await v5(sim, "GET", "/v5/order/history", symbol=sym, orderLinkId=cid))["list"]
                assert h["orderStatus"] in ("Cancelled", "Deactivated") and float(h["cumExecQty"]) == 0, h
            await until("the emergency alert", lambda: [x for x in hook.texts("emergency") if tid in x], 10, bot2)
            restart_s = time.monotonic() - t1
        finally:
            assert bot2.term() == 0
    print(f"drill B on Bybit: PROTECTED after {took_s:.1f} s, closed MANUAL and clean {restart_s:.1f} s after "
          f"the restart")
