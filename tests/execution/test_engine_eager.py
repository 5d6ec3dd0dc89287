"""Entries started eagerly (a gateway with `eager_submit`, e.g. BinanceGateway): the gateway has the entry
before submit_intent returns; everything the engine does with the answer happens in the order task as
with a plain task; a venue that never answers stalls neither the caller nor the deadlines."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.venues.ports import GatewayCapabilities
from tests.execution.harness import LIVE, Rig, intent, running


def _rig(tmp_path: Path, eager: bool) -> Rig:
    rig = Rig(tmp_path)
    rig.gw.capabilities = GatewayCapabilities(eager_submit=eager)  # type: ignore[misc]
    rig.engine._leverage["BTCUSDT"] = 20  # set by an earlier trade: the entry is on the hot path
    return rig


@pytest.mark.parametrize("eager", [True, False])
async def test_the_gateway_has_the_entry_before_submit_intent_returns_only_when_eager(tmp_path: Path,
                                                                                      eager: bool) -> None:
    rig = _rig(tmp_path, eager)
    async with running(rig):
        assert await rig.engine.submit_intent(intent(), LIVE) == "t1"
        assert [r.client_id for r in rig.gw.sent] == (["t1-entry"] if eager else [])
        # the acknowledgement is the order task's business either way: not yet journaled
        assert rig.leg("t1-entry")["status"] == "PENDING_NEW" and "t1-entry" in rig.engine.inflight
        await rig.settle()
        assert rig.leg("t1-entry")["status"] == "NEW" and not rig.engine.inflight
        assert rig.trade_states() == ["PLANNED", "ENTERING"]


@pytest.mark.parametrize("eager", [True, False])
async def test_a_rejection_raised_before_any_wait_is_handled_by_the_order_task(tmp_path: Path, eager: bool) -> None:
    rig = _rig(tmp_path, eager)
    async with running(rig):
        rig.gw.reject = {"-entry": (-2019, "Margin is insufficient.")}
        assert await rig.engine.submit_intent(intent(), LIVE) == "t1"
        assert "t1" in rig.engine.trades and rig.rows("rejections") == []  # not inside the caller
        await rig.settle()
        assert "t1" not in rig.engine.trades
        assert [(r["client_id"], r["code"]) for r in rig.rows("rejections")] == [("t1-entry", "-2019")]
        assert rig.leg("t1-entry")["status"] == "REJECTED"
        assert rig.trade_states() == ["PLANNED", "ENTERING", "ABORTED"]


async def test_a_venue_that_never_answers_stalls_neither_the_caller_nor_the_deadline(tmp_path: Path) -> None:
    rig = _rig(tmp_path, True)
    async with running(rig):
        rig.gw.hold = {"-entry"}
        assert await asyncio.wait_for(rig.engine.submit_intent(intent(), LIVE), 1) == "t1"
        assert [r.client_id for r in rig.gw.sent] == ["t1-entry"]
        await rig.settle()
        rig.clock.advance_ms(rig.cfg.entry_timeout_ms)
        assert rig.engine.fire_due() == 1  # the entry's deadline fires with its submit still pending
        await rig.settle()
        assert rig.gw.cancelled == ["t1-entry"] and "t1-entry" in rig.engine.inflight


async def test_an_eager_entry_is_handed_off_before_its_trade_is_planned(tmp_path: Path) -> None:
    """Send first, plan after (issue 12 latency): when the gateway has the entry, no machine, tier or journal
    row exists yet; the machine then takes the very request that went out as its entry leg, and the trade is
    planned and recorded as before (stop on the first fill, take-profit tiers when the entry is done)."""
    rig = _rig(tmp_path, True)
    seen: list[tuple[int, int]] = []
    submit = rig.gw.submit

    async def watching(req):  # type: ignore[no-untyped-def]
        seen.append((len(rig.engine.trades), len(rig.rows("trades"))))
        return await submit(req)

    rig.gw.submit = watching  # type: ignore[method-assign]
    async with running(rig):
        assert rig.engine.on_intent(intent(), LIVE) == "t1"
        assert seen == [(0, 0)]  # in the gateway before the machine or the record existed
        m = rig.engine.trades["t1"]
        (sent,) = rig.gw.sent
        assert m.legs["t1-entry"].req is sent and sent.qty_lots == m.plan.increments[0]
        assert sent.attached_stop_ticks == m.plan.stop_ticks and m.plan.tp_tiers  # planned after the hand-off
        assert rig.leg("t1-entry")["status"] == "PENDING_NEW" and rig.trade_states() == ["PLANNED", "ENTERING"]
        await rig.settle()
        assert rig.leg("t1-entry")["status"] == "NEW"


async def test_an_eager_entry_the_gate_refuses_is_never_sent_and_counted_once(tmp_path: Path) -> None:
    rig = Rig(tmp_path, risk={"max_orders_per_s": 1})
    rig.gw.capabilities = GatewayCapabilities(eager_submit=True)  # type: ignore[misc]
    rig.engine._leverage["BTCUSDT"] = 20
    rig.rm.gate.check_order(rig.clock(), False, "BTCUSDT")  # the second order of this second is refused
    async with running(rig):
        assert rig.engine.on_intent(intent(), LIVE) == "t1"
        assert rig.gw.sent == [] and "t1" not in rig.engine.trades
        assert [r["reason"] for r in rig.rows("denials")] == ["RATE_PER_SECOND"]
        assert rig.rm.gate.denials["RATE_PER_SECOND"] == 1
        assert rig.trade_states() == ["PLANNED", "ENTERING", "ABORTED"]


async def test_planning_that_fails_after_the_hand_off_asks_for_reconciliation(tmp_path: Path,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The entry is out before the plan exists: should planning raise (a bug), the engine asks reconciliation
    to look (the unknown-position path gives what the entry did its stop) and the error still reaches the
    caller's error boundary."""
    import bot.execution.engine as engine_mod

    def broken(*a, **kw):  # type: ignore[no-untyped-def]
        raise ZeroDivisionError("bug")

    monkeypatch.setattr(engine_mod, "plan_trade", broken)
    rig = _rig(tmp_path, True)
    asked: list[tuple[str, str]] = []
    rig.engine.on_reconcile_needed = lambda sym, why: asked.append((sym, why))
    async with running(rig):
        with pytest.raises(ZeroDivisionError):
            rig.engine.on_intent(intent(), LIVE)
        assert [r.client_id for r in rig.gw.sent] == ["t1-entry"]
        assert asked == [("BTCUSDT", "t1: planning failed after the entry was sent")]
