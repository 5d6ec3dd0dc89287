"""The latency trail of an intent: stamped by the pipeline from the triggering message, journaled by the
engine with the trade, broken down by the report."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from bot.domain.events import Trade
from bot.journal.report import build_report, load_journal
from bot.market.health import BookHealth, BookStatus
from bot.pipeline import Pipeline
from bot.venues.binance_usdm.instruments import KNOWN
from tests.execution.harness import LIVE, MS, T0, Rig, intent, running


class _Signals:
    def __init__(self) -> None:
        self.calls = 0

    def on_trade(self, trade: Trade, now_ns: int) -> list:
        self.calls += 1
        return [intent(ts=now_ns)]


class _Engine:
    def __init__(self) -> None:
        self.trades: dict = {}  # no open trade: the pipeline sends no price updates
        self.got: list = []

    def on_intent(self, i, view):
        self.got.append((i, view))
        return f"t{len(self.got)}"


async def test_the_pipeline_stamps_event_receive_and_signal_times() -> None:
    now = [T0 + 9 * MS]
    engine = _Engine()
    p = Pipeline(dict(KNOWN), _Signals(), engine, clock=lambda: now[0])  # type: ignore[arg-type]
    book = SimpleNamespace(bbo=lambda: (1, 1, 2, 1), best_bid_ticks=600_000, best_ask_ticks=600_001)
    health = BookHealth("BTCUSDT")
    health.set(BookStatus.LIVE, "in sequence", T0)
    health.last_event_ns, health.last_recv_ns = T0 - 2 * MS, T0  # a fresh book (max_book_age_ms)
    sync = SimpleNamespace(book=book, health=health, symbol="BTCUSDT")
    ev = Trade("BTCUSDT", 1, "60000.0", "0.1", False, T0 - 2 * MS, T0)
    p.on_synced(ev, sync, T0 + 5 * MS)  # type: ignore[arg-type]
    (i, view), = engine.got
    # exchange event time and receive time of the message; the clock when the signals had answered
    assert (i.ts_event_ns, i.ts_recv_ns, i.ts_signal_ns) == (T0 - 2 * MS, T0, T0 + 9 * MS)
    assert i.ts_ns == T0 + 5 * MS and i.setup == "sweep"  # the rest of the intent untouched
    assert view.book_live


async def test_the_engine_journals_the_trail_and_the_report_breaks_it_down(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    async with running(rig):
        rig.gw.on_submit = lambda req: rig.clock.advance_ms(3) if req.client_id == "t1-entry" else None
        stamped = intent(ts=T0).stamped(T0 - 4 * MS, T0 - MS, T0)  # event, receive, signal
        rig.clock.advance_ms(0.5)  # the engine takes the intent 0.5 ms after the signal
        assert await rig.engine.submit_intent(stamped, LIVE) == "t1"
        await rig.settle()
        (row,) = rig.rows("trades")
        assert (row["event_ts_ns"], row["recv_ts_ns"], row["signal_ts_ns"]) == (T0 - 4 * MS, T0 - MS, T0)
        rig.clock.advance_ms(2)
        rig.gw.fill("t1-entry", 500, 50_000.0)
        await rig.settle()
        rig.clock.advance_ms(1000)
        rig.gw.move_price("BTCUSDT", 499_400)  # through the stop
        await rig.settle()
        assert rig.rows("trades")[0]["state"] == "CLOSED"
    rep = build_report(load_journal(str(tmp_path / "journal.sqlite")))
    (t,) = rep["trades"]
    assert t["latency_ms"] | {"fill_to_stop_confirmed_ms": None} == {
        "exchange_event_to_receive_ms": 3.0, "receive_to_signal_ms": 1.0, "signal_to_order_ms": 0.5,
        "order_to_ack_ms": 3.0, "ack_to_fill_ms": 2.0, "fill_to_stop_confirmed_ms": None,
        # the steps from the signal add up; this gateway stamps the fill on our clock: no offset
        "signal_to_fill_ms": 5.5, "venue_fill_to_receive_ms": 0.0}
    assert rep["latency"]["exchange_event_to_receive_ms"]["n"] == 1 and "not_journaled" not in rep["latency"]


async def test_an_unstamped_intent_journals_no_trail(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    async with running(rig):
        assert await rig.engine.submit_intent(intent(), LIVE) == "t1"
        await rig.settle()
        (row,) = rig.rows("trades")
        assert row["event_ts_ns"] is None and row["recv_ts_ns"] is None and row["signal_ts_ns"] is None
