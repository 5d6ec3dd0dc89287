"""The pure trade state machine: orderings and failures, with no engine (actions asserted directly)."""

from __future__ import annotations

import pytest

from bot.domain.types import CloseReason, OrderKind, OrderStatus, RejectReason, Side
from bot.execution import TRANSITIONS, IllegalTransition, TradeMachine, TradeState, entry_terms, plan_trade
from bot.execution.actions import Cancel, FillRecord, HaltSymbol, StateChanged, Submit, TradeClosed
from bot.settings.execution import ExecutionSection
from bot.venues.binance_usdm.instruments import KNOWN
from bot.venues.ports import OrderAck, OrderUpdate
from tests.execution.harness import T0, intent

BTC = KNOWN["BTCUSDT"]


def machine(**cfg: object) -> TradeMachine:
    c = ExecutionSection(**{"entry_offset_ticks": 0, **cfg})
    i = intent()
    terms = entry_terms(i, c)
    plan = plan_trade("t7", i, BTC, 500, terms, c, 25.0, 20)
    return TradeMachine(plan, BTC, c, taker_fee_bps=0.0, maker_fee_bps=0.0)


def upd(cid: str, status: OrderStatus, filled: int, avg: float, last: int = 0, parent: str = "",
        kind: OrderKind = OrderKind.LIMIT, side: Side = Side.BUY) -> OrderUpdate:
    return OrderUpdate(cid, "v", "BTCUSDT", side, kind, status, 500, filled, avg, last, avg if last else 0.0,
                       parent_id=parent)


def submits(actions: list) -> list[str]:
    return [a.leg.client_id for a in actions if isinstance(a, Submit)]


def opened(m: TradeMachine) -> None:
    m.start(T0)
    m.on_update(upd("t7-entry", OrderStatus.FILLED, 500, 50_000.0, 500), T0)
    m.on_ack(OrderAck("t7-sl", "a1", OrderStatus.NEW, T0), T0)


def test_transition_table_is_closed_and_enforced() -> None:
    assert TRANSITIONS[TradeState.CLOSED] == frozenset()
    # the one way out of ABORTED: an entry reported "not found" that executed after all (reopen_late)
    assert TRANSITIONS[TradeState.ABORTED] == frozenset({TradeState.ENTERING})
    m = machine()
    with pytest.raises(IllegalTransition):
        m._set(TradeState.CLOSED, "bug", [])


def test_stop_fill_before_its_trigger_and_duplicates_count_once() -> None:
    m = machine()
    opened(m)
    assert m.state is TradeState.PROTECTED
    # the child's fill arrives first (nautilus #3664), linked by parent_id; then TRIGGERED; then a replay
    out = m.on_update(upd("x1", OrderStatus.FILLED, 500, 49_950.0, 500, parent="t7-sl", kind=OrderKind.MARKET,
                          side=Side.SELL), T0 + 1)
    assert [a.lots for a in out if isinstance(a, FillRecord)] == [500]
    closed = [a for a in out if isinstance(a, TradeClosed)]
    assert closed and closed[0].reason is CloseReason.STOP_LOSS and closed[0].pnl == -25.0
    assert sorted(a.client_id for a in out if isinstance(a, Cancel)) == ["t7-tp1", "t7-tp2"]
    assert m.on_update(upd("t7-sl", OrderStatus.TRIGGERED, 0, 0.0, kind=OrderKind.STOP_MARKET), T0 + 2) == []
    assert m.on_update(upd("x1", OrderStatus.FILLED, 500, 49_950.0, 500, parent="t7-sl"), T0 + 3) == []
    assert m.pos_lots == 0 and m.realized == -25.0


def test_trigger_then_partial_child_fills() -> None:
    m = machine()
    opened(m)
    m.on_update(upd("t7-sl", OrderStatus.TRIGGERED, 0, 0.0, kind=OrderKind.STOP_MARKET), T0 + 1)
    m.on_update(upd("x1", OrderStatus.PARTIALLY_FILLED, 200, 49_950.0, 200, parent="t7-sl"), T0 + 2)
    assert m.pos_lots == 300 and m.state is TradeState.PROTECTED
    out = m.on_update(upd("x1", OrderStatus.FILLED, 500, 49_940.0, 300, parent="t7-sl"), T0 + 3)
    assert m.state is TradeState.CLOSED and any(isinstance(a, TradeClosed) for a in out)
    assert m.realized == pytest.approx(-0.2 * 50 - 0.3 * 60)


def test_ioc_entry_expired_unfilled_is_aborted() -> None:
    m = machine()
    m.start(T0)
    out = m.on_update(upd("t7-entry", OrderStatus.EXPIRED, 0, 0.0), T0 + 1)
    assert [a.new for a in out if isinstance(a, StateChanged)] == [TradeState.ABORTED]
    assert m.deadlines == {}


def test_entry_rejected_by_the_venue_is_aborted() -> None:
    m = machine()
    m.start(T0)
    out = m.on_rejected("t7-entry", -2019, "Margin is insufficient.", T0 + 1)
    assert m.state is TradeState.ABORTED and not submits(out)


def test_stop_that_would_trigger_immediately_flattens_as_a_stop_loss() -> None:
    m = machine()
    m.start(T0)
    m.on_update(upd("t7-entry", OrderStatus.FILLED, 500, 50_000.0, 500), T0)
    out = m.on_rejected("t7-sl", -2021, "Order would immediately trigger.", T0 + 1, RejectReason.STOP_WOULD_TRIGGER)
    assert submits(out) == ["t7-exit"] and m.exit_reason is CloseReason.STOP_LOSS
    assert not any(isinstance(a, HaltSymbol) for a in out)
    out = m.on_update(upd("t7-exit", OrderStatus.FILLED, 500, 49_940.0, 500, side=Side.SELL), T0 + 2)
    assert m.state is TradeState.CLOSED


def test_the_machine_reads_the_reason_not_a_venue_code() -> None:
    # the same code with no reason (a venue whose adapter does not translate it) is a plain refusal: halt
    m = machine()
    m.start(T0)
    m.on_update(upd("t7-entry", OrderStatus.FILLED, 500, 50_000.0, 500), T0)
    out = m.on_rejected("t7-sl", -2021, "Order would immediately trigger.", T0 + 1)
    assert any(isinstance(a, HaltSymbol) for a in out) and m.exit_reason is CloseReason.RISK_HALT


def test_stop_cancelled_by_someone_else_flattens_and_halts() -> None:
    m = machine()
    opened(m)
    out = m.on_update(upd("t7-sl", OrderStatus.CANCELED, 0, 0.0, kind=OrderKind.STOP_MARKET), T0 + 1)
    assert any(isinstance(a, HaltSymbol) for a in out) and "t7-exit" in submits(out)
    assert m.state is TradeState.EXITING and m.exit_reason is CloseReason.RISK_HALT


def test_trailing_stop_follows_the_best_price() -> None:
    m = machine(trailing_activation_r=1.0, trailing_callback_bps=5.0, trailing_min_move_ticks=2)
    opened(m)
    assert submits(m.on_price(500_400, T0 + 1)) == []  # 0.8 R: not active yet (it is progress, though)
    out = m.on_price(500_600, T0 + 2)  # 1.2 R: stop to 500,600 - ceil(500,600 × 5 bps) = 500,349
    assert submits(out) == ["t7-sl.2"] and m.stop_ticks == 500_349 and m.trailing
    m.on_ack(OrderAck("t7-sl.2", "a2", OrderStatus.NEW, T0 + 3), T0 + 3)
    assert m.on_price(500_601, T0 + 4) == []  # under the minimum move
    out = m.on_update(upd("t7-sl.2", OrderStatus.FILLED, 500, 50_034.9, 500, side=Side.SELL,
                          kind=OrderKind.STOP_MARKET), T0 + 5)
    assert [a.reason for a in out if isinstance(a, TradeClosed)] == [CloseReason.TRAILING_STOP]


def test_late_entry_fill_while_exiting_is_flattened_at_once() -> None:
    m = machine(entry_order="limit_post_only")
    m.start(T0)
    m.on_update(upd("t7-entry", OrderStatus.PARTIALLY_FILLED, 100, 50_000.0, 100), T0)
    m.on_ack(OrderAck("t7-sl", "a1", OrderStatus.NEW, T0), T0)
    out = m.flatten(CloseReason.SIGNAL_EXIT, T0 + 1)
    assert submits(out) == ["t7-exit"] and [a.client_id for a in out if isinstance(a, Cancel)] == ["t7-entry"]
    out = m.on_update(upd("t7-entry", OrderStatus.PARTIALLY_FILLED, 150, 50_000.0, 50), T0 + 2)
    assert submits(out) == ["t7-exit.2"]
    assert [a.leg.req.qty_lots for a in out if isinstance(a, Submit)] == [50]


def test_the_plan_stop_rides_on_the_entry_only() -> None:
    """Bybit attaches it to the entry (armed when the position opens); exits and later stops carry none."""
    m = machine()
    entry = [a for a in m.start(T0) if isinstance(a, Submit)]
    assert [a.leg.req.attached_stop_ticks for a in entry] == [m.plan.stop_ticks]
    after = m.on_update(upd("t7-entry", OrderStatus.FILLED, 500, 50_000.0, 500), T0)
    later = [a.leg.req for a in after if isinstance(a, Submit)]
    assert later and all(r.attached_stop_ticks is None for r in later)
