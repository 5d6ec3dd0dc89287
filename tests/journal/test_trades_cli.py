"""`scalper trades`: the journal's trades with the report fields, table and JSON."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from bot.__main__ import main
from bot.cli.trades import REPORT_FIELDS
from tests.execution.harness import LIVE, Rig, intent, running


async def _journal_with_a_stopped_trade(tmp_path: Path) -> str:
    rig = Rig(tmp_path)
    async with running(rig):
        await rig.engine.submit_intent(intent(), LIVE)
        await rig.settle()
        rig.gw.fill("t1-entry", 500, 50_000.0)
        await rig.settle()
        rig.clock.advance_ms(1500)
        rig.gw.move_price("BTCUSDT", 499_500)
        await rig.settle()
    return rig.journal.path


async def test_trades_json_and_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = await _journal_with_a_stopped_trade(tmp_path)
    capsys.readouterr()  # the engine's log lines
    assert main(["trades", "--db", path, "--json"]) == 0
    out = orjson.loads(capsys.readouterr().out)
    (t,) = out["trades"]
    assert set(REPORT_FIELDS) <= set(t)
    assert (t["setup"], t["symbol"], t["side"], t["entry_price"], t["qty"], t["stop_price"]) == (
        "sweep", "BTCUSDT", "long", 50_000.0, 0.5, 49_950.0)
    assert (t["exit_reason"], t["exit_price"], t["pnl"], t["r_multiple"], t["max_open_risk"]) == (
        "STOP_LOSS", 49_950.0, -25.0, -1.0, 25.0)
    assert t["entry_ts_ns"] < t["exit_ts_ns"] and t["stop_confirm_ms"] == 0.0
    assert main(["trades", "--db", path]) == 0
    text = capsys.readouterr().out
    assert "STOP_LOSS" in text and "1 trade(s)" in text


def test_missing_journal_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trades", "--db", str(tmp_path / "nope.sqlite")]) == 2
    assert "no journal" in capsys.readouterr().err
