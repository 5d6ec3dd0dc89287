"""`scalper run` with venue.name = "bybit": the App on the Bybit gateway and feed, against loopback fakes.

The simulator speaks Binance's protocol only, so the private side is the request-level fake Bybit
(tests/venues/fake_bybit.py) and the public side replays the recorded XRPUSDT order-book sample. What it
shows: the app starts on Bybit, its book goes LIVE, the private stream authenticates and subscribes, and the
start-up reconciliation protects a position nobody planned with a position-level stop (trading-stop) on
the Bybit grid, before trading is allowed. The fake lists that stop as Bybit does (a system StopLoss order
in GET /v5/order/realtime), so a second pass (after a private-socket drop) and a restarted app keep it
and place nothing, and the shutdown (app.on_shutdown = keep) leaves the position with its stop.

`run_app` / `bybit_settings` are shared with tests/test_restart_bybit.py.
"""

from __future__ import annotations

import asyncio
import sqlite3
import zipfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from bot.app import App
from bot.execution.reconcile import CancelOrder, Flatten, PlaceStop
from bot.settings import Settings, load_settings
from tests.conftest import BYBIT
from tests.support import until
from tests.support.replay_server import BybitReplayServer
from tests.venues.fake_bybit import FakeBybit, instruments_info, xrpusdt

SAMPLE = BYBIT / "nautilus_xrpusdt-ob500.data.zip"
NEEDS_SAMPLE = pytest.mark.skipif(not SAMPLE.is_file(), reason="../shared/data/bybit_v5 sample is absent")
pytestmark = NEEDS_SAMPLE
_SETUPS = ("momentum", "rsi_snapback", "breakout_fade", "absorption")


def replay_lines(n: int = 400) -> list[bytes]:
    with zipfile.ZipFile(SAMPLE) as zf:
        return [x for x in zf.read(zf.namelist()[0]).splitlines() if x.strip()][:n]


def new_fake(**kw: Any) -> FakeBybit:
    return FakeBybit(api_key="sim-key", secret="sim-secret", fill_price="1.9530",
                     instruments=[*instruments_info(), xrpusdt()], **kw)


def bybit_settings(tmp_path: Path, fake: FakeBybit, pub: Any, *, signals: bool = True,
                   **over: dict[str, Any]) -> Settings:
    o: dict[str, Any] = {
        "app": {"state_dir": str(tmp_path), "mode": "exchange-sim"},
        "venue": {"name": "bybit", "environment": "exchange-sim", "symbols": ["XRPUSDT"], "rest_url": fake.url,
                  "ws_private_url": fake.ws_url, **pub.urls()},
        "ops": {"enabled": False}, "journal": {"path": "j.sqlite"}}
    if not signals:  # the adopted trade is the only one on the symbol
        o["signals"] = {name: {"enabled": False} for name in _SETUPS}
    for k, v in over.items():
        o[k] = {**o.get(k, {}), **v}
    return load_settings(overrides=o)


@asynccontextmanager
async def run_app(s: Settings, *, reconciled: bool = True) -> AsyncIterator[App]:
    """The app running; on exit stopped like SIGTERM (app.on_shutdown = keep) and its exit code checked."""
    app = App(s, view=False)
    run = asyncio.create_task(app.run())
    try:
        if reconciled:
            await until(lambda: run.done() or (app.recovery is not None and app.recovery.runs >= 1), 15)
            assert not run.done(), "the app ended during start-up"
        yield app
    finally:
        app.stop.set()
        rc = await asyncio.wait_for(run, 20)
    assert rc == 0


async def another_pass(app: App, fake: FakeBybit) -> None:
    """A private-socket drop: the reconnect's catch-up asks for a reconciliation pass."""
    rec, us = app.recovery, app.gateway.user_stream
    assert rec is not None and us is not None
    wake = us.on_caught_up
    target: list[int] = []

    def caught_up() -> None:  # the pass that starts after this catch-up: the next one, or the one after a busy one
        target.append(rec.runs + (2 if rec._lock.locked() else 1))
        wake()

    us.on_caught_up = caught_up
    try:
        await fake.drop_ws()
        await until(lambda: bool(target) and rec.runs >= target[0] and not rec.deferred, 15)
    finally:
        us.on_caught_up = wake


def acted(app: App) -> list[Any]:
    """What the last pass did at the venue (alerts aside)."""
    assert app.recovery is not None
    return [a for a in app.recovery.last_actions if isinstance(a, PlaceStop | Flatten | CancelOrder)]


async def test_app_on_bybit_syncs_authenticates_and_protects_an_unknown_position(tmp_path: Path):
    fake = await new_fake().start()
    # a long opened by hand while the bot was away, with no stop
    fake.position("XRPUSDT").update(side="Buy", size="100", avgPrice="1.9500")
    try:
        async with BybitReplayServer(replay_lines(), interval_s=0.005) as pub:
            s = bybit_settings(tmp_path, fake, pub)
            async with run_app(s, reconciled=False) as app:
                await until(lambda: app.pipeline is not None and
                            app.pipeline.syncs["XRPUSDT"].health.status.value == "LIVE", 15)
                await until(lambda: fake.position("XRPUSDT")["stopLoss"] != "", 15)
                await until(lambda: app.state.trading_state == "ACTIVE", 15)
                # the next pass finds the stop (listed as the position's StopLoss order) and places nothing
                await another_pass(app, fake)
                assert acted(app) == []
                assert any("kept its stop recon-sl-" in a.message for a in app.recovery.last_actions  # type: ignore[union-attr]
                           if hasattr(a, "message"))
            # a restarted app: nobody owns that stop now (it was set by the last process); kept all the same
            async with run_app(s) as app2:
                await another_pass(app2, fake)
                assert acted(app2) == []
    finally:
        await fake.stop()
    # the stop sits 50 bps (venue.unknown_position_stop_bps) under the entry, on the 0.0001 grid, away from
    # the market (rounded down for a sell stop): 1.95 * 0.995 = 1.94025 -> 1.9402; it was set once
    ts = fake.calls("POST", "/v5/position/trading-stop")
    assert [(r["body"]["symbol"], r["body"]["stopLoss"], r["body"]["positionIdx"]) for r in ts] == [
        ("XRPUSDT", "1.9402", 0)]
    # both shutdowns (keep) saw the stop: nothing was closed or cancelled, the position keeps its stop
    assert fake.calls("POST", "/v5/order/create") == [] and fake.calls("POST", "/v5/order/cancel") == []
    p = fake.position("XRPUSDT")
    assert (p["side"], p["size"], p["stopLoss"]) == ("Buy", "100", "1.9402")
    listed = [(o["stopOrderType"], o["orderLinkId"], o["triggerPrice"], o["side"]) for o in fake.open_rows("XRPUSDT")]
    assert listed == [("StopLoss", "", "1.9402", "Sell")]
    ops = [(m.get("op"), tuple(m.get("args") or ())) for m in fake.ws_received]
    assert ops[0][0] == "auth"
    subscribed = {a for op, args in ops if op == "subscribe" for a in args}
    assert {"order", "execution", "position"} <= subscribed
    db = sqlite3.connect(tmp_path / "j.sqlite")
    reasons = [r[0] for r in db.execute("SELECT reason FROM state_changes WHERE entity = 'gate' ORDER BY id")]
    assert "reconciling" in reasons and "reconciled" in reasons, reasons
    assert reasons.index("reconciling") < reasons.index("reconciled")
    # the symbol of a position nobody planned stays halted for entries (the operator decides)
    halted = db.execute("SELECT to_state, reason FROM state_changes WHERE entity = 'symbol' AND entity_id = 'XRPUSDT'")
    assert ("HALTED", "position of no known trade") in [tuple(r) for r in halted]
