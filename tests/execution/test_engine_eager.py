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
