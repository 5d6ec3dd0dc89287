"""Restart safety on the engine (bot.execution.recovery + bot.execution.reconcile): a crash, what happened at the
venue while the bot was away, and the restarted bot's reconciliation. Explicit clock, fake venue that
outlives the bot (tests/execution/restore_harness.py), a real journal file.

Setup: BTCUSDT long 500 lots at 50,000.0, stop 49,950.0 (499,500 ticks), targets 50,100.0 / 50,200.0.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.domain.types import OrderKind
from bot.execution.engine import _ID_BLOCK
from bot.execution.reconcile import CancelOrder, CloseTrade, PlaceStop
from bot.venues.errors import VenueUnavailable
from tests.execution.harness import LIVE, Clock, S, intent
from tests.execution.restore_harness import Life, Venue


async def protected(tmp: Path, venue: Venue, **kw: object) -> Life:
    life = Life(tmp, venue, **kw)  # type: ignore[arg-type]
    await life.start()
    await life.engine.submit_intent(intent(), LIVE)
    await life.settle()
    venue.fill("t1-entry", 500, 50_000.0, fee=1.0)
    await life.settle()
    assert life.engine.trades["t1"].state.value == "PROTECTED"
    return life


async def restart(tmp: Path, old: Life, **kw: object) -> Life:
    await old.crash()
    life = Life(tmp, old.venue, **kw)  # type: ignore[arg-type]
    await life.start()
    return life


def kinds(life: Life) -> set[str]:
    return {k for k, _, _ in life.alerts}


async def test_adopted_trade_keeps_its_stop_and_its_deadline_fires_at_once(tmp_path: Path) -> None:
    venue = Venue(Clock())
    life = await protected(tmp_path, venue, execution={"max_hold_s": 120, "no_progress_s": 0})
    t_fill = venue.clock()
    n_sent = len(venue.sent)
    venue.clock.advance_ms(200_000)  # down for 200 s
    life = await restart(tmp_path, life, execution={"max_hold_s": 120, "no_progress_s": 0})
    assert life.recovery.adopted == ["t1"]
    assert await life.recovery.reconcile() == []  # position and stop as the journal says: nothing to repair
    assert len(venue.sent) == n_sent and not life.alerts
    assert life.engine.next_deadline_ns() == t_fill + 120 * S  # re-armed from the first fill, already past
    life.engine.fire_due()
    await life.settle()
    assert venue.requests(n_sent) == [("t1-exit", "SELL", "MARKET", 500, None, None, True)]
    venue.fill("t1-exit", 500, 50_010.0, fee=1.0)
    await life.settle()
    t = life.trade()
    assert (t["state"], t["exit_reason"], t["fees"], t["pnl"]) == ("CLOSED", "TIME_LIMIT", 2.0, pytest.approx(3.0))
    assert set(venue.cancelled) == {"t1-sl", "t1-tp1", "t1-tp2"}
    # the next trade id continues after every id the crashed engine had reserved (it may have sent an entry
    # whose record it never wrote: that id is never used again)
    # (the first engine reserved t1..t{_ID_BLOCK})
    assert await life.engine.submit_intent(intent(ts=venue.clock()), LIVE) == f"t{_ID_BLOCK + 1}"
    await life.crash()


async def test_stop_filled_while_down_closes_as_a_stop_loss(tmp_path: Path) -> None:
    venue = Venue(Clock())
    life = await protected(tmp_path, venue)
    await life.crash()
    venue.move_price("BTCUSDT", 499_500)  # the stop triggers and fills while nobody listens
    assert venue.missed() == 2
    life = await restart(tmp_path, life)
    await life.recovery.reconcile()
    await life.settle()
    t = life.trade()
    assert (t["state"], t["exit_reason"], t["exit_price"], t["pnl"]) == ("CLOSED", "STOP_LOSS", 49_950.0, -26.0)
    assert {"t1-tp1", "t1-tp2"} <= set(venue.cancelled)  # OCO after the fact
    assert "emergency" not in kinds(life)
    await life.crash()


async def test_stop_gone_while_down_is_placed_again_not_flattened(tmp_path: Path) -> None:
    venue = Venue(Clock())
    life = await protected(tmp_path, venue)
    n_sent = len(venue.sent)
    life = await restart(tmp_path, life)
    venue.cancel_quietly("t1-sl")
    acts = await life.recovery.reconcile()
    await life.settle()
    assert any(isinstance(a, PlaceStop) and a.trade_id == "t1" for a in acts)
    assert venue.requests(n_sent) == [("t1-sl.2", "SELL", "STOP_MARKET", 500, None, 499_500, True)]
    m = life.engine.trades["t1"]
    assert m.state.value == "PROTECTED" and m.stop_leg is not None and m.stop_leg.client_id == "t1-sl.2"
    assert "BTCUSDT" not in life.rm.gate.halted_symbols
    assert [k for k, msg, _ in life.alerts if "no live stop" in msg] == ["emergency"]
    assert life.rows("legs", client_id="t1-sl.2")[0]["status"] == "NEW"  # journaled before it was sent
    await life.crash()


@pytest.mark.parametrize("fill_known", [True, False])
async def test_closed_by_hand_while_down(tmp_path: Path, fill_known: bool) -> None:
    venue = Venue(Clock())
    life = await protected(tmp_path, venue)
    await life.crash()
    venue.clock.advance_ms(5_000)
    if fill_known:
        venue.by_hand("BTCUSDT", -500, 50_020.0, fee=2.0)
    else:
        venue.position["BTCUSDT"] = 0  # flat, and the account shows no fill that explains it
    life = await restart(tmp_path, life)
    acts = await life.recovery.reconcile()
    await life.settle()
    assert {a.client_id for a in acts if isinstance(a, CancelOrder)} == {"t1-sl", "t1-tp1", "t1-tp2"}
    assert [(a.trade_id, a.reason.value) for a in acts if isinstance(a, CloseTrade)] == [("t1", "MANUAL")]
    assert not [c for c, s in venue.status.items() if not s.is_final]  # no orphan left to fire later
    assert "BTCUSDT" not in life.rm.gate.halted_symbols and not [r for r in venue.sent if r.kind is OrderKind.MARKET
                                                                  and r.client_id.startswith("t1-exit")]
    t = life.trade()
    assert (t["state"], t["exit_reason"]) == ("CLOSED", "MANUAL")
    if fill_known:
        assert (t["exit_price"], t["exit_ts_ns"], t["fees"]) == (50_020.0, venue.clock() // 1_000_000 * 1_000_000,
                                                                 3.0)
        assert t["pnl"] == pytest.approx(0.5 * 20.0 - 3.0)
        assert [(f["client_id"], f["qty"], f["price"]) for f in life.rows("fills", role="exit")] == [
            ("t1-manual", 0.5, 50_020.0)]
    else:
        assert (t["exit_price"], t["pnl"]) == (None, None)
    assert any(k == "emergency" and "closed outside the bot" in m for k, m, _ in life.alerts)
    await life.crash()


async def test_entry_never_sent_aborts_and_entry_filled_while_down_is_protected(tmp_path: Path) -> None:
    venue = Venue(Clock())
    life = Life(tmp_path, venue, execution={"entry_order": "limit_post_only"})
    await life.start()
    hang = asyncio.Event()

    async def set_leverage(symbol: str, leverage: int) -> None:
        await hang.wait()  # the crash comes while the leverage call is out: the entry is never sent

    venue.set_leverage = set_leverage  # type: ignore[method-assign]
    await life.engine.submit_intent(intent(), LIVE)
    for _ in range(5):
        await asyncio.sleep(0)
    # the entry is recorded right after its send (engine._open), so a crash while the leverage call is out
    # leaves no record at all: nothing was sent, and the id stays reserved
    assert life.rows("trades") == [] and life.engine.trades["t1"].state.value == "PLANNED"
    life = await restart(tmp_path, life, execution={"entry_order": "limit_post_only"})
    await life.recovery.reconcile()
    assert life.rows("trades") == [] and venue.sent == []

    # a resting maker entry that fills while the bot is down
    del venue.set_leverage
    tid = await life.engine.submit_intent(intent(ts=venue.clock()), LIVE)
    assert tid == f"t{_ID_BLOCK + 1}"  # after every id the crashed engine had reserved
    await life.settle()
    assert venue.requests() == [(f"{tid}-entry", "BUY", "LIMIT", 500, 499_999, None, False)]  # at our touch
    await life.crash()
    venue.fill(f"{tid}-entry", 500, 50_000.0)
    venue.missed()
    life = await restart(tmp_path, life, execution={"entry_order": "limit_post_only"})
    await life.recovery.reconcile()
    await life.settle()
    stops = [r.client_id for r in venue.sent if r.kind is OrderKind.STOP_MARKET]
    assert stops == [f"{tid}-sl"]  # the machine's own first stop, once: reconcile saw it in flight
    assert life.engine.trades[tid].state.value == "PROTECTED"
    await life.crash()


async def test_a_failed_fetch_decides_nothing_and_is_retried(tmp_path: Path) -> None:
    venue = Venue(Clock())
    life = await protected(tmp_path, venue)
    life = await restart(tmp_path, life)
    venue.cancel_quietly("t1-sl")  # there is something to repair ...
    venue.down = True  # ... but the venue cannot be asked
    n_sent = len(venue.sent)
    with pytest.raises(VenueUnavailable, match="unreachable"):
        await life.recovery.reconcile()
    assert len(venue.sent) == n_sent and life.engine.trades["t1"].stop_leg.client_id == "t1-sl"  # type: ignore[union-attr]
    done: list[int] = []
    wanted = asyncio.Event()
    task = asyncio.create_task(life.recovery.run(wanted, done.append, min_backoff_ms=1, max_backoff_ms=5))
    for _ in range(50):
        await asyncio.sleep(0.005)
    assert done == [] and len(venue.sent) == n_sent and "error" in kinds(life)
    venue.down = False
    for _ in range(400):
        await asyncio.sleep(0.005)
        if done:
            break
    assert done and venue.requests(n_sent)[0][0] == "t1-sl.2"
    task.cancel()
    await life.crash()


async def test_unknown_position_gets_a_stop_and_halts_its_symbol(tmp_path: Path) -> None:
    venue = Venue(Clock())
    life = Life(tmp_path, venue)
    await life.start()
    venue.by_hand("BTCUSDT", 10, 50_000.0)
    await life.recovery.reconcile()
    (req,) = venue.sent
    assert (req.kind, req.side.value, req.qty_lots, req.trigger_ticks, req.reduce_only) == (
        OrderKind.STOP_MARKET, "SELL", 10, 497_500, True)  # 50 bps under the entry
    assert life.rm.gate.halted_symbols == {"BTCUSDT": "position of no known trade"}
    assert any(k == "emergency" and "no known trade" in m for k, m, _ in life.alerts)
    await life.crash()


async def test_a_symbol_busy_during_the_fetch_is_left_for_the_next_pass(tmp_path: Path) -> None:
    venue = Venue(Clock())
    life = Life(tmp_path, venue)
    await life.start()
    venue.by_hand("BTCUSDT", 10, 50_000.0)
    real = venue.open_orders

    async def busy(symbol: str | None = None) -> list:  # the engine journals a change meanwhile
        life.engine.activity["BTCUSDT"] = life.engine.activity.get("BTCUSDT", 0) + 1
        return await real(symbol)

    venue.open_orders = busy  # type: ignore[method-assign]
    assert await life.recovery.reconcile() == [] and life.recovery.deferred == ("BTCUSDT",)
    assert venue.sent == []
    venue.open_orders = real  # type: ignore[method-assign]
    await life.recovery.reconcile()
    assert life.recovery.deferred == () and len(venue.sent) == 1
    await life.crash()


async def test_superseded_stop_left_open_by_the_crash_is_cancelled(tmp_path: Path) -> None:
    venue = Venue(Clock())
    life = Life(tmp_path, venue)
    await life.start()
    lost: list[str] = []

    async def cancel(symbol: str, client_id: str, conditional: bool = False) -> None:
        lost.append(client_id)  # the process dies before any cancel leaves it

    venue.cancel = cancel  # type: ignore[method-assign]
    await life.engine.submit_intent(intent(), LIVE)
    await life.settle()
    venue.fill("t1-entry", 200, 50_000.0)
    await life.settle()
    venue.fill("t1-entry", 300, 50_000.0)
    await life.settle()
    assert lost == ["t1-sl"]
    del venue.cancel
    life = await restart(tmp_path, life)
    await life.recovery.reconcile()
    await life.settle()
    assert venue.cancelled == ["t1-sl"] and life.engine.trades["t1"].stop_leg.client_id == "t1-sl.2"  # type: ignore[union-attr]
    await life.crash()


async def test_exit_keeps_only_positions_the_exchange_shows_protected(tmp_path: Path) -> None:
    venue = Venue(Clock())
    life = await protected(tmp_path, venue)
    assert await life.recovery.protect_for_exit() == []  # the stop is open at the venue: kept
    n_sent = len(venue.sent)
    venue.cancel_quietly("t1-sl")
    assert await life.recovery.protect_for_exit() == ["t1"]
    await life.settle()
    assert venue.requests(n_sent) == [("t1-exit", "SELL", "MARKET", 500, None, None, True)]
    venue.fill("t1-exit", 500, 50_000.0)
    await life.settle()
    assert life.trade()["exit_reason"] == "RISK_HALT"
    venue.by_hand("BTCUSDT", -20, 50_000.0)  # a position of no trade, no stop
    assert await life.recovery.protect_for_exit() == []
    assert venue.requests(n_sent + 1)[0][1:] == ("BUY", "MARKET", 20, None, None, True)
    await life.crash()


async def test_only_the_start_up_halt_is_lifted_and_symbol_halts_stay(tmp_path: Path) -> None:
    venue = Venue(Clock())
    life = Life(tmp_path, venue)
    gate = life.rm.gate
    life.recovery.halt_entries(venue.clock())
    gate.halt_symbol("ETHUSDT", "position of no known trade", venue.clock())
    assert life.rm.gate.check_entry("BTCUSDT", "s", LIVE, venue.clock()) is not None  # no entry yet
    assert life.recovery.allow_entries(venue.clock())
    assert gate.state.value == "ACTIVE" and gate.halted_symbols == {"ETHUSDT": "position of no known trade"}
    assert [(r["to_state"], r["reason"]) for r in life.rows("state_changes", entity="gate")] == [
        ("HALTED", "reconciling"), ("ACTIVE", "reconciled")]
    gate.halt("operator", venue.clock())
    assert not life.recovery.allow_entries(venue.clock()) and gate.state.value == "HALTED"
    await life.crash()


async def test_kill_between_a_fill_and_its_state_change_is_caught_up(tmp_path: Path) -> None:
    """The fill's transaction committed, the state change's did not (SIGKILL in between)."""
    venue = Venue(Clock())
    life = await protected(tmp_path, venue)
    t_entry = life.trade()["entry_ts_ns"]
    # as if killed right after the entry fill's transaction: still ENTERING, stop and targets never sent
    life.journal._db.execute("UPDATE trades SET state='ENTERING' WHERE trade_id='t1'")
    life.journal._db.execute("UPDATE legs SET status='PLANNED' WHERE role IN ('stop', 'tp')")
    for cid in ("t1-sl", "t1-tp1", "t1-tp2"):
        del venue.orders[cid], venue.status[cid]
    n_sent = len(venue.sent)
    life = await restart(tmp_path, life)
    m = life.engine.trades["t1"]
    assert m.state.value == "PROTECTING" and life.trade()["state"] == "PROTECTING"
    assert life.trade()["entry_ts_ns"] == t_entry
    await life.recovery.reconcile()
    await life.settle()
    assert venue.requests(n_sent) == [("t1-sl", "SELL", "STOP_MARKET", 500, None, 499_500, True),
                                      ("t1-tp1", "SELL", "LIMIT", 250, 501_000, None, True),
                                      ("t1-tp2", "SELL", "LIMIT", 250, 502_000, None, True)]
    assert m.state.value == "PROTECTED"

    venue.clock.advance_ms(7)
    venue.move_price("BTCUSDT", 499_500)
    await life.settle()
    t_stop = venue.clock()
    life.journal._db.execute("UPDATE trades SET state='PROTECTED', exit_reason=NULL, pnl=NULL WHERE trade_id='t1'")
    life = await restart(tmp_path, life)
    t = life.trade()  # closed at adoption, as it would have been: the stop's fill, its time, its PnL
    assert (t["state"], t["exit_reason"], t["exit_ts_ns"], t["pnl"]) == ("CLOSED", "STOP_LOSS", t_stop, -26.0)
    assert life.engine.trades == {}
    await life.recovery.reconcile()
    assert not [a for a in life.recovery.last_actions if isinstance(a, CloseTrade)]  # not taken for a manual close
    await life.crash()
