"""A restart never resets the day's loss limits (issue 11 item 7): the gate's baseline, loss streak and
setup cooldowns come back from the trades the journal closed today, since the last reset-limits."""

from __future__ import annotations

from pathlib import Path

from bot.risk.reasons import DenyReason
from tests.execution.harness import LIVE, Clock, S
from tests.execution.restore_harness import Life, Venue

DAY = 86_400 * S


def _closed(life: Life, tid: str, exit_ns: int, pnl: float, setup: str = "momentum",
            reason: str = "STOP_LOSS") -> None:
    life.journal._db.execute(
        "INSERT INTO trades (trade_id, symbol, setup, side, state, exit_ts_ns, exit_reason, pnl, fees, "
        "funding_quote, created_ns, updated_ns) VALUES (?, 'BTCUSDT', ?, 'long', 'CLOSED', ?, ?, ?, 1.0, 0.0, ?, ?)",
        (tid, setup, exit_ns, reason, pnl, exit_ns, exit_ns))


async def test_a_restart_keeps_the_days_loss_baseline_and_streak(tmp_path: Path) -> None:
    venue = Venue(Clock())
    life = Life(tmp_path, venue, risk={"daily_loss_limit_pct": 3.0, "max_consecutive_losses": 3,
                                       "loss_streak_cooldown_s": 600, "setup_cooldown_s": 60})
    now = venue.clock()
    eq = venue.start_equity
    _closed(life, "y1", now - (now % DAY) - S, -500.0)  # yesterday: not today's
    _closed(life, "a", now - 300 * S, -0.02 * eq)
    _closed(life, "b", now - 200 * S, -0.01 * eq)
    _closed(life, "c", now - 10 * S, -0.005 * eq)  # the third loss in a row: streak cooldown
    await life.engine.refresh_account()
    gate = life.rm.gate
    life.recovery.halt_entries(now)
    assert life.recovery.restore_limits(now) == 3
    assert gate.day_start_equity == eq * 1.035  # today's equity less today's realized results
    assert gate.streak_until_ns == now - 10 * S + 600 * S
    assert life.recovery.allow_entries(now)
    denial = gate.check_entry("BTCUSDT", "other", LIVE, now)
    assert denial is not None and denial.reason is DenyReason.LOSS_STREAK_COOLDOWN
    gate.on_equity(eq, now + 1)  # 3.5 % below the day's start: the loss limit holds after the restart
    assert gate.state.value == "HALTED" and gate.halt_code is DenyReason.DAILY_LOSS_LIMIT
    await life.crash()


async def test_a_reset_limits_today_starts_the_count_there(tmp_path: Path) -> None:
    venue = Venue(Clock())
    life = Life(tmp_path, venue)
    now = venue.clock()
    _closed(life, "a", now - 300 * S, -400.0)
    life.journal.state_change(now - 200 * S, "limits", "risk", "HALTED", "ACTIVE", "operator reset-limits")
    _closed(life, "b", now - 100 * S, 150.0, reason="TAKE_PROFIT")
    await life.engine.refresh_account()
    assert life.recovery.restore_limits(now) == 1
    assert life.rm.gate.day_start_equity == venue.start_equity - 150.0
    assert life.rm.gate.consecutive_losses == 0
    await life.crash()
