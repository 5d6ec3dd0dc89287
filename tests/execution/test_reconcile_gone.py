"""Reconciliation after a position closed outside the bot (issue 16 drill B on Bybit) and orders placed by hand
without a client id (issue 16 item 1: "Reconciliation cancels hand-placed orders by venue id"). Pure decisions and
the applier with fakes, milliseconds; the same against the loopback Bybit in tests/sim/test_bybit_sim_reconcile.py.
"""

from __future__ import annotations

from dataclasses import replace

from bot.domain.types import CloseReason, OrderKind, OrderStatus, Side
from bot.execution.reconcile import ApplyUpdate, CancelOrder, CloseTrade, decide
from bot.execution.reconcile_io import apply
from bot.venues.ports import NO_EXTRAS, GatewayCapabilities, OrderUpdate
from tests.execution.test_reconcile import CFG, NOW, SL, TP, FakeGw, Sink, state, trade, upd


class QuietSink(Sink):
    def __init__(self) -> None:
        super().__init__()
        self.quiet: list[str] = []

    def on_update(self, u: OrderUpdate, quiet: bool = False) -> None:
        (self.quiet if quiet else self.updates).append(u.client_id if quiet else u)  # type: ignore[arg-type]


def test_exit_legs_ended_with_a_hand_closed_position_are_applied_quietly_before_the_close() -> None:
    # flat at the exchange, no exit fill: the target was expired with the position (Bybit expires a resting
    # reduce-only order with nothing left to reduce) -> quiet, so the machine does not re-send it (110017)
    tp_gone = upd("t1-tp1", OrderKind.LIMIT, Side.SELL, OrderStatus.EXPIRED)
    sl_gone = upd("t1-sl", OrderKind.STOP_MARKET, Side.SELL, OrderStatus.EXPIRED)
    acts = decide(state(0, looked={"t1-tp1": tp_gone, "t1-sl": sl_gone}), [trade()], CFG, NOW)
    applied = [a for a in acts if isinstance(a, ApplyUpdate)]
    assert {a.update.client_id for a in applied} == {"t1-tp1", "t1-sl"} and all(a.quiet for a in applied)
    close = next(i for i, a in enumerate(acts) if isinstance(a, CloseTrade))
    assert acts[close].reason is CloseReason.MANUAL
    assert all(acts.index(a) < close for a in applied)  # the legs' ends are known before the close


def test_a_position_still_open_keeps_the_live_reactions() -> None:
    # same expired target, but the position is there: the machine must hear it (it re-sends the target)
    tp_gone = upd("t1-tp1", OrderKind.LIMIT, Side.SELL, OrderStatus.EXPIRED)
    acts = decide(state(5, (SL,), looked={"t1-tp1": tp_gone}), [trade()], CFG, NOW)
    assert [a for a in acts if isinstance(a, ApplyUpdate)] == [ApplyUpdate(tp_gone)]
    assert not any(isinstance(a, CloseTrade) for a in acts)


def test_an_exit_fill_is_never_quiet() -> None:
    # the stop filled while we were away: that explains the flat position, no CloseTrade, nothing quiet
    filled = upd("t1-sl", OrderKind.STOP_MARKET, Side.SELL, OrderStatus.FILLED, filled=5)
    acts = decide(state(0, looked={"t1-sl": filled}), [trade()], CFG, NOW)
    assert ApplyUpdate(filled) in acts and not any(isinstance(a, CloseTrade) for a in acts)
    assert not any(isinstance(a, ApplyUpdate) and a.quiet for a in acts)


async def test_apply_hands_quiet_updates_to_the_sink_as_quiet() -> None:
    gw, sink = FakeGw(), QuietSink()
    tp_gone = upd("t1-tp1", OrderKind.LIMIT, Side.SELL, OrderStatus.EXPIRED)
    await apply(decide(state(0, looked={"t1-tp1": tp_gone}), [trade()], CFG, NOW), gw, sink)  # type: ignore[arg-type]
    assert sink.quiet == ["t1-tp1"] and sink.updates == [] and sink.closed == ["t1"]


# ------------------------------------------------------------------------------------ orders placed by hand
HAND = replace(upd("", OrderKind.LIMIT, Side.BUY, reduce_only=False), venue_order_id="4711")  # no orderLinkId


class VenueIdGw(FakeGw):
    capabilities = GatewayCapabilities(cancel_by_venue_id=True)

    def __init__(self) -> None:
        super().__init__()
        self.by_venue_id: list[str] = []

    async def cancel_venue_order(self, symbol: str, venue_order_id: str) -> None:
        self.by_venue_id.append(venue_order_id)


def test_a_hand_order_without_client_id_is_cancelled_by_its_venue_id() -> None:
    acts = decide(state(0, (HAND,)), [], CFG, NOW)
    assert acts == [CancelOrder("BTCUSDT", "", False, "entry order of no open trade", "4711")]
    # beside a position of a bot trade: a hand exit order is an orphan of no trade, by venue id too
    hand_exit = replace(upd("", OrderKind.LIMIT, Side.SELL), venue_order_id="4712")
    acts = decide(state(5, (SL, TP, hand_exit)), [trade()], CFG, NOW)
    assert [a for a in acts if isinstance(a, CancelOrder)] == [
        CancelOrder("BTCUSDT", "", False, "exit order of no open trade", "4712")]


async def test_apply_cancels_by_venue_id_where_the_venue_can() -> None:
    gw, sink = VenueIdGw(), Sink()
    await apply(decide(state(0, (HAND, TP)), [], CFG, NOW), gw, sink)  # type: ignore[arg-type]
    assert gw.by_venue_id == ["4711"] and gw.cancelled == ["t1-tp1"]  # never a cancel with client id ""


async def test_apply_alerts_where_the_venue_cannot_cancel_by_venue_id() -> None:
    gw, sink = FakeGw(), Sink()
    assert gw.capabilities is NO_EXTRAS
    await apply(decide(state(0, (HAND,)), [], CFG, NOW), gw, sink)  # type: ignore[arg-type]
    assert gw.cancelled == [] and sink.alerts == ["error"]
