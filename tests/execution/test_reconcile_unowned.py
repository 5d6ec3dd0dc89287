"""Sizes the bot does not own (issue 11 item 2): a manual add beside a bot trade, a manual position, as
pure-function tests of `decide`; the weight of a pass and the settings check of the timer."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bot.domain.types import OrderKind, OrderStatus, Side
from bot.execution.reconcile import (
    Alert,
    ApplyUpdate,
    CancelOrder,
    ExchangeState,
    JournalLeg,
    JournalTrade,
    PlaceStop,
    ReconcileConfig,
    Unowned,
    decide,
    expected_lots,
    pass_weight,
    weight_per_min,
)
from bot.settings.core import VenueSection
from bot.venues.binance_usdm.instruments import KNOWN
from bot.venues.ports import OrderUpdate, PositionSnapshot

CFG = ReconcileConfig(instruments={"BTCUSDT": KNOWN["BTCUSDT"]}, unknown_position_stop_bps=50.0)
NOW = 1_700_000_000_000_000_000


def upd(cid: str, kind: OrderKind, side: Side, status: OrderStatus = OrderStatus.NEW, filled: int = 0,
        qty: int = 5, reduce_only: bool = True) -> OrderUpdate:
    return OrderUpdate(cid, "v-" + cid, "BTCUSDT", side, kind, status, qty, filled, 0.0, reduce_only=reduce_only)


def trade(entry_filled: int = 5, state: str = "PROTECTED", side: str = "long",
          entry_status: OrderStatus = OrderStatus.FILLED) -> JournalTrade:
    buy, sell = (Side.BUY, Side.SELL) if side == "long" else (Side.SELL, Side.BUY)
    return JournalTrade("t1", "BTCUSDT", side, state, 59_000.17 if side == "long" else 61_000.0, (
        JournalLeg("t1-entry", "entry", OrderKind.MARKET, buy, entry_status, entry_filled),
        JournalLeg("t1-sl", "stop", OrderKind.STOP_MARKET, sell, OrderStatus.NEW)))


def ex(lots: int, orders: tuple[OrderUpdate, ...] = (), looked: dict | None = None) -> ExchangeState:
    pos = {"BTCUSDT": PositionSnapshot("BTCUSDT", lots, 60_000.0)} if lots else {}
    return ExchangeState(("BTCUSDT",), pos, orders, looked or {})


SL = upd("t1-sl", OrderKind.STOP_MARKET, Side.SELL)


def test_a_manual_add_gets_its_own_stop_for_the_excess_only_and_halts_entries():
    acts = decide(ex(8, (SL,)), [trade(5)], CFG, NOW)  # the bot owns 5, the exchange holds 8
    stops = [a for a in acts if isinstance(a, PlaceStop)]
    assert len(stops) == 1
    s = stops[0]
    assert s.trade_id == ""  # nobody's: never the trade's stop
    assert (s.req.side, s.req.qty_lots, s.req.reduce_only, s.req.kind) == (Side.SELL, 3, True, OrderKind.STOP_MARKET)
    assert s.req.trigger_ticks == 597_000  # 60000 * (1 - 0.005): unknown_position_stop_bps from the entry
    assert Unowned("BTCUSDT", 3) in acts
    assert any(isinstance(a, Alert) and a.kind == "emergency" and "more than t1 owns" in a.message for a in acts)
    # the trade's own stop is left alone
    assert not any(isinstance(a, CancelOrder) for a in acts)


def test_the_stop_of_the_unowned_size_is_kept_by_the_next_pass_not_cancelled_as_an_orphan():
    guard = upd("recon-sl-abc", OrderKind.STOP_MARKET, Side.SELL, qty=3)
    acts = decide(ex(8, (SL, guard)), [trade(5)], CFG, NOW)
    assert not any(isinstance(a, PlaceStop | CancelOrder) for a in acts)
    assert Unowned("BTCUSDT", 3) in acts  # still there: entries stay halted
    # once the manual size is gone, the same stop is an orphan of no trade and is cancelled
    acts = decide(ex(5, (SL, guard)), [trade(5)], CFG, NOW)
    assert [a.client_id for a in acts if isinstance(a, CancelOrder)] == ["recon-sl-abc"]
    assert not any(isinstance(a, Unowned) for a in acts)


def test_a_partial_cover_gets_the_rest():
    small = upd("hand-sl", OrderKind.STOP_MARKET, Side.SELL, qty=1)
    acts = decide(ex(8, (SL, small)), [trade(5)], CFG, NOW)
    assert [a.req.qty_lots for a in acts if isinstance(a, PlaceStop)] == [2]


def test_a_short_trade_with_a_manual_add():
    sl = upd("t1-sl", OrderKind.STOP_MARKET, Side.BUY)
    acts = decide(ex(-9, (sl,)), [trade(5, side="short")], CFG, NOW)
    stop = next(a for a in acts if isinstance(a, PlaceStop))
    assert (stop.req.side, stop.req.qty_lots, stop.req.trigger_ticks) == (Side.BUY, 4, 603_000)
    assert Unowned("BTCUSDT", -4) in acts


def test_a_fill_found_in_this_pass_is_the_bots_not_an_excess():
    """The stream missed the entry fill: the look-up finds it; the position is the trade's, no excess."""
    filled = upd("t1-entry", OrderKind.MARKET, Side.BUY, OrderStatus.FILLED, filled=5, reduce_only=False)
    t = trade(0, state="ENTERING", entry_status=OrderStatus.NEW)
    acts = decide(ex(5, (), looked={"t1-entry": filled}), [t], CFG, NOW)
    assert ApplyUpdate(filled) in acts
    assert not any(isinstance(a, Unowned) for a in acts)
    stops = [a for a in acts if isinstance(a, PlaceStop)]
    assert [s.trade_id for s in stops] == ["t1"] and stops[0].req.qty_lots == 5


def test_a_position_beside_an_entry_that_never_filled_is_nobodys():
    """An entry resting unfilled owns no position: a position there was made by hand (the trade's stop
    would otherwise be placed for a size it never bought)."""
    t = trade(0, state="ENTERING", entry_status=OrderStatus.NEW)
    entry = upd("t1-entry", OrderKind.LIMIT, Side.BUY, reduce_only=False)
    acts = decide(ex(4, (entry,)), [t], CFG, NOW)
    stops = [a for a in acts if isinstance(a, PlaceStop)]
    assert [(s.trade_id, s.req.qty_lots) for s in stops] == [("", 4)]
    assert Unowned("BTCUSDT", 4) in acts


def test_a_manual_position_already_protected_still_halts_entries():
    hand = upd("hand-sl", OrderKind.STOP_MARKET, Side.SELL, qty=2)
    acts = decide(ex(2, (hand,)), [], CFG, NOW)
    assert Unowned("BTCUSDT", 2) in acts and not any(isinstance(a, PlaceStop) for a in acts)


def test_less_than_the_bot_owns_is_not_an_excess_but_the_operator_hears_of_it():
    acts = decide(ex(3, (SL,)), [trade(5)], CFG, NOW)
    assert not any(isinstance(a, Unowned | PlaceStop | CancelOrder) for a in acts)
    assert [(a.kind, a.message) for a in acts if isinstance(a, Alert)] == [
        ("error", "position 0.003 is less than the 0.005 the bot's trades hold: reduced outside the bot?")]


def test_expected_lots_counts_opens_minus_closes():
    t = JournalTrade("t1", "BTCUSDT", "short", "EXITING", 0.0, (
        JournalLeg("t1-entry", "entry", OrderKind.MARKET, Side.SELL, OrderStatus.FILLED, 5),
        JournalLeg("t1-add2", "add", OrderKind.MARKET, Side.SELL, OrderStatus.FILLED, 2),
        JournalLeg("t1-exit", "exit", OrderKind.MARKET, Side.BUY, OrderStatus.PARTIALLY_FILLED, 3)))
    assert expected_lots([t], "BTCUSDT") == -4
    assert expected_lots([t], "BTCUSDT", {"t1-exit": 7}) == 0
    assert expected_lots([t], "ETHUSDT") == 0


def test_weight_of_a_pass_and_of_the_timer():
    # exchange-facts A2/A3: account 5, openOrders 1 + openAlgoOrders 1 per symbol, look-up 1, userTrades 5
    assert pass_weight(2) == 9
    assert pass_weight(2, lookups=3, fill_lists=1) == 17
    assert weight_per_min(2, 5000) == pytest.approx(108.0)


def test_the_timer_may_not_spend_more_than_a_tenth_of_the_weight_limit():
    assert VenueSection(symbols=("BTCUSDT", "ETHUSDT")).reconcile_interval_ms == 5000
    VenueSection(symbols=("BTCUSDT", "ETHUSDT"), reconcile_interval_ms=2250)  # exactly 240/min
    with pytest.raises(ValidationError, match="use 2250 or more"):
        VenueSection(symbols=("BTCUSDT", "ETHUSDT"), reconcile_interval_ms=2000)
    VenueSection(reconcile_interval_ms=0)  # events only


def test_a_position_level_stop_covers_a_manual_add_and_is_never_moved_for_it():
    """Bybit: the trade's stop is the position's (trading-stop, tpslMode Full): it closes the manual size
    too; placing a stop order for the excess would move that one stop (exchange-facts B3)."""
    pos_stop = OrderUpdate("", "o77", "BTCUSDT", Side.SELL, OrderKind.STOP_MARKET, OrderStatus.NEW, 0, 0, 0.0,
                           reduce_only=True)
    state = ExchangeState(("BTCUSDT",), {"BTCUSDT": PositionSnapshot("BTCUSDT", 8, 60_000.0)}, (pos_stop,),
                          {"t1-sl": None}, position_stops=frozenset({"o77"}))
    t = JournalTrade("t1", "BTCUSDT", "long", "PROTECTED", 59_000.0, (
        JournalLeg("t1-entry", "entry", OrderKind.MARKET, Side.BUY, OrderStatus.FILLED, 5),))
    acts = decide(state, [t], CFG, NOW)
    assert Unowned("BTCUSDT", 3) in acts
    assert not any(isinstance(a, PlaceStop) and a.trade_id == "" for a in acts)
    assert any(isinstance(a, Alert) and "the position's stop covers it" in a.message for a in acts)
