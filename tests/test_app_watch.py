"""The app's watch of the exchange (bot.app_watch, issue 11 items 2 and 3) on a real App: the user stream's
events -> entry halts, /health, alerts, reconnect requests; positions from the stream that differ from the
bot's -> a reconciliation pass; the in-flight check. The core is built over the simulator gateway; the
stream and the positions source are small stand-ins driven by hand."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from bot.app import App, _instruments
from bot.domain.types import OrderKind, OrderStatus, Side
from bot.execution.actions import Leg, LegRole
from bot.settings import load_settings
from bot.settings.core import VenueSection
from bot.venues.gateway_common import LiveGateway
from bot.venues.ports import OrderRequest, PositionSnapshot
from bot.venues.sim.brackets import risk_brackets
from bot.venues.sim.gateway import SimGateway, exchange_from_settings

ROOT = Path(__file__).resolve().parent.parent
MS = 1_000_000


class Stream:
    def __init__(self) -> None:
        self.on_event: Any = None
        self.asked: list[str] = []

    def request_reconnect(self, reason: str) -> bool:
        self.asked.append(reason)
        return True


def app_over_sim(tmp_path: Path) -> tuple[App, Stream]:
    s = load_settings(str(ROOT / "config" / "default.toml"),
                      overrides={"app": {"state_dir": str(tmp_path)}, "ops": {"port": 0}})
    app = App(s, view=False)
    inst = _instruments(s)
    app._build_core(SimGateway(exchange_from_settings(s.sim, inst)), inst, s.sim.starting_balance_usdt,
                    risk_brackets())
    stream = Stream()
    app._wire_stream(stream)
    return app, stream


def halts(app: App) -> dict[str, str]:
    assert app.engine is not None
    return dict(app.engine.risk.gate.halted_symbols)


def alerts(app: App) -> list[str]:
    return [a.text for a in app.alerts._queue]


def health_reasons(app: App) -> list[str]:
    return list(app.state.health(time.time_ns())["reasons"])


async def test_a_lost_stream_halts_entries_degrades_health_and_alerts_once(tmp_path: Path) -> None:
    app, stream = app_over_sim(tmp_path)
    syms = app.settings.venue.symbols
    app._reconciled(1)
    assert app.state.trading_state == "HALTED"  # the start-up halt holds until the stream is there
    stream.on_event("connected", "")
    assert halts(app) == {} and not [r for r in health_reasons(app) if "user stream" in r]
    stream.on_event("message", "")
    assert app.state.user_stream_last_msg_ns > 0
    stream.on_event("lost", "ConnectionClosed: 1006")
    assert halts(app) == {s: "user stream down: ConnectionClosed: 1006" for s in syms}
    assert "user stream down: ConnectionClosed: 1006" in health_reasons(app)
    app._stream_gate()  # the housekeeping tick: no second alert
    assert [t for t in alerts(app) if "user stream down" in t and "entries refused" in t] != []
    n = len(alerts(app))
    stream.on_event("lost", "ConnectionClosed: 1006")
    assert len(alerts(app)) == n
    # an operator's halt on one symbol is not ours to lift
    assert app.engine is not None
    app.engine.risk.gate.halted_symbols[syms[0]] = "operator: checking"
    stream.on_event("connected", "")
    assert halts(app) == {syms[0]: "operator: checking"}
    assert any("healthy again" in t for t in alerts(app))


async def test_a_missed_fill_puts_the_stream_in_doubt_asks_a_reconnect_and_a_pass(tmp_path: Path) -> None:
    app, stream = app_over_sim(tmp_path)
    stream.on_event("connected", "")
    app._reconciled(1)  # the start-up pass is done: trading ACTIVE
    assert app.state.trading_state == "ACTIVE"
    app.reconcile_wanted.clear()
    assert app.recovery is not None and app.recovery.on_missed is not None
    app.recovery.on_missed("BTCUSDT", "t3-entry FILLED filled 5 lots 2000 ms ago, never delivered by the user stream")
    reason = "user stream in doubt: t3-entry FILLED filled 5 lots 2000 ms ago, never delivered by the user stream"
    assert set(halts(app).values()) == {reason}
    assert reason in health_reasons(app)
    assert app.state.health(time.time_ns())["status"] == "degraded"
    assert stream.asked and app.reconcile_wanted.is_set()
    # the stream reconnects and catches up; a clean pass is not enough before the probation ends
    stream.on_event("lost", "reconnecting: requested")
    stream.on_event("connected", "")
    stream.on_event("caught_up", "")
    app._after_pass()
    assert set(halts(app).values()) == {reason}
    assert app.stream_health is not None
    app.stream_health.caught_up_ns -= app.stream_health.probation_ns  # the probation has passed
    app._after_pass()
    assert halts(app) == {} and not [r for r in health_reasons(app) if "user stream" in r]


async def test_a_failing_keepalive_is_doubt_and_asks_a_pass(tmp_path: Path) -> None:
    app, stream = app_over_sim(tmp_path)
    stream.on_event("connected", "")
    app.reconcile_wanted.clear()
    stream.on_event("probe_failed", "listenKey keep-alive failed: VenueUnavailable")
    assert "user stream in doubt: listenKey keep-alive failed: VenueUnavailable" in health_reasons(app)
    assert app.reconcile_wanted.is_set()
    stream.on_event("probe_ok", "")
    assert halts(app) == {}


async def test_an_order_waiting_too_long_is_looked_up_and_silence_since_is_doubt(tmp_path: Path) -> None:
    app, stream = app_over_sim(tmp_path)
    stream.on_event("connected", "")
    assert app.engine is not None
    leg = Leg("t9-entry", LegRole.ENTRY, OrderRequest("t9-entry", "BTCUSDT", Side.BUY, OrderKind.MARKET, 5), 0)

    app.engine.trades["t9"] = SimpleNamespace(legs={"t9-entry": leg})  # type: ignore[assignment]
    limit = app.settings.venue.inflight_check_ms * MS
    t0 = time.time_ns() + 1_000 * MS  # after the connect: no message since
    assert app._inflight_once(t0) == []
    app.reconcile_wanted.clear()
    assert app._inflight_once(t0 + limit - 1) == []
    assert app._inflight_once(t0 + limit) == ["t9-entry"]
    assert app.reconcile_wanted.is_set() and stream.asked  # silent since it was sent: doubt + reconnect
    assert any("in doubt" in r and "t9-entry" in r for r in health_reasons(app))
    # checked again only after another period; a filled leg is forgotten
    assert app._inflight_once(t0 + limit + 1) == []
    leg.filled_lots, leg.status = 5, OrderStatus.FILLED
    assert app._inflight_once(t0 + 3 * limit) == [] and app._pending_since == {}


async def test_an_order_waiting_while_the_stream_talks_is_looked_up_without_doubt(tmp_path: Path) -> None:
    app, stream = app_over_sim(tmp_path)
    stream.on_event("connected", "")
    assert app.engine is not None
    leg = Leg("t9-entry", LegRole.ENTRY, OrderRequest("t9-entry", "BTCUSDT", Side.BUY, OrderKind.MARKET, 5), 0)

    app.engine.trades["t9"] = SimpleNamespace(legs={"t9-entry": leg})  # type: ignore[assignment]
    limit = app.settings.venue.inflight_check_ms * MS
    t0 = time.time_ns()
    app._inflight_once(t0)
    assert app.stream_health is not None
    app.stream_health.on_message(t0 + limit // 2)  # the stream spoke after the order went out
    app.reconcile_wanted.clear()
    assert app._inflight_once(t0 + limit) == ["t9-entry"]
    assert app.reconcile_wanted.is_set() and not stream.asked and halts(app) == {}


async def test_a_position_from_the_stream_the_bot_does_not_hold_asks_a_pass(tmp_path: Path) -> None:
    app, _stream = app_over_sim(tmp_path)
    lg = LiveGateway(VenueSection(), session=None)
    app.gateway = lg
    app.position_grace_s = 0.05
    task = asyncio.create_task(app._watch_positions())
    try:
        app.reconcile_wanted.clear()
        lg.publish(PositionSnapshot("BTCUSDT", 0, 0.0))  # flat, as the bot: nothing
        await asyncio.sleep(0.15)
        assert not app.reconcile_wanted.is_set() and app.watch_stats["position_mismatches"] == 0
        lg.publish(PositionSnapshot("BTCUSDT", 10, 60_000.0))  # a position opened by hand
        for _ in range(100):
            if app.reconcile_wanted.is_set():
                break
            await asyncio.sleep(0.01)
        assert app.reconcile_wanted.is_set() and app.watch_stats["position_mismatches"] == 1
        assert app.recovery is not None and any("BTCUSDT" in r for r in app.recovery.reasons)
        app._sync_ops_state(time.time_ns())  # into /status and /metrics (scalper_reconcile_actions_total)
        assert app.state.reconcile["actions"]["position_mismatches"] == 1
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_request_still_under_way_is_not_the_streams_to_answer(tmp_path: Path) -> None:
    """A stop whose request waits out a Retry-After has no answer yet: no look-up pass, no doubt."""
    app, stream = app_over_sim(tmp_path)
    stream.on_event("connected", "")
    assert app.engine is not None
    leg = Leg("t9-sl", LegRole.STOP, OrderRequest("t9-sl", "BTCUSDT", Side.SELL, OrderKind.STOP_MARKET, 5,
                                                  trigger_ticks=590_000, reduce_only=True), 590_000)
    app.engine.trades["t9"] = SimpleNamespace(legs={"t9-sl": leg})  # type: ignore[assignment]
    app.engine.inflight.add("t9-sl")
    t0 = time.time_ns() + 1_000 * MS
    limit = app.settings.venue.inflight_check_ms * MS
    app._inflight_once(t0)
    assert app._inflight_once(t0 + 5 * limit) == [] and not stream.asked
    app.engine.inflight.discard("t9-sl")  # the request returned, and still no acknowledgement
    app._inflight_once(t0 + 5 * limit)
    assert app._inflight_once(t0 + 6 * limit) == ["t9-sl"]


async def test_a_second_doubt_inside_the_reconnect_interval_gets_its_reconnect_later(tmp_path: Path) -> None:
    """A doubt ends only after a catch-up that follows it: a reconnect asked too soon after the last one is
    deferred to the end of the interval, never dropped (a dropped one left the stream in doubt for good)."""
    app, stream = app_over_sim(tmp_path)
    app.reconnect_min_interval_s = 0.2
    stream.on_event("connected", "")
    app._reconciled(1)
    assert app.recovery is not None and app.recovery.on_missed is not None
    app.recovery.on_missed("BTCUSDT", "t1-entry FILLED, never delivered")
    assert len(stream.asked) == 1
    stream.on_event("lost", "reconnecting: requested")
    stream.on_event("connected", "")
    stream.on_event("caught_up", "")
    app.recovery.on_missed("BTCUSDT", "t2-entry FILLED, never delivered")  # within the interval
    assert len(stream.asked) == 1
    await asyncio.sleep(0.35)
    assert len(stream.asked) == 2  # the deferred reconnect went out
    app.recovery.on_missed("BTCUSDT", "t3-entry FILLED, never delivered")  # too soon again: deferred ...
    stream.on_event("lost", "reconnecting")
    stream.on_event("connected", "")
    stream.on_event("caught_up", "")  # ... and the stream was renewed meanwhile: not asked again
    await asyncio.sleep(0.35)
    assert len(stream.asked) == 2
