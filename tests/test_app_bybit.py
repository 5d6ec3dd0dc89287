"""`scalper run` with venue.name = "bybit": the App on the Bybit gateway and feed, against loopback fakes.

The simulator speaks Binance's protocol only, so the private side is the request-level fake Bybit
(tests/venues/fake_bybit.py) and the public side replays the recorded XRPUSDT order-book sample. What it
shows: the app starts on Bybit, its book goes LIVE, the private stream authenticates and subscribes, and the
start-up reconciliation protects a position nobody planned with a position-level stop (trading-stop) on
the Bybit grid, before trading is allowed.
"""

from __future__ import annotations

import asyncio
import sqlite3
import zipfile
from pathlib import Path

import pytest

from bot.app import App
from bot.settings import load_settings
from tests.conftest import BYBIT
from tests.support import until
from tests.support.replay_server import BybitReplayServer
from tests.venues import fake_bybit
from tests.venues.fake_bybit import FakeBybit

SAMPLE = BYBIT / "nautilus_xrpusdt-ob500.data.zip"
pytestmark = pytest.mark.skipif(not SAMPLE.is_file(), reason="../shared/data/bybit_v5 sample is absent")


def _with_xrp() -> list[dict]:
    rows = _ORIG()
    xrp = {**rows[0], "symbol": "XRPUSDT", "baseCoin": "XRP", "priceScale": "4",
           "priceFilter": {"minPrice": "0.0001", "maxPrice": "199.9998", "tickSize": "0.0001"},
           "lotSizeFilter": {**rows[0]["lotSizeFilter"], "minOrderQty": "1", "qtyStep": "1", "maxOrderQty": "1000000",
                             "maxMktOrderQty": "100000"}}
    return [*rows, xrp]


_ORIG = fake_bybit.instruments_info


async def test_app_on_bybit_syncs_authenticates_and_protects_an_unknown_position(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(fake_bybit, "instruments_info", _with_xrp)
    with zipfile.ZipFile(SAMPLE) as zf:
        lines = [x for x in zf.read(zf.namelist()[0]).splitlines() if x.strip()][:400]
    fake = await FakeBybit(api_key="sim-key", secret="sim-secret", fill_price="1.9530").start()
    # a long opened by hand while the bot was away, with no stop
    fake.position("XRPUSDT").update(side="Buy", size="100", avgPrice="1.9500")
    try:
        async with BybitReplayServer(lines, interval_s=0.005) as pub:
            s = load_settings(overrides={
                "app": {"state_dir": str(tmp_path), "mode": "exchange-sim"},
                "venue": {"name": "bybit", "environment": "exchange-sim", "symbols": ["XRPUSDT"],
                          "rest_url": fake.url, "ws_private_url": fake.ws_url, **pub.urls()},
                "ops": {"enabled": False}, "journal": {"path": "j.sqlite"}})
            app = App(s, view=False)
            run = asyncio.create_task(app.run())
            try:
                await until(lambda: app.pipeline is not None and
                            app.pipeline.syncs["XRPUSDT"].health.status.value == "LIVE", 15)
                await until(lambda: fake.position("XRPUSDT")["stopLoss"] != "", 15)
                await until(lambda: app.state.trading_state == "ACTIVE", 15)
            finally:
                app.stop.set()
                rc = await asyncio.wait_for(run, 20)
    finally:
        await fake.stop()
    assert rc == 0
    # the stop sits 50 bps (venue.unknown_position_stop_bps) under the entry, on the 0.0001 grid, away from
    # the market (rounded down for a sell stop): 1.95 * 0.995 = 1.94025 -> 1.9402
    ts = fake.calls("POST", "/v5/position/trading-stop")
    assert ts and ts[0]["body"]["symbol"] == "XRPUSDT" and ts[0]["body"]["stopLoss"] == "1.9402"
    assert ts[0]["body"]["positionIdx"] == 0
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
