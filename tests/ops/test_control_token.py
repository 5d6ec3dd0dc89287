"""Control always needs a token (loopback too), created owner-only in the state directory and read by the
CLI; resume is refused while reconciling and keeps the loss baselines; reset-limits is separate, confirmed
and journaled; journal files are owner-only."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest

from bot.__main__ import main
from bot.app import App
from bot.execution.recovery import RECONCILING
from bot.journal import Journal
from bot.logging import configure_logging
from bot.ops.live import OpsFeed
from bot.ops.server import OpsServer
from bot.ops.state import RuntimeState
from bot.ops.token import TOKEN_FILE, ensure_token, read_token
from bot.settings import load_settings
from bot.settings.ops import OpsSection
from bot.venues.binance_usdm.instruments import KNOWN
from tests.execution.harness import Rig

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = aiohttp.ClientTimeout(total=5)


def _mode(p: Path | str) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


async def _cli(*argv: str) -> int:
    return await asyncio.wait_for(asyncio.to_thread(main, list(argv)), 20)


async def _req(method: str, url: str, token: str = "", body: dict[str, Any] | None = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession(timeout=TIMEOUT, headers=headers) as s, \
            s.request(method, url, json=body if method == "POST" else None) as r:
        return r.status, (await r.json() if r.content_type == "application/json" else await r.text())


# ---- the token file ------------------------------------------------------------------------------------
def test_token_is_created_owner_only_once_and_kept(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    tok = ensure_token(str(state_dir))
    assert len(tok) >= 40 and read_token(str(state_dir)) == tok
    assert _mode(state_dir) == 0o700 and _mode(state_dir / TOKEN_FILE) == 0o600
    assert ensure_token(str(state_dir)) == tok  # a restart keeps it: the operator's scripts keep working
    # a configured token wins and no file is written for it
    other = tmp_path / "other"
    assert ensure_token(str(other), "configured-tok") == "configured-tok" and not other.exists()
    # files of an older version, readable by others, are narrowed
    os.chmod(state_dir, 0o755)
    os.chmod(state_dir / TOKEN_FILE, 0o644)
    assert ensure_token(str(state_dir)) == tok
    assert _mode(state_dir) == 0o700 and _mode(state_dir / TOKEN_FILE) == 0o600


async def test_control_and_status_need_the_token_on_loopback_health_and_metrics_stay_open(tmp_path: Path) -> None:
    srv = OpsServer(RuntimeState(), OpsSection(port=0), state_dir=str(tmp_path))
    calls: list[str] = []
    for action in ("halt", "resume", "flatten"):
        srv.on_control(action, lambda reason, a=action: calls.append(a))
    await srv.start()
    try:
        tok = (tmp_path / TOKEN_FILE).read_text().strip()
        assert srv.token == tok and srv.url.startswith("http://127.0.0.1:")
        for action in ("halt", "resume", "flatten"):
            assert (await _req("POST", f"{srv.url}/control/{action}", body={}))[0] == 401
            assert (await _req("POST", f"{srv.url}/control/{action}", "wrong", body={}))[0] == 401
        assert (await _req("GET", srv.url + "/status"))[0] == 401
        assert calls == []  # nothing ran without the token
        assert (await _req("GET", srv.url + "/health"))[0] == 200
        assert (await _req("GET", srv.url + "/metrics"))[0] == 200  # Prometheus scrapes without one
        for action in ("halt", "resume", "flatten"):
            code, body = await _req("POST", f"{srv.url}/control/{action}", tok, body={})
            assert code == 200 and body["ok"], body
        assert calls == ["halt", "resume", "flatten"]
        assert (await _req("GET", srv.url + "/status", tok))[0] == 200
    finally:
        await srv.stop()
    # /metrics behind the token when asked
    srv = OpsServer(RuntimeState(), OpsSection(port=0, metrics_require_token=True), token="t-123456")
    await srv.start()
    try:
        assert (await _req("GET", srv.url + "/metrics"))[0] == 401
        assert (await _req("GET", srv.url + "/metrics", "t-123456"))[0] == 200
        assert (await _req("GET", srv.url + "/health"))[0] == 200
    finally:
        await srv.stop()


def test_a_server_without_state_dir_or_token_still_requires_one() -> None:
    a, b = OpsServer(RuntimeState(), OpsSection(port=0)), OpsServer(RuntimeState(), OpsSection(port=0))
    assert a.token and b.token and a.token != b.token  # random per process, never "open"


async def test_cli_reads_the_token_from_the_state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: Any) -> None:
    monkeypatch.delenv("SCALPER__OPS__TOKEN", raising=False)
    monkeypatch.delenv("SCALPER__APP__STATE_DIR", raising=False)
    monkeypatch.chdir(tmp_path)  # no var/ops.token here
    state_dir = tmp_path / "st"
    srv = OpsServer(RuntimeState(), OpsSection(port=0), state_dir=str(state_dir))
    srv.on_control("halt", lambda reason: None)
    await srv.start()
    try:
        assert await _cli("halt", "--url", srv.url) == 4
        assert "refused the bearer token" in capsys.readouterr().err
        cfg = tmp_path / "c.toml"
        cfg.write_text(f'[app]\nstate_dir = "{state_dir}"\n[ops]\nport = {srv.port}\n')
        assert await _cli("halt", "-c", str(cfg)) == 0  # url and token from the config's state dir
        assert await _cli("status", "-c", str(cfg), "--json") == 0  # /status needs the token too
        capsys.readouterr()
        monkeypatch.setenv("SCALPER__APP__STATE_DIR", str(state_dir))
        assert await _cli("halt", "--url", srv.url) == 0  # the default state dir from the environment
        monkeypatch.setenv("SCALPER__OPS__TOKEN", "not-it")
        assert await _cli("halt", "--url", srv.url) == 4  # an explicit token is used as given
    finally:
        await srv.stop()


async def test_reset_limits_needs_yes_and_confirm(monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    srv = OpsServer(RuntimeState(), OpsSection(port=0), token="tok-abcdef")
    calls: list[str] = []
    srv.on_control("reset-limits", lambda reason: calls.append(reason))
    monkeypatch.setenv("SCALPER__OPS__TOKEN", "tok-abcdef")
    await srv.start()
    try:
        assert await _cli("reset-limits", "--url", srv.url) == 2
        assert "--yes" in capsys.readouterr().err
        code, body = await _req("POST", srv.url + "/control/reset-limits", "tok-abcdef", body={})
        assert code == 400 and "confirm" in body["error"]
        assert calls == []
        assert await _cli("reset-limits", "--url", srv.url, "--yes", "--reason", "new capital") == 0
        assert calls == ["new capital"]
    finally:
        await srv.stop()


# ---- through the app: resume vs reset-limits -------------------------------------------------------------
@contextlib.asynccontextmanager
async def _app(tmp_path: Path) -> AsyncIterator[tuple[App, Rig, str]]:
    configure_logging("WARNING", "json")
    rig = Rig(tmp_path, risk={"daily_loss_limit_pct": 2.0, "max_drawdown_pct": 50.0})
    settings = load_settings(str(ROOT / "config" / "default.toml"),
                             overrides={"app": {"state_dir": str(tmp_path)}, "ops": {"port": 0}})
    app = App(settings, view=False)
    app.engine, app.journal, app.gateway = rig.engine, rig.journal, rig.engine.gw
    app.ops_feed = OpsFeed(app.state, app.alerts, rig.engine, account_check_s=0)  # as App._build_core
    app.pipeline = SimpleNamespace(syncs={}, instruments=dict(KNOWN))  # type: ignore[assignment]
    ops = OpsServer(app.state, settings.ops, alerts=app.alerts, state_dir=settings.app.state_dir)
    for action, fn in (("halt", app._halt), ("resume", app._resume), ("flatten", app._flatten),
                       ("reset-limits", app._reset_limits)):
        ops.on_control(action, fn)
    await ops.start()
    try:
        yield app, rig, ops.url
    finally:
        await ops.stop()
        rig.journal.close()


async def test_resume_refused_while_reconciling(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: Any) -> None:
    monkeypatch.delenv("SCALPER__OPS__TOKEN", raising=False)
    async with _app(tmp_path) as (_, rig, url):
        gate = rig.rm.gate
        gate.halt(RECONCILING, rig.clock())  # what Recovery.halt_entries does at start-up
        gate.halt_symbol("BTCUSDT", "position of no known trade", rig.clock())
        monkeypatch.setenv("SCALPER__APP__STATE_DIR", str(tmp_path))  # the CLI finds the bot's token file
        for argv in (("resume",), ("resume", "--symbol", "BTCUSDT"), ("reset-limits", "--yes")):
            assert await _cli(*argv, "--url", url) == 1, argv
            err = capsys.readouterr().err
            assert "HTTP 400" in err and "reconciled" in err, err
        assert (gate.state.value, gate.state_reason) == ("HALTED", RECONCILING)
        assert gate.halted_symbols == {"BTCUSDT": "position of no known trade"}


async def test_resume_keeps_the_loss_baselines_and_reset_limits_is_journaled(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    monkeypatch.delenv("SCALPER__OPS__TOKEN", raising=False)  # the bot creates its own
    async with _app(tmp_path) as (_, rig, url):
        monkeypatch.setenv("SCALPER__OPS__TOKEN", app_token := read_token(str(tmp_path)))
        assert app_token
        gate = rig.rm.gate
        t = rig.clock()
        gate.on_equity(4_850.0, t)  # -3 % on the day: over the 2 % daily loss limit
        assert gate.state.value == "HALTED" and gate.halt_code.value == "DAILY_LOSS_LIMIT"
        # resume would leave the baseline and halt again: refused, pointing at reset-limits
        assert await _cli("resume", "--url", url) == 1
        assert "reset-limits --yes" in capsys.readouterr().err
        assert gate.state.value == "HALTED" and gate.day_start_equity == 5_000.0
        # an operator halt on top: resume lifts it, the baselines stay where they were
        gate.reset_limits("test setup", t)  # back to ACTIVE for the next part (not journaled: drained)
        gate.drain_state_changes()
        gate.day_start_equity = gate.day_peak_equity = 5_000.0
        gate.consecutive_losses = 2
        assert await _cli("halt", "--url", url, "--reason", "news") == 0
        assert await _cli("resume", "--url", url, "--reason", "news over") == 0
        capsys.readouterr()
        assert gate.state.value == "ACTIVE"
        assert (gate.day_start_equity, gate.day_peak_equity, gate.consecutive_losses) == (5_000.0, 5_000.0, 2)
        # reset-limits: fresh baselines from the current equity, journaled, the loss halt lifted
        gate.on_equity(4_850.0, t)
        assert gate.state.value == "HALTED"
        assert await _cli("reset-limits", "--url", url, "--yes", "--reason", "risk reviewed") == 0
        assert "reset-limits: done; trading ACTIVE" in capsys.readouterr().out
        assert (gate.state.value, gate.day_start_equity, gate.consecutive_losses) == ("ACTIVE", 4_850.0, 0)
        rows = rig.rows("state_changes", entity="limits")
        assert [(r["from_state"], r["to_state"]) for r in rows] == [("HALTED", "ACTIVE")]
        assert rows[0]["reason"] == "risk reviewed; day baseline 4850.00"
        # an operator halt is not a loss limit: reset-limits keeps it (and still journals the reset)
        assert await _cli("halt", "--url", url, "--reason", "manual") == 0
        assert await _cli("reset-limits", "--url", url, "--yes") == 0
        assert gate.state.value == "HALTED" and gate.state_reason == "manual"
        assert len(rig.rows("state_changes", entity="limits")) == 2


# ---- journal files -----------------------------------------------------------------------------------
def test_journal_and_its_wal_and_shm_are_owner_only(tmp_path: Path) -> None:
    old = os.umask(0o022)  # a usual umask: files would be 0644
    try:
        path = tmp_path / "journal.sqlite"
        j = Journal(str(path))
        j.record_config(1, "h", "{}")
        for suffix in ("", "-wal", "-shm"):
            assert _mode(f"{path}{suffix}") == 0o600, suffix
        j.close()
        # a journal made by an older version (0644) is narrowed when opened
        legacy = tmp_path / "old.sqlite"
        sqlite3.connect(legacy).execute("CREATE TABLE x(a)").connection.close()
        os.chmod(legacy, 0o644)
        j = Journal(str(legacy))
        j.record_config(1, "h", "{}")
        for suffix in ("", "-wal", "-shm"):
            assert _mode(f"{legacy}{suffix}") == 0o600, suffix
        j.close()
    finally:
        os.umask(old)
