"""Funding payments: journal table and migration, attribution to the trade holding the position,
idempotent replays, Binance ACCOUNT_UPDATE FUNDING_FEE through the translator and the gateway, and the
whole chain from the exchange-sim server (wire -> websocket -> BinanceGateway -> recorder -> journal)."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import aiohttp
import orjson
import pytest
from pydantic import SecretStr

from bot.domain.orders import BalanceUpdate
from bot.domain.types import OrderKind, Side
from bot.journal import Journal
from bot.journal.funding import FundingRecorder
from bot.journal.report import build_report, load_journal
from bot.settings.core import VenueSection
from bot.venues.binance_usdm.gateway import BinanceGateway
from bot.venues.binance_usdm.instruments import KNOWN
from bot.venues.binance_usdm.userevents import UserEventTranslator
from bot.venues.ports import FundingPayment, OrderRequest, PositionSnapshot

S = 1_000_000_000
T0 = 1_763_683_200 * S  # 2025-11-21 00:00:00 UTC: a funding time

# The trades table as the first journals wrote it (before MAE/MFE, funding and the latency trail).
_OLD_SCHEMA = """
CREATE TABLE trades (
    trade_id TEXT PRIMARY KEY, symbol TEXT NOT NULL, setup TEXT NOT NULL, side TEXT NOT NULL,
    state TEXT NOT NULL, intent_ts_ns INTEGER, intent_price REAL, planned_qty REAL, planned_stop_price REAL,
    risk_budget REAL, leverage INTEGER, features TEXT,
    entry_ts_ns INTEGER, entry_price REAL, qty REAL, stop_price REAL, stop_confirm_ms REAL,
    max_open_risk REAL, exit_ts_ns INTEGER, exit_price REAL, exit_reason TEXT, pnl REAL, fees REAL,
    r_multiple REAL, created_ns INTEGER NOT NULL, updated_ns INTEGER NOT NULL);
CREATE TABLE fills (
    id INTEGER PRIMARY KEY, ts_ns INTEGER NOT NULL, trade_id TEXT NOT NULL, client_id TEXT NOT NULL,
    role TEXT NOT NULL, side TEXT NOT NULL, qty REAL NOT NULL, price REAL NOT NULL, fee REAL NOT NULL,
    is_maker INTEGER NOT NULL, venue_trade_id TEXT);
INSERT INTO trades VALUES ('t1', 'BTCUSDT', 'momentum', 'long', 'CLOSED', 1000, 60000.0, 0.01, 59950.0, 5.0, 10,
    '{}', 2000, 60000.0, 0.01, 59950.0, 30.0, 0.6, 9000, 60100.0, 'TAKE_PROFIT', 0.9, 0.1, 0.18, 1000, 9000);
"""


def _open(j: Journal, tid: str, symbol: str, t_entry: int, qty: float = 0.01) -> None:
    j.open_trade(t_entry - 1000, {"trade_id": tid, "symbol": symbol, "setup": "momentum", "side": "long"},
                 [], "ENTERING")
    j.fill(t_entry, tid, f"{tid}-entry", "entry", "BUY", qty, 100.0, 0.0, False, f"{tid}-v1", "FILLED", qty, 100.0)


def _reduce(j: Journal, tid: str, t: int, qty: float, role: str = "tp", close: bool = False) -> None:
    j.fill(t, tid, f"{tid}-{role}", role, "SELL", qty, 101.0, 0.0, False, f"{tid}-v{t}", "FILLED", qty, 101.0)
    if close:
        j.trade_state(t, tid, "OPEN", "CLOSED", "TAKE_PROFIT", {"entry_ts_ns": t - 1, "exit_ts_ns": t, "pnl": 1.0,
                                                               "fees": 0.0, "r_multiple": 1.0})


def test_an_old_journal_gains_the_funding_table_and_columns(tmp_path: Path) -> None:
    path = str(tmp_path / "old.sqlite")
    db = sqlite3.connect(path)
    db.executescript(_OLD_SCHEMA)
    db.close()
    j = Journal(path)
    cols = {r[1] for r in j._db.execute("PRAGMA table_info(trades)")}
    assert {"funding_quote", "event_ts_ns", "recv_ts_ns", "signal_ts_ns", "mae_ticks", "mfe_r"} <= cols
    (old,) = j.rows("trades")
    assert old["pnl"] == 0.9 and old["funding_quote"] is None and old["event_ts_ns"] is None  # kept, NULL
    assert j.rows("funding") == []
    assert j.funding(T0, "BTCUSDT", -0.25, "ref-1", trade_id="t1") == (True, "t1")
    j.close()
    rep = build_report(load_journal(path))
    (t,) = rep["trades"]
    assert t["funding_quote"] == pytest.approx(-0.25) and t["net_pnl"] == pytest.approx(0.65)
    assert rep["overall"]["funding_quote"] == pytest.approx(-0.25)
    assert rep["overall"]["net_pnl_quote"] == pytest.approx(0.65)
    # an old trade has no latency trail: those steps are null, signal -> order falls back to intent_ts_ns
    assert t["latency_ms"]["exchange_event_to_receive_ms"] is None and t["latency_ms"]["receive_to_signal_ms"] is None
    assert rep["latency"]["exchange_event_to_receive_ms"]["n"] == 0 and "not_journaled" not in rep["latency"]
    # opening it again changes nothing more
    Journal(path).close()


def test_attribution_by_position_held_and_idempotent_replays(tmp_path: Path) -> None:
    j = Journal(str(tmp_path / "j.sqlite"))
    _open(j, "t1", "BTCUSDT", T0 - 100 * S, qty=0.02)
    _reduce(j, "t1", T0 - 50 * S, 0.01)                      # partial take-profit: still long 0.01
    assert j.funding(T0 - 200 * S, "BTCUSDT", -1.0, "a") == (True, None)  # before the entry: nobody held it
    assert j.funding(T0, "BTCUSDT", -0.5, "b") == (True, "t1")
    assert j.funding(T0, "BTCUSDT", -0.5, "b") == (False, "t1")          # the same settlement replayed
    _open(j, "t2", "ETHUSDT", T0 + 10 * S)
    assert j.funding(T0 + 20 * S, "", -0.1, "c") == (True, None)          # no symbol, two positions: unknown
    _reduce(j, "t1", T0 + 30 * S, 0.01, close=True)
    assert j.funding(T0 + 40 * S, "BTCUSDT", -0.2, "d") == (True, None)  # closed just before
    assert j.funding(T0 + 40 * S, "", 0.3, "e") == (True, "t2")           # no symbol, one position: t2
    trades = {t["trade_id"]: t for t in j.rows("trades")}
    assert trades["t1"]["funding_quote"] == pytest.approx(-0.5)  # counted once
    assert trades["t2"]["funding_quote"] == pytest.approx(0.3)
    assert [(f["venue_ref"], f["trade_id"]) for f in j.rows("funding")] == [
        ("a", None), ("b", "t1"), ("c", None), ("d", None), ("e", "t2")]
    j.close()
    fu = build_report(load_journal(str(tmp_path / "j.sqlite")))["funding"]
    assert fu == {"payments": 5, "total_quote": -1.5, "attributed_quote": -0.2, "unattributed_quote": -1.3,
                  # an unnamed fee attributed to a trade counts under that trade's symbol
                  "by_symbol": {"?": -0.1, "BTCUSDT": -1.7, "ETHUSDT": 0.3}}
    eth = build_report(load_journal(str(tmp_path / "j.sqlite")), symbol="ETHUSDT")["funding"]
    assert (eth["payments"], eth["total_quote"]) == (1, 0.3)


def _funding_msg(bc: str, wb: str, isolated: bool, e_ms: int = T0 // 1_000_000 + 3) -> bytes:
    a: dict = {"m": "FUNDING_FEE", "B": [{"a": "USDT", "wb": wb, "cw": wb, "bc": bc}]}
    if isolated:  # Binance A4: an isolated position's funding names that one position
        a["P"] = [{"s": "BTCUSDT", "pa": "0.010", "ep": "60000.0", "bep": "60000.0", "cr": "0", "up": "0.5",
                   "mt": "isolated", "iw": "60.1", "ps": "BOTH"}]
    return orjson.dumps({"e": "ACCOUNT_UPDATE", "E": e_ms, "T": e_ms - 1, "a": a})


def test_binance_funding_fee_through_the_translator_into_the_journal(tmp_path: Path) -> None:
    tr = UserEventTranslator(KNOWN)
    cross = tr.on_message(_funding_msg("-0.06000000", "9999.94000000", isolated=False), T0 + 50 * 1_000_000)
    assert cross[:1] == [FundingPayment("", -0.06, "USDT", T0 + 2 * 1_000_000, T0 + 50 * 1_000_000, cross[0].venue_ref)]
    (wallet,) = cross[1:]  # and the wallet it leaves (the operator's view between REST checks)
    assert isinstance(wallet, BalanceUpdate) and (wallet.asset, wallet.wallet_balance) == ("USDT", 9999.94)
    iso = tr.on_message(_funding_msg("0.02500000", "9999.96500000", isolated=True, e_ms=T0 // 1_000_000 + 8), T0)
    pay = next(i for i in iso if isinstance(i, FundingPayment))
    assert (pay.symbol, pay.amount_quote) == ("BTCUSDT", 0.025)
    assert any(isinstance(i, PositionSnapshot) for i in iso)  # the position is still reported
    order = orjson.dumps({"e": "ACCOUNT_UPDATE", "E": 1, "T": 1, "a": {"m": "ORDER", "B": [
        {"a": "USDT", "wb": "1", "cw": "1", "bc": "5"}], "P": []}})
    # a balance change that is not funding is no funding: only the wallet it leaves
    assert tr.on_message(order, 0) == [BalanceUpdate("USDT", 1.0, 1.0, 1_000_000)]
    assert tr.stats["funding"] == 2

    j = Journal(str(tmp_path / "j.sqlite"))
    _open(j, "t1", "BTCUSDT", T0 - 60 * S)
    rec = FundingRecorder(j)
    assert rec.record(cross[0]) == "t1" and rec.record(pay) == "t1"
    # a reconnect replays the same message: same key, nothing counted twice
    again = tr.on_message(_funding_msg("-0.06000000", "9999.94000000", isolated=False), T0 + 90 * 1_000_000)
    assert again[0].venue_ref == cross[0].venue_ref and rec.record(again[0]) == "t1"
    assert rec.stats == {"recorded": 2, "attributed": 2, "duplicates": 1, "errors": 0}
    (t1,) = j.rows("trades")
    assert t1["funding_quote"] == pytest.approx(-0.035)
    assert [(f["symbol"], f["amount_quote"], f["ts_ns"]) for f in j.rows("funding")] == [
        ("", -0.06, T0 + 2 * 1_000_000), ("BTCUSDT", 0.025, T0 + 7 * 1_000_000)]
    j.close()


async def test_the_binance_gateway_routes_funding_to_its_own_stream() -> None:
    gw = BinanceGateway(VenueSection(name="binance-usdm", symbols=("BTCUSDT",)))
    p = FundingPayment("BTCUSDT", -0.1, "USDT", T0, T0, "r")
    gw.publish(PositionSnapshot("BTCUSDT", 1, 60000.0))
    gw.publish(p)
    assert await asyncio.wait_for(anext(gw.funding_updates()), 1) == p
    assert isinstance(await asyncio.wait_for(anext(gw.position_updates()), 1), PositionSnapshot)
    assert gw._updates.empty()


async def test_exchange_sim_funding_reaches_the_journal_through_the_binance_gateway(tmp_path: Path) -> None:
    from tests.sim.server_helpers import running_server

    async with running_server() as (server, base):
        v = VenueSection(name="binance-usdm", environment="exchange-sim", rest_url=base,
                         ws_private_url=base.replace("http", "ws") + "/private", symbols=("BTCUSDT",),
                         api_key=SecretStr("sim-key"), api_secret=SecretStr("sim-secret"))
        gw = BinanceGateway(v)
        await asyncio.wait_for(gw.start(), 10)
        j = Journal(str(tmp_path / "j.sqlite"))
        rec = FundingRecorder(j)
        recorder = asyncio.create_task(rec.run(gw))
        try:
            assert gw.user_stream is not None
            await asyncio.wait_for(gw.user_stream.caught_up.wait(), 10)
            await asyncio.wait_for(server.next_depth("BTCUSDT", 5.0), 10)
            j.open_trade(time.time_ns(), {"trade_id": "t1", "symbol": "BTCUSDT", "setup": "momentum",
                                          "side": "long"}, [], "ENTERING")
            await gw.submit(OrderRequest("t1-entry", "BTCUSDT", Side.BUY, OrderKind.MARKET, 2))

            async def first_fill():
                async for u in gw.updates():
                    if u.client_id == "t1-entry" and u.last_fill_lots:
                        return u
            u = await asyncio.wait_for(first_fill(), 5)
            qty = gw.instrument("BTCUSDT").lots_to_qty(u.last_fill_lots)
            j.fill(u.ts_event_ns, "t1", "t1-entry", "entry", "BUY", qty, u.last_fill_price, u.fee, u.is_maker,
                   u.trade_id, u.status.value, qty, u.avg_price)
            async with aiohttp.ClientSession() as http, http.post(
                    f"{base}/_sim/fault", json={"kind": "settle_funding", "rate_bps": 2}) as r:
                assert r.status == 200 and (await r.json())["settled"] == 1
            for _ in range(500):  # bounded: up to 5 s for the event to cross the websocket
                if rec.stats["recorded"]:
                    break
                await asyncio.sleep(0.01)
            (f,) = j.rows("funding")
            mark = server.ex.markets["BTCUSDT"].mark_ticks() * gw.instrument("BTCUSDT").tick
            # a long pays at a positive rate; cross margin: Binance names no symbol, the one holder gets it
            assert f["symbol"] == "" and f["trade_id"] == "t1"
            assert f["amount_quote"] == pytest.approx(-qty * mark * 2e-4, rel=1e-3)
            assert j.rows("trades")[0]["funding_quote"] == pytest.approx(f["amount_quote"])
        finally:
            recorder.cancel()
            await asyncio.wait_for(gw.close(), 10)
            j.close()
