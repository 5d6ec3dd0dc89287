"""Lifecycle on the engine + fake gateway: the exact orders sent and the journal rows, explicit clock.

Setup of every test (unless said): equity 5,000, risk 0.5 % (25), no fees, BTCUSDT long at 50,000.0
(500,000 ticks) stopped at 49,950.0 -> 0.5 BTC = 500 lots; IOC entry at the reference (offset 0);
targets 50,100.0 (50 %) and 50,200.0 (50 %).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.domain.types import CloseReason
from bot.risk import Denial, DenyReason, TradingState
from tests.execution.harness import LIVE, Rig, S, intent, running

ENTRY = ("t1-entry", "BUY", "LIMIT", 500, 500_000, None, False)
STOP = ("t1-sl", "SELL", "STOP_MARKET", 500, None, 499_500, True)
TP1 = ("t1-tp1", "SELL", "LIMIT", 250, 501_000, None, True)
TP2 = ("t1-tp2", "SELL", "LIMIT", 250, 502_000, None, True)


async def test_entry_fill_places_the_stop_within_the_deadline(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    async with running(rig):
        rig.gw.on_submit = lambda req: rig.clock.advance_ms(3) if req.client_id.endswith("-sl") else None
        assert await rig.engine.submit_intent(intent(), LIVE) == "t1"
        await rig.settle()
        assert rig.gw.requests() == [ENTRY]
        # durable intent: the trade and its planned legs were journaled before the entry was sent
        assert {r["client_id"]: r["status"] for r in rig.rows("legs")} == {
            "t1-entry": "NEW", "t1-sl": "PLANNED", "t1-tp1": "PLANNED", "t1-tp2": "PLANNED"}
        rig.clock.advance_ms(1)
        rig.gw.fill("t1-entry", 500, 50_000.0)
        await rig.settle()
        assert rig.gw.requests() == [ENTRY, STOP, TP1, TP2]
        assert rig.engine.trades["t1"].state.value == "PROTECTED"
        rig.clock.advance_ms(600)
        assert rig.engine.fire_due() == 0  # the confirm deadline was cleared by the acknowledgement
        await rig.settle()
        assert len(rig.gw.sent) == 4  # no flattening
        assert rig.trade_states() == ["PLANNED", "ENTERING", "PROTECTING", "PROTECTED"]
        (trade,) = rig.rows("trades")
        assert (trade["entry_price"], trade["stop_price"], trade["stop_confirm_ms"]) == (50_000.0, 49_950.0, 3.0)
        assert rig.leg("t1-entry")["status"] == "FILLED" and rig.leg("t1-entry")["intended_price"] == 50_000.0
        assert (rig.leg("t1-sl")["status"], rig.leg("t1-sl")["intended_price"], rig.leg("t1-sl")["qty"]) == (
            "NEW", 49_950.0, 0.5)
        assert [(f["client_id"], f["qty"], f["price"]) for f in rig.rows("fills")] == [("t1-entry", 0.5, 50_000.0)]
        assert rig.gw.leverage == {"BTCUSDT": 20}


async def test_partial_fill_sizes_the_stop_to_the_filled_quantity(tmp_path: Path) -> None:
    rig = Rig(tmp_path, execution={"entry_order": "limit_post_only"})
    async with running(rig):
        await rig.engine.submit_intent(intent(), LIVE)
        await rig.settle()
        # post-only at our own touch: one spread (1 tick when the intent does not say) behind the reference
        assert rig.gw.requests()[0] == ("t1-entry", "BUY", "LIMIT", 500, 499_999, None, False)
        assert rig.gw.sent[0].time_in_force.value == "GTX"
        rig.gw.fill("t1-entry", 200, 50_000.0)
        await rig.settle()
        assert rig.gw.requests(1) == [("t1-sl", "SELL", "STOP_MARKET", 200, None, 499_500, True)]
        rig.gw.fill("t1-entry", 300, 50_000.0)
        await rig.settle()
        # a new stop for the whole 500, then the old one cancelled once the new one is confirmed; TPs once
        # the entry is done
        assert rig.gw.requests(2) == [("t1-sl.2", "SELL", "STOP_MARKET", 500, None, 499_500, True), TP1, TP2]
        assert rig.gw.cancelled == ["t1-sl"]
        assert rig.leg("t1-sl")["status"] == "CANCELED" and rig.leg("t1-sl.2")["status"] == "NEW"
        assert [f["qty"] for f in rig.rows("fills")] == [0.2, 0.3]
        assert rig.trade_states() == ["PLANNED", "ENTERING", "PROTECTING", "PROTECTED", "PROTECTING", "PROTECTED"]


async def test_stop_not_confirmed_flattens_and_halts_the_symbol(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    async with running(rig):
        rig.gw.hold = {"-sl"}  # the venue never acknowledges the stop
        await rig.engine.submit_intent(intent(), LIVE)
        await rig.settle()
        rig.gw.fill("t1-entry", 500, 50_000.0)
        await rig.settle()
        assert rig.gw.requests() == [ENTRY, STOP, TP1, TP2]
        rig.clock.advance_ms(499)
        assert rig.engine.fire_due() == 0
        rig.clock.advance_ms(1)  # 500 ms after the stop was sent
        assert rig.engine.fire_due() == 1
        await rig.settle()
        assert rig.gw.requests(4) == [("t1-exit", "SELL", "MARKET", 500, None, None, True)]
        assert set(rig.gw.cancelled) == {"t1-tp1", "t1-tp2"}
        assert "BTCUSDT" in rig.rm.gate.halted_symbols
        assert rig.rows("state_changes", entity="symbol", entity_id="BTCUSDT")[0]["to_state"] == "HALTED"
        rig.gw.fill("t1-exit", 500, 49_990.0)
        await rig.settle()
        (trade,) = rig.rows("trades")
        assert (trade["state"], trade["exit_reason"], trade["exit_price"]) == ("CLOSED", "RISK_HALT", 49_990.0)
        assert trade["pnl"] == -5.0 and trade["stop_confirm_ms"] is None
        assert rig.trade_states()[-2:] == ["EXITING", "CLOSED"]
        d = await rig.engine.submit_intent(intent(setup="other"), LIVE)
        assert isinstance(d, Denial) and d.reason is DenyReason.SYMBOL_HALTED
        assert rig.rows("denials")[-1]["reason"] == "SYMBOL_HALTED"


async def test_tp1_moves_the_stop_to_breakeven_and_resizes_it(tmp_path: Path) -> None:
    # fees on: taker 5 bps. Size = 25 / (50 + 50,000 × 10 bps) = 0.25 BTC. Breakeven = entry + both fees
    # = 50,000 × 1.001 = 50,050.0 (500,500 ticks).
    rig = Rig(tmp_path, risk={"taker_fee_bps": 5.0, "maker_fee_bps": 2.0})
    async with running(rig):
        await rig.engine.submit_intent(intent(), LIVE)
        await rig.settle()
        rig.gw.fill("t1-entry", 250, 50_000.0, fee=6.25)
        await rig.settle()
        assert rig.gw.requests(1) == [("t1-sl", "SELL", "STOP_MARKET", 250, None, 499_500, True),
                                      ("t1-tp1", "SELL", "LIMIT", 125, 501_000, None, True),
                                      ("t1-tp2", "SELL", "LIMIT", 125, 502_000, None, True)]
        rig.engine.on_price("BTCUSDT", 501_000)
        rig.gw.move_price("BTCUSDT", 501_000)  # TP1 fills at its limit
        await rig.settle()
        assert rig.gw.requests(4) == [("t1-sl.2", "SELL", "STOP_MARKET", 125, None, 500_500, True)]
        assert rig.gw.cancelled == ["t1-sl"]  # after the new stop was confirmed
        assert rig.leg("t1-sl.2")["intended_price"] == 50_050.0
        assert rig.leg("t1-tp2")["status"] == "NEW"
        rig.gw.move_price("BTCUSDT", 500_500)  # back to breakeven: the stop takes the rest
        await rig.settle()
        (trade,) = rig.rows("trades")
        assert (trade["exit_reason"], trade["qty"]) == ("STOP_LOSS", 0.25)
        assert set(rig.gw.cancelled) == {"t1-sl", "t1-tp2"}  # OCO: the other TP went with it
        assert trade["fees"] == 6.25 and trade["pnl"] > 0


async def test_scale_in_moves_the_stop_and_reslices_the_targets(tmp_path: Path) -> None:
    rig = Rig(tmp_path, execution={"scale_in_fractions": (0.3, 0.4, 0.3), "scale_in_trigger_r": (0.5, 1.0)})
    async with running(rig):
        await rig.engine.submit_intent(intent(targets=((502_000, 0.5), (503_000, 0.5))), LIVE)
        await rig.settle()
        assert rig.gw.requests() == [("t1-entry", "BUY", "LIMIT", 150, 500_000, None, False)]
        rig.gw.fill("t1-entry", 150, 50_000.0)
        await rig.settle()
        assert rig.gw.requests(1) == [("t1-sl", "SELL", "STOP_MARKET", 150, None, 499_500, True),
                                      ("t1-tp1", "SELL", "LIMIT", 75, 502_000, None, True),
                                      ("t1-tp2", "SELL", "LIMIT", 75, 503_000, None, True)]
        rig.engine.on_price("BTCUSDT", 500_249)  # 0.498 R: not yet
        assert len(rig.gw.sent) == 4
        rig.engine.on_price("BTCUSDT", 500_250)  # 0.5 R in favour -> the second increment
        await rig.settle()
        assert rig.gw.requests(4) == [("t1-add2", "BUY", "LIMIT", 200, 500_250, None, False)]
        rig.gw.fill("t1-add2", 200, 50_025.0)
        await rig.settle()
        # stop to breakeven of the whole 350 (avg 50,014.2857 -> 500,143 ticks), then targets re-sliced
        assert rig.gw.requests(5) == [("t1-sl.2", "SELL", "STOP_MARKET", 350, None, 500_143, True),
                                      ("t1-tp1.2", "SELL", "LIMIT", 175, 502_000, None, True),
                                      ("t1-tp2.2", "SELL", "LIMIT", 175, 503_000, None, True)]
        assert set(rig.gw.cancelled) == {"t1-sl", "t1-tp1", "t1-tp2"}
        rig.engine.on_price("BTCUSDT", 500_500)  # 1 R -> the third increment
        await rig.settle()
        assert rig.gw.requests(8) == [("t1-add3", "BUY", "LIMIT", 150, 500_500, None, False)]
        rig.gw.fill("t1-add3", 150, 50_050.0)
        await rig.settle()
        # stop under the previous add's entry (50,025.0 - 1 tick), all 500; targets 250/250
        assert rig.gw.requests(9) == [("t1-sl.3", "SELL", "STOP_MARKET", 500, None, 500_249, True),
                                      ("t1-tp1.3", "SELL", "LIMIT", 250, 502_000, None, True),
                                      ("t1-tp2.3", "SELL", "LIMIT", 250, 503_000, None, True)]
        rig.gw.move_price("BTCUSDT", 500_249)
        await rig.settle()
        (trade,) = rig.rows("trades")
        assert trade["exit_reason"] == "STOP_LOSS" and trade["qty"] == 0.5
        assert trade["pnl"] == pytest.approx(-0.05)  # 0.5 × (50,024.9 - 50,025.0): one tick under the add
        # the most ever at risk was the first increment to the initial stop: 0.15 × 50 = 7.5 <= 25
        assert trade["max_open_risk"] == 7.5 and trade["max_open_risk"] <= trade["risk_budget"]


async def test_no_progress_and_max_hold_fire_at_their_deadlines(tmp_path: Path) -> None:
    rig = Rig(tmp_path, execution={"no_progress_s": 60, "no_progress_min_r": 0.3, "max_hold_s": 120})
    async with running(rig):
        await rig.engine.submit_intent(intent(), LIVE)
        await rig.settle()
        rig.gw.fill("t1-entry", 500, 50_000.0)
        await rig.settle()
        t_fill = rig.clock.t
        rig.clock.t = t_fill + 60 * S - 1
        assert rig.engine.fire_due() == 0  # the entry timeout (3 s) was cleared: the entry is done
        assert len(rig.gw.sent) == 4
        rig.clock.t = t_fill + 60 * S
        rig.engine.fire_due()
        await rig.settle()
        assert rig.gw.requests(4) == [("t1-exit", "SELL", "MARKET", 500, None, None, True)]
        rig.gw.fill("t1-exit", 500, 50_000.0)
        await rig.settle()
        assert rig.rows("trades")[0]["exit_reason"] == "NO_PROGRESS"
        assert rig.rows("trades")[0]["exit_ts_ns"] == t_fill + 60 * S

        await rig.engine.submit_intent(intent(ts=rig.clock.t), LIVE)
        await rig.settle()
        n = len(rig.gw.sent)
        rig.gw.fill("t2-entry", 500, 50_000.0)
        await rig.settle()
        t2 = rig.clock.t
        rig.clock.t = t2 + 30 * S
        rig.engine.on_price("BTCUSDT", 500_150)  # 0.3 R in favour: progress, that deadline is gone
        rig.clock.t = t2 + 60 * S
        rig.engine.fire_due()
        await rig.settle()
        assert len(rig.gw.sent) == n + 3  # stop + 2 TPs, no exit
        rig.clock.t = t2 + 120 * S - 1
        rig.engine.fire_due()
        assert len(rig.gw.sent) == n + 3
        rig.clock.t = t2 + 120 * S
        rig.engine.fire_due()
        await rig.settle()
        assert rig.gw.requests(n + 3) == [("t2-exit", "SELL", "MARKET", 500, None, None, True)]
        rig.gw.fill("t2-exit", 500, 50_010.0)
        await rig.settle()
        t = rig.rows("trades")[1]
        assert (t["exit_reason"], t["exit_ts_ns"], t["pnl"]) == ("TIME_LIMIT", t2 + 120 * S, 5.0)


async def test_stop_fill_cancels_every_other_leg(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    async with running(rig):
        await rig.engine.submit_intent(intent(), LIVE)
        await rig.settle()
        rig.gw.fill("t1-entry", 500, 50_000.0)
        await rig.settle()
        rig.clock.advance_ms(5)
        rig.gw.move_price("BTCUSDT", 499_500)  # the stop triggers; its child order fills (parent_id link)
        await rig.settle()
        assert rig.gw.requests(1) == [STOP, TP1, TP2]
        assert rig.gw.cancelled == ["t1-tp1", "t1-tp2"]
        assert rig.leg("t1-tp1")["status"] == "CANCELED" and rig.leg("t1-tp2")["status"] == "CANCELED"
        assert [e["status"] for e in rig.rows("order_events", client_id="t1-sl")] == [
            "PLANNED", "PENDING_NEW", "NEW", "TRIGGERED", "FILLED"]
        (trade,) = rig.rows("trades")
        assert (trade["exit_reason"], trade["exit_price"], trade["pnl"], trade["r_multiple"]) == (
            "STOP_LOSS", 49_950.0, -25.0, -1.0)
        assert trade["max_open_risk"] == 25.0
        assert rig.rm.gate.setup_until_ns[("sweep", "BTCUSDT")] == rig.clock.t + 60 * S
        assert rig.gw.position["BTCUSDT"] == 0


async def test_daily_loss_limit_halts_trading(tmp_path: Path) -> None:
    rig = Rig(tmp_path, risk={"daily_loss_limit_pct": 0.4, "max_drawdown_pct": 10})
    async with running(rig):
        await rig.engine.submit_intent(intent(), LIVE)
        await rig.settle()
        rig.gw.fill("t1-entry", 500, 50_000.0)
        await rig.settle()
        rig.gw.move_price("BTCUSDT", 499_500)  # -25 = -0.5 % of 5,000 > the 0.4 % limit
        await rig.settle()
        await rig.engine.drain()
        assert rig.rm.gate.state is TradingState.HALTED
        (halt,) = rig.rows("state_changes", entity="gate")
        assert (halt["from_state"], halt["to_state"]) == ("ACTIVE", "HALTED")
        assert halt["reason"].startswith("DAILY_LOSS_LIMIT")
        d = await rig.engine.submit_intent(intent(setup="other", side="short", stop=500_500,
                                                  targets=((499_000, 1.0),)), LIVE)
        assert isinstance(d, Denial) and d.reason is DenyReason.DAILY_LOSS_LIMIT
        assert rig.rows("denials")[-1]["reason"] == "DAILY_LOSS_LIMIT"
        assert len(rig.gw.sent) == 4  # nothing sent for the denied intent


async def test_operator_flatten_and_rejected_vs_denied(tmp_path: Path) -> None:
    rig = Rig(tmp_path, risk={"max_orders_per_s": 1, "max_orders_per_min": 100})
    async with running(rig):
        rig.gw.reject = {"-tp2": (-2022, "ReduceOnly Order is rejected.")}
        await rig.engine.submit_intent(intent(), LIVE)
        await rig.settle()
        rig.gw.fill("t1-entry", 500, 50_000.0)
        await rig.settle()
        # the venue rejected TP2 (a rejection); the stop still covers everything
        assert rig.rows("rejections")[0]["client_id"] == "t1-tp2" and rig.leg("t1-tp2")["status"] == "REJECTED"
        assert rig.engine.trades["t1"].state.value == "PROTECTED"
        rig.engine.flatten_all(CloseReason.MANUAL)
        await rig.settle()
        assert rig.gw.requests(4) == [("t1-exit", "SELL", "MARKET", 500, None, None, True)]  # reduce-only: never denied
        rig.gw.fill("t1-exit", 500, 50_000.0)
        await rig.settle()
        assert rig.rows("trades")[0]["exit_reason"] == "MANUAL"
        # a second entry within the same second is denied by our own order-rate limit (a denial)
        rig.clock.advance_ms(1)
        rig.rm.gate._sent_1s.clear()
        rig.rm.gate._sent_1s.append(rig.clock.t)
        tid = await rig.engine.submit_intent(intent(setup="b"), LIVE)
        await rig.settle()
        assert tid == "t2" and rig.trade_states("t2") == ["PLANNED", "ENTERING", "ABORTED"]
        assert rig.rows("state_changes", entity_id="t2")[-1]["reason"] == "entry denied: RATE_PER_SECOND"
        assert rig.rows("denials")[-1]["reason"] == "RATE_PER_SECOND"
        assert "t2-entry" not in [r.client_id for r in rig.gw.sent]
        assert rig.rm.gate.open_notional == {}


async def test_a_symbol_halt_denies_a_scale_in_but_never_the_stop(tmp_path: Path) -> None:
    """An unowned size or a user stream in doubt halts the symbol: the open trade must not add to it."""
    rig = Rig(tmp_path, execution={"scale_in_fractions": (0.3, 0.4, 0.3), "scale_in_trigger_r": (0.5, 1.0)})
    async with running(rig):
        await rig.engine.submit_intent(intent(targets=((502_000, 0.5), (503_000, 0.5))), LIVE)
        await rig.settle()
        rig.gw.fill("t1-entry", 150, 50_000.0)
        await rig.settle()
        assert [r[0] for r in rig.gw.requests(1)] == ["t1-sl", "t1-tp1", "t1-tp2"]
        rig.rm.gate.halt_symbol("BTCUSDT", "unowned size", rig.clock())
        rig.engine.on_price("BTCUSDT", 500_250)  # 0.5 R in favour: the add is planned ...
        await rig.settle()
        assert not [r for r in rig.gw.requests(4) if r[0].startswith("t1-add")]  # ... and denied
        denials = rig.rows("denials")
        assert denials and denials[-1]["reason"] == "SYMBOL_HALTED"
        rig.gw.move_price("BTCUSDT", 499_500)  # the stop (150 lots) still stands and fires
        await rig.settle()
        (trade,) = rig.rows("trades")
        assert trade["exit_reason"] == "STOP_LOSS" and trade["qty"] == 0.15
