"""A recorded Binance session through the matching engine: the engine's book is the recorded book."""

from __future__ import annotations

from collections import OrderedDict

import pytest

from bot.domain.events import BookTicker
from bot.domain.types import OrderKind, Side
from bot.replay.reader import Record, read_session
from bot.venues.binance_usdm.instruments import KNOWN
from bot.venues.binance_usdm.parse import parse_message
from bot.venues.ports import OrderRequest
from bot.venues.sim.exchange import SimExchange
from bot.venues.sim.orders import OrderReport
from bot.venues.sim.sources import replay_messages
from tests.conftest import SESSIONS, needs_data


@needs_data
@pytest.mark.slow
@pytest.mark.parametrize("session", ["btcusdt_20240718", "ethusdt_20240808"])
def test_engine_book_equals_the_recorded_book_tickers_while_we_trade(session: str) -> None:
    sym = session.split("_")[0].upper()
    inst = KNOWN[sym]
    ex = SimExchange({sym: inst}, balance=1_000_000.0, default_leverage=20)
    m = ex.markets[sym]
    bbo_by_u: OrderedDict[int, tuple[int, int, int, int] | None] = OrderedDict()
    pending: dict[int, BookTicker] = {}
    checked = mismatched = 0
    last_u = -1
    n = 0

    def compare(bt: BookTicker, bbo: tuple[int, int, int, int] | None) -> None:
        nonlocal checked, mismatched
        if bbo is None:
            return
        checked += 1
        want = (inst.price_to_ticks(bt.bid_price), inst.qty_to_lots(bt.bid_qty),
                inst.price_to_ticks(bt.ask_price), inst.qty_to_lots(bt.ask_qty))
        mismatched += want != bbo

    for rec in read_session([str(p) for p in SESSIONS[session]]):
        assert isinstance(rec, Record)
        ev = parse_message(rec.raw, rec.ts_recv_ns)
        if ev is None:
            continue
        ex.on_event(ev, rec.ts_recv_ns)
        n += 1
        u = m.sync.last_update_id
        if u != last_u and u >= 0:
            last_u = u
            bbo_by_u[u] = m.book.bbo() if m.sync.health.is_live else None
            if len(bbo_by_u) > 4096:
                bbo_by_u.popitem(last=False)
            bt = pending.pop(u, None)
            if bt is not None:
                compare(bt, bbo_by_u[u])
        if isinstance(ev, BookTicker):
            if ev.update_id in bbo_by_u:
                compare(ev, bbo_by_u[ev.update_id])
            else:
                pending[ev.update_id] = ev
        # trade as we go: a resting bid one tick under the touch, and a market round trip now and then
        if n % 2000 == 0 and m.sync.health.is_live:
            bbo = m.book.bbo()
            assert bbo is not None
            lots = int(float(inst.min_notional) * 1.5 / (bbo[0] * inst.tick * inst.step)) + 1
            ex.cancel_all(sym)
            ex.place(OrderRequest(f"b{n}", sym, Side.BUY, OrderKind.LIMIT, lots, bbo[0] - 1))
            ex.place(OrderRequest(f"m{n}", sym, Side.BUY if n % 4000 else Side.SELL, OrderKind.MARKET, lots))
    assert m.sync.stats.gaps == 0 and m.sync.stats.snapshots == 1
    assert checked > 500
    assert mismatched == 0
    fills = [r for r in ex.drain() if isinstance(r, OrderReport) and r.exec_type == "TRADE"]
    assert any(r.is_maker for r in fills) and any(not r.is_maker for r in fills)


@needs_data
def test_replay_messages_split_a_recorded_session_for_the_streams() -> None:
    errors: list[str] = []
    kinds: dict[str, int] = {}
    for i, msg in enumerate(replay_messages([str(p) for p in SESSIONS["btcusdt_20240808"]], errors)):
        kinds[msg.kind] = kinds.get(msg.kind, 0) + 1
        assert msg.symbol == "BTCUSDT"
        if i < 5:
            assert parse_message(msg.data, 0) is not None  # a ws-mode payload on its own
        if i > 20_000:
            break
    assert errors == []
    assert kinds["snapshot"] == 1 and kinds["depth"] > 100 and kinds["trade"] > 100 and kinds["bookTicker"] > 100
