"""The machine's own replay methods (bot.execution.trade, used by bot.execution.restore after a restart):
the position arithmetic replayed equals the live one, the newest live stop protects, name versions continue."""

from __future__ import annotations

import pytest

from bot.domain.orders import OrderRequest
from bot.domain.types import CloseReason, OrderKind, OrderStatus, Side
from bot.execution.actions import Leg, LegRole, Submit, TradeState
from tests.execution.harness import T0
from tests.execution.test_trade_machine import machine, upd


def test_replayed_fills_give_the_live_position_and_pnl() -> None:
    live = machine()
    live.start(T0)
    live.on_update(upd("t7-entry", OrderStatus.PARTIALLY_FILLED, 200, 50_000.0, 200), T0 + 1)
    live.on_update(upd("t7-entry", OrderStatus.FILLED, 500, 50_010.0, 300), T0 + 2)
    live.flatten(CloseReason.SIGNAL_EXIT, T0 + 3)
    live.on_update(upd("t7-exit", OrderStatus.PARTIALLY_FILLED, 100, 50_100.0, 100, side=Side.SELL,
                       kind=OrderKind.MARKET), T0 + 4)
    m = machine()
    m.replay_fill(LegRole.ENTRY, 200, 50_000.0, 0.0, T0 + 1)
    m.replay_fill(LegRole.ENTRY, 300, 50_010.0, 0.0, T0 + 2)  # upd: the last fill's price is the given one
    m.replay_fill(LegRole.EXIT, 100, 50_100.0, 0.0, T0 + 4)
    assert (m.pos_lots, m.max_pos_lots, m.exit_lots, m.opened, m.first_fill_ns) == (
        live.pos_lots, live.max_pos_lots, live.exit_lots, True, T0 + 1) == (400, 500, 100, True, T0 + 1)
    assert live.realized > 0
    assert m.avg_entry == pytest.approx(live.avg_entry) and m.realized == pytest.approx(live.realized)


def _stop(cid: str, tier: int, status: OrderStatus, ticks: int) -> Leg:
    req = OrderRequest(cid, "BTCUSDT", Side.SELL, OrderKind.STOP_MARKET, 500, trigger_ticks=ticks, reduce_only=True)
    return Leg(cid, LegRole.STOP, req, ticks, tier=tier, status=status, confirmed=True)


def test_the_newest_live_stop_protects_and_new_ids_continue() -> None:
    m = machine()
    m.replay_leg(_stop("t7-sl.3", 3, OrderStatus.CANCELED, 499_800), "sl", 3)
    m.replay_leg(_stop("t7-sl.2", 2, OrderStatus.NEW, 499_700), "sl", 2)
    m.replay_leg(_stop("t7-sl", 1, OrderStatus.CANCELED, 499_500), "sl", 1)
    m.replay_fill(LegRole.ENTRY, 500, 50_000.0, 1.0, T0)
    m.replay_state_change(TradeState.PROTECTED.value, "stop confirmed")
    m.replay_end(TradeState.PROTECTED, entry_ts_ns=T0 + 5)
    assert m.stop_leg is not None and m.stop_leg.client_id == "t7-sl.2" and m.stop_ticks == 499_700
    assert (m.state, m.first_fill_ns, m.fees, m.next_inc) == (TradeState.PROTECTED, T0 + 5, 1.0,
                                                              len(m.plan.increments))
    out = m.flatten(CloseReason.SIGNAL_EXIT, T0 + 10)  # a restored machine acts like a live one
    assert m.state is TradeState.EXITING and [a.leg.client_id for a in out if isinstance(a, Submit)] == ["t7-exit"]
    m2 = machine()
    m2.replay_state_change(TradeState.EXITING.value, "stop would trigger immediately")
    assert m2.exit_reason is CloseReason.STOP_LOSS
