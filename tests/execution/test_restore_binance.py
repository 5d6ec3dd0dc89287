"""A user-stream drop during a fill, with the real venue code: the engine and Recovery on BinanceGateway (ccxt
+ websockets) against the loopback exchange simulator. The exit's fill happens while the private socket
is down and cannot come back; after the reconnect the REST catch-up and the reconciliation pass it
triggers (whichever comes first; the machine counts a fill once) find the fill by REST (the order
look-up, then userTrades for the exact price and fee) and the trade closes with it."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from pathlib import Path

import aiohttp
import pytest
from pydantic import SecretStr

from bot.domain.types import CloseReason, EntryIntent
from bot.execution.engine import ExecutionEngine
from bot.execution.reconcile import ReconcileConfig
from bot.execution.recovery import Recovery
from bot.journal import Journal
from bot.risk import MarketView, RiskManager
from bot.settings.core import VenueSection
from bot.settings.execution import ExecutionSection
from bot.settings.risk import RiskSection
from bot.venues.binance_usdm.gateway import BinanceGateway
from bot.venues.ports import OrderUpdate
from tests.sim.server_helpers import running_server


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again: nothing listens there


async def _until(what: str, pred, timeout_s: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s} s")
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("stream_knows_the_order", [True, False])
async def test_ws_drop_during_the_exit_fill_is_reconciled_into_the_trade(tmp_path: Path,
                                                                       stream_knows_the_order: bool) -> None:
    """stream_knows_the_order=False: the create response said FILLED, so the user stream does not follow the
    order and its catch-up cannot find the fill; only the reconciliation (journal leg -> look-up) can."""
    async with running_server() as (server, base):
        v = VenueSection(name="binance-usdm", environment="exchange-sim", rest_url=base,
                         ws_private_url=base.replace("http", "ws") + "/private", symbols=("BTCUSDT",),
                         api_key=SecretStr("sim-key"), api_secret=SecretStr("sim-secret"))
        gw = BinanceGateway(v)
        # this drill is about reconciliation: the fill taken from the order's own answer (gateway_common
        # ack_fill, tested in tests/venues/test_ack_fill.py) would otherwise close the trade first
        gw.ack_fill_grace_ms = 600_000
        await asyncio.wait_for(gw.start(), 10)
        us = gw.user_stream
        assert us is not None
        await asyncio.wait_for(us.caught_up.wait(), 10)
        await asyncio.wait_for(server.next_depth("BTCUSDT", 5.0), 10)
        journal = Journal(str(tmp_path / "journal.sqlite"))
        risk_cfg = RiskSection(max_cost_r=1.0)  # a 3 bps stop: this drill is about reconciliation, not costs
        acct = await gw.account()
        engine = ExecutionEngine(gw, RiskManager(risk_cfg, acct.equity, time.time_ns()), journal,
                                 ExecutionSection(no_progress_s=0), risk_cfg)
        recovery = Recovery(engine, ReconcileConfig(gw.instruments), symbols=("BTCUSDT",))
        wanted = asyncio.Event()
        us.on_caught_up = wanted.set
        done: list[int] = []
        tasks = [asyncio.create_task(engine.run()),
                 asyncio.create_task(recovery.run(wanted, done.append, min_backoff_ms=50, max_backoff_ms=200))]
        try:
            await _until("the start-up pass", lambda: done, 10)
            m = server.ex.markets["BTCUSDT"]
            bbo = m.book.bbo()
            assert bbo is not None
            ask = bbo[2]
            intent = EntryIntent("BTCUSDT", "long", "drill", time.time_ns(), ask, ask - 180, (), 60.0, {})
            tid = await engine.submit_intent(intent, MarketView(book_live=True, spread_bps=0.5))
            assert tid == "t1"
            await _until("PROTECTED", lambda: "t1" in engine.trades and engine.trades["t1"].state.value
                         == "PROTECTED", 10)
            # the private socket goes down and cannot come back for now
            real_url = us.base_url
            us.base_url = f"ws://127.0.0.1:{_dead_port()}/private"
            us.reconnect_max_ms = 300
            async with aiohttp.ClientSession() as http, http.post(f"{base}/_sim/fault",
                                                                 json={"kind": "drop_ws", "route": "private"}) as r:
                assert r.status == 200
            await _until("the stream is down", lambda: not us.connected.is_set(), 5)
            runs = recovery.runs
            engine.flatten_all(CloseReason.MANUAL)  # the exit fills now: no event can reach us
            await _until("the exit acknowledged", lambda: any(
                c.endswith("-exit") and leg.status.value == "NEW"
                for c, leg in engine.trades["t1"].legs.items()), 5)
            await asyncio.sleep(0.3)
            assert engine.trades["t1"].state.value == "EXITING"  # it does not know the fill
            exit_cid = next(c for c in engine.trades["t1"].legs if c.endswith("-exit"))
            if not stream_knows_the_order:
                assert gw.translator is not None
                gw.translator.live.pop(exit_cid, None)
            from_reconcile: list[OrderUpdate] = []
            to_engine = recovery.on_update

            async def spy(u: OrderUpdate) -> None:  # what reconcile.apply hands the engine
                from_reconcile.append(u)
                await to_engine(u)

            recovery.on_update = spy  # type: ignore[method-assign]
            us.base_url = real_url
            await _until("the trade closed after the reconnect", lambda: "t1" not in engine.trades, 15)
            await _until("a reconciliation pass after the reconnect", lambda: recovery.runs > runs, 5)
            if not stream_knows_the_order:  # the reconciliation found it
                assert [u for u in from_reconcile if u.client_id == exit_cid and u.last_fill_lots]
            (t,) = journal.rows("trades", "trade_id='t1'")
            (exit_leg,) = journal.rows("legs", "trade_id='t1' AND role='exit'")
            exit_fills = journal.rows("fills", "trade_id='t1' AND role='exit'")
            venue = await gw.user_trades("BTCUSDT", exit_leg["venue_order_id"])
            assert [(f["venue_trade_id"], f["price"], f["fee"]) for f in exit_fills] == [
                (str(r["id"]), float(r["price"]), float(r["commission"])) for r in venue]
            qty = sum(float(r["qty"]) for r in venue)
            assert t["state"] == "CLOSED" and t["exit_reason"] == "MANUAL"
            assert abs(t["exit_price"] - sum(float(r["qty"]) * float(r["price"]) for r in venue) / qty) < 1e-6
            assert abs(t["fees"] - sum(f["fee"] for f in journal.rows("fills", "trade_id='t1'"))) < 1e-9
            assert (await gw.account()).positions == ()
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(task, 5)
            await asyncio.wait_for(gw.close(), 10)
            journal.close()
