"""The trade machine rebuilt from the journal (bot.execution.restore): the same machine as the one that died,
and a trade that completes after a restart exactly as it would have without one.

Setup as in test_engine_lifecycle: equity 5,000, risk 0.5 % (25), BTCUSDT long at 50,000.0 (500,000 ticks)
stopped at 49,950.0, IOC entry at the reference; targets 50,100.0 and 50,200.0 (50 % each).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.domain.types import CloseReason, OrderStatus
from bot.execution.actions import LegRole, Schedule, StateChanged, Submit, Timer, TradeClosed, TradeState
from bot.execution.restore import (
    ExternalFill,
    close_outside,
    close_unknown,
    end_quietly,
    exit_reason_of,
    leg_version,
    rearm,
    restore_machine,
    restore_stop,
)
from bot.execution.trade import TradeMachine
from bot.venues.binance_usdm.instruments import KNOWN
from tests.execution.harness import LIVE, Clock, S, intent
from tests.execution.restore_harness import Life, Venue

FEES = {"taker_fee_bps": 5.0, "maker_fee_bps": 2.0}


def restored(life: Life, tid: str = "t1", **kw: Any) -> TradeMachine:
    j = life.journal
    (t,) = j.rows("trades", "trade_id=?", (tid,))
    return restore_machine(t, j.rows("legs", "trade_id=?", (tid,)), j.rows("fills", "trade_id=?", (tid,)),
                           KNOWN["BTCUSDT"], life.cfg, taker_fee_bps=life.risk_cfg.taker_fee_bps,
                           maker_fee_bps=life.risk_cfg.maker_fee_bps,
                           states=j.rows("state_changes", "entity='trade' AND entity_id=?", (tid,)), **kw)


def legs_view(m: TradeMachine) -> dict[str, tuple[Any, ...]]:
    return {c: (leg.role, leg.status, leg.filled_lots, leg.confirmed, leg.tier, leg.req.qty_lots,
                leg.req.price_ticks, leg.req.trigger_ticks) for c, leg in m.legs.items()}


def test_leg_names_and_exit_reasons_read_back() -> None:
    assert leg_version("t5", "t5-sl") == ("sl", 1) and leg_version("t5", "t5-sl.3") == ("sl", 3)
    assert leg_version("t5", "t5-tp2.2") == ("tp2", 2)
    assert exit_reason_of("max hold") is CloseReason.TIME_LIMIT
    assert exit_reason_of("no progress") is CloseReason.NO_PROGRESS
    assert exit_reason_of("MANUAL") is CloseReason.MANUAL
    assert exit_reason_of("stop would trigger immediately") is CloseReason.STOP_LOSS
    assert exit_reason_of("stop not confirmed in 500 ms") is CloseReason.RISK_HALT
    assert exit_reason_of("flat; waiting for entry legs to end") is None


async def test_restored_machine_is_the_one_that_died(tmp_path: Path) -> None:
    venue = Venue(Clock())
    life = Life(tmp_path, venue, risk=FEES)
    await life.start()
    await life.engine.submit_intent(intent(), LIVE)
    await life.settle()
    venue.clock.advance_ms(2)
    venue.fill("t1-entry", 100, 50_000.0, fee=2.5)  # two partial fills: the stop is re-sent at each size
    await life.settle()
    venue.fill("t1-entry", 150, 50_001.0, fee=3.75)
    await life.settle()
    live = life.engine.trades["t1"]
    assert live.state is TradeState.PROTECTED and live.stop_leg is not None
    m = restored(life)
    assert (m.state, m.pos_lots, m.max_pos_lots, m.first_fill_ns, m.opened) == (
        live.state, live.pos_lots, live.max_pos_lots, live.first_fill_ns, True)
    assert m.avg_entry == pytest.approx(live.avg_entry) and m.first_entry == pytest.approx(live.first_entry)
    assert m.fees == pytest.approx(live.fees) and m.realized == pytest.approx(live.realized)
    assert (m.stop_leg.client_id, m.stop_ticks) == (live.stop_leg.client_id, live.stop_ticks)  # type: ignore[union-attr]
    assert m._versions == live._versions and m._versions["sl"] == 2
    assert legs_view(m) == legs_view(live)
    assert m.plan.tp_tiers == live.plan.tp_tiers and m.plan.stop_ticks == live.plan.stop_ticks
    assert (m.plan.r_ticks, m.plan.risk_budget, m.plan.entry) == (live.plan.r_ticks, live.plan.risk_budget,
                                                                   live.plan.entry)
    assert m.max_open_risk == pytest.approx(live.max_open_risk)
    # a new stop after the restart never reuses a client id the venue has seen
    acts = restore_stop(m, venue.clock(), "reconcile")
    sub = [a for a in acts if isinstance(a, Submit)]
    assert [(a.leg.client_id, a.leg.req.qty_lots, a.leg.req.trigger_ticks) for a in sub] == [
        ("t1-sl.3", 250, 499_500)]
    assert [(a.old, a.new) for a in acts if isinstance(a, StateChanged)] == [
        (TradeState.PROTECTED, TradeState.PROTECTING)]
    await life.crash()


async def test_deadlines_rearmed_from_the_first_fill(tmp_path: Path) -> None:
    venue = Venue(Clock())
    life = Life(tmp_path, venue, execution={"no_progress_s": 60, "max_hold_s": 120})
    await life.start()
    await life.engine.submit_intent(intent(), LIVE)
    await life.settle()
    venue.fill("t1-entry", 500, 50_000.0)
    await life.settle()
    t_fill = venue.clock()
    venue.clock.advance_ms(200_000)  # down for 200 s: both deadlines are past
    m = restored(life)
    acts = rearm(m, venue.clock())
    assert {(a.timer, a.at_ns) for a in acts if isinstance(a, Schedule)} == {
        (Timer.NO_PROGRESS, t_fill + 60 * S), (Timer.MAX_HOLD, t_fill + 120 * S)}
    out = m.on_timer(Timer.NO_PROGRESS, venue.clock())  # fires at once
    assert [(a.leg.client_id, a.leg.req.qty_lots) for a in out if isinstance(a, Submit)] == [("t1-exit", 500)]
    # the setup's time limit (from config) shortens the hold, as the planner does
    assert restored(life, time_limit_s=30.0).plan.max_hold_ns == 30 * S
    await life.crash()


@pytest.mark.parametrize("restart", [False, True])
async def test_trade_completes_after_a_restart_as_without_one(tmp_path: Path, restart: bool) -> None:
    """TP1 fills, the stop moves to breakeven (sl.2); [crash + restart here]; the stop takes the rest.
    Same exit reason, PnL, fees and exit price either way."""
    venue = Venue(Clock())
    life = Life(tmp_path, venue, risk=FEES)
    await life.start()
    await life.engine.submit_intent(intent(), LIVE)
    await life.settle()
    venue.fill("t1-entry", 250, 50_000.0, fee=6.25)
    await life.settle()
    life.engine.on_price("BTCUSDT", 501_000)
    venue.move_price("BTCUSDT", 501_000)  # TP1
    await life.settle()
    assert life.engine.trades["t1"].stop_leg.client_id == "t1-sl.2"  # type: ignore[union-attr]
    if restart:
        await life.crash()
        life = Life(tmp_path, venue, risk=FEES)
        assert await life.start() == ["t1"]
        await life.recovery.reconcile()
        await life.settle()
        m = life.engine.trades["t1"]
        assert (m.tp_filled, m.stop_ticks, m.pos_lots) == (1, 500_500, 125)
        assert not life.alerts and not venue.sent[-1].client_id.startswith("t1-sl.3")  # nothing to repair
    venue.clock.advance_ms(10)
    venue.move_price("BTCUSDT", 500_500)  # the breakeven stop takes the rest
    await life.settle()
    t = life.trade()
    assert (t["state"], t["exit_reason"], t["qty"], t["fees"]) == ("CLOSED", "STOP_LOSS", 0.25, 6.25)
    assert t["exit_price"] == pytest.approx((50_100.0 + 50_050.0) / 2)
    assert t["pnl"] == pytest.approx(0.125 * 100.0 + 0.125 * 50.0 - 6.25)
    assert life.rows("legs", client_id="t1-tp2")[0]["status"] == "CANCELED"
    await life.crash()


async def test_closed_outside_with_known_fills_and_unknown(tmp_path: Path) -> None:
    venue = Venue(Clock())
    life = Life(tmp_path, venue)
    await life.start()
    await life.engine.submit_intent(intent(), LIVE)
    await life.settle()
    venue.fill("t1-entry", 500, 50_000.0)
    await life.settle()
    m = restored(life)
    fills = [ExternalFill(300, 50_010.0, 1.0, 7), ExternalFill(200, 50_020.0, 0.5, 8, "h2")]
    leg, acts = close_outside(m, fills, 9)
    assert leg is not None and leg.client_id == "t1-manual" and leg.role is LegRole.EXIT
    closed = [a for a in acts if isinstance(a, StateChanged) and a.new is TradeState.CLOSED]
    assert len(closed) == 1
    f = closed[0].fields
    assert (f["exit_reason"], f["exit_ts_ns"], f["fees"]) == ("MANUAL", 8, 1.5)
    assert f["exit_price"] == pytest.approx(50_014.0) and f["pnl"] == pytest.approx(0.3 * 10 + 0.2 * 20 - 1.5)
    assert {a.client_id for a in acts if a.__class__.__name__ == "Cancel"} == {"t1-sl", "t1-tp1", "t1-tp2"}

    m2 = restored(life)
    acts = close_unknown(m2, 10, "no position at the exchange")
    (ch,) = [a for a in acts if isinstance(a, StateChanged)]
    assert (ch.old, ch.new, ch.fields["exit_price"], ch.fields["pnl"], ch.fields["exit_reason"]) == (
        TradeState.PROTECTED, TradeState.CLOSED, None, None, "MANUAL")
    assert any(isinstance(a, TradeClosed) and a.reason is CloseReason.MANUAL for a in acts)
    assert m2.is_final and not m2.deadlines
    await life.crash()


async def test_vanished_stop_ends_quietly_then_is_replaced(tmp_path: Path) -> None:
    venue = Venue(Clock())
    life = Life(tmp_path, venue)
    await life.start()
    await life.engine.submit_intent(intent(), LIVE)
    await life.settle()
    venue.fill("t1-entry", 500, 50_000.0)
    await life.settle()
    m = restored(life)
    acts = end_quietly(m, "t1-sl", OrderStatus.CANCELED, "gone")
    assert [a.__class__.__name__ for a in acts] == ["OrderEvent"]  # no flatten, no halt
    assert m.legs["t1-sl"].status is OrderStatus.CANCELED and m.state is TradeState.PROTECTED
    sub = [a for a in restore_stop(m, venue.clock(), "reconcile") if isinstance(a, Submit)]
    assert [(a.leg.client_id, a.leg.req.qty_lots) for a in sub] == [("t1-sl.2", 500)]
    await life.crash()
