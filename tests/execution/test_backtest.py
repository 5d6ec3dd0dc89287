"""The whole bot (signals, risk, lifecycle, journal) on real recorded sessions with the SimGateway."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.journal import Journal
from bot.settings import load_settings
from tests.conftest import SESSIONS, needs_data


@needs_data
@pytest.mark.slow
@pytest.mark.parametrize("session", ["btcusdt_20240808", "ethusdt_20240808", "btcusdt_20240718",
                                     "ethusdt_20240718"])
async def test_backtest_stops_on_the_losing_side_and_risk_within_budget(session: str, tmp_path: Path) -> None:
    from bot.cli.backtest import run_backtest

    settings = load_settings()
    path = str(tmp_path / "bt.sqlite")
    res = await run_backtest([str(p) for p in SESSIONS[session]], settings, path)
    trades, summary = res["trades"], res["summary"]
    budget = summary["risk_budget_per_trade"]
    assert budget == settings.sim.starting_balance_usdt * settings.risk.risk_per_trade_pct / 100
    assert summary["intents"] > 0 and trades, "the session produced no trade"
    for t in trades:
        assert t["state"] == "CLOSED" and t["exit_reason"]
        # the initial stop is on the losing side of the entry
        if t["side"] == "long":
            assert t["stop_price"] < t["entry_price"]
        else:
            assert t["stop_price"] > t["entry_price"]
        assert 0 < t["max_open_risk"] <= budget
        assert t["stop_confirm_ms"] is not None and t["stop_confirm_ms"] < settings.execution.stop_confirm_timeout_ms
        assert t["pnl"] >= -budget * 1.5  # slippage past the stop is bounded on these sessions
    # on the simulator, through the journal: every entry fill is matched by exit fills, every trade had its
    # first stop sent at the size of the first fill, and the simulator ended flat
    j = Journal(path)
    try:
        for t in trades:
            fills = j.rows("fills", "trade_id=?", (t["trade_id"],))
            opened = sum(f["qty"] for f in fills if f["role"] in ("entry", "add"))
            closed = sum(f["qty"] for f in fills if f["role"] in ("stop", "tp", "exit"))
            assert opened == pytest.approx(closed) and opened == pytest.approx(t["qty"])
            (sl,) = j.rows("legs", "client_id=?", (f"{t['trade_id']}-sl",))
            assert sl["kind"] == "STOP_MARKET" and sl["reduce_only"] == 1
            assert sl["intended_price"] == t["stop_price"]
            # the journal's order: the first entry fill, then the stop sent (as soon as the fill was known)
            events = j.rows("order_events", "trade_id=?", (t["trade_id"],))
            first_fill = next(i for i, e in enumerate(events) if e["reason"] == "fill")
            stop_sent = next(i for i, e in enumerate(events)
                             if e["client_id"] == sl["client_id"] and e["status"] == "PENDING_NEW")
            assert first_fill < stop_sent
    finally:
        j.close()
    assert summary["trades"] == len(trades)
