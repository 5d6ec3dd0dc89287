"""Restart safety on Bybit, where the protective stop is the POSITION's (trading-stop, tpslMode Full) and not
an order with our client id: the app restarted on a journal with an open trade, against the same fake Bybit
(tests/venues/fake_bybit.py, which lists the position's stop as Bybit does: a system StopLoss order with no
orderLinkId) and the public replay server.

The trade is made honestly and fast: the real ExecutionEngine on a real BybitGateway against the fake (with
autopush, the fake's private socket tells the fills as Bybit would) opens t1, long XRPUSDT at market with its
stop attached; the machine's stop leg t1-sl is the position's stop (34040: the attached one is already it);
the take-profits rest. Then that process "dies" (no shutdown: tasks cancelled, sockets closed), things
happen at the venue while nobody listens, and a second process (the App) starts on the same journal.

- kept: the adopted stop leg owns the position's stop again (gateway.adopt_stop): no stop is placed or
  cancelled, a second pass does nothing, and the stop firing later closes the trade as STOP_LOSS;
- fired while down: the trade closes as STOP_LOSS with the fake's fill price, id and fee;
- closed by hand while down: MANUAL with the hand-made fill; no stop or take-profit left at the fake;
- stop removed by hand while down: the machine places it again (not flattened), the trade stays PROTECTED.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from bot.domain.types import EntryIntent, OrderKind, OrderStatus, Side, TakeProfitTier
from bot.execution.engine import ExecutionEngine
from bot.execution.reconcile import (
    CancelOrder,
    ExchangeState,
    JournalLeg,
    JournalTrade,
    PlaceStop,
    ReconcileConfig,
    decide,
)
from bot.execution.reconcile_io import leg_fills
from bot.execution.recovery import Recovery
from bot.journal import Journal
from bot.risk import MarketView, RiskManager
from bot.settings.core import VenueSection
from bot.settings.execution import ExecutionSection
from bot.settings.risk import RiskSection
from bot.venues.bybit.gateway import BybitGateway
from bot.venues.bybit.orders import parse_instruments
from bot.venues.ports import OrderRequest, OrderUpdate, PositionSnapshot
from tests.support import until
from tests.support.replay_server import BybitReplayServer
from tests.test_app_bybit import NEEDS_SAMPLE, acted, another_pass, bybit_settings, new_fake, replay_lines, run_app
from tests.venues.fake_bybit import FakeBybit, instruments_info

SYM = "XRPUSDT"


def journal_rows(tmp: Path, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    db = sqlite3.connect(f"file:{tmp / 'j.sqlite'}?mode=ro", uri=True, timeout=2)
    db.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in db.execute(sql, params)]
    finally:
        db.close()


def trade(tmp: Path) -> dict[str, Any]:
    (t,) = journal_rows(tmp, "SELECT * FROM trades WHERE trade_id = 't1'")
    return t


async def protected_then_killed(tmp: Path, fake: FakeBybit) -> int:
    """t1 PROTECTED through the real engine and gateway; then the process dies. Returns the position (lots)."""
    v = VenueSection.model_validate({"name": "bybit", "environment": "exchange-sim", "rest_url": fake.url,
                                     "ws_private_url": fake.ws_url, "symbols": (SYM,), "api_key": SecretStr("sim-key"),
                                     "api_secret": SecretStr("sim-secret")})
    gw = BybitGateway(v)
    journal = Journal(str(tmp / "j.sqlite"))
    task = None
    try:
        await asyncio.wait_for(gw.start(), 10)
        assert gw.user_stream is not None
        await asyncio.wait_for(gw.user_stream.caught_up.wait(), 10)
        risk_cfg = RiskSection.model_validate({})
        engine = ExecutionEngine(gw, RiskManager(risk_cfg, (await gw.account()).equity, time.time_ns()), journal,
                                 ExecutionSection.model_validate({"entry_order": "market"}), risk_cfg)
        task = asyncio.create_task(engine.run())
        intent = EntryIntent(SYM, "long", "drill", time.time_ns(), 19530, 19400,
                             (TakeProfitTier(19660, 0.5), TakeProfitTier(19790, 0.5)), 600.0, {})
        assert await engine.submit_intent(intent, MarketView(book_live=True, spread_bps=0.5)) == "t1"
        m = engine.trades["t1"]
        await until(lambda: m.state.value == "PROTECTED" and all(
            leg.confirmed for leg in m.legs.values() if leg.status.value != "PLANNED"), 10)
        assert m.stop_leg is not None and m.stop_leg.client_id == "t1-sl"
        lots = m.pos_lots
    finally:  # no shutdown handling: a SIGKILL leaves the venue as it is
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await asyncio.wait_for(gw.close(), 10)
        journal.close()
    p = fake.position(SYM)
    assert (p["side"], int(p["size"]), p["stopLoss"]) == ("Buy", lots, "1.94")
    assert {o["orderLinkId"] for o in fake.open_rows(SYM)} == {"", "t1-tp1", "t1-tp2"}  # the position's stop, TPs
    return lots


def placed_stops(fake: FakeBybit, since: int) -> list[str]:
    """trading-stop prices sent after request number `since` ("0" = removed)."""
    return [r["body"]["stopLoss"] for r in fake.requests[since:] if r["path"] == "/v5/position/trading-stop"]


def cancels(fake: FakeBybit, since: int) -> list[str]:
    return [r["body"].get("orderLinkId", "") for r in fake.requests[since:] if r["path"] == "/v5/order/cancel"]


@NEEDS_SAMPLE
async def test_adopted_trade_keeps_its_position_stop_and_completes_when_it_fires(tmp_path: Path):
    fake = await new_fake(autopush=True).start()
    try:
        lots = await protected_then_killed(tmp_path, fake)
        n0 = len(fake.requests)
        async with BybitReplayServer(replay_lines(), interval_s=0.005) as pub, \
                run_app(bybit_settings(tmp_path, fake, pub, signals=False)) as app:
            assert app.recovery is not None and app.recovery.adopted == ["t1"]
            assert app.gateway.tr.stops.owner(SYM) == "t1-sl"
            await until(lambda: app.state.trading_state == "ACTIVE", 10)
            await another_pass(app, fake)
            assert acted(app) == []
            listed = [(o.client_id, o.status.value) for o in await app.gateway.open_orders(SYM)]
            assert sorted(listed) == [("t1-sl", "NEW"), ("t1-tp1", "NEW"), ("t1-tp2", "NEW")]
            # nothing placed, moved or cancelled at the venue since the restart
            assert placed_stops(fake, n0) == [] and cancels(fake, n0) == []
            assert [r for r in fake.requests[n0:] if r["path"] == "/v5/order/create"] == []
            assert app.engine is not None and app.engine.trades["t1"].state.value == "PROTECTED"
            _, e = fake.trigger_stop(SYM, price="1.9396")  # now it fires, and the socket says so
            await until(lambda: trade(tmp_path)["state"] == "CLOSED", 10)
            await until(lambda: fake.open_rows(SYM) == [], 10)  # the take-profits cancelled (OCO)
    finally:
        await fake.stop()
    t = trade(tmp_path)
    assert (t["exit_reason"], t["exit_price"]) == ("STOP_LOSS", 1.9396)
    assert abs(t["fees"] - (0.165 + 0.18)) < 1e-9
    stop_fills = journal_rows(tmp_path, "SELECT * FROM fills WHERE trade_id = 't1' AND role = 'stop'")
    assert [(f["client_id"], f["venue_trade_id"], f["price"], f["fee"]) for f in stop_fills] == [
        ("t1-sl", e["execId"], 1.9396, 0.18)]
    assert sum(round(float(f["qty"])) for f in stop_fills) == lots
    assert fake.position(SYM)["size"] == "0"


@NEEDS_SAMPLE
@pytest.mark.parametrize("minutes_ago", [0, 5])
async def test_stop_fired_while_down_closes_the_trade_as_a_stop_loss(tmp_path: Path, minutes_ago: int,
                                                                     monkeypatch: pytest.MonkeyPatch):
    """0: the restarted stream's first catch-up (a minute back) hears the StopLoss fill (before or after the
    adoption: held, then handed to the adopted leg). 5: the trade and the stop fill are older than that, so
    only the reconciliation finds it: the stop leg's look-up finds the system stop order's execution since
    the trade's first fill, and its exact fill (user_trades)."""
    handed: list[OrderUpdate] = []  # what the reconciliation handed the engine
    real = Recovery.on_update

    async def spy(self: Recovery, u: OrderUpdate) -> None:
        handed.append(u)
        await real(self, u)

    monkeypatch.setattr(Recovery, "on_update", spy)
    fake = await new_fake(autopush=True).start()
    fake.exec_shift_ms = -minutes_ago * 60_000  # the fills' venue times
    try:
        lots = await protected_then_killed(tmp_path, fake)
        _, e = fake.trigger_stop(SYM, price="1.9398")  # nobody listens
        n0 = len(fake.requests)
        async with BybitReplayServer(replay_lines(), interval_s=0.005) as pub, \
                run_app(bybit_settings(tmp_path, fake, pub, signals=False)) as app:
            await until(lambda: trade(tmp_path)["state"] == "CLOSED", 10)
            await until(lambda: fake.open_rows(SYM) == [], 10)
            await until(lambda: app.state.trading_state == "ACTIVE", 10)
            assert app.recovery is not None and app.recovery.adopted == ["t1"]
            assert not [a for a in app.recovery.last_actions if type(a).__name__ == "CloseTrade"]
    finally:
        await fake.stop()
    t = trade(tmp_path)
    assert (t["exit_reason"], t["exit_price"]) == ("STOP_LOSS", 1.9398)
    assert abs(t["fees"] - (0.165 + 0.18)) < 1e-9
    stop_fills = journal_rows(tmp_path, "SELECT * FROM fills WHERE trade_id = 't1' AND role = 'stop'")
    assert [(f["client_id"], f["venue_trade_id"], f["price"], f["fee"], round(float(f["qty"])))
            for f in stop_fills] == [("t1-sl", e["execId"], 1.9398, 0.18, lots)]
    (leg,) = journal_rows(tmp_path, "SELECT * FROM legs WHERE client_id = 't1-sl'")
    assert leg["status"] == "FILLED"
    if minutes_ago:  # found by the reconciliation: the system order's exact fill, under the stop leg
        # (the fill, then the order's state, which carries it too: counted once, see the journal above)
        assert {(u.client_id, u.parent_id, u.last_fill_lots, u.last_fill_price, u.fee) for u in handed
                if u.trade_id == e["execId"]} == {("t1-sl", "t1-sl", lots, 1.9398, 0.18)}
    # no stop placed again; the only trading-stop is the leg's own end (its removal: no position, 10001)
    assert placed_stops(fake, n0) in ([], ["0"])
    assert set(cancels(fake, n0)) <= {"t1-tp1", "t1-tp2"}


@NEEDS_SAMPLE
async def test_closed_by_hand_while_down_is_manual_with_the_hand_fill(tmp_path: Path):
    fake = await new_fake(autopush=True).start()
    try:
        lots = await protected_then_killed(tmp_path, fake)
        _, e = fake.close_by_hand(SYM, "1.9610", fee="0.21")
        n0 = len(fake.requests)
        async with BybitReplayServer(replay_lines(), interval_s=0.005) as pub, \
                run_app(bybit_settings(tmp_path, fake, pub, signals=False)) as app:
            await until(lambda: trade(tmp_path)["state"] == "CLOSED", 10)
            await until(lambda: fake.open_rows(SYM) == [], 10)
            await until(lambda: app.state.trading_state == "ACTIVE", 10)
    finally:
        await fake.stop()
    t = trade(tmp_path)
    assert (t["exit_reason"], t["exit_price"]) == ("MANUAL", 1.961)
    assert abs(t["fees"] - (0.165 + 0.21)) < 1e-9
    exits = journal_rows(tmp_path, "SELECT * FROM fills WHERE trade_id = 't1' AND role = 'exit'")
    assert [(f["venue_trade_id"], f["price"], f["fee"], round(float(f["qty"]))) for f in exits] == [
        (e["execId"], 1.961, 0.21, lots)]
    assert journal_rows(tmp_path, "SELECT * FROM fills WHERE trade_id = 't1' AND role = 'stop'") == []
    p = fake.position(SYM)
    assert (p["size"], p["stopLoss"]) == ("0", "")  # no stop left to fire on a later position
    assert placed_stops(fake, n0) == []
    assert set(cancels(fake, n0)) == {"t1-tp1", "t1-tp2"}


@NEEDS_SAMPLE
async def test_stop_removed_by_hand_while_down_is_placed_again_not_flattened(tmp_path: Path):
    fake = await new_fake(autopush=True).start()
    try:
        lots = await protected_then_killed(tmp_path, fake)
        fake._set_stop(SYM, "", "")  # someone removed the position's stop on the website
        n0 = len(fake.requests)
        async with BybitReplayServer(replay_lines(), interval_s=0.005) as pub, \
                run_app(bybit_settings(tmp_path, fake, pub, signals=False)) as app:
            await until(lambda: fake.position(SYM)["stopLoss"] != "", 10)
            await until(lambda: app.state.trading_state == "ACTIVE", 10)
            await another_pass(app, fake)
            assert acted(app) == []
            assert app.engine is not None
            m = app.engine.trades["t1"]
            assert m.state.value == "PROTECTED" and m.stop_leg is not None
            assert (m.stop_leg.client_id, m.stop_leg.confirmed) == ("t1-sl.2", True)
            assert app.gateway.tr.stops.owner(SYM) == "t1-sl.2"
    finally:
        await fake.stop()
    assert placed_stops(fake, n0) == ["1.94"]
    p = fake.position(SYM)
    assert (int(p["size"]), p["stopLoss"]) == (lots, "1.94")  # kept over the shutdown, with its stop
    assert [r for r in fake.requests[n0:] if r["path"] == "/v5/order/create"] == []  # never flattened
    assert trade(tmp_path)["state"] == "PROTECTED"


# ------------------------------------------------------------------------------ the gateway's side, by request
def _venue(fake: FakeBybit) -> VenueSection:
    return VenueSection.model_validate({"name": "bybit", "environment": "testnet", "rest_url": fake.url,
                                        "api_key": SecretStr("k"), "api_secret": SecretStr("s")})


async def _gateway(fake: FakeBybit) -> BybitGateway:
    g = BybitGateway(_venue(fake))
    await asyncio.wait_for(g.start(autorun=False), 10)  # no private stream: REST only
    return g


def _entry(cid: str, stop_ticks: int) -> OrderRequest:
    return OrderRequest(cid, "BTCUSDT", Side.BUY, OrderKind.MARKET, 5, attached_stop_ticks=stop_ticks)


def _stop(cid: str, ticks: int) -> OrderRequest:
    return OrderRequest(cid, "BTCUSDT", Side.SELL, OrderKind.STOP_MARKET, 5, trigger_ticks=ticks, reduce_only=True)


async def test_a_restarted_gateway_reports_the_position_stop_under_the_adopted_leg():
    fake = await FakeBybit().start()
    first = await _gateway(fake)
    second = None
    try:
        await first.submit(_entry("t1-entry", 590_000))
        await first.submit(_stop("t1-sl", 590_000))  # 34040: the attached stop is this leg
        since_ns = int(fake.execs[-1]["execTime"]) * 1_000_000
        await first.close()  # the process dies; the stop lives on at the venue
        second = await _gateway(fake)
        # nobody owns it yet: listed with no client id, and marked as the position's own (never an orphan)
        (o,) = await second.open_orders("BTCUSDT")
        assert (o.client_id, o.kind, o.side, o.status, o.reduce_only) == (
            "", OrderKind.STOP_MARKET, Side.SELL, OrderStatus.NEW, True)
        assert second.is_position_level(o) and o.venue_order_id == fake.stop_order["BTCUSDT"]
        assert await second.fetch_order("BTCUSDT", "t1-sl", True) is None  # no orderLinkId to find it by
        second.adopt_stop(_stop("t1-sl", 590_000), since_ns)
        (o,) = await second.open_orders("BTCUSDT")
        assert (o.client_id, second.is_position_level(o)) == ("t1-sl", True)
        u = await second.fetch_order("BTCUSDT", "t1-sl", True)
        assert u is not None and (u.client_id, u.status) == ("t1-sl", OrderStatus.NEW)
        # a later leg the venue never received (journaled PENDING_NEW at 59,100): the venue's stop is not it
        second.adopt_stop(_stop("t1-sl2", 591_000), since_ns)
        (o,) = await second.open_orders("BTCUSDT")
        assert o.client_id == "" and second.is_position_level(o)
        assert await second.fetch_order("BTCUSDT", "t1-sl2", True) is None  # reconcile then places it again
        u = await second.fetch_order("BTCUSDT", "t1-sl", True)
        assert u is not None and u.status is OrderStatus.CANCELED  # superseded
        # the owner's end removes the position's stop (trading-stop "0"): none left to fire later
        await second.cancel("BTCUSDT", "t1-sl2", True)
        assert fake.calls("POST", "/v5/position/trading-stop")[-1]["body"]["stopLoss"] == "0"
        assert fake.position()["stopLoss"] == "" and await second.open_orders("BTCUSDT") == []
        assert fake.by_id[o.venue_order_id]["orderStatus"] == "Deactivated"
    finally:
        if second is not None:
            await second.close()
        await fake.stop()


async def test_a_fired_stop_is_found_only_after_its_own_position_opened():
    """An earlier position's stop fill is not the adopted leg's: the look-up starts at the trade's first fill."""
    fake = await FakeBybit().start()
    g = await _gateway(fake)
    try:
        await g.submit(_entry("t1-entry", 590_000))
        _, old = fake.trigger_stop(price="58990")  # t1 stopped out
        await asyncio.sleep(0.01)
        await g.submit(_entry("t2-entry", 591_000))
        since_ns = int(fake.execs[-1]["execTime"]) * 1_000_000
        await g.close()
        g = await _gateway(fake)
        g.adopt_stop(_stop("t2-sl", 591_000), since_ns)
        fake.position().update(stopLoss="")  # t2's stop gone at the venue (say), position still open
        fake.open_rows("BTCUSDT")[0]["orderStatus"] = "Deactivated"
        assert await g.fetch_order("BTCUSDT", "t2-sl", True) is None  # not t1's fill
        fake._set_stop("BTCUSDT", "59100", "MarkPrice")
        o, e = fake.trigger_stop(price="59095")
        u = await g.fetch_order("BTCUSDT", "t2-sl", True)
        assert u is not None
        assert (u.client_id, u.parent_id, u.venue_order_id, u.status, u.filled_lots, u.last_fill_price, u.fee,
                u.trade_id) == ("t2-sl", "t2-sl", o["orderId"], OrderStatus.FILLED, 5, 59095.0, 0.18, e["execId"])
        # the exact fills of that order, in the words reconcile reads (bot.execution.reconcile.leg_fills)
        fills = await leg_fills(g, "BTCUSDT", "t2-sl", u)
        assert [(f.client_id, f.parent_id, f.trade_id, f.last_fill_lots, f.last_fill_price, f.fee, f.status)
                for f in fills] == [("t2-sl", "t2-sl", e["execId"], 5, 59095.0, 0.18, OrderStatus.FILLED)]
        assert fake.calls("GET", "/v5/execution/list")[-1]["query"]["orderId"] == o["orderId"]
        rows = await g.user_trades("BTCUSDT", "", since_ns // 1_000_000)
        assert [(r["id"], r["side"]) for r in rows] == [(fake.execs[-2]["execId"], "BUY"), (e["execId"], "SELL")]
        assert old["execId"] not in {r["id"] for r in rows}
    finally:
        await g.close()
        await fake.stop()


def test_decide_never_cancels_a_position_level_stop():
    """Listed as an order, but the position's own: no orphan to cancel with the position (it dies with it);
    the trade's missing stop is placed (which moves that one stop), a real orphan exit is still cancelled."""
    cfg = ReconcileConfig({"BTCUSDT": parse_instruments(instruments_info())["BTCUSDT"]})
    pos_stop = OrderUpdate("", "o77", "BTCUSDT", Side.SELL, OrderKind.STOP_MARKET, OrderStatus.NEW, 0, 0, 0.0,
                           reduce_only=True)
    orphan = OrderUpdate("t0-tp1", "o78", "BTCUSDT", Side.SELL, OrderKind.LIMIT, OrderStatus.NEW, 5, 0, 0.0,
                         reduce_only=True)
    t = JournalTrade("t1", "BTCUSDT", "long", "PROTECTED", 59_000.0, (
        JournalLeg("t1-entry", "entry", OrderKind.MARKET, Side.BUY, OrderStatus.FILLED, 5),
        JournalLeg("t1-sl", "stop", OrderKind.STOP_MARKET, Side.SELL, OrderStatus.NEW)))
    pos = {"BTCUSDT": PositionSnapshot("BTCUSDT", 5, 60_000.0)}
    ex = ExchangeState(("BTCUSDT",), pos, (pos_stop, orphan), {"t1-sl": None}, position_stops=frozenset({"o77"}))
    acts = decide(ex, [t], cfg, 0)
    assert [a.client_id for a in acts if isinstance(a, CancelOrder)] == ["t0-tp1"]
    assert [a.trade_id for a in acts if isinstance(a, PlaceStop)] == ["t1"]
    flat = ExchangeState(("BTCUSDT",), {}, (pos_stop,), position_stops=frozenset({"o77"}))
    assert not [a for a in decide(flat, [], cfg, 0) if isinstance(a, CancelOrder)]
    # unknown position: its position stop protects it; kept, nothing placed (entries on it halted: Unowned)
    acts = decide(ExchangeState(("BTCUSDT",), pos, (pos_stop,), position_stops=frozenset({"o77"})), [], cfg, 0)
    assert [type(a).__name__ for a in acts] == ["Unowned", "Alert"] and "the position's own" in acts[1].message  # type: ignore[union-attr]
