"""Two open trades of the bot on one symbol (issue 11, late execution): an entry answered 503 and reported
"not found" aborted its trade t1; the symbol's next trade t3 entered; t1's entry then executed after all and
reopened t1 (engine._reopen). The position is both trades' sizes; each trade has its own stop and targets.

Seen in `scalper drill --only late_execution` (2 of 5 runs on main): the reconciliation pass the reopen asks
for took t1 as the position's only owner and cancelled t3's stop and targets as "exit order of no open
trade"; t3's machine took the CANCELED as its own cancel, so 4.448 of the 11.673 ETH short had no stop until
the next fill changed the position ~1.75 s later (the watcher's naked interval). Pure `decide` tests (ms).
"""

from __future__ import annotations

from bot.domain.types import OrderKind, OrderStatus, Side
from bot.execution.reconcile import (
    Alert,
    CancelOrder,
    ExchangeState,
    JournalLeg,
    JournalTrade,
    PlaceStop,
    ReconcileConfig,
    Unowned,
    decide,
)
from bot.venues.binance_usdm.instruments import KNOWN
from bot.venues.ports import OrderUpdate, PositionSnapshot

CFG = ReconcileConfig(instruments={"ETHUSDT": KNOWN["ETHUSDT"]}, unknown_position_stop_bps=50.0)
NOW = 1_700_000_000_000_000_000


def upd(cid: str, kind: OrderKind, qty: int, side: Side = Side.BUY) -> OrderUpdate:
    return OrderUpdate(cid, "v-" + cid, "ETHUSDT", side, kind, OrderStatus.NEW, qty, 0, 0.0, reduce_only=True)


def short(tid: str, lots: int, stop: str, state: str = "PROTECTED") -> JournalTrade:
    """A short trade holding `lots`, its stop leg `stop` and two targets open."""
    return JournalTrade(tid, "ETHUSDT", "short", state, 3003.78, (
        JournalLeg(f"{tid}-entry", "entry", OrderKind.LIMIT, Side.SELL, OrderStatus.FILLED, lots),
        JournalLeg(stop, "stop", OrderKind.STOP_MARKET, Side.BUY, OrderStatus.NEW),
        JournalLeg(f"{tid}-tp1", "tp", OrderKind.LIMIT, Side.BUY, OrderStatus.NEW),
        JournalLeg(f"{tid}-tp2", "tp", OrderKind.LIMIT, Side.BUY, OrderStatus.NEW)))


def ex(lots: int, orders: tuple[OrderUpdate, ...]) -> ExchangeState:
    return ExchangeState(("ETHUSDT",), {"ETHUSDT": PositionSnapshot("ETHUSDT", lots, 3000.13)}, orders, {})


T1, T3 = short("t1", 7225, "t1-sl"), short("t3", 4448, "t3-sl.2")  # t1 reopened late, t3 entered meanwhile
T1_ORDERS = (upd("t1-sl", OrderKind.STOP_MARKET, 7225), upd("t1-tp1", OrderKind.LIMIT, 3612),
             upd("t1-tp2", OrderKind.LIMIT, 3613))
T3_ORDERS = (upd("t3-sl.2", OrderKind.STOP_MARKET, 4448), upd("t3-tp1", OrderKind.LIMIT, 2224),
             upd("t3-tp2", OrderKind.LIMIT, 2224))


def test_the_exits_of_both_open_trades_on_a_symbol_are_kept():
    for trades in ([T1, T3], [T3, T1]):  # whichever the journal lists first
        acts = decide(ex(-11673, T1_ORDERS + T3_ORDERS), trades, CFG, NOW)
        assert [a for a in acts if isinstance(a, CancelOrder)] == []  # main cancelled t3-sl.2, t3-tp1, t3-tp2
        assert not any(isinstance(a, PlaceStop | Unowned) for a in acts)
        assert not any(isinstance(a, Alert) for a in acts)


def test_each_trade_without_a_stop_gets_its_own_for_its_own_size():
    acts = decide(ex(-11673, T1_ORDERS + T3_ORDERS[1:]), [T1, T3], CFG, NOW)  # t3's stop gone
    stops = [a for a in acts if isinstance(a, PlaceStop)]
    assert [(s.trade_id, s.req.side, s.req.qty_lots, s.req.reduce_only) for s in stops] == [
        ("t3", Side.BUY, 4448, True)]
    assert [a for a in acts if isinstance(a, CancelOrder)] == []
    acts = decide(ex(-11673, ()), [T1, T3], CFG, NOW)  # neither has one: both, each for its part
    assert sorted((a.trade_id, a.req.qty_lots) for a in acts if isinstance(a, PlaceStop)) == [
        ("t1", 7225), ("t3", 4448)]


def test_an_exit_of_an_ended_trade_is_still_an_orphan_beside_two_open_trades():
    stale = upd("t2-sl", OrderKind.STOP_MARKET, 500)  # a stop of a trade the journal closed
    acts = decide(ex(-11673, T1_ORDERS + T3_ORDERS + (stale,)), [T1, T3], CFG, NOW)
    assert [a.client_id for a in acts if isinstance(a, CancelOrder)] == ["t2-sl"]


def test_a_manual_add_beside_two_trades_is_the_excess_over_both():
    acts = decide(ex(-12673, T1_ORDERS + T3_ORDERS), [T1, T3], CFG, NOW)
    assert Unowned("ETHUSDT", -1000) in acts
    guard = [a for a in acts if isinstance(a, PlaceStop)]
    assert [(s.trade_id, s.req.qty_lots) for s in guard] == [("", 1000)]
    assert any(isinstance(a, Alert) and "more than t1, t3 owns" in a.message for a in acts)
