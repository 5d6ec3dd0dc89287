"""Continuous reconciliation on the engine (issue 11 item 2): passes while running find what the stream
missed, protect sizes the bot does not own and halt entries there until they are gone; the run loop's timer.
Explicit clock, fake venue (tests/execution/restore_harness.py), a real journal file.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from bot.execution.recovery import UNOWNED
from bot.risk import Denial
from tests.execution.harness import LIVE, Clock, S, intent
from tests.execution.restore_harness import Life, Venue


async def running(tmp: Path) -> Life:
    life = Life(tmp, Venue(Clock()))
    await life.start()
    assert await life.recovery.reconcile() == []  # the start-up pass
    return life


async def test_an_entry_fill_the_stream_never_delivered_is_applied_protected_and_reported(tmp_path: Path) -> None:
    life = await running(tmp_path)
    missed: list[tuple[str, str]] = []
    life.recovery.on_missed = lambda sym, detail: missed.append((sym, detail))
    await life.engine.submit_intent(intent(), LIVE)
    await life.settle()
    life.venue.fill("t1-entry", 500, 50_000.0, fee=1.0)
    assert life.venue.missed() >= 1  # the stream lost it
    await life.settle()
    assert life.engine.trades["t1"].state.value == "ENTERING"  # the machine does not know
    life.clock.t += 3 * S  # older than the stream's grace (1.5 s)
    n_sent = len(life.venue.sent)
    await life.recovery.reconcile()
    await life.settle()
    m = life.engine.trades["t1"]
    assert m.pos_lots == 500 and m.state.value in ("PROTECTING", "PROTECTED")
    assert [r[:4] for r in life.venue.requests(n_sent) if r[2] == "STOP_MARKET"] == [
        ("t1-sl", "SELL", "STOP_MARKET", 500)]
    fills = life.rows("fills", trade_id="t1", role="entry")
    assert [f["qty"] for f in fills] == [0.5] and fills[0]["fee"] == 1.0  # journaled, with the exact fee
    assert missed and missed[0][0] == "BTCUSDT" and "t1-entry" in missed[0][1]
    assert life.recovery.missed_total == 1
    # the next pass finds nothing more: no second report, no second stop
    n_sent = len(life.venue.sent)
    assert await life.recovery.reconcile() == []
    assert life.recovery.missed_total == 1 and len(life.venue.sent) == n_sent


async def test_the_start_up_pass_catching_up_is_not_a_stream_miss(tmp_path: Path) -> None:
    life = Life(tmp_path, Venue(Clock()))
    await life.start()
    missed: list[str] = []
    life.recovery.on_missed = lambda sym, detail: missed.append(detail)
    await life.engine.submit_intent(intent(), LIVE)
    await life.settle()
    life.venue.fill("t1-entry", 500, 50_000.0)
    life.venue.missed()
    life.clock.t += 3 * S
    await life.recovery.reconcile()  # run 1: what happened before the bot listened
    assert missed == [] and life.engine.trades["t1"].pos_lots == 500


async def test_a_manual_add_gets_a_stop_halts_entries_and_the_halt_ends_when_it_is_gone(tmp_path: Path) -> None:
    life = await running(tmp_path)
    await life.engine.submit_intent(intent(), LIVE)
    await life.settle()
    life.venue.fill("t1-entry", 500, 50_000.0)
    await life.settle()
    assert life.engine.trades["t1"].state.value == "PROTECTED"
    life.venue.by_hand("BTCUSDT", 200, 50_010.0)  # someone adds 0.2 BTC by hand
    n_sent = len(life.venue.sent)
    await life.recovery.reconcile()
    await life.settle()
    guard = [r for r in life.venue.sent[n_sent:] if r.client_id.startswith("recon-sl")]
    assert [(r.side.value, r.qty_lots, r.reduce_only) for r in guard] == [("SELL", 200, True)]
    assert life.rm.gate.halted_symbols.get("BTCUSDT") == UNOWNED
    assert any(k == "emergency" and "more than t1 owns" in msg for k, msg, _ in life.alerts)
    # the bot's own trade still owns exactly its 500 lots; a new entry there is refused
    assert life.engine.trades["t1"].pos_lots == 500
    denied = await life.engine.submit_intent(intent(ts=life.clock()), LIVE)
    assert isinstance(denied, Denial) and denied.reason.value == "SYMBOL_HALTED"
    # the next pass keeps the guard stop (no second one, not cancelled as an orphan)
    n_sent = len(life.venue.sent)
    await life.recovery.reconcile()
    assert life.venue.sent[n_sent:] == [] and life.rm.gate.halted_symbols.get("BTCUSDT") == UNOWNED
    # the manual size is closed by hand: its stop is an orphan now, cancelled, and entries are allowed again
    life.venue.by_hand("BTCUSDT", -200, 50_020.0)
    await life.recovery.reconcile()
    await life.settle()
    assert "BTCUSDT" not in life.rm.gate.halted_symbols
    assert life.venue.status[guard[0].client_id].value == "CANCELED"
    assert life.engine.trades["t1"].pos_lots == 500


async def test_the_run_loop_reconciles_on_its_timer(tmp_path: Path) -> None:
    life = Life(tmp_path, Venue(Clock()))
    await life.start()
    wanted = asyncio.Event()
    done: list[int] = []
    task = asyncio.create_task(life.recovery.run(wanted, done.append, interval_ms=50))
    try:
        for _ in range(200):  # bounded: ~ 5 passes in 0.3 s
            await asyncio.sleep(0.01)
            if len(done) >= 4:
                break
        assert len(done) >= 4 and done == sorted(done)
        assert life.recovery.runs >= 4
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_busy_symbol_does_not_turn_the_timer_into_a_loop(tmp_path: Path) -> None:
    """A pass deferred by a symbol that keeps changing is retried at once a few times, then left to the
    timer (each pass costs REST weight); at start-up (no complete pass yet) it keeps retrying."""
    life = Life(tmp_path, Venue(Clock()))
    await life.start()
    rec = life.recovery
    calls: list[float] = []

    async def always_busy() -> list[object]:
        calls.append(asyncio.get_running_loop().time())
        rec.deferred = ("BTCUSDT",)
        return []

    rec.reconcile = always_busy  # type: ignore[method-assign]
    rec.last_ok_ns = 1  # a complete pass happened before
    task = asyncio.create_task(rec.run(asyncio.Event(), lambda n: None, interval_ms=5_000))
    try:
        await asyncio.sleep(1.5)
        assert len(calls) == 4  # the asked pass + 3 quick retries, then the 5 s timer
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    rec.last_ok_ns = 0  # start-up: entries wait for a complete pass, so it keeps trying
    calls.clear()
    task = asyncio.create_task(rec.run(asyncio.Event(), lambda n: None, interval_ms=5_000))
    try:
        await asyncio.sleep(1.5)
        assert len(calls) >= 6
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_passes_asked_in_a_burst_run_at_once_then_one_per_gap(tmp_path: Path) -> None:
    """An isolated event gets its pass at once; a burst gets 3, then one per `min_gap_ms` (REST weight)."""
    life = Life(tmp_path, Venue(Clock()))
    await life.start()
    wanted = asyncio.Event()
    done: list[float] = []
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    task = asyncio.create_task(life.recovery.run(wanted, lambda n: done.append(loop.time()), min_gap_ms=300))
    try:
        for _ in range(48):  # asked every 25 ms for 1.2 s
            wanted.set()
            await asyncio.sleep(0.025)
        assert done and done[0] - t0 < 0.1  # at once
        assert 4 <= len(done) <= 3 + 4  # 3 at once, then about one per 300 ms
        # never more than 3 passes in any 0.9 s
        assert all(b - a >= 0.89 for a, b in zip(done, done[3:], strict=False))
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_the_unowned_halt_replaces_a_stream_halt_but_never_an_operators(tmp_path: Path) -> None:
    life = await running(tmp_path)
    gate = life.rm.gate
    gate.halt_symbol("BTCUSDT", "operator: checking", life.clock())
    life.venue.by_hand("BTCUSDT", 200, 50_010.0)
    await life.recovery.reconcile()
    assert gate.halted_symbols["BTCUSDT"] == "operator: checking"
    life.venue.by_hand("BTCUSDT", -200, 50_010.0)
    await life.recovery.reconcile()
    assert gate.halted_symbols["BTCUSDT"] == "operator: checking"  # not lifted by the pass either
    gate.halted_symbols["BTCUSDT"] = "user stream in doubt: x"
    life.venue.by_hand("BTCUSDT", 200, 50_010.0)
    await life.recovery.reconcile()
    assert gate.halted_symbols["BTCUSDT"] == UNOWNED  # the stream's health must not lift this one


async def test_a_fill_from_the_answer_then_the_same_fill_from_the_stream_is_applied_once(tmp_path: Path) -> None:
    """gateway_common.ack_fill may publish the order's answer (cumulative quantity, no trade id) when the
    stream is late; the stream's copy of the same fill afterwards must not count twice."""
    from bot.domain.types import OrderStatus, Side
    from bot.venues.ports import OrderUpdate

    life = await running(tmp_path)
    await life.engine.submit_intent(intent(), LIVE)
    await life.settle()
    life.venue.missed()
    kind = life.engine.trades["t1"].legs["t1-entry"].req.kind
    answer = OrderUpdate("t1-entry", "vt1-entry", "BTCUSDT", Side.BUY, kind, OrderStatus.FILLED, 500, 500,
                         50_000.0, reduce_only=False)
    life.engine.on_update(answer)
    streamed = OrderUpdate("t1-entry", "vt1-entry", "BTCUSDT", Side.BUY, kind, OrderStatus.FILLED, 500, 500,
                           50_000.0, last_fill_lots=500, last_fill_price=50_000.0, fee=1.0, trade_id="77",
                           reduce_only=False)
    life.engine.on_update(streamed)
    await life.settle()
    fills = life.rows("fills", trade_id="t1", role="entry")
    assert [f["qty"] for f in fills] == [0.5]
    assert life.engine.trades["t1"].pos_lots == 500
