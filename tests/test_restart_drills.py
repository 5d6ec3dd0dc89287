"""Restart drills (issue 6) with the real processes: `python -m bot exchange-sim` on a free port and
`python -m bot run -c config/exchange-sim.toml --no-view` (ccxt + websockets) against it, killed with
SIGKILL mid-trade and started again. The journal is read read-only; the exchange is asked over signed REST.

A: SIGKILL with a trade PROTECTED -> the position keeps its stop at the exchange while the bot is down; the
   restarted bot adopts the trade and completes it (a short max-hold fires at once) with reason, PnL, fees.
B: SIGKILL mid-trade, the position closed BY HAND while the bot is down -> after the restart no stop or
   take-profit of it is left at the exchange, and the journal closes the trade as MANUAL at the price of
   the hand-made fill; an emergency alert reaches the webhook.
C: a position opened by hand (no journal trade) gets a protective stop from config and an alert; exit
   orders with no position and an entry order of no trade are cancelled; after a user-stream drop the
   same happens to a position opened while the bot runs (reconcile after every reconnect); SIGTERM keeps
   the protected position and closes the one whose stop someone cancelled; exit code 0.

A and B start their bots with the shorter indicator warm-up (tests.support.drills.QUICK_WARMUP: the first
trade ~5-8 s after start); C keeps the demo pace, it wants no trade of the bot's own on the symbols it uses.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.drill.procs import Bot, Sim, rows, until, webhook
from tests.support.drills import QUICK_WARMUP, assert_completed_after_adoption, new_protected_trade
from tests.support.drills import binance_rest as rest

SEED = 7
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    s = Sim(tmp_path_factory.mktemp("sim"), seed=SEED)
    s.wait_ready()
    yield s
    s.stop()


async def position(sim: Sim, symbol: str) -> tuple[float, float]:
    body = await rest(sim, "GET", "/fapi/v2/positionRisk", symbol=symbol)
    p = next((r for r in body if r["symbol"] == symbol), None)
    return (float(p["positionAmt"]), float(p["entryPrice"])) if p else (0.0, 0.0)


async def open_orders(sim: Sim, symbol: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(regular, algo) orders open at the exchange on `symbol`."""
    return (await rest(sim, "GET", "/fapi/v1/openOrders", symbol=symbol),
            await rest(sim, "GET", "/fapi/v1/openAlgoOrders", symbol=symbol))


async def flat_everything(sim: Sim, symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT")) -> None:
    """Leave the exchange flat with nothing open (the next drill starts clean)."""
    for s in symbols:
        amt, _ = await position(sim, s)
        if amt:
            await rest(sim, "POST", "/fapi/v1/order", symbol=s, side="SELL" if amt > 0 else "BUY", type="MARKET",
                       quantity=f"{abs(amt)}", reduceOnly="true")
        await rest(sim, "DELETE", "/fapi/v1/allOpenOrders", symbol=s)
        await rest(sim, "DELETE", "/fapi/v1/algoOpenOrders", symbol=s)


async def test_drill_a_sigkill_mid_trade_then_adopted_and_completed(sim: Sim, tmp_path: Path) -> None:
    async with webhook() as hook:
        bot = Bot(sim, tmp_path, hook.url, **QUICK_WARMUP)
        try:
            t = await until("a trade PROTECTED", lambda: new_protected_trade(tmp_path), 75, bot)
        finally:
            bot.kill()  # SIGKILL: no shutdown code runs
        tid, sym = t["trade_id"], t["symbol"]
        stop_legs = {r["client_id"] for r in rows(tmp_path, "SELECT * FROM legs WHERE trade_id=? AND role='stop'",
                                                  (tid,))}
        # while the bot is down the exchange still holds the position AND a stop of the trade for all of it
        # (killed within 100 ms of PROTECTED: a superseded stop's cancel may not have been confirmed yet)
        amt, _ = await position(sim, sym)
        assert amt != 0 and (amt > 0) == (t["side"] == "long")
        _, algos = await open_orders(sim, sym)
        assert algos and all((a["clientAlgoId"] in stop_legs, a["orderType"], a["reduceOnly"]) == (
            True, "STOP_MARKET", True) for a in algos), (algos, stop_legs)
        assert any(float(a["quantity"]) == abs(amt) for a in algos)

        # restart with a max-hold shorter than the trade's age: the adopted trade's deadline fires at once
        bot2 = Bot(sim, tmp_path, hook.url, SCALPER__EXECUTION__MAX_HOLD_S="1", SCALPER__APP__ON_SHUTDOWN="flatten",
                   **QUICK_WARMUP)
        try:
            done = await until(f"{tid} CLOSED after the restart", lambda: rows(
                tmp_path, "SELECT * FROM trades WHERE trade_id=? AND state='CLOSED'", (tid,)), 30, bot2)
            # adopted, entries halted until the exchange and the journal agreed, the numbers its fills'
            assert_completed_after_adoption(tmp_path, t, done[0], bot2)
            # and the exchange is flat with nothing of the trade left open
            await until("flat at the exchange", lambda: _flat_and_clean(sim, sym, tid), 10, bot2)
        finally:
            assert bot2.term() == 0


async def _flat_and_clean(sim: Sim, sym: str, tid: str) -> bool:
    amt, _ = await position(sim, sym)
    regular, algos = await open_orders(sim, sym)
    left = [o["clientOrderId"] for o in regular] + [a["clientAlgoId"] for a in algos]
    return amt == 0 and not [c for c in left if c.startswith(tid + "-")]


async def test_drill_b_position_closed_by_hand_while_down(sim: Sim, tmp_path: Path) -> None:
    await flat_everything(sim)
    async with webhook() as hook:
        bot = Bot(sim, tmp_path, hook.url, **QUICK_WARMUP)
        try:
            t = await until("a trade PROTECTED", lambda: new_protected_trade(tmp_path), 75, bot)
        finally:
            bot.kill()
        tid, sym = t["trade_id"], t["symbol"]
        amt, _ = await position(sim, sym)
        assert amt != 0
        close_side = "SELL" if amt > 0 else "BUY"
        hand = await rest(sim, "POST", "/fapi/v1/order", symbol=sym, side=close_side, type="MARKET",
                          quantity=f"{abs(amt)}", reduceOnly="true", newClientOrderId="by-hand-close")
        assert hand["status"] == "FILLED"
        hand_fills = await rest(sim, "GET", "/fapi/v1/userTrades", symbol=sym, orderId=hand["orderId"])
        assert (await position(sim, sym))[0] == 0
        regular, algos = await open_orders(sim, sym)
        orphans = [a["clientAlgoId"] for a in algos if a["clientAlgoId"].startswith(tid + "-")]
        assert orphans, "the trade's stop outlives the position at the exchange: the orphan to clean up"

        bot2 = Bot(sim, tmp_path, hook.url, SCALPER__APP__ON_SHUTDOWN="flatten", **QUICK_WARMUP)
        try:
            done = await until(f"{tid} CLOSED after the restart", lambda: rows(
                tmp_path, "SELECT * FROM trades WHERE trade_id=? AND state='CLOSED'", (tid,)), 30, bot2)
            closed = done[0]
            assert closed["exit_reason"] == "MANUAL"
            qty = sum(float(f["qty"]) for f in hand_fills)
            px = sum(float(f["qty"]) * float(f["price"]) for f in hand_fills) / qty
            assert closed["exit_price"] == pytest.approx(px)
            assert closed["exit_ts_ns"] == max(int(f["time"]) for f in hand_fills) * 1_000_000
            manual = rows(tmp_path, "SELECT * FROM fills WHERE trade_id=? AND role='exit'", (tid,))
            assert [f["venue_trade_id"] for f in manual] == [str(f["id"]) for f in hand_fills]
            assert closed["pnl"] is not None and closed["fees"] > 0
            # the bot's own cancel of the orphan stop is not "a stop cancelled by someone": no halt, no flatten
            assert not [e for e in bot2.events() if e.get("event") == "symbol_halted"]
            assert [r["client_id"] for r in rows(tmp_path, "SELECT client_id FROM legs WHERE trade_id=? AND "
                                                 "role='exit'", (tid,))] == [f"{tid}-manual"]
            # no orphan stop or take-profit survives to fire on a later position
            await until("no order of the trade left", lambda: _flat_and_clean(sim, sym, tid), 10, bot2)
            regular, algos = await open_orders(sim, sym)
            assert [o for o in regular if o["reduceOnly"]] == [] and [a for a in algos if a["reduceOnly"]] == []
            await until("the emergency alert", lambda: [x for x in hook.texts("emergency") if tid in x], 10, bot2)
        finally:
            assert bot2.term() == 0


async def test_drill_c_unknown_position_and_orphans(sim: Sim, tmp_path: Path) -> None:
    await flat_everything(sim)
    async with webhook() as hook:
        # by hand, with no bot running: a BTC position nobody planned, and on ETH (flat) exit orders and an
        # entry order that belong to no trade
        await rest(sim, "POST", "/fapi/v1/order", symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.010",
                   newClientOrderId="by-hand-open")
        btc_amt, btc_entry = await position(sim, "BTCUSDT")
        assert btc_amt == pytest.approx(0.01)
        eth = (await rest(sim, "GET", "/fapi/v1/ticker/bookTicker", symbol="ETHUSDT"))
        bid = float(eth["bidPrice"])
        await rest(sim, "POST", "/fapi/v1/algoOrder", algoType="CONDITIONAL", symbol="ETHUSDT", side="SELL",
                   type="STOP_MARKET", triggerPrice=f"{bid * 0.9:.2f}", closePosition="true",
                   clientAlgoId="orphan-sl")
        await rest(sim, "POST", "/fapi/v1/algoOrder", algoType="CONDITIONAL", symbol="ETHUSDT", side="SELL",
                   type="TAKE_PROFIT_MARKET", triggerPrice=f"{bid * 1.1:.2f}", closePosition="true",
                   clientAlgoId="orphan-tp")
        await rest(sim, "POST", "/fapi/v1/order", symbol="ETHUSDT", side="BUY", type="LIMIT", timeInForce="GTC",
                   quantity="0.100", price=f"{bid * 0.9:.2f}", newClientOrderId="stray-entry")
        bot = Bot(sim, tmp_path, hook.url)
        try:
            stop = await until("a protective stop on the unknown BTC position",
                               lambda: _stop_of(sim, "BTCUSDT"), 20, bot)
            assert (stop["side"], stop["orderType"], stop["reduceOnly"], float(stop["quantity"])) == (
                "SELL", "STOP_MARKET", True, 0.01)
            # unknown_position_stop_bps = 50 from the entry, rounded away from the market (down for a long)
            want = btc_entry * (1 - 0.005)
            assert want - 0.1 < float(stop["triggerPrice"]) <= want + 1e-9
            await until("the orphans cancelled", lambda: _none_open(sim, "ETHUSDT"), 10, bot)
            await until("an alert for the unknown position",
                        lambda: [x for x in hook.texts("emergency") if "BTCUSDT" in x and "no known trade" in x],
                        10, bot)
            # while the bot runs: a position opened by hand, then the user stream drops -> after the reconnect
            # and its catch-up the same reconciliation protects it
            await rest(sim, "POST", "/fapi/v1/order", symbol="ETHUSDT", side="SELL", type="MARKET",
                       quantity="0.100", newClientOrderId="by-hand-open-2")
            async with aiohttp.ClientSession() as http, http.post(f"{sim.base}/_sim/fault",
                                                                 json={"kind": "drop_ws", "route": "private"}) as r:
                assert r.status == 200 and (await r.json())["dropped"] >= 1
            eth_stop = await until("a stop on the ETH position after the reconnect",
                                   lambda: _stop_of(sim, "ETHUSDT"), 20, bot)
            assert (eth_stop["side"], float(eth_stop["quantity"])) == ("BUY", 0.1)
            # someone cancels the ETH stop: the shutdown below must not leave that position unprotected
            await rest(sim, "DELETE", "/fapi/v1/algoOrder", symbol="ETHUSDT", clientAlgoId=eth_stop["clientAlgoId"])
        finally:
            rc = bot.term()
        assert rc == 0
        # on_shutdown = keep_protected: the protected position stays with its stop, the other one is closed
        assert (await position(sim, "BTCUSDT"))[0] == pytest.approx(0.01)
        assert await _stop_of(sim, "BTCUSDT") is not None
        assert (await position(sim, "ETHUSDT"))[0] == 0
        assert any(e.get("event") == "reconcile_alert" and "without a stop at shutdown" in e.get("message", "")
                   for e in bot.events())
    await flat_everything(sim)


async def _stop_of(sim: Sim, symbol: str) -> dict[str, Any] | None:
    _, algos = await open_orders(sim, symbol)
    return next((a for a in algos if a["orderType"] == "STOP_MARKET" and a["reduceOnly"]), None)


async def _none_open(sim: Sim, symbol: str) -> bool:
    regular, algos = await open_orders(sim, symbol)
    return not regular and not algos
