"""The reconciliation tables (bot.execution.reconcile): every trade state and every leg status has a row,
the journal's strings become the machine's enums, and a venue report that would move a leg backwards (a
stale read) is not applied while a forward one is."""

from __future__ import annotations

from bot.domain.orders import OrderUpdate, PositionSnapshot
from bot.domain.types import OrderKind, OrderStatus, Side
from bot.execution.actions import TRANSITIONS, LegRole, TradeState
from bot.execution.reconcile import (
    LEG_TRANSITIONS,
    OPEN_STATES,
    TRADE_RULES,
    ApplyUpdate,
    CloseTrade,
    ExchangeState,
    JournalLeg,
    JournalTrade,
    ReconcileConfig,
    decide,
)
from bot.venues.binance_usdm.instruments import KNOWN

CFG = ReconcileConfig(instruments={"BTCUSDT": KNOWN["BTCUSDT"]})
NOW = 1_700_000_000_000_000_000


def _trade(state: TradeState, sl_status: OrderStatus, sl_filled: int = 0) -> JournalTrade:
    return JournalTrade("t1", "BTCUSDT", "long", state, 59_000.0, (
        JournalLeg("t1-entry", LegRole.ENTRY, OrderKind.MARKET, Side.BUY, OrderStatus.FILLED, 5),
        JournalLeg("t1-sl", LegRole.STOP, OrderKind.STOP_MARKET, Side.SELL, sl_status, sl_filled)))


def _sl(status: OrderStatus, filled: int = 0) -> OrderUpdate:
    return OrderUpdate("t1-sl", "9", "BTCUSDT", Side.SELL, OrderKind.STOP_MARKET, status, 5, filled, 0.0,
                       reduce_only=True)


def _ex(lots: int, *orders: OrderUpdate, looked: dict[str, OrderUpdate | None] | None = None) -> ExchangeState:
    pos = {"BTCUSDT": PositionSnapshot("BTCUSDT", lots, 60_000.0)} if lots else {}
    return ExchangeState(("BTCUSDT",), pos, orders, looked or {})


def test_the_tables_are_total_and_agree_with_the_machine():
    assert set(TRADE_RULES) == set(TradeState)
    assert set(LEG_TRANSITIONS) == set(OrderStatus)
    for st, rule in TRADE_RULES.items():
        # a final state of the machine (no move out but a late reopen) is never reconciled
        assert rule.reconciled == (st not in (TradeState.CLOSED, TradeState.ABORTED)), st
        assert not (rule.holds and rule.keeps_entry_orders), st
    assert set(OPEN_STATES) == {s for s in TradeState if TRANSITIONS[s] - {TradeState.ENTERING} or
                                s is TradeState.PLANNED}
    for st in OrderStatus:
        assert (LEG_TRANSITIONS[st] == frozenset()) == st.is_final, st


def test_journal_strings_become_the_machine_enums():
    t = JournalTrade("t1", "BTCUSDT", "long", "PROTECTED", 1.0,  # type: ignore[arg-type]
                     (JournalLeg("c", "tp", OrderKind.LIMIT, Side.SELL, OrderStatus.NEW),))  # type: ignore[arg-type]
    assert t.state is TradeState.PROTECTED and t.legs[0].role is LegRole.TP


def test_a_forward_report_is_applied_a_stale_one_is_not():
    # journal: the stop partly filled; a listing still showing it NEW, unfilled, is older than what we know
    acts = decide(_ex(5, _sl(OrderStatus.NEW)), [_trade(TradeState.PROTECTED, OrderStatus.PARTIALLY_FILLED, 2)],
                  CFG, NOW)
    assert not any(isinstance(a, ApplyUpdate) for a in acts)
    # journal: NEW; the venue says TRIGGERED -> news
    acts = decide(_ex(5, _sl(OrderStatus.TRIGGERED)), [_trade(TradeState.PROTECTED, OrderStatus.NEW)], CFG, NOW)
    assert [a.update.status for a in acts if isinstance(a, ApplyUpdate)] == [OrderStatus.TRIGGERED]
    # the same status with more filled is news (a partial fill we missed)
    acts = decide(_ex(5, _sl(OrderStatus.PARTIALLY_FILLED, 3)),
                  [_trade(TradeState.PROTECTED, OrderStatus.PARTIALLY_FILLED, 1)], CFG, NOW)
    assert [a.update.filled_lots for a in acts if isinstance(a, ApplyUpdate)] == [3]


def test_a_trade_state_that_holds_nothing_is_not_closed_when_flat():
    legs = (JournalLeg("t1-entry", LegRole.ENTRY, OrderKind.LIMIT, Side.BUY, OrderStatus.NEW),)
    entry = OrderUpdate("t1-entry", "8", "BTCUSDT", Side.BUY, OrderKind.LIMIT, OrderStatus.NEW, 5, 0, 0.0)
    for st in TradeState:
        t = JournalTrade("t1", "BTCUSDT", "long", st, 59_000.0, legs)
        acts = decide(_ex(0, entry), [t], CFG, NOW)
        closed = any(isinstance(a, CloseTrade) for a in acts)
        assert closed == TRADE_RULES[st].holds, st
