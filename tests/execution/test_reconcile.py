"""Reconciliation rules, each as a pure-function test; plus the applier and the journal loader."""

from __future__ import annotations

from bot.domain.types import CloseReason, OrderKind, OrderStatus, Side
from bot.execution.reconcile import (
    Alert,
    ApplyUpdate,
    CancelOrder,
    CloseTrade,
    ExchangeState,
    Flatten,
    JournalLeg,
    JournalTrade,
    PlaceStop,
    ReconcileConfig,
    decide,
)
from bot.execution.reconcile_io import apply, journal_trades, leg_fills, outside_fills
from bot.journal import Journal
from bot.venues.binance_usdm.instruments import KNOWN
from bot.venues.errors import OrderRejected
from bot.venues.ports import NO_EXTRAS, GatewayCapabilities, OrderAck, OrderRequest, OrderUpdate, PositionSnapshot

CFG = ReconcileConfig(instruments={"BTCUSDT": KNOWN["BTCUSDT"]}, unknown_position_stop_bps=50.0)
NOW = 1_700_000_000_000_000_000


def upd(cid: str, kind: OrderKind, side: Side, status: OrderStatus = OrderStatus.NEW, filled: int = 0,
        qty: int = 5, reduce_only: bool = True) -> OrderUpdate:
    return OrderUpdate(cid, "1", "BTCUSDT", side, kind, status, qty, filled, 0.0, reduce_only=reduce_only)


def trade(state: str = "PROTECTED", legs: tuple[JournalLeg, ...] = (), stop: float = 59_000.17) -> JournalTrade:
    return JournalTrade("t1", "BTCUSDT", "long", state, stop, legs or (
        JournalLeg("t1-entry", "entry", OrderKind.MARKET, Side.BUY, OrderStatus.FILLED, 5),
        JournalLeg("t1-sl", "stop", OrderKind.STOP_MARKET, Side.SELL, OrderStatus.NEW),
        JournalLeg("t1-tp1", "tp", OrderKind.TAKE_PROFIT_MARKET, Side.SELL, OrderStatus.NEW)))


def state(lots: int = 0, orders: tuple[OrderUpdate, ...] = (), looked: dict | None = None) -> ExchangeState:
    pos = {"BTCUSDT": PositionSnapshot("BTCUSDT", lots, 60_000.0)} if lots else {}
    return ExchangeState(("BTCUSDT",), pos, orders, looked or {})


SL = upd("t1-sl", OrderKind.STOP_MARKET, Side.SELL)
TP = upd("t1-tp1", OrderKind.TAKE_PROFIT_MARKET, Side.SELL)


def test_consistent_state_needs_nothing():
    assert decide(state(5, (SL, TP)), [trade()], CFG, NOW) == []


def test_known_trade_without_live_stop_gets_its_stop_rounded_away():
    acts = decide(state(5, (TP,), looked={"t1-sl": upd("t1-sl", OrderKind.STOP_MARKET, Side.SELL,
                                                       OrderStatus.CANCELED)}), [trade()], CFG, NOW)
    stops = [a for a in acts if isinstance(a, PlaceStop)]
    assert len(stops) == 1
    r = stops[0].req
    assert (r.side, r.kind, r.qty_lots, r.reduce_only, r.trigger_ticks) == (
        Side.SELL, OrderKind.STOP_MARKET, 5, True, 590_001)  # 59000.17 -> 59000.1 (down, away from a long)
    assert r.client_id.startswith("t1-slr") and len(r.client_id) <= 36
    assert any(isinstance(a, ApplyUpdate) and a.update.status is OrderStatus.CANCELED for a in acts)


def test_unknown_position_gets_a_protective_stop_from_config_and_an_alert():
    acts = decide(state(-3), [], CFG, NOW)
    stop = next(a for a in acts if isinstance(a, PlaceStop))
    assert stop.trade_id == "" and stop.req.side is Side.BUY and stop.req.qty_lots == 3
    assert stop.req.trigger_ticks == 603_000  # 60000 * 1.005 = 60300.0, short's stop above
    assert any(isinstance(a, Alert) and a.kind == "emergency" for a in acts)


def test_unknown_position_flattened_when_configured():
    cfg = ReconcileConfig(instruments=CFG.instruments, unknown_position_action="flatten")
    acts = decide(state(4), [], cfg, NOW)
    flat = next(a for a in acts if isinstance(a, Flatten))
    assert (flat.req.kind, flat.req.side, flat.req.qty_lots, flat.req.reduce_only) == (
        OrderKind.MARKET, Side.SELL, 4, True)
    assert not any(isinstance(a, PlaceStop) for a in acts) and any(isinstance(a, Alert) for a in acts)


def test_unknown_position_with_an_existing_stop_keeps_it():
    old = upd("t0-sl", OrderKind.STOP_MARKET, Side.SELL)
    acts = decide(state(5, (old,)), [], CFG, NOW)
    assert not any(isinstance(a, PlaceStop | Flatten | CancelOrder) for a in acts)
    assert any(isinstance(a, Alert) for a in acts)


def test_exit_orders_with_no_position_are_cancelled_and_manual_close_recorded():
    acts = decide(state(0, (SL, TP)), [trade()], CFG, NOW)
    cancels = {(a.client_id, a.conditional) for a in acts if isinstance(a, CancelOrder)}
    assert cancels == {("t1-sl", True), ("t1-tp1", True)}
    closes = [a for a in acts if isinstance(a, CloseTrade)]
    assert [(c.trade_id, c.reason) for c in closes] == [("t1", CloseReason.MANUAL)]


def test_flat_because_the_stop_filled_while_down_applies_the_fill_not_manual():
    filled = upd("t1-sl", OrderKind.STOP_MARKET, Side.SELL, OrderStatus.FILLED, filled=5)
    acts = decide(state(0, (TP,), looked={"t1-sl": filled}), [trade()], CFG, NOW)
    assert ApplyUpdate(filled) in acts
    assert not any(isinstance(a, CloseTrade) for a in acts)
    assert [a.client_id for a in acts if isinstance(a, CancelOrder)] == ["t1-tp1"]  # the orphan TP


def test_orphans_of_an_old_trade_are_cancelled_when_a_new_position_has_its_stop():
    old_tp = upd("t0-tp1", OrderKind.TAKE_PROFIT_MARKET, Side.SELL)
    acts = decide(state(5, (SL, TP, old_tp)), [trade()], CFG, NOW)
    assert [a.client_id for a in acts if isinstance(a, CancelOrder)] == ["t0-tp1"]


def test_resting_entry_of_an_entering_trade_is_kept_unknown_entry_cancelled():
    t = trade("ENTERING", legs=(JournalLeg("t1-entry", "entry", OrderKind.LIMIT, Side.BUY, OrderStatus.NEW),))
    entry = upd("t1-entry", OrderKind.LIMIT, Side.BUY, reduce_only=False)
    stray = upd("zz-entry", OrderKind.LIMIT, Side.BUY, reduce_only=False)
    acts = decide(state(0, (entry, stray)), [t], CFG, NOW)
    assert [a.client_id for a in acts if isinstance(a, CancelOrder)] == ["zz-entry"]


def test_nothing_is_assumed_flat_for_a_symbol_not_fetched():
    ex = ExchangeState((), {}, (), {})  # the fetch failed: no symbol known
    assert decide(ex, [trade()], CFG, NOW) == []


def test_missed_entry_fill_is_applied():
    t = trade("ENTERING", legs=(JournalLeg("t1-entry", "entry", OrderKind.LIMIT, Side.BUY, OrderStatus.NEW),))
    fill = upd("t1-entry", OrderKind.LIMIT, Side.BUY, OrderStatus.FILLED, filled=5, reduce_only=False)
    acts = decide(state(5, (), looked={"t1-entry": fill}), [t], CFG, NOW)
    assert acts[0] == ApplyUpdate(fill)
    assert any(isinstance(a, PlaceStop) and a.trade_id == "t1" for a in acts)  # and it is protected at once


class FakeGw:
    capabilities = NO_EXTRAS

    def __init__(self, reject_stop: bool = False) -> None:
        self.sent: list[OrderRequest] = []
        self.cancelled: list[str] = []
        self.reject_stop = reject_stop

    async def submit(self, req: OrderRequest) -> OrderAck:
        self.sent.append(req)
        if self.reject_stop and req.kind is OrderKind.STOP_MARKET:
            raise OrderRejected("Order would immediately trigger.", code=-2021)
        return OrderAck(req.client_id, "9", OrderStatus.NEW, 0)

    async def cancel(self, symbol: str, client_id: str, conditional: bool = False) -> None:
        self.cancelled.append(client_id)


class Sink:
    def __init__(self) -> None:
        self.updates: list[OrderUpdate] = []
        self.closed: list[str] = []
        self.alerts: list[str] = []

    def on_update(self, u: OrderUpdate) -> None:
        self.updates.append(u)

    def on_trade_closed(self, trade_id: str, reason: CloseReason, detail: str) -> None:
        self.closed.append(trade_id)

    async def place_stop(self, a: PlaceStop) -> bool:
        return False  # no machines here: apply sends the stop itself

    def before_cancel(self, a: CancelOrder) -> None:
        pass

    def alert(self, kind: str, message: str, symbol: str = "") -> None:
        self.alerts.append(kind)


async def test_apply_refused_stop_flattens_and_alerts():
    gw, sink = FakeGw(reject_stop=True), Sink()
    acts = decide(state(-3), [], CFG, NOW)
    await apply(acts, gw, sink)  # type: ignore[arg-type]
    assert [r.kind for r in gw.sent] == [OrderKind.STOP_MARKET, OrderKind.MARKET]
    assert gw.sent[1].reduce_only and gw.sent[1].side is Side.BUY and gw.sent[1].qty_lots == 3
    assert sink.alerts.count("emergency") == 2


async def test_apply_cancels_and_closes():
    gw, sink = FakeGw(), Sink()
    await apply(decide(state(0, (SL, TP)), [trade()], CFG, NOW), gw, sink)  # type: ignore[arg-type]
    assert sorted(gw.cancelled) == ["t1-sl", "t1-tp1"] and sink.closed == ["t1"]


def test_journal_loader_reads_open_trades_and_legs():
    j = Journal(":memory:")
    j.open_trade(1, {"trade_id": "t1", "symbol": "BTCUSDT", "setup": "s", "side": "long",
                     "planned_stop_price": 59_000.0},
                 [{"client_id": "t1-entry", "trade_id": "t1", "role": "entry", "symbol": "BTCUSDT", "side": "BUY",
                   "kind": "MARKET", "qty": 0.005, "status": "NEW"},
                  {"client_id": "t1-sl", "trade_id": "t1", "role": "stop", "symbol": "BTCUSDT", "side": "SELL",
                   "kind": "STOP_MARKET", "qty": 0.005, "status": "NEW"}], "PROTECTED")
    j.order_event(2, "t1", "t1-entry", "FILLED", filled_qty=0.005, avg_price=60_000.0)
    j.open_trade(2, {"trade_id": "t0", "symbol": "BTCUSDT", "setup": "s", "side": "long"}, [], "CLOSED")
    ts = journal_trades(j, CFG.instruments)
    assert [(t.trade_id, t.stop_price, [(leg.client_id, leg.filled_lots) for leg in t.legs]) for t in ts] == [
        ("t1", 59_000.0, [("t1-entry", 5), ("t1-sl", 0)])]


def test_exact_fills_of_a_leg_come_before_its_state_and_explain_the_flat_position():
    # the stop's child filled in two prints while we were away; the algo itself reports no fill (FINISHED)
    fills = tuple(OrderUpdate("t1-sl", "77", "BTCUSDT", Side.SELL, OrderKind.STOP_MARKET, st, 5, cum, 59_000.0,
                              last_fill_lots=n, last_fill_price=59_000.0, fee=0.1, trade_id=tid, parent_id="t1-sl")
                  for st, cum, n, tid in ((OrderStatus.PARTIALLY_FILLED, 2, 2, "1"), (OrderStatus.FILLED, 5, 3, "2")))
    ended = upd("t1-sl", OrderKind.STOP_MARKET, Side.SELL, OrderStatus.EXPIRED)
    ex = ExchangeState(("BTCUSDT",), {}, (TP,), {"t1-sl": ended}, {"t1-sl": fills})
    acts = decide(ex, [trade()], CFG, NOW)
    assert acts[:3] == [ApplyUpdate(fills[0]), ApplyUpdate(fills[1]), ApplyUpdate(ended)]
    assert not any(isinstance(a, CloseTrade | Alert) for a in acts)  # the stop explains the flat position


async def test_apply_lets_the_trade_place_its_own_stop_and_announces_cancels():
    class OwnSink(Sink):
        def __init__(self) -> None:
            super().__init__()
            self.own: list[str] = []
            self.announced: list[str] = []

        async def place_stop(self, a: PlaceStop) -> bool:
            self.own.append(a.trade_id)
            return True

        def before_cancel(self, a: CancelOrder) -> None:
            self.announced.append(a.client_id)

    gw, sink = FakeGw(), OwnSink()
    acts = decide(state(5, (TP, upd("t0-tp1", OrderKind.LIMIT, Side.SELL)), looked={"t1-sl": None}),
                  [trade()], CFG, NOW)
    await apply(acts, gw, sink)  # type: ignore[arg-type]
    assert sink.own == ["t1"] and gw.sent == []  # the machine placed it, not reconcile
    assert sink.announced == gw.cancelled == ["t0-tp1"]


def test_journal_loader_leaves_out_legs_never_sent():
    j = Journal(":memory:")
    j.open_trade(1, {"trade_id": "t1", "symbol": "BTCUSDT", "setup": "s", "side": "long"},
                 [{"client_id": "t1-entry", "trade_id": "t1", "role": "entry", "symbol": "BTCUSDT", "side": "BUY",
                   "kind": "LIMIT", "qty": 0.005, "status": "PENDING_NEW"},
                  {"client_id": "t1-sl", "trade_id": "t1", "role": "stop", "symbol": "BTCUSDT", "side": "SELL",
                   "kind": "STOP_MARKET", "qty": 0.005, "status": "PLANNED"}], "ENTERING")
    (t,) = journal_trades(j, CFG.instruments)
    assert [(leg.client_id, leg.status) for leg in t.legs] == [("t1-entry", OrderStatus.PENDING_NEW)]


class TradesGw:
    """user_trades + fetch_order_raw as BinanceGateway has them."""

    capabilities = GatewayCapabilities(account_trades=True, raw_order_lookup=True)

    def __init__(self, rows: list[dict], raw: dict | None = None) -> None:
        self.rows, self.raw, self.asked = rows, raw or {}, []

    def instrument(self, symbol: str):
        return KNOWN[symbol]

    async def user_trades(self, symbol: str, order_id: str = "", start_ms: int = 0) -> list[dict]:
        self.asked.append((order_id, start_ms))
        return [r for r in self.rows if not order_id or str(r["orderId"]) == order_id]

    async def fetch_order_raw(self, symbol: str, client_id: str, conditional: bool) -> dict:
        return self.raw


def _row(i: int, oid: str, side: str, qty: str, px: str, t_ms: int) -> dict:
    return {"id": i, "orderId": oid, "side": side, "qty": qty, "price": px, "commission": "0.01", "maker": False,
            "time": t_ms}


async def test_leg_fills_of_an_algo_order_come_from_its_child():
    gw = TradesGw([_row(1, "900", "SELL", "0.002", "59000.0", 5), _row(2, "900", "SELL", "0.003", "58999.9", 6),
                   _row(3, "901", "SELL", "0.005", "1.0", 7)], raw={"actualOrderId": "900"})
    ended = upd("t1-sl", OrderKind.STOP_MARKET, Side.SELL, OrderStatus.EXPIRED)
    got = await leg_fills(gw, "BTCUSDT", "t1-sl", ended)
    assert [(u.client_id, u.parent_id, u.filled_lots, u.last_fill_lots, u.status, u.trade_id) for u in got] == [
        ("t1-sl", "t1-sl", 2, 2, OrderStatus.PARTIALLY_FILLED, "1"), ("t1-sl", "t1-sl", 5, 3, OrderStatus.FILLED, "2")]
    assert got[-1].avg_price == (2 * 59_000.0 + 3 * 58_999.9) / 5 and got[0].ts_event_ns == 5_000_000
    assert await leg_fills(TradesGw([], raw={"actualOrderId": "0"}), "BTCUSDT", "t1-sl", ended) == ()


async def test_outside_fills_are_the_closing_side_of_orders_not_ours_since_the_trade():
    gw = TradesGw([_row(1, "500", "BUY", "0.005", "60000.0", 1_000),  # our entry
                   _row(2, "777", "SELL", "0.003", "60010.0", 500),  # before the trade: not it
                   _row(3, "778", "SELL", "0.003", "60020.0", 2_000),  # by hand
                   _row(4, "779", "SELL", "0.004", "60030.0", 3_000)])  # by hand, 2 lots more than held
    got = await outside_fills(gw, "BTCUSDT", Side.SELL, 1_000_000_000, {"500"}, 5)
    assert [(lots, px, oid) for lots, px, _, _, _, oid, _ in got] == [(3, 60_020.0, "778"), (2, 60_030.0, "779")]
    assert gw.asked == [("", 1_000)]
    assert await outside_fills(FakeGw(), "BTCUSDT", Side.SELL, 0, set(), 5) == []  # declares no account trades
