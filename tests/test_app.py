"""`scalper run` on the embedded default: the simulator, no keys, no network."""

from __future__ import annotations

import asyncio
import sqlite3
import time
import urllib.request
from pathlib import Path

import orjson
import pytest

from bot.app import App, check_live_guard
from bot.errors import ConfigError
from bot.logging import configure_logging
from bot.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent


def _settings(tmp_path: Path, **over):
    base = {"app": {"state_dir": str(tmp_path)}, "ops": {"port": 0}}
    for k, v in over.items():
        base.setdefault(k, {}).update(v)
    return load_settings(str(ROOT / "config" / "default.toml"), overrides=base)


def _get(url: str, token: str = "") -> tuple[int, dict]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, orjson.loads(r.read())
    except urllib.error.HTTPError as e:  # 503 carries the same JSON body
        return e.code, orjson.loads(e.read())


def test_live_guard() -> None:
    s = load_settings(str(ROOT / "config" / "default.toml"))
    check_live_guard(s, live_flag=False)
    with pytest.raises(ConfigError, match="--live"):
        check_live_guard(s, live_flag=True)
    live = load_settings(overrides={"app": {"mode": "live"}, "venue": {"name": "binance-usdm"}})
    with pytest.raises(ConfigError, match="without --live"):
        check_live_guard(live, live_flag=False)
    check_live_guard(live, live_flag=True)
    mainnet_demo = load_settings(overrides={"app": {"mode": "demo"}, "venue": {"name": "binance-usdm"}})
    with pytest.raises(ConfigError, match="mainnet"):
        check_live_guard(mainnet_demo, live_flag=False)


def test_default_run_syncs_books_serves_health_and_stops_cleanly(tmp_path: Path) -> None:
    configure_logging("WARNING", "json")
    app = App(_settings(tmp_path), view=False, run_for_s=12)
    seen: dict = {}

    async def main() -> int:
        runner = asyncio.create_task(app.run())
        for _ in range(200):  # bounded: up to 10 s for the books to go LIVE
            await asyncio.sleep(0.05)
            if app.ops is not None and app.ops.port and app.pipeline and len(app.pipeline.syncs) == 2 and all(
                    s.health.is_live for s in app.pipeline.syncs.values()):
                break
        url = f"http://127.0.0.1:{app.ops.port}"
        seen["health"] = await asyncio.to_thread(_get, url + "/health")
        seen["status"] = await asyncio.to_thread(_get, url + "/status", app.ops.token)
        # stop once both books applied what the assertions below need (run_for_s stays the upper bound)
        while not runner.done() and not all(  # noqa: ASYNC110 - plain counters, no event to await
                s.stats.applied > 50 for s in app.pipeline.syncs.values()):
            await asyncio.sleep(0.05)
        app.stop.set()
        return await asyncio.wait_for(runner, 60)

    rc = asyncio.run(main())
    assert rc == 0
    code, health = seen["health"]
    assert code == 200 and health["status"] == "ok", health
    feeds = seen["status"][1]["feeds"]
    assert set(feeds) == {"BTCUSDT", "ETHUSDT"} and all(f["status"] == "LIVE" for f in feeds.values())
    for sync in app.pipeline.syncs.values():
        assert sync.stats.gaps == 0 and sync.stats.applied > 50 and sync.stats.crossed == 0
    db = sqlite3.connect(tmp_path / "journal.sqlite")
    assert db.execute("select count(*) from config").fetchone()[0] == 1
    assert app.state.last_errors == type(app.state.last_errors)()  # nothing went wrong


def _entered_and_exited(journal: Path) -> bool:
    """A trade entered and closed with a reason (read-only: the app writes the journal meanwhile)."""
    if not journal.exists():
        return False
    db = sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=2)
    try:
        return bool(db.execute("select 1 from trades where entry_ts_ns is not null and exit_reason is not null "
                               "and state = 'CLOSED'").fetchone())
    except sqlite3.OperationalError:  # no tables yet
        return False
    finally:
        db.close()


@pytest.mark.slow
def test_newcomer_sees_entries_stops_and_exits_within_two_minutes(tmp_path: Path) -> None:
    configure_logging("WARNING", "json")
    app = App(_settings(tmp_path), view=False, run_for_s=100)

    async def main() -> int:
        # what the newcomer must see (an entry, its stop, its exit) ends the run; 100 s stays the upper bound
        runner = asyncio.create_task(app.run())
        while not runner.done():
            await asyncio.sleep(0.25)
            if _entered_and_exited(tmp_path / "journal.sqlite"):
                app.stop.set()
                break
        return await asyncio.wait_for(runner, 60)

    t0 = time.monotonic()
    assert asyncio.run(main()) == 0
    assert time.monotonic() - t0 < 140
    db = sqlite3.connect(tmp_path / "journal.sqlite")
    db.row_factory = sqlite3.Row
    trades = [dict(r) for r in db.execute("select * from trades")]
    entered = [t for t in trades if t["entry_ts_ns"] is not None]
    assert entered, f"no entry in 100 s: {app.pipeline.intents} intents, {app.state.denials}"
    # every filled entry had its protective stop confirmed within the deadline (500 ms)
    for t in entered:
        assert t["stop_confirm_ms"] is not None and t["stop_confirm_ms"] <= 500, t
    # the shutdown flattened: nothing open at the exit, every entered trade has an exit
    assert not app.engine.trades
    assert all(t["exit_reason"] for t in entered), [(t["trade_id"], t["state"]) for t in entered]
    # the engine tracked each trade's excursions from its entry (MAE/MFE for the report)
    for t in entered:
        assert t["mae_ticks"] is not None and t["mae_ticks"] >= 0 and t["mfe_ticks"] >= 0, t
    from bot.journal.report import build_report, load_journal

    rep = build_report(load_journal(str(tmp_path / "journal.sqlite")))
    assert rep["overall"]["mae_ticks"]["n"] == len(entered)


def test_operator_halt_reaches_the_alert_webhook_and_health(tmp_path: Path) -> None:
    from aiohttp import web

    configure_logging("WARNING", "json")
    received: list[dict] = []

    async def main() -> tuple[int, dict, dict]:
        async def hook(request: web.Request) -> web.Response:
            received.append(await request.json())
            return web.json_response({"ok": True})

        recv_app = web.Application()
        recv_app.router.add_post("/hook", hook)
        runner = web.AppRunner(recv_app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        settings = _settings(tmp_path, ops={"port": 0, "alerts": {"webhook_url": f"http://127.0.0.1:{port}/hook"}})
        app = App(settings, view=False, run_for_s=10)
        task = asyncio.create_task(app.run())
        for _ in range(200):  # bounded: up to 10 s for the ops endpoint
            await asyncio.sleep(0.05)
            if app.ops is not None and app.ops.port:
                break
        url = f"http://127.0.0.1:{app.ops.port}"

        def post_halt() -> dict:
            req = urllib.request.Request(url + "/control/halt", data=b'{"reason": "test halt"}', method="POST",
                                         headers={"Content-Type": "application/json",
                                                  "Authorization": f"Bearer {app.ops.token}"})
            with urllib.request.urlopen(req, timeout=5) as r:
                return orjson.loads(r.read())

        answer = await asyncio.to_thread(post_halt)
        for _ in range(100):  # bounded: the drainer sends within a few ms
            await asyncio.sleep(0.05)
            if any("HALTED" in str(m) for m in received):
                break
        health = await asyncio.to_thread(_get, url + "/health")
        app.stop.set()  # seen what it needs; run_for_s stays the upper bound
        rc = await asyncio.wait_for(task, 60)
        await runner.cleanup()
        return rc, answer, health[1]

    rc, answer, health = asyncio.run(main())
    assert rc == 0
    assert answer["ok"] and answer["trading"]["state"] == "HALTED"
    assert health["status"] == "halted"
    texts = [str(m) for m in received]
    assert any("HALTED" in t and "test halt" in t for t in texts), texts


def test_sighup_reloads_risk_and_refuses_venue_changes(tmp_path: Path) -> None:
    import os
    import signal

    configure_logging("WARNING", "json")
    base = (ROOT / "config" / "default.toml").read_text()
    cfg = tmp_path / "c.toml"
    cfg.write_text(base.replace('state_dir = "var"', f'state_dir = "{tmp_path}"').replace("port = 9310", "port = 0"))
    settings = load_settings(str(cfg))
    app = App(settings, view=False, run_for_s=8, config_path=str(cfg))
    seen: dict = {}

    async def main() -> int:
        task = asyncio.create_task(app.run())
        for _ in range(200):
            await asyncio.sleep(0.05)
            if app.engine is not None and app.ops is not None and app.ops.port:
                break
        cfg.write_text(cfg.read_text().replace("risk_per_trade_pct = 0.5", "risk_per_trade_pct = 0.25"))
        os.kill(os.getpid(), signal.SIGHUP)
        await asyncio.sleep(0.3)
        seen["risk"] = app.engine.risk.gate.cfg.risk_per_trade_pct
        cfg.write_text(cfg.read_text().replace('symbols = ["BTCUSDT", "ETHUSDT"]', 'symbols = ["BTCUSDT"]'))
        seen["venue_reload"] = app.reload_risk()
        app.stop.set()  # both reloads done; run_for_s stays the upper bound
        return await asyncio.wait_for(task, 60)

    assert asyncio.run(main()) == 0
    assert seen["risk"] == 0.25 and app.engine.risk_cfg.risk_per_trade_pct == 0.25
    assert seen["venue_reload"] is False and app.settings.venue.symbols == ("BTCUSDT", "ETHUSDT")
    db = sqlite3.connect(tmp_path / "journal.sqlite")
    assert db.execute("select count(*) from config").fetchone()[0] == 2  # start + the risk reload
