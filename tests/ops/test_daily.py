"""The daily summary (content from a constructed journal, the schedule on a fake clock, delivery to a local
webhook) and the fill alerts read from the journal."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.journal import Journal
from bot.ops.alerts import Alerts
from bot.ops.daily import DailySummary, day_summary
from bot.ops.fills import FillAlerts
from bot.settings.ops import AlertsSection
from tests.ops.test_alerts import _until, receiver, running

H = 3600 * 1_000_000_000
UNTIL = 1_763_704_800 * 1_000_000_000  # 2025-11-21 06:00:00 UTC


def _closed(j: Journal, tid: str, setup: str, exit_ns: int, pnl: float, r: float, symbol: str = "BTCUSDT") -> None:
    j.open_trade(exit_ns - H // 60, {"trade_id": tid, "symbol": symbol, "setup": setup, "side": "long"}, [],
                 "ENTERING")
    j.trade_state(exit_ns, tid, "OPEN", "CLOSED", "STOP_LOSS" if pnl < 0 else "TAKE_PROFIT", {
        "entry_ts_ns": exit_ns - H // 120, "exit_ts_ns": exit_ns, "pnl": pnl, "fees": 1.0, "r_multiple": r})


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    j = Journal(str(tmp_path / "journal.sqlite"))
    _closed(j, "t1", "momentum", UNTIL - 30 * H, 100.0, 5.0)  # the day before: not in the window
    _closed(j, "t2", "momentum", UNTIL - 20 * H, 10.0, 1.0)
    _closed(j, "t3", "momentum", UNTIL - 10 * H, -4.0, -0.5)
    _closed(j, "t4", "absorption", UNTIL - 5 * H, -6.0, -1.0, symbol="ETHUSDT")
    j.funding(UNTIL - 25 * H, "BTCUSDT", -9.0, "old")  # before the window
    j.funding(UNTIL - 12 * H, "BTCUSDT", -0.5, "in")
    j.state_change(UNTIL - 26 * H, "gate", "risk", "ACTIVE", "HALTED", "too early")
    j.state_change(UNTIL - 8 * H, "gate", "risk", "ACTIVE", "HALTED", "daily loss limit")
    j.state_change(UNTIL - 7 * H, "gate", "risk", "HALTED", "ACTIVE", "operator reset")
    j.state_change(UNTIL - 3 * H, "symbol", "ETHUSDT", "ACTIVE", "HALTED", "stop not confirmed")
    yield j
    j.close()


EXPECTED = {
    "since_utc": "2025-11-20T06:00Z", "until_utc": "2025-11-21T06:00Z", "trades": 3, "wins": 1,
    "win_rate": 0.3333, "pnl_quote": 0.0, "fees_quote": 3.0, "funding_quote": -0.5, "net_pnl_quote": -0.5,
    "r_total": -0.5, "avg_r": -0.1667, "max_drawdown_quote": 10.0,  # +10, +6, 0: 10 below the peak
    "best_setup": "momentum", "best_setup_pnl_quote": 6.0, "worst_setup": "absorption",
    "worst_setup_pnl_quote": -6.0, "halts": 2, "last_halt_reason": "stop not confirmed",
}


def test_day_summary_of_a_constructed_journal(journal: Journal) -> None:
    data = {t: journal.rows(t) for t in ("trades", "funding", "state_changes")}
    assert day_summary(data, UNTIL - 24 * H, UNTIL) == EXPECTED
    # the reader used by the scheduler selects the same rows
    assert DailySummary(journal, Alerts()).build(UNTIL) == EXPECTED
    empty = day_summary(data, UNTIL, UNTIL + 24 * H)
    assert empty["trades"] == 0 and empty["win_rate"] is None and empty["best_setup"] is None
    assert empty["pnl_quote"] == 0.0 and empty["halts"] == 0


async def test_scheduled_at_the_configured_hour_and_delivered_to_the_webhook(journal: Journal) -> None:
    clock = [UNTIL - 5 * H - 123]  # 00:59:59.999... UTC: the first summary is due at 06:00
    slept: list[float] = []

    async def fake_sleep(s: float) -> None:
        slept.append(s)
        if daily.sent >= 2:
            raise asyncio.CancelledError  # two summaries are enough: stop the loop
        clock[0] += int(s * 1e9)
        await asyncio.sleep(0)

    async with receiver() as rx:
        alerts = Alerts(AlertsSection(webhook_url=rx.url + "/hook", daily_summary_hour_utc=6), name="bot-d")
        daily = DailySummary(journal, alerts, clock_ns=lambda: clock[0], sleep=fake_sleep)
        async with running(alerts):
            with pytest.raises(asyncio.CancelledError):
                await asyncio.wait_for(daily.run(), 5)
            await _until(lambda: len(rx.webhook) == 2)
    first, second = rx.webhook
    assert first["kind"] == "daily_summary" and first["fields"] == EXPECTED
    assert first["text"].startswith("[bot-d] DAILY SUMMARY: since_utc 2025-11-20T06:00Z, until_utc 2025-11-21T06:00Z")
    assert "trades 3" in first["text"] and "funding_quote -0.5" in first["text"]
    assert second["fields"]["until_utc"] == "2025-11-22T06:00Z" and second["fields"]["trades"] == 0
    assert max(slept) <= 3600.0 and clock[0] >= UNTIL + 24 * H  # hour-long naps, no oversleeping past the hour
    assert daily.sent == 2 and daily.last is not None and daily.last["until_utc"] == "2025-11-22T06:00Z"


async def test_off_when_no_hour_is_configured(journal: Journal) -> None:
    daily = DailySummary(journal, Alerts(AlertsSection(daily_summary_hour_utc=-1)))
    await asyncio.wait_for(daily.run(), 1)  # returns at once
    assert daily.sent == 0


async def test_every_new_fill_is_alerted_once(journal: Journal) -> None:
    j = journal
    j.fill(UNTIL, "t2", "t2-entry", "entry", "BUY", 0.01, 60000.0, 0.02, False, "v1", "FILLED", 0.01, 60000.0)
    async with receiver() as rx:
        alerts = Alerts(AlertsSection(webhook_url=rx.url + "/hook"))
        fills = FillAlerts(j, alerts)  # starts after the fills already journaled
        assert fills.poll() == 0
        j.fill(UNTIL + 1, "t4", "t4-sl", "stop", "SELL", 0.5, 3000.5, 0.7, False, "v2", "FILLED", 0.5, 3000.5)
        async with running(alerts):
            assert fills.poll() == 1 and fills.poll() == 0
            await _until(lambda: len(rx.webhook) == 1)
    (hook,) = rx.webhook
    assert hook["kind"] == "fill" and hook["text"] == "[scalper] FILL ETHUSDT SELL 0.5 @ 3000.5 (t4 stop)"
    assert hook["fields"]["client_id"] == "t4-sl" and hook["fields"]["fee_quote"] == 0.7
