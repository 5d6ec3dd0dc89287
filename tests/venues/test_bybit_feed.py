"""BybitMarketFeed against a loopback Bybit v5 server replaying the recorded XRPUSDT order-book sample."""

from __future__ import annotations

import asyncio
import contextlib
import zipfile

import orjson
import pytest

from bot.domain.events import DepthDiff
from bot.domain.instrument import Instrument
from bot.market.health import BookStatus
from bot.settings import load_settings
from bot.venues.bybit.feed import BybitMarketFeed
from tests.conftest import BYBIT
from tests.support import until
from tests.support.replay_server import BybitReplayServer

SAMPLE = BYBIT / "nautilus_xrpusdt-ob500.data.zip"
XRP = Instrument("bybit", "XRPUSDT", "0.0001", "1")

pytestmark = pytest.mark.skipif(not SAMPLE.is_file(), reason="../shared/data/bybit_v5 sample is absent")


def _lines() -> list[bytes]:
    with zipfile.ZipFile(SAMPLE) as zf:
        return [x for x in zf.read(zf.namelist()[0]).splitlines() if x.strip()]


class Run:
    def __init__(self, srv: BybitReplayServer, **market: object) -> None:
        s = load_settings(overrides={"venue": {"name": "bybit", "environment": "exchange-sim",
                                               "symbols": ["XRPUSDT"], **srv.urls()},
                                     "market": {"reconnect_min_ms": 20, "reconnect_max_ms": 200, **market}})
        self.diffs: list[DepthDiff] = []
        self.health: list[BookStatus] = []
        self.feed = BybitMarketFeed(s.venue, s.market, {"XRPUSDT": XRP}, self._on_event,
                                    on_health=lambda sym, h: self.health.append(h.status))
        self.srv = srv

    def _on_event(self, ev: object) -> None:
        if isinstance(ev, DepthDiff):
            self.diffs.append(ev)

    async def __aenter__(self) -> Run:
        self.task = asyncio.create_task(self.feed.run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(self.task, timeout=5)

    def assert_book_equals_server(self) -> None:
        book = self.feed.books["XRPUSDT"]
        bids = sorted(((XRP.price_to_ticks(p), XRP.qty_to_lots(q)) for p, q in self.srv.bids.items()),
                      reverse=True)
        asks = sorted((XRP.price_to_ticks(p), XRP.qty_to_lots(q)) for p, q in self.srv.asks.items())
        assert book.bids(50) == bids[:50] and book.asks(50) == asks[:50]


async def test_sample_syncs_with_contiguous_u_and_no_gap() -> None:
    lines = _lines()
    async with BybitReplayServer(lines, interval_s=0.005) as srv, Run(srv) as r:
        await until(lambda: srv.done.is_set() and len(r.diffs) == len(lines), 10)
        sync = r.feed.syncs["XRPUSDT"]
        us = [d.final_id for d in r.diffs]
        assert r.diffs[0].is_snapshot and us == list(range(us[0], us[0] + len(lines)))  # contiguous u
        assert sync.health.status is BookStatus.LIVE and r.health[-1] is BookStatus.LIVE
        assert (sync.stats.gaps, sync.stats.snapshots, sync.stats.applied) == (0, 1, len(lines) - 1)
        assert sync.last_update_id == orjson.loads(lines[-1])["data"]["u"]
        r.assert_book_equals_server()
        assert srv.subscribes[0] == ["orderbook.200.XRPUSDT", "publicTrade.XRPUSDT", "tickers.XRPUSDT"]
        assert r.feed.malformed == 0 and r.feed.rejected == []


async def test_gap_resubscribes_and_resyncs_from_a_fresh_snapshot() -> None:
    lines = _lines()
    async with BybitReplayServer(lines, interval_s=0.01) as srv, Run(srv) as r:
        await until(lambda: r.feed.syncs["XRPUSDT"].health.is_live, 5)
        srv.drop_delta(after=5)
        await until(lambda: srv.done.is_set() and r.feed.syncs["XRPUSDT"].last_update_id == srv.last_u, 10)
        st = r.feed.syncs["XRPUSDT"].stats
        assert srv.dropped and (st.gaps, st.resyncs, st.snapshots) == (1, 1, 2)
        assert srv.unsubscribes == [["orderbook.200.XRPUSDT"]] and srv.subscribes[-1] == ["orderbook.200.XRPUSDT"]
        assert srv.snapshots_sent == 1 and r.feed.resubscribes == 1
        assert r.feed.stream.connects == 1  # same socket
        assert BookStatus.SYNCING in r.health[1:] and r.health[-1] is BookStatus.LIVE
        r.assert_book_equals_server()


async def test_json_ping_every_interval() -> None:
    async with BybitReplayServer(_lines(), interval_s=0.01) as srv, Run(srv, bybit_ping_interval_s=0.05):
        await until(lambda: srv.pings >= 3, 5)
