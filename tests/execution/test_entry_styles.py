"""execution.entry styles on the pure trade machine (bot.execution.entry_styles): maker at the touch, re-posts
only after the venue says the old order ended, a cancel racing a fill, maker_then_taker's cross, post-only
take-profits and their refusal rule. Milliseconds, no I/O."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bot.domain.types import EntryIntent, OrderKind, OrderStatus, Side, TakeProfitTier, TimeInForce
from bot.execution import TradeMachine, TradeState, entry_terms, plan_trade
from bot.execution.actions import Cancel, Submit, Timer
from bot.settings.execution import ExecutionSection
from bot.venues.binance_usdm.instruments import KNOWN
from bot.venues.ports import OrderAck, OrderUpdate
from tests.execution.harness import T0

BTC = KNOWN["BTCUSDT"]
MS = 1_000_000


def machine(**cfg: object) -> TradeMachine:
    c = ExecutionSection(**{"entry_offset_ticks": 2, **cfg})
    # the crossing touch (ask) 500_000, spread 1 tick: our touch (bid) 499_999
    i = EntryIntent("BTCUSDT", "long", "sweep", T0, 500_000, 499_500,
                    (TakeProfitTier(501_000, 0.5), TakeProfitTier(502_000, 0.5)), 0.0, {"spread_ticks": 1.0})
    plan = plan_trade("t7", i, BTC, 500, entry_terms(i, c), c, 25.0, 20)
    return TradeMachine(plan, BTC, c, taker_fee_bps=5.0, maker_fee_bps=2.0)


def upd(cid: str, status: OrderStatus, filled: int = 0, avg: float = 0.0, last: int = 0, maker: bool = True,
        side: Side = Side.BUY) -> OrderUpdate:
    return OrderUpdate(cid, "v", "BTCUSDT", side, OrderKind.LIMIT, status, 500, filled, avg, last,
                       avg if last else 0.0, is_maker=maker)


def subs(out: list) -> list[Submit]:
    return [a for a in out if isinstance(a, Submit)]


def live(m: TradeMachine) -> None:
    m.start(T0)
    m.on_ack(OrderAck("t7-entry", "1", OrderStatus.NEW, T0), T0)


def test_settings_entry_and_the_older_entry_order_are_one_choice() -> None:
    assert ExecutionSection().entry == "taker" and ExecutionSection().entry_order == "limit_ioc"
    assert ExecutionSection(entry_order="limit_post_only").entry == "maker"
    assert ExecutionSection(entry="maker_then_taker").entry_order == "limit_post_only"
    with pytest.raises(ValidationError, match="contradicts"):
        ExecutionSection(entry="maker", entry_order="limit_ioc")


def test_maker_posts_at_our_touch_and_taker_crosses() -> None:
    (e,) = subs(machine(entry="maker").start(T0))
    assert (e.leg.req.price_ticks, e.leg.req.time_in_force) == (499_999, TimeInForce.GTX)
    (t,) = subs(machine().start(T0))
    assert (t.leg.req.price_ticks, t.leg.req.time_in_force) == (500_002, TimeInForce.IOC)
    # maker_then_taker is sized (and gated) at the taker limit: its cross can never carry more risk
    m = machine(entry="maker_then_taker")
    assert m.plan.entry.sizing_ticks == 500_002 and not m.plan.entry.is_maker


def test_reprice_waits_for_the_cancel_and_is_capped() -> None:
    m = machine(entry="maker", entry_reprice_max=1)
    live(m)
    assert m.on_touch(499_999, 500_000, T0 + 1) == []  # still at the touch
    out = m.on_touch(500_001, 500_002, T0 + 2)  # the bid ran away
    assert [a.client_id for a in out if isinstance(a, Cancel)] == ["t7-entry"] and not subs(out)
    out = m.on_update(upd("t7-entry", OrderStatus.CANCELED), T0 + 3)
    (r,) = subs(out)
    # re-posted at the new touch, capped at the sized price (the decision's crossing touch, 500_000)
    assert (r.leg.client_id, r.leg.req.price_ticks, r.leg.req.time_in_force) == ("t7-entry.2", 500_000,
                                                                                TimeInForce.GTX)
    assert m.state is TradeState.ENTERING
    m.on_ack(OrderAck("t7-entry.2", "2", OrderStatus.NEW, T0 + 4), T0 + 4)
    assert m.on_touch(500_005, 500_006, T0 + 5) == []  # no re-post left
    # the deadline (from the first send) cancels it; ended unfilled: ABORTED, nothing crosses (maker)
    out = m.on_timer(Timer.ENTRY_TIMEOUT, T0 + m.cfg.entry_timeout_ms * MS)
    assert [a.client_id for a in out if isinstance(a, Cancel)] == ["t7-entry.2"]
    out = m.on_update(upd("t7-entry.2", OrderStatus.CANCELED), T0 + m.cfg.entry_timeout_ms * MS + 1)
    assert not subs(out) and m.state is TradeState.ABORTED


def test_a_fill_racing_the_cancel_opens_the_trade_and_nothing_is_reposted() -> None:
    m = machine(entry="maker")
    live(m)
    m.on_touch(500_001, 500_002, T0 + 1)  # cancel sent to re-post
    out = m.on_update(upd("t7-entry", OrderStatus.PARTIALLY_FILLED, 200, 499.999 * 100, 200), T0 + 2)
    (sl,) = subs(out)  # the partial maker fill gets its stop at once
    assert sl.leg.req.kind is OrderKind.STOP_MARKET and sl.leg.req.qty_lots == 200
    out = m.on_update(upd("t7-entry", OrderStatus.CANCELED, 200, 499.999 * 100), T0 + 3)
    assert all(s.leg.req.kind is not OrderKind.LIMIT or s.leg.req.reduce_only for s in subs(out))
    assert not any(s.leg.client_id.startswith("t7-entry") for s in subs(out))
    assert m.pos_lots == 200 and m.state in (TradeState.PROTECTING, TradeState.PROTECTED)


def test_a_post_only_reject_reposts_at_the_known_touch() -> None:
    m = machine(entry="maker")
    m.start(T0)
    m.on_touch(500_000, 500_001, T0)
    (r,) = subs(m.on_rejected("t7-entry", -5022, "would take", T0 + 1))
    assert (r.leg.client_id, r.leg.req.price_ticks) == ("t7-entry.2", 500_000)


def test_maker_then_taker_crosses_at_the_deadline_only_while_the_price_allows() -> None:
    m = machine(entry="maker_then_taker")
    live(m)
    m.on_touch(499_999, 500_001, T0 + 1)
    deadline = T0 + m.cfg.entry_timeout_ms * MS
    m.on_timer(Timer.ENTRY_TIMEOUT, deadline)
    (x,) = subs(m.on_update(upd("t7-entry", OrderStatus.CANCELED), deadline + 1))
    assert (x.leg.req.price_ticks, x.leg.req.time_in_force) == (500_002, TimeInForce.IOC)
    # the same with the ask beyond the plan's limit: the signal no longer holds, nothing is sent
    m = machine(entry="maker_then_taker")
    live(m)
    m.on_touch(499_999, 500_003, T0 + 1)
    m.on_timer(Timer.ENTRY_TIMEOUT, deadline)
    assert not subs(m.on_update(upd("t7-entry", OrderStatus.CANCELED), deadline + 1))
    assert m.state is TradeState.ABORTED


def test_take_profits_rest_post_only_and_a_refused_one_goes_as_a_plain_limit() -> None:
    m = machine()
    m.start(T0)
    out = m.on_update(upd("t7-entry", OrderStatus.FILLED, 500, 50_000.2, 500, maker=False), T0 + 1)
    m.on_ack(OrderAck("t7-sl", "a", OrderStatus.NEW, T0 + 1), T0 + 1)
    tps = [s for s in subs(out) if s.leg.req.kind is OrderKind.LIMIT]
    assert [(s.leg.client_id, s.leg.req.time_in_force, s.leg.req.reduce_only) for s in tps] == [
        ("t7-tp1", TimeInForce.GTX, True), ("t7-tp2", TimeInForce.GTX, True)]
    (again,) = subs(m.on_rejected("t7-tp1", -5022, "would take", T0 + 2))
    assert (again.leg.client_id, again.leg.req.time_in_force, again.leg.req.price_ticks,
            again.leg.req.qty_lots) == ("t7-tp1.2", TimeInForce.GTC, 501_000, 250)
    assert not subs(m.on_rejected("t7-tp2", -2022, "reduce only", T0 + 3))  # other refusals: no re-send


def test_a_restart_counts_a_reposted_entry_as_one_increment() -> None:
    from bot.execution.restore import _plan

    trade = {"trade_id": "t7", "symbol": "BTCUSDT", "setup": "sweep", "side": "long", "intent_price": 50_000.0,
             "planned_stop_price": 49_950.0, "planned_qty": 0.05, "risk_budget": 25.0, "leverage": 20}
    legs = [
        {"client_id": "t7-entry", "role": "entry", "kind": "LIMIT", "time_in_force": "GTX", "price": 49_999.9,
         "qty": 0.05, "status": "CANCELED"},
        {"client_id": "t7-entry.2", "role": "entry", "kind": "LIMIT", "time_in_force": "GTX", "price": 50_000.0,
         "qty": 0.05, "status": "FILLED"},
    ]
    plan = _plan(trade, legs, BTC, ExecutionSection(entry="maker"), 0.0)
    assert plan.increments == (BTC.qty_to_lots(0.05),)  # not two increments of a scale-in


def test_a_post_only_entry_the_venue_cancelled_itself_is_reposted() -> None:
    """Bybit does not refuse a crossing PostOnly: it accepts and cancels it (EC_PostOnlyWillTakeLiquidity)."""
    m = machine(entry="maker")
    live(m)
    m.on_touch(500_000, 500_001, T0 + 1)  # moved away: one re-post used, the cancel sent by us
    m.on_update(upd("t7-entry", OrderStatus.CANCELED), T0 + 2)
    m.on_ack(OrderAck("t7-entry.2", "2", OrderStatus.NEW, T0 + 3), T0 + 3)
    (r,) = subs(m.on_update(upd("t7-entry.2", OrderStatus.CANCELED), T0 + 4))  # not ours: the venue's
    assert (r.leg.client_id, r.leg.req.price_ticks, m.reprices) == ("t7-entry.3", 500_000, 2)
