"""Protective orders always get through; no single input ends the engine (issue 11 items 1 and 4).

The engine on a scripted gateway (the fake of fakes.py plus errors on chosen attempts), an explicit clock for
the machine's deadlines and real (short) sleeps for the retry waits: a stop or an exit refused by a 429 is
sent again under the same client id after exactly the Retry-After; after an outcome that may have reached
the venue it is looked up first and never resent blindly; an exit refused by the venue is retried without
end while a position exists; a look-up that fails inside an ambiguous entry, a late fill on an ABORTED trade
and an input that raises all go to reconciliation instead of ending the process.

Setup as in test_engine_lifecycle: BTCUSDT long 500 lots at 50,000.0, stop 49,950.0.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import bot.execution.sending as sending
from bot.domain.types import CloseReason, OrderStatus
from bot.execution.actions import Timer, TradeState
from bot.venues.errors import AmbiguousOutcome, DuplicateClientId, OrderRejected, RateLimited, VenueUnavailable
from bot.venues.ports import OrderAck, OrderRequest, OrderUpdate
from tests.execution.fakes import FakeGateway
from tests.execution.harness import LIVE, Rig, intent, running

EXECUTE = "execute"  # a scripted outcome: the order is placed, then the answer is lost (AmbiguousOutcome)


class ScriptedGateway(FakeGateway):
    """FakeGateway whose submit/fetch_order fail as scripted: `script[client_id]` is a list of outcomes for
    the next attempts (an exception to raise, or EXECUTE: place it, then raise AmbiguousOutcome);
    `fetch_fail` exceptions are raised by the next look-ups. Every attempt is timed."""

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.script: dict[str, list[Any]] = {}
        self.fetch_fail: list[Exception] = []
        self.fetches: list[str] = []
        self.attempts: list[tuple[str, float]] = []
        self.reject_if: Callable[[OrderRequest], bool] | None = None

    async def submit(self, req: OrderRequest) -> OrderAck:
        self.attempts.append((req.client_id, time.monotonic()))
        todo = self.script.get(req.client_id)
        if todo:
            what = todo.pop(0)
            if what == EXECUTE:
                await super().submit(req)
                raise AmbiguousOutcome(f"{req.client_id}: timeout")
            self.sent.append(req)
            raise what
        if self.reject_if is not None and self.reject_if(req):
            self.sent.append(req)
            raise OrderRejected("Margin is insufficient.", -2019)
        if req.client_id in self.orders and not self.status[req.client_id].is_final:
            self.sent.append(req)
            raise DuplicateClientId("ClientOrderId is duplicated.", -4116)  # as the adapters translate it
        return await super().submit(req)

    async def fetch_order(self, symbol: str, client_id: str, conditional: bool = False) -> OrderUpdate | None:
        self.fetches.append(client_id)
        if self.fetch_fail:
            raise self.fetch_fail.pop(0)
        req = self.orders.get(client_id)
        if req is None:
            return None
        return OrderUpdate(client_id, "v" + client_id, req.symbol, req.side, req.kind, self.status[client_id],
                           req.qty_lots, self.filled[client_id], self.avg[client_id])

    def count(self, cid: str) -> int:
        return sum(1 for c, _ in self.attempts if c == cid)


def rig_of(tmp: Path, **kw: Any) -> tuple[Rig, ScriptedGateway, list[tuple[str, str]]]:
    rig = Rig(tmp, **kw)
    gw = ScriptedGateway(rig.gw.instruments, rig.clock)
    rig.gw = rig.engine.gw = gw
    asked: list[tuple[str, str]] = []
    rig.engine.on_reconcile_needed = lambda symbol, reason: asked.append((symbol, reason))
    return rig, gw, asked


async def until(what: str, cond: Callable[[], Any], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s} s")
        await asyncio.sleep(0.005)


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sending, "RETRY_FIRST_S", 0.01)
    monkeypatch.setattr(sending, "RETRY_CAP_S", 0.05)
    monkeypatch.setattr(sending, "_LOOKUP_CAP_S", 0.05)


async def _filled_entry(rig: Rig, gw: ScriptedGateway) -> None:
    assert await rig.engine.submit_intent(intent(), LIVE) == "t1"
    await until("entry sent", lambda: "t1-entry" in gw.orders)
    rig.gw.fill("t1-entry", 500, 50_000.0)


async def test_stop_refused_by_429_waits_out_retry_after_and_is_resent_same_client_id(tmp_path: Path) -> None:
    rig, gw, asked = rig_of(tmp_path)
    async with running(rig):
        gw.script["t1-sl"] = [RateLimited("429", retry_after_s=0.15), RateLimited("429", retry_after_s=0.1)]
        await _filled_entry(rig, gw)
        await until("stop confirmed", lambda: rig.engine.trades["t1"].state is TradeState.PROTECTED)
        times = [t for c, t in gw.attempts if c == "t1-sl"]
        assert len(times) == 3  # the same client id each time: never a second stop
        assert times[1] - times[0] >= 0.15 and times[2] - times[1] >= 0.1  # exactly the Retry-After, not less
        assert gw.fetches == []  # a 429 was not processed: nothing to look up
        assert "BTCUSDT" not in rig.rm.gate.halted_symbols  # not refused: no flatten, no halt
        assert rig.rows("rejections") == []
        assert rig.leg("t1-sl")["status"] == "NEW"
        assert asked and asked[0][0] == "BTCUSDT"
        assert rig.engine.stats["protective_retries"] == 2 and rig.engine.stats["protective_resends"] == 2


async def test_a_global_and_a_symbol_halt_never_stop_protecting(tmp_path: Path) -> None:
    rig, gw, _ = rig_of(tmp_path)
    async with running(rig):
        gw.script["t1-sl"] = [RateLimited("429", retry_after_s=0.1)]
        await _filled_entry(rig, gw)
        await until("stop refused once", lambda: gw.count("t1-sl") == 1)
        rig.rm.gate.halt("operator", rig.clock())  # halts deny entries only
        rig.rm.gate.halt_symbol("BTCUSDT", "test", rig.clock())
        await until("stop confirmed", lambda: rig.engine.trades["t1"].state is TradeState.PROTECTED)
        assert gw.count("t1-sl") == 2
        rig.engine.flatten_all(CloseReason.MANUAL)
        await until("exit sent", lambda: "t1-exit" in gw.orders)


async def test_ambiguous_stop_that_landed_is_found_by_client_id_not_resent(tmp_path: Path) -> None:
    rig, gw, _ = rig_of(tmp_path)
    async with running(rig):
        gw.script["t1-sl"] = [EXECUTE]
        await _filled_entry(rig, gw)
        await until("stop confirmed", lambda: rig.engine.trades["t1"].state is TradeState.PROTECTED)
        assert gw.count("t1-sl") == 1 and gw.fetches == ["t1-sl"]
        assert [r.client_id for r in gw.sent].count("t1-sl") == 1


async def test_ambiguous_stop_not_found_is_resent_only_after_a_successful_lookup(tmp_path: Path) -> None:
    rig, gw, _ = rig_of(tmp_path)
    async with running(rig):
        gw.script["t1-sl"] = [AmbiguousOutcome("timeout")]
        gw.fetch_fail = [VenueUnavailable("down"), RateLimited("429", retry_after_s=0.05)]
        await _filled_entry(rig, gw)
        await until("stop confirmed", lambda: rig.engine.trades["t1"].state is TradeState.PROTECTED)
        # two failed look-ups, then "not found", then (only then) the resend under the same id
        assert gw.fetches == ["t1-sl", "t1-sl", "t1-sl"] and gw.count("t1-sl") == 2


async def test_duplicate_client_id_on_a_resend_is_looked_up_and_applied(tmp_path: Path) -> None:
    rig, gw, _ = rig_of(tmp_path)
    async with running(rig):
        # the first attempt landed but its answer was lost AND the look-up failed: the resend meets -4116
        gw.script["t1-sl"] = [EXECUTE]
        gw.fetch_fail = [VenueUnavailable("down")]
        await _filled_entry(rig, gw)
        await until("stop confirmed", lambda: rig.engine.trades["t1"].state is TradeState.PROTECTED)
        assert len([c for c in gw.orders if c.startswith("t1-sl")]) == 1  # one stop at the venue


async def test_exit_refused_by_429_is_retried_until_flat_and_symbol_halt_does_not_stop_it(tmp_path: Path) -> None:
    rig, gw, _ = rig_of(tmp_path)
    async with running(rig):
        gw.hold = {"-sl"}  # the stop is never acknowledged: the confirm deadline flattens
        gw.script["t1-exit"] = [RateLimited("429", retry_after_s=0.05)] * 3
        await _filled_entry(rig, gw)
        await until("stop sent", lambda: gw.count("t1-sl") == 1)
        m = rig.engine.trades["t1"]
        rig.clock.advance_ms(500)
        assert rig.engine.fire_due() == 1
        assert "BTCUSDT" in rig.rm.gate.halted_symbols
        await until("exit placed", lambda: "t1-exit" in gw.orders)
        assert gw.count("t1-exit") == 4 and m.state is TradeState.EXITING
        gw.fill("t1-exit", 500, 49_990.0)
        await until("closed", lambda: rig.rows("trades")[0]["state"] == "CLOSED")
        assert rig.rows("trades")[0]["exit_reason"] == "RISK_HALT"


async def test_exit_rejected_by_the_venue_is_never_given_up_and_flatten_resends(tmp_path: Path) -> None:
    rig, gw, _ = rig_of(tmp_path)
    async with running(rig):
        await _filled_entry(rig, gw)
        await until("protected", lambda: rig.engine.trades["t1"].state is TradeState.PROTECTED)
        gw.reject_if = lambda req: "-exit" in req.client_id
        rig.engine.flatten_all(CloseReason.MANUAL)
        # the first exit and 3 immediate re-sends refused; then a halt and a backoff timer, not a give-up
        await until("4 exits refused", lambda: len(rig.rows("rejections")) == 4)
        m = rig.engine.trades["t1"]
        assert m.state is TradeState.EXITING and Timer.EXIT_RETRY in m.deadlines
        assert "BTCUSDT" in rig.rm.gate.halted_symbols
        exits = [c for c, _ in gw.attempts if "-exit" in c]
        assert len(exits) == 4 and len(set(exits)) == 4
        # an operator's (or the shutdown's) flatten of a trade already EXITING sends an exit at once
        rig.engine.flatten_all(CloseReason.MANUAL)
        await until("a 5th exit", lambda: len([c for c, _ in gw.attempts if "-exit" in c]) == 5)
        # and the retry timer keeps going with a capped backoff while the position exists
        rig.clock.advance_ms(10_000)
        assert rig.engine.fire_due() == 1
        await until("a 6th exit", lambda: len([c for c, _ in gw.attempts if "-exit" in c]) == 6)
        gw.reject_if = None
        rig.clock.advance_ms(10_000)
        assert rig.engine.fire_due() == 1
        await until("a 7th exit", lambda: len([c for c, _ in gw.attempts if "-exit" in c]) == 7)
        last = [c for c, _ in gw.attempts if "-exit" in c][-1]
        await until("the exit placed", lambda: last in gw.orders)
        gw.fill(last, 500, 50_000.0)
        await until("closed", lambda: rig.rows("trades")[0]["state"] == "CLOSED")


async def test_ambiguous_entry_whose_lookups_fail_keeps_the_trade_and_applies_the_fill(tmp_path: Path) -> None:
    rig, gw, asked = rig_of(tmp_path)
    async with running(rig) as r:
        gw.script["t1-entry"] = [EXECUTE]
        gw.fetch_fail = [VenueUnavailable("down")] * 50 + [RateLimited("429", retry_after_s=0.01)] * 50
        engine_task = [t for t in asyncio.all_tasks() if "run" in repr(t.get_coro())]
        assert await r.engine.submit_intent(intent(), LIVE) == "t1"
        await until("look-ups retried", lambda: len(gw.fetches) >= 3)
        m = r.engine.trades["t1"]
        assert m.state is TradeState.ENTERING  # kept: a fill arriving now is still applied
        assert asked and asked[0][0] == "BTCUSDT" and "look-up failed" in asked[0][1]
        gw.fill("t1-entry", 500, 50_000.0)  # the stream reports the fill while look-ups keep failing
        await until("stop confirmed", lambda: m.state is TradeState.PROTECTED)
        n = len(gw.fetches)
        await asyncio.sleep(0.2)
        assert len(gw.fetches) <= n + 1  # the look-up loop ended once the leg was answered
        assert all(not t.done() for t in engine_task)  # the engine is still running


async def test_entry_executed_after_not_found_reopens_its_trade_and_protects_it(tmp_path: Path) -> None:
    rig, gw, asked = rig_of(tmp_path)
    async with running(rig) as r:
        gw.script["t1-entry"] = [AmbiguousOutcome("timeout")]
        await r.engine.submit_intent(intent(), LIVE)
        await until("aborted", lambda: "t1" not in r.engine.trades)
        assert r.trade_states()[-1] == "ABORTED" and r.rm.gate.open_notional == {}
        # the order executes after its look-ups said "not found" (late matching): no IllegalTransition; the
        # trade opens as it would have, with its own stop, and reconciliation is asked to compare too
        req = next(q for q in gw.sent if q.client_id == "t1-entry")
        gw.orders["t1-entry"], gw.status["t1-entry"] = req, OrderStatus.NEW
        gw.filled["t1-entry"], gw.avg["t1-entry"] = 0, 0.0
        gw.fill("t1-entry", 500, 50_010.0)
        await until("protected", lambda: "t1" in r.engine.trades and
                    r.engine.trades["t1"].state is TradeState.PROTECTED)
        assert r.trade_states()[-4:] == ["ABORTED", "ENTERING", "PROTECTING", "PROTECTED"]
        assert ("t1-sl", 500, 499_500) in [(q.client_id, q.qty_lots, q.trigger_ticks) for q in gw.sent]
        assert [(f["client_id"], f["qty"], f["price"]) for f in r.rows("fills")] == [("t1-entry", 0.5, 50_010.0)]
        assert any("executed after it was reported not found" in why for _, why in asked)
        assert r.engine.stats["late_fills"] == 1 and r.rm.gate.open_notional.get("BTCUSDT", 0) > 0


async def test_a_replayed_update_never_reopens_an_entry_that_was_cancelled(tmp_path: Path) -> None:
    rig, gw, _ = rig_of(tmp_path, execution={"entry_order": "limit_post_only"})
    async with running(rig) as r:
        await r.engine.submit_intent(intent(), LIVE)
        await until("entry sent", lambda: "t1-entry" in gw.orders)
        r.clock.advance_ms(r.cfg.entry_timeout_ms)
        assert r.engine.fire_due() == 1  # the entry deadline: cancelled, unfilled -> ABORTED
        await until("aborted", lambda: "t1" not in r.engine.trades)
        gw._emit("t1-entry", OrderStatus.NEW)  # an old NEW delivered again (a catch-up replay)
        await asyncio.sleep(0.05)
        assert "t1" not in r.engine.trades and r.trade_states()[-1] == "ABORTED"


async def test_fill_on_a_closed_trade_goes_to_reconciliation_not_an_exception(tmp_path: Path) -> None:
    rig, gw, asked = rig_of(tmp_path, execution={"entry_order": "limit_post_only"})
    async with running(rig) as r:
        await r.engine.submit_intent(intent(), LIVE)
        await until("entry sent", lambda: "t1-entry" in gw.orders)
        gw.fill("t1-entry", 200, 50_000.0)
        await until("protected", lambda: r.engine.trades["t1"].state is TradeState.PROTECTED)
        r.engine.flatten_all(CloseReason.MANUAL)  # cancels the rest of the entry, exits the 200
        await until("exit sent", lambda: "t1-exit" in gw.orders)
        gw.fill("t1-exit", 200, 50_000.0)
        await until("closed", lambda: r.rows("trades")[0]["state"] == "CLOSED")
        # a fill of the entry that raced its cancel reaches the CLOSED trade: 100 more lots at the venue
        gw.status["t1-entry"] = OrderStatus.PARTIALLY_FILLED
        gw.fill("t1-entry", 100, 50_005.0)
        await until("reconciliation asked", lambda: any("after the trade ended CLOSED" in why for _, why in asked))
        assert r.engine.stats["late_fills"] == 1 and r.engine.stats["errors"] == 0
        ev = [e for e in r.rows("order_events", client_id="t1-entry") if "after the trade ended" in (e["reason"] or "")]
        assert ev and ev[0]["trade_id"] == "t1"
        entry_fills = [(f["qty"], f["price"]) for f in r.rows("fills", client_id="t1-entry")]
        assert entry_fills == [(0.2, 50_000.0), (0.1, 50_005.0)]  # journaled, no row lost
        assert r.rows("trades")[0]["state"] == "CLOSED"  # the closed trade is not rewritten
        # the engine still runs: the next trade goes through
        assert await r.engine.submit_intent(intent(setup="b"), LIVE) == "t2"
        await until("t2 sent", lambda: "t2-entry" in gw.orders)


async def test_an_update_that_raises_is_contained_and_reconciled(tmp_path: Path) -> None:
    rig, gw, asked = rig_of(tmp_path)
    async with running(rig) as r:
        await _filled_entry(r, gw)
        await until("protected", lambda: r.engine.trades["t1"].state is TradeState.PROTECTED)
        m = r.engine.trades["t1"]
        real = m.on_update

        def broken(u: OrderUpdate, now_ns: int) -> Any:
            if u.client_id == "t1-tp1":
                raise ValueError("malformed")
            return real(u, now_ns)

        m.on_update = broken  # type: ignore[method-assign]
        gw.fill("t1-tp1", 250, 50_100.0)
        await until("counted", lambda: r.engine.stats["errors"] == 1)
        assert any("raised ValueError" in why for _, why in asked)
        gw.fill("t1-tp2", 1, 50_200.0)  # the next update is still consumed
        await until("tp2 fill applied", lambda: m.legs["t1-tp2"].filled_lots == 1)


async def test_unprotected_lists_each_position_without_a_confirmed_stop(tmp_path: Path) -> None:
    rig, gw, _ = rig_of(tmp_path)
    async with running(rig):
        gw.hold = {"-sl"}
        await _filled_entry(rig, gw)
        await until("stop sent", lambda: gw.count("t1-sl") == 1)
        assert rig.engine.unprotected() == [{"trade_id": "t1", "symbol": "BTCUSDT", "side": "long", "qty": 0.5,
                                             "state": "PROTECTING",
                                             "missing": "stop t1-sl not confirmed by the venue"}]
