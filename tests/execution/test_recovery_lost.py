"""An entry sent before its record and never recorded (a crash in between), found again from its client id
alone (bot.execution.recovery_lost): explicit clock, the fake venue that outlives the bot
(tests/execution/restore_harness.py), a real journal file. The real-process drill is
tests/test_drill_send_before_record.py.

Setup: BTCUSDT, t1 long 500 lots at 50,000.0 recorded, PROTECTED, then stopped out (the gate allows one trade
per symbol at a time); then "t2-entry" (300 lots) reaches the venue and fills at 50,010.0 while the journal
never gets t2 (the crash between send and record).
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from bot.domain.instrument import trigger_ticks_away
from bot.domain.orders import OrderRequest, OrderUpdate
from bot.domain.types import OrderKind, OrderStatus, Side
from bot.execution.engine import _ID_BLOCK
from bot.execution.recovery_lost import LostEntry, lost_rows
from bot.venues.binance_usdm.instruments import KNOWN
from bot.venues.errors import VenueUnavailable
from tests.execution.harness import Clock
from tests.execution.restore_harness import Life, Venue
from tests.execution.test_restore_recovery import protected, restart

BTC = KNOWN["BTCUSDT"]


async def _closed_t1(tmp: Path, venue: Venue) -> Life:
    life = await protected(tmp, venue)
    venue.fill("t1-sl", 500, 49_950.0)
    await life.settle()
    assert life.trade("t1")["state"] == "CLOSED"
    return life


async def _lost_entry(venue: Venue, lots: int = 300, price: float = 50_010.0, side: Side = Side.BUY) -> None:
    """What the crashed engine sent under t2 (reserved, never recorded): the venue has it and filled it."""
    await venue.submit(OrderRequest("t2-entry", "BTCUSDT", side, OrderKind.MARKET, lots))
    venue.fill("t2-entry", lots, price, fee=0.75)
    venue.missed()  # nobody was listening


async def test_a_lost_entry_becomes_a_journaled_trade_with_its_own_stop(tmp_path: Path) -> None:
    venue = Venue(Clock())
    life = await _closed_t1(tmp_path, venue)
    await _lost_entry(venue)
    n_sent = len(venue.sent)
    life = await restart(tmp_path, life)
    assert list(life.engine.unrecorded_ids) == list(range(2, _ID_BLOCK + 1))
    # ids are handed out in order: only the one after the last recorded (one per symbol) can have been sent
    assert life.recovery.candidates() == ["t2"]
    await life.recovery.reconcile()
    await life.settle()
    # the trade, as the venue reports it: side, size, the entry fill's price, fee, time and venue id
    t2 = life.trade("t2")
    assert (t2["setup"], t2["symbol"], t2["side"], t2["planned_qty"]) == ("recovered", "BTCUSDT", "long", 0.3)
    assert orjson.loads(t2["features"]) == {"recovered_from": "t2-entry", "stop": "50 bps"}
    (fill,) = life.rows("fills", trade_id="t2")
    vt = next(t for t in venue.trades if t["orderId"] == "vt2-entry")
    assert (fill["client_id"], fill["role"], fill["side"], fill["qty"], fill["price"], fill["fee"]) == (
        "t2-entry", "entry", "BUY", 0.3, 50_010.0, 0.75)
    assert (fill["venue_trade_id"], fill["ts_ns"]) == (str(vt["id"]), vt["time"] * 1_000_000)
    assert (t2["entry_price"], t2["entry_ts_ns"]) == (50_010.0, vt["time"] * 1_000_000)
    (entry_leg,) = life.rows("legs", trade_id="t2", role="entry")
    assert (entry_leg["status"], entry_leg["filled_qty"], entry_leg["venue_order_id"]) == ("FILLED", 0.3, "vt2-entry")
    # its own stop, from its own machine: 50 bps (venue.unknown_position_stop_bps) under the entry, rounded down
    want = trigger_ticks_away(50_010.0 * (1 - 0.005), Side.SELL, OrderKind.STOP_MARKET, BTC)
    assert want == 497_599
    assert venue.requests(n_sent) == [("t2-sl", "SELL", "STOP_MARKET", 300, None, want, True)]
    assert t2["planned_stop_price"] == BTC.ticks_to_price(want)
    assert t2["risk_budget"] == pytest.approx(0.3 * (50_010.0 - 49_759.9))
    m = life.engine.trades["t2"]
    assert m.state.value == "PROTECTED" and m.pos_lots == 300 and m.plan.tp_tiers == ()
    # not an unknown position: no halt, no reconcile stop; an emergency alert says what happened
    assert life.rm.gate.halted_symbols == {}
    assert [r.client_id for r in venue.sent if r.client_id.startswith("recon-")] == []
    assert any(k == "emergency" and "t2" in msg and "t2-entry" in msg and "recovered" in msg
               for k, msg, _ in life.alerts), life.alerts
    assert not any("no known trade" in msg for _, msg, _ in life.alerts)
    # the next pass finds the exchange = the journal: nothing to do
    assert await life.recovery.reconcile() == []
    # a new trade never reuses a reserved id
    assert life.engine.unrecorded_ids.stop - 1 == _ID_BLOCK and life.engine._next_id > _ID_BLOCK
    await life.crash()
    # and after the next restart t2 is a journal trade like any other: adopted, not searched again
    life = await restart(tmp_path, life)
    assert life.recovery.adopted == ["t2"]
    assert list(life.engine.unrecorded_ids) == list(range(_ID_BLOCK + 1, 2 * _ID_BLOCK + 1))  # the rest verified
    assert life.journal.verified_trade_ids() == _ID_BLOCK
    assert await life.recovery.reconcile() == []
    await life.crash()


async def test_no_lookups_when_the_journal_explains_every_position(tmp_path: Path) -> None:
    venue = Venue(Clock())
    life = await protected(tmp_path, venue)
    asked: list[str] = []
    real = venue.fetch_order

    async def counting(symbol: str, client_id: str, conditional: bool = False) -> OrderUpdate | None:
        asked.append(client_id)
        return await real(symbol, client_id, conditional)

    life = await restart(tmp_path, life)
    venue.fetch_order = counting  # type: ignore[method-assign]
    assert await life.recovery.reconcile() == []
    assert [c for c in asked if c.endswith("-entry")] == []  # t1's position is explained: no search
    assert life.recovery.lost_checked
    await life.crash()


async def test_a_failed_lookup_leaves_the_pass_incomplete_and_is_retried(tmp_path: Path) -> None:
    venue = Venue(Clock())
    life = await _closed_t1(tmp_path, venue)
    await _lost_entry(venue)
    life = await restart(tmp_path, life)
    venue.down = True
    with pytest.raises(VenueUnavailable):
        await life.recovery.reconcile()
    assert not life.recovery.lost_checked and not life.rows("trades", trade_id="t2")
    venue.down = False
    await life.recovery.reconcile()
    await life.settle()
    assert life.trade("t2")["setup"] == "recovered" and life.engine.trades["t2"].state.value == "PROTECTED"
    await life.crash()


def test_rows_of_a_short_with_the_stop_it_carried_at_the_venue() -> None:
    """Bybit keeps the stop an entry carried (`stopLoss`): the recovered trade keeps it instead of the
    configured distance; a stop on the wrong side of the entry is not taken."""
    u = OrderUpdate("t7-entry", "v9", "BTCUSDT", Side.SELL, OrderKind.MARKET, OrderStatus.FILLED, 200, 200, 50_000.0,
                    ts_event_ns=5)
    fills = (OrderUpdate("t7-entry", "v9", "BTCUSDT", Side.SELL, OrderKind.MARKET, OrderStatus.PARTIALLY_FILLED,
                         200, 120, 50_000.0, 120, 50_000.0, 0.3, trade_id="a", ts_event_ns=10),
             OrderUpdate("t7-entry", "v9", "BTCUSDT", Side.SELL, OrderKind.MARKET, OrderStatus.FILLED, 200, 200,
                         49_998.0, 80, 49_995.0, 0.2, trade_id="b", ts_event_ns=11))
    trade, (leg,), rows, states = lost_rows(LostEntry("t7", u, fills, venue_stop=50_100.0, leverage=5), BTC, 50.0, 99)
    assert (trade["side"], trade["planned_stop_price"], trade["leverage"], trade["intent_ts_ns"]) == (
        "short", 50_100.0, 5, 10)
    assert [(r["qty"], r["price"], r["fee"], r["venue_trade_id"], r["ts_ns"]) for r in rows] == [
        (0.12, 50_000.0, 0.3, "a", 10), (0.08, 49_995.0, 0.2, "b", 11)]
    assert (leg["status"], leg["filled_qty"], leg["avg_price"]) == ("FILLED", 0.2, 49_998.0)
    assert [s[1] for s in states] == ["PLANNED", "ENTERING"]
    wrong, _, _, _ = lost_rows(LostEntry("t7", u, fills, venue_stop=49_000.0), BTC, 50.0, 99)
    assert wrong["planned_stop_price"] == BTC.ticks_to_price(
        trigger_ticks_away(49_998.0 * 1.005, Side.BUY, OrderKind.STOP_MARKET, BTC))
    # a gateway that lists no fills: the order's own average, fee unknown
    _, (_leg2,), rows2, _ = lost_rows(LostEntry("t7", u), BTC, 50.0, 99)
    assert [(r["qty"], r["price"], r["fee"], r["ts_ns"]) for r in rows2] == [(0.2, 50_000.0, 0.0, 5)]


async def test_candidates_are_the_ids_after_the_last_recorded_one_per_symbol(tmp_path: Path) -> None:
    """An entry is recorded in the step that sends it: the lost one is the last id handed out, or one whose send
    waited for its symbol's leverage while later ids were recorded; a gap in between is looked up too."""
    venue = Venue(Clock())
    life = Life(tmp_path, venue)
    for tid in ("t1", "t2", "t4"):  # t3 handed out, never recorded
        life.journal.record_recovered(1, {"trade_id": tid, "symbol": "BTCUSDT", "setup": "x", "side": "long"}, [], [],
                                      [(None, "CLOSED", "test")])
    life.journal.verify_trade_ids(0)  # what this life's first pass would write (nothing before it to look up)
    await life.crash()
    life = Life(tmp_path, venue)  # not started: the candidates only
    assert life.recovery.candidates() == ["t3", "t5"]  # one symbol: up to the last recorded + 1
    life.recovery.symbols = ("BTCUSDT", "ETHUSDT")
    assert life.recovery.candidates() == ["t3", "t5", "t6"]
    life.journal.verify_trade_ids(_ID_BLOCK)  # looked up: the next start searches only what was reserved after
    await life.crash()
    life = Life(tmp_path, venue)
    assert list(life.engine.unrecorded_ids) == list(range(_ID_BLOCK + 1, 2 * _ID_BLOCK + 1))
    assert life.recovery.candidates() == [f"t{_ID_BLOCK + 1}"]
    await life.crash()
