"""The operator component (bot.ops.live.OpsFeed) fed by a real ExecutionEngine (fake venue, explicit clock):
what /status, /metrics and the views show after an entry, its stop, and a stop-out; a failing handler is
logged, shown and alerted while the engine goes on. Milliseconds each."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import orjson

from bot.logging import configure_logging
from bot.ops.alerts import Alerts
from bot.ops.live import TRADE_FIELDS, OpsFeed
from bot.ops.state import RuntimeState
from bot.settings.ops import AlertsSection
from bot.ui.terminal import render
from tests.execution.harness import LIVE, Rig, intent, running


def _feed(rig: Rig) -> tuple[OpsFeed, RuntimeState, Alerts, io.StringIO]:
    out = io.StringIO()
    configure_logging("INFO", "json", stream=out)  # before the feed binds its logger
    state = RuntimeState(now_ns=rig.clock())
    alerts = Alerts(AlertsSection(), name="test")
    return OpsFeed(state, alerts, rig.engine, venue="fake", clock=rig.clock), state, alerts, out


def _lines(out: io.StringIO) -> list[dict[str, Any]]:
    return [orjson.loads(x) for x in out.getvalue().splitlines() if x.startswith("{")]


async def test_position_stop_orders_counters_and_trade_lines_follow_the_engine(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    feed, state, alerts, out = _feed(rig)
    try:
        async with running(rig):
            await rig.engine.submit_intent(intent(), LIVE)
            await rig.settle()
            assert [o["role"] for o in state.open_orders.values()] == ["entry"]  # resting, acknowledged
            rig.gw.fill("t1-entry", 500, 50_000.0)
            await rig.settle()
            (pos,) = state.positions.values()
            assert (pos["symbol"], pos["side"], pos["qty"], pos["entry_price"], pos["stop_price"]) == (
                "BTCUSDT", "long", 0.5, 50_000.0, 49_950.0)
            assert pos["stop_confirmed"] is True and pos["trade_ids"] == ["t1"] and len(pos["targets"]) == 2
            orders = {o["role"]: o for o in state.open_orders.values() if o["role"] == "stop"}
            assert orders["stop"]["price"] == 49_950.0 and orders["stop"]["status"] == "NEW"
            assert sorted(o["role"] for o in state.open_orders.values()) == ["stop", "tp", "tp"]
            screen = render(state.status(rig.clock()), {})
            assert "49,950.00" in screen and "open orders (3)" in screen
            assert state.status(rig.clock())["uptime_s"] is not None  # started_ns set: uptime is fed

            rig.clock.advance_ms(5)
            rig.gw.move_price("BTCUSDT", 499_500)  # the stop triggers and fills; the targets are cancelled
            await rig.settle()
    finally:
        configure_logging("WARNING", "json")
    assert state.positions == {} and state.open_orders == {}
    assert state.trades_closed == {"STOP_LOSS": 1} and state.realized_pnl_quote == -25.0
    got = state.orders
    assert got[("entry", "sent")] == got[("entry", "ack")] == got[("entry", "filled")] == 1
    assert got[("stop", "sent")] == got[("stop", "ack")] == got[("stop", "filled")] == 1
    assert got[("tp", "sent")] == got[("tp", "canceled")] == 2
    assert state.latency["order_ack"].count == 4  # entry, stop, two targets: each its first answer once
    assert [a.text for a in alerts._queue if a.text.startswith("STOP-OUT")] == [
        "STOP-OUT BTCUSDT long t1: exit 49950 vs stop 49950, pnl -25.00 (-1.00R)"]
    lines = [x for x in _lines(out) if x["event"] in ("trade_entry", "trade_exit", "trade_close")]
    assert [x["event"] for x in lines] == ["trade_entry", "trade_exit", "trade_close"]
    for x in lines:
        assert set(TRADE_FIELDS) <= x.keys() and x["venue"] == "fake" and x["trade_id"] == "t1"
    close = lines[-1]
    assert (close["reason"], close["pnl"], close["r"], close["price"], close["stop_price"]) == (
        "STOP_LOSS", -25.0, -1.0, 49_950.0, 49_950.0)
    assert (lines[0]["leg"], lines[0]["qty"], lines[0]["price"], lines[0]["position_qty"]) == (
        "entry", 0.5, 50_000.0, 0.5)
    assert feed.failures == 0


async def test_a_failing_handler_is_logged_shown_and_alerted_and_the_engine_goes_on(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    feed, state, alerts, out = _feed(rig)

    def broken(*_a: Any, **_k: Any) -> None:
        raise RuntimeError("boom")

    state.on_order = broken  # type: ignore[method-assign]
    try:
        async with running(rig):
            await rig.engine.submit_intent(intent(), LIVE)
            await rig.settle()
            rig.gw.fill("t1-entry", 500, 50_000.0)
            await rig.settle()
            assert rig.engine.trades["t1"].state.value == "PROTECTED"  # the engine went on
    finally:
        configure_logging("WARNING", "json")
    assert feed.failures > 0
    assert any(e["source"] == "ops" and "boom" in e["message"] for e in state.last_errors)
    assert any(a.text.startswith("ERROR [ops]") and "boom" in a.text for a in alerts._queue)
    assert any(x["event"] == "ops_failed" for x in _lines(out))


def test_the_wallet_from_the_user_stream_moves_balance_and_equity_between_rest_checks(tmp_path: Path) -> None:
    from bot.domain.orders import BalanceUpdate

    rig = Rig(tmp_path)
    feed, state, _alerts, _out = _feed(rig)
    configure_logging("WARNING", "json")
    feed.on_balance(BalanceUpdate("USDT", 4_990.0, 4_990.0, 1))
    assert state.account == {}  # before the first REST snapshot there is no free margin to show with it
    state.set_account(equity=5_000.0, available=4_800.0, wallet_balance=5_000.0, now_ns=1)
    state.set_position("BTCUSDT", side="long", qty=0.5, entry_price=50_000.0, unrealized_pnl_quote=12.5)
    feed.on_balance(BalanceUpdate("USDT", 4_990.0, 4_990.0, 2))
    feed.on_balance(BalanceUpdate("BNB", 3.0, 3.0, 3))  # another asset of the account: not the quote
    assert (state.account["wallet_balance"], state.account["equity"], state.account["available"],
            state.account["source"]) == (4_990.0, 5_002.5, 4_800.0, "user stream")


async def test_open_positions_name_the_stop_left_at_the_venue(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    feed, _state, _alerts, _out = _feed(rig)
    try:
        async with running(rig):
            await rig.engine.submit_intent(intent(), LIVE)
            await rig.settle()
            assert feed.open_positions() == []  # an entry not filled holds nothing
            rig.gw.fill("t1-entry", 500, 50_000.0)
            await rig.settle()
            assert feed.open_positions() == [{"trade_id": "t1", "symbol": "BTCUSDT", "side": "long", "qty": 0.5,
                                              "stop_price": 49_950.0, "stop_client_id": "t1-sl",
                                              "stop_status": "NEW"}]
    finally:
        configure_logging("WARNING", "json")
