"""Per-symbol halts and reconciliation made visible: the gate's read-only view, RuntimeState, /health,
/status, /metrics, `scalper status|halt|resume --symbol`, the once-per-transition alert; then the two ways a
symbol halts for real: a stop the venue rejects (engine HaltSymbol) and a position of no known trade found by
the start-up reconciliation, each through App._housekeeping into the ops endpoint."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from bot.__main__ import main
from bot.app import App
from bot.execution.recovery import RECONCILING
from bot.logging import configure_logging
from bot.ops.live import OpsFeed
from bot.ops.server import ControlError, OpsServer
from bot.ops.state import RECONCILE_ACTIONS, RuntimeState
from bot.risk import RiskGate
from bot.settings import load_settings
from bot.settings.ops import OpsSection
from bot.settings.risk import RiskSection
from bot.venues.binance_usdm.instruments import KNOWN
from tests.execution.harness import LIVE, Clock, Rig, intent
from tests.execution.restore_harness import Life, Venue
from tests.ops.conftest import AUTH, T0, TOKEN

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = aiohttp.ClientTimeout(total=5)
S = 1_000_000_000


async def _get(url: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession(timeout=TIMEOUT, headers=AUTH) as s, s.get(url) as r:
        return r.status, (await r.json() if r.content_type == "application/json" else await r.text())


async def _post(url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession(timeout=TIMEOUT, headers=AUTH) as s, s.post(url, json=body) as r:
        return r.status, await r.json()


async def _cli(*argv: str) -> int:
    return await asyncio.wait_for(asyncio.to_thread(main, list(argv)), 20)


def _sample(text: str, name: str, **labels: str) -> float:
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    raise AssertionError(f"no sample {name} {labels}")


async def _until(cond: Callable[[], Any], timeout_s: float = 3.0) -> None:
    """Bounded wait for the app's twice-a-second housekeeping to catch up."""
    for _ in range(int(timeout_s / 0.02)):
        if await cond():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached in time")


# ---- the gate's view -----------------------------------------------------------------------------------
def test_gate_view_keeps_the_first_halt_time_and_lift_touches_nothing_else() -> None:
    g = RiskGate(RiskSection(), 5_000.0, T0)
    g.halt_symbol("BTCUSDT", "t1-sl REJECTED: -4164", T0 + 1)
    g.halt_symbol("BTCUSDT", "t2: flatten failed 3 times", T0 + 5)  # still halted: since stays
    assert g.symbol_halts() == {"BTCUSDT": ("t2: flatten failed 3 times", T0 + 1)}
    g.symbol_halts()["BTCUSDT"] = ("x", 0)  # a copy: the gate is not changed through it
    assert g.halted_symbols == {"BTCUSDT": "t2: flatten failed 3 times"}
    g.consecutive_losses = 2
    g.day_start_equity = 6_000.0
    g.drain_state_changes()
    assert g.lift_symbol("BTCUSDT", "operator checked the stop", T0 + 9)
    assert not g.lift_symbol("BTCUSDT", "again", T0 + 10)
    assert g.symbol_halts() == {} and g.state.value == "ACTIVE"
    assert (g.consecutive_losses, g.day_start_equity) == (2, 6_000.0)  # unlike reset: no fresh baseline
    assert g.drain_state_changes() == [(T0 + 9, "symbol", "BTCUSDT", "HALTED", "ACTIVE", "operator checked the stop")]
    g.halt_symbol("BTCUSDT", "again", T0 + 20)
    assert g.symbol_halts() == {"BTCUSDT": ("again", T0 + 20)}  # a new halt, a new start
    g.reset(T0 + 30)
    g.halt_symbol("BTCUSDT", "after reset", T0 + 40)
    assert g.symbol_halts() == {"BTCUSDT": ("after reset", T0 + 40)}


# ---- RuntimeState ------------------------------------------------------------------------------------
def test_state_symbol_halts_degrade_health_and_transitions_are_reported() -> None:
    st = RuntimeState(now_ns=T0)
    st.set_book_status("ETHUSDT", "LIVE", "ok", T0)
    assert st.health(T0) == {"status": "ok", "reasons": []}
    assert st.set_symbol_halts({"BTCUSDT": ("t1-sl REJECTED: -4164", T0 + 1)}) == (["BTCUSDT"], [])
    assert st.set_symbol_halts({"BTCUSDT": ("t1-sl REJECTED: -4164", T0 + 1)}) == ([], [])  # no transition
    assert st.health(T0) == {"status": "degraded", "reasons": ["symbol halted: BTCUSDT (t1-sl REJECTED: -4164)"]}
    st.set_trading_state("HALTED", "operator", T0 + 2)  # halted stays halted, the symbol still listed
    assert st.health(T0) == {"status": "halted", "reasons": [
        "trading HALTED: operator", "symbol halted: BTCUSDT (t1-sl REJECTED: -4164)"]}
    st.set_trading_state("ACTIVE", "resume", T0 + 3)
    status = st.status(T0 + 3)
    assert status["halted_symbols"] == {"BTCUSDT": {"reason": "t1-sl REJECTED: -4164", "since_ns": T0 + 1}}
    assert status["reconcile"] == {"state": "pending", "runs": 0, "failures": 0, "failures_total": 0,
                                   "last_ok_ns": 0, "last_failed_ns": 0, "last_error": "",
                                   "actions": dict.fromkeys(RECONCILE_ACTIONS, 0)}
    assert st.set_symbol_halts({"ETHUSDT": ("position of no known trade", T0 + 4)}) == (["ETHUSDT"], ["BTCUSDT"])
    assert st.set_symbol_halts({}) == ([], ["ETHUSDT"])
    assert st.health(T0) == {"status": "ok", "reasons": []} and st.symbols == {"BTCUSDT", "ETHUSDT"}


def test_state_reconcile_pending_failed_ok() -> None:
    st = RuntimeState(now_ns=T0)
    assert st.reconcile_state() == "pending"
    st.set_reconcile(runs=0, failures=2, failures_total=2, last_ok_ns=0, last_failed_ns=T0,
                     last_error="VenueUnavailable: venue unreachable")
    assert st.reconcile_state() == "failed"
    assert st.health(T0) == {"status": "degraded", "reasons": [
        "reconciliation failing (2 in a row): VenueUnavailable: venue unreachable"]}
    st.set_reconcile(runs=1, failures=0, failures_total=2, last_ok_ns=T0 + S, last_failed_ns=T0,
                     last_error="VenueUnavailable: venue unreachable", actions={"stops_placed": 1})
    assert st.reconcile_state() == "ok" and st.health(T0)["status"] == "ok"
    rec = st.status(T0)["reconcile"]
    assert (rec["state"], rec["runs"], rec["failures_total"], rec["actions"]["stops_placed"],
            rec["actions"]["manual_closes"]) == ("ok", 1, 2, 1, 0)


async def test_metrics_symbol_halted_and_reconcile_families_parse(server: OpsServer, state: RuntimeState,
                                                                  clock: list[int]) -> None:
    state.set_book_status("BTCUSDT", "LIVE", "ok", clock[0])
    state.set_book_status("ETHUSDT", "LIVE", "ok", clock[0])
    state.set_symbol_halts({"ETHUSDT": ("position of no known trade", clock[0])})
    state.set_reconcile(runs=3, failures=0, failures_total=1, last_ok_ns=T0, last_failed_ns=T0 - S,
                        actions={"stops_placed": 2, "orders_cancelled": 3, "trades_adopted": 1, "manual_closes": 1})
    code, text = await _get(server.url + "/metrics")
    assert code == 200
    assert _sample(text, "scalper_symbol_halted", symbol="ETHUSDT") == 1
    assert _sample(text, "scalper_symbol_halted", symbol="BTCUSDT") == 0
    assert _sample(text, "scalper_health", status="degraded") == 1
    assert _sample(text, "scalper_reconcile_state", state="ok") == 1
    assert _sample(text, "scalper_reconcile_state", state="failed") == 0
    assert _sample(text, "scalper_reconcile_runs_total") == 3
    assert _sample(text, "scalper_reconcile_failures_total") == 1
    for action, n in (("stops_placed", 2), ("orders_cancelled", 3), ("trades_adopted", 1), ("manual_closes", 1),
                      ("positions_flattened", 0)):
        assert _sample(text, "scalper_reconcile_actions_total", action=action) == n, action
    assert _sample(text, "scalper_reconcile_last_ok_timestamp_seconds") == T0 / 1e9
    state.set_symbol_halts({})
    _, text = await _get(server.url + "/metrics")
    assert _sample(text, "scalper_symbol_halted", symbol="ETHUSDT") == 0  # the series stays, at 0


async def test_control_symbol_reaches_only_handlers_that_take_one(server: OpsServer, state: RuntimeState) -> None:
    calls: list[tuple[str, str | None]] = []

    def resume(reason: str, symbol: str | None = None) -> dict[str, Any]:
        if symbol == "DOGEUSDT":
            raise ControlError("unknown symbol 'DOGEUSDT'")
        calls.append((reason, symbol))
        return {"symbol": symbol}

    server.on_control("resume", resume)
    server.on_control("halt", lambda reason: calls.append((reason, None)))  # old-style: no symbol
    state.set_symbol_halts({"ETHUSDT": ("x", T0)})
    assert await _post(server.url + "/control/resume", {"symbol": " ethusdt "}) == (200, {
        "ok": True, "action": "resume", "result": {"symbol": "ETHUSDT"},
        "trading": {"state": "ACTIVE", "reason": "started"},
        "halted_symbols": {"ETHUSDT": {"reason": "x", "since_ns": T0}}})
    assert await _post(server.url + "/control/resume", {}) == (200, {
        "ok": True, "action": "resume", "result": {"symbol": None},
        "trading": {"state": "ACTIVE", "reason": "started"},
        "halted_symbols": {"ETHUSDT": {"reason": "x", "since_ns": T0}}})
    code, body = await _post(server.url + "/control/resume", {"symbol": "DOGEUSDT"})
    assert (code, body["error"]) == (400, "unknown symbol 'DOGEUSDT'")
    code, body = await _post(server.url + "/control/halt", {"symbol": "BTCUSDT"})
    assert (code, body["error"]) == (400, "halt does not take a symbol")
    code, body = await _post(server.url + "/control/resume", {"symbol": 5})
    assert code == 400
    assert calls == [("operator resume via ops endpoint", "ETHUSDT"), ("operator resume via ops endpoint", None)]
    assert state.last_errors == type(state.last_errors)()  # refusals are answers, not errors


async def test_cli_status_prints_halted_symbols_and_reconciliation(server: OpsServer, state: RuntimeState,
                                                                   capsys: Any) -> None:
    state.set_symbol_halts({"BTCUSDT": ("t1-sl REJECTED: -4164", T0)})
    state.set_reconcile(runs=0, failures=1, failures_total=1, last_ok_ns=0, last_failed_ns=T0,
                        last_error="VenueUnavailable: down", actions={"trades_adopted": 1})
    assert await _cli("status", "--url", server.url) == 1  # degraded
    out = capsys.readouterr().out
    assert "health: DEGRADED" in out and "  - symbol halted: BTCUSDT (t1-sl REJECTED: -4164)" in out
    assert "halted symbols: 1" in out
    assert "  BTCUSDT      since 2023-11-14 22:13:20 UTC: t1-sl REJECTED: -4164" in out
    assert "reconciliation: failed runs=0" in out and "trades_adopted=1" in out
    assert "last error 2023-11-14 22:13:20 UTC: VenueUnavailable: down" in out


# ---- through the app ---------------------------------------------------------------------------------
def _app(tmp: Path, engine: Any, journal: Any) -> App:
    """An App whose core is the test's engine (fake venue, explicit clock); the rest is the app's own."""
    settings = load_settings(str(ROOT / "config" / "default.toml"),
                             overrides={"app": {"state_dir": str(tmp)}, "ops": {"port": 0}})
    app = App(settings, view=False)
    app.engine, app.journal, app.gateway = engine, journal, engine.gw
    app.ops_feed = OpsFeed(app.state, app.alerts, engine, tick_s=0.1, account_check_s=0)  # as _build_core
    app.pipeline = SimpleNamespace(syncs={}, instruments=dict(KNOWN))  # type: ignore[assignment]
    return app


@contextlib.asynccontextmanager
async def _serving(app: App) -> AsyncIterator[str]:
    """The ops server with the app's controls, as App._serve wires it, and the housekeeping loop."""
    ops = OpsServer(app.state, OpsSection(port=0), alerts=app.alerts, token=TOKEN)
    for action, fn in (("halt", app._halt), ("resume", app._resume), ("flatten", app._flatten)):
        ops.on_control(action, fn)
    await ops.start()
    hk = asyncio.create_task(app._housekeeping())
    try:
        yield ops.url
    finally:
        hk.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await hk
        await ops.stop()


def _alerts(app: App) -> list[str]:
    return [a.text for a in app.alerts._queue]  # queued (no sink configured): what the operator would get


async def test_rejected_stop_halt_shows_in_health_metrics_status_and_resume_lifts_it(
        tmp_path: Path, capsys: Any) -> None:
    configure_logging("WARNING", "json")
    rig = Rig(tmp_path)
    rig.gw.reject = {"-sl": (-4164, "Order's notional must be no smaller than 5")}
    app = _app(tmp_path, rig.engine, rig.journal)
    await rig.engine.refresh_account()
    engine_task = asyncio.create_task(rig.engine.run(timers=False))
    try:
        async with _serving(app) as url:
            assert await _get(url + "/health") == (200, {"status": "ok", "reasons": []})
            await rig.engine.submit_intent(intent(), LIVE)
            await rig.settle()
            rig.gw.fill("t1-entry", 500, 50_000.0)
            await rig.settle()
            halted_at = rig.clock()
            # the stop was refused: flattened, entries on BTCUSDT halted (the engine's HaltSymbol)
            assert rig.gw.requests(1)[0][:3] == ("t1-sl", "SELL", "STOP_MARKET")
            assert ("t1-exit", "SELL", "MARKET") in [r[:3] for r in rig.gw.requests()]
            reason = "t1-sl REJECTED: -4164"
            assert rig.rm.gate.halted_symbols == {"BTCUSDT": reason}

            async def degraded() -> bool:
                return (await _get(url + "/health"))[0] == 503

            await _until(degraded)
            assert await _get(url + "/health") == (503, {"status": "degraded",
                                                         "reasons": [f"symbol halted: BTCUSDT ({reason})"]})
            _, text = await _get(url + "/metrics")
            assert _sample(text, "scalper_symbol_halted", symbol="BTCUSDT") == 1
            assert _sample(text, "scalper_trading_state", state="ACTIVE") == 1
            _, st = await _get(url + "/status")
            assert st["halted_symbols"] == {"BTCUSDT": {"reason": reason, "since_ns": halted_at}}
            assert st["trading"]["state"] == "ACTIVE"
            await asyncio.sleep(0.6)  # another housekeeping tick: still one alert for one transition
            assert _alerts(app) == [f"SYMBOL HALTED BTCUSDT: {reason}"]

            rig.gw.fill("t1-exit", 500, 49_990.0)  # flat again
            await rig.settle()
            assert rig.rows("trades")[0]["exit_reason"] == "RISK_HALT"
            assert rig.rm.gate.check_entry("BTCUSDT", "other", LIVE, rig.clock()) is not None  # still halted
            # `scalper resume --symbol`: that symbol only; journaled; the operator is told
            assert await _cli("resume", "--url", url, "--symbol", "btcusdt", "--reason", "stop size fixed") == 0
            assert "resume BTCUSDT: done; trading ACTIVE" in capsys.readouterr().out
            assert await _get(url + "/health") == (200, {"status": "ok", "reasons": []})
            _, text = await _get(url + "/metrics")
            assert _sample(text, "scalper_symbol_halted", symbol="BTCUSDT") == 0
            assert rig.rm.gate.check_entry("BTCUSDT", "other", LIVE, rig.clock()) is None
            assert [(r["to_state"], r["reason"]) for r in rig.rows("state_changes", entity="symbol")] == [
                ("HALTED", reason), ("ACTIVE", "stop size fixed")]
            assert _alerts(app)[-1] == "SYMBOL RESUMED BTCUSDT"

            # the operator halts one symbol, then a plain `scalper resume` lifts it (and every other halt)
            assert await _cli("halt", "--url", url, "--symbol", "ETHUSDT", "--reason", "listing news") == 0
            assert "halt ETHUSDT: done; trading ACTIVE (started); halted symbols: ETHUSDT" in capsys.readouterr().out
            code, health = await _get(url + "/health")
            assert (code, health["reasons"]) == (503, ["symbol halted: ETHUSDT (listing news)"])
            assert await _cli("resume", "--url", url) == 0
            assert await _get(url + "/health") == (200, {"status": "ok", "reasons": []})
            assert rig.rows("state_changes", entity="symbol", entity_id="ETHUSDT")[-1]["to_state"] == "ACTIVE"
            assert await _cli("resume", "--url", url, "--symbol", "DOGEUSDT") == 1
            assert "HTTP 400" in capsys.readouterr().err
            assert _alerts(app)[-2:] == ["SYMBOL HALTED ETHUSDT: listing news", "SYMBOL RESUMED ETHUSDT"]
    finally:
        engine_task.cancel()
        await rig.gw.close()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(engine_task, 5)
        rig.journal.close()


async def test_restart_reconciliation_failure_then_unknown_position_halt_are_visible(tmp_path: Path) -> None:
    configure_logging("WARNING", "json")
    venue = Venue(Clock())
    life = Life(tmp_path, venue)
    await life.start()
    app = _app(tmp_path, life.engine, life.journal)
    app.recovery = life.recovery
    assert app.ops_feed is not None
    app.ops_feed.recovery = life.recovery  # as App._build_core
    life.recovery.halt_entries(venue.clock())  # as App._build_core: HALTED "reconciling" until a pass succeeds
    app.state.set_trading_state("HALTED", RECONCILING, venue.clock())
    venue.by_hand("BTCUSDT", 10, 50_000.0)  # a position of no known trade
    venue.down = True
    rec_task = asyncio.create_task(life.recovery.run(app.reconcile_wanted, app._reconciled,
                                                     min_backoff_ms=20, max_backoff_ms=50))
    try:
        async with _serving(app) as url:
            async def failing() -> bool:
                return (await _get(url + "/status"))[1]["reconcile"]["state"] == "failed"

            await _until(failing)
            code, health = await _get(url + "/health")
            assert code == 503 and health["status"] == "halted"
            assert health["reasons"][0] == "trading HALTED: reconciling"
            assert health["reasons"][1].startswith("reconciliation failing (")
            assert "VenueUnavailable: venue unreachable (test)" in health["reasons"][1]
            _, text = await _get(url + "/metrics")
            assert _sample(text, "scalper_reconcile_state", state="failed") == 1
            assert _sample(text, "scalper_reconcile_failures_total") >= 1

            venue.down = False

            async def reconciled() -> bool:
                return (await _get(url + "/status"))[1]["reconcile"]["state"] == "ok"

            await _until(reconciled)
            _, st = await _get(url + "/status")
            assert st["trading"]["state"] == "ACTIVE"
            assert st["halted_symbols"] == {"BTCUSDT": {"reason": "position of no known trade",
                                                        "since_ns": venue.clock()}}
            rec = st["reconcile"]
            assert (rec["runs"], rec["failures"], rec["last_ok_ns"]) == (1, 0, venue.clock())
            assert rec["failures_total"] >= 1 and rec["last_error"].startswith("VenueUnavailable")
            assert rec["actions"] == {"stops_placed": 1, "orders_cancelled": 0, "trades_adopted": 0,
                                      "manual_closes": 0, "positions_flattened": 0, "symbols_halted": 1,
                                      "stream_misses": 0, "position_mismatches": 0, "inflight_checks": 0,
                                      "stream_reconnects": 0}
            assert await _get(url + "/health") == (503, {"status": "degraded", "reasons": [
                "symbol halted: BTCUSDT (position of no known trade)"]})
            _, text = await _get(url + "/metrics")
            assert _sample(text, "scalper_symbol_halted", symbol="BTCUSDT") == 1
            assert _sample(text, "scalper_reconcile_actions_total", action="stops_placed") == 1
            assert _sample(text, "scalper_reconcile_runs_total") == 1
            assert "SYMBOL HALTED BTCUSDT: position of no known trade" in _alerts(app)
    finally:
        rec_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await rec_task
        await life.crash()


async def test_recovery_counts_adoptions_cancels_and_manual_closes(tmp_path: Path) -> None:
    """A trade closed by hand while the bot was down: adopted, its 3 exit orders cancelled, closed MANUAL."""
    venue = Venue(Clock())
    life = Life(tmp_path, venue)
    await life.start()
    await life.engine.submit_intent(intent(), LIVE)
    await life.settle()
    venue.fill("t1-entry", 500, 50_000.0)
    await life.settle()
    await life.crash()
    venue.by_hand("BTCUSDT", -500, 50_020.0)
    life = Life(tmp_path, venue)
    assert await life.start() == ["t1"]
    await life.recovery.reconcile()
    await life.settle()
    assert life.trade()["exit_reason"] == "MANUAL"
    assert dict(life.recovery.stats) == {"trades_adopted": 1, "orders_cancelled": 3, "manual_closes": 1}
    await life.recovery.reconcile()  # nothing left to do: the counts stay
    assert sum(life.recovery.stats.values()) == 5 and life.recovery.runs == 2
    await life.crash()


async def test_a_quarantined_symbol_shows_in_status_until_its_entry_fate_is_known(tmp_path: Path) -> None:
    """An entry of unknown fate (bot/execution/quarantine.py): the engine quarantines its symbol; the app's
    /status lists it (which entry, until when) from the running gate, and drops it once the fate is known."""
    from bot.venues.errors import AmbiguousOutcome
    from tests.execution.test_engine_protect import rig_of

    configure_logging("WARNING", "json")
    rig, gw, _ = rig_of(tmp_path)
    app = _app(tmp_path, rig.engine, rig.journal)
    await rig.engine.refresh_account()
    engine_task = asyncio.create_task(rig.engine.run(timers=False))
    try:
        async with _serving(app) as url:
            assert (await _get(url + "/status"))[1]["quarantined_symbols"] == {}
            gw.script["t1-entry"] = [AmbiguousOutcome("503 -1007 execution status unknown")]
            await rig.engine.submit_intent(intent(), LIVE)

            async def listed() -> bool:
                return bool((await _get(url + "/status"))[1]["quarantined_symbols"])

            await _until(listed)
            q = (await _get(url + "/status"))[1]["quarantined_symbols"]
            until_ns = rig.rm.gate.quarantined["BTCUSDT"]["t1-entry"]
            assert q == {"BTCUSDT": {"entries": ["t1-entry"], "until_ns": until_ns}} and until_ns > rig.clock()
            rig.rm.gate.release("BTCUSDT", "t1-entry", "final look-up: not found", rig.clock())  # as the timer does

            async def gone() -> bool:
                return not (await _get(url + "/status"))[1]["quarantined_symbols"]

            await _until(gone)
    finally:
        engine_task.cancel()
        await rig.gw.close()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(engine_task, 5)
        rig.journal.close()
