"""BinanceMarketFeed against a loopback server replaying real recorded sessions, with faults injected.

Every test checks the book against the exchange's own statement of the top of book: at every
bookTicker whose update id equals the id the book is at, our best bid/ask price and size must equal
the bookTicker's (0 mismatches), and a healthy number of them must have been checked.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from bot.domain.events import BookTicker, DepthDiff, DepthSnapshot
from bot.market.health import BookHealth, BookStatus
from bot.settings import load_settings
from bot.venues.binance_usdm.feed import BinanceMarketFeed
from bot.venues.binance_usdm.instruments import KNOWN
from tests.conftest import SESSIONS, needs_data
from tests.support import until
from tests.support.replay_server import BinanceReplayServer, load_binance_items

pytestmark = [needs_data]

BTC, ETH = "BTCUSDT", "ETHUSDT"


class Harness:
    """Runs a feed, logs health transitions, and cross-checks BBO against bookTickers."""

    def __init__(self, server: BinanceReplayServer, symbols: list[str], **market: object) -> None:
        settings = load_settings(overrides={
            "venue": {"name": "binance-usdm", "environment": "exchange-sim", "symbols": symbols,
                      **server.urls()},
            "market": {"binance_trade_stream": "trade", "stale_after_ms": 2000, "reconnect_min_ms": 20,
                       "reconnect_max_ms": 200, **market},
        })
        self.health: dict[str, list[BookStatus]] = {s: [] for s in symbols}
        self.bbo_by_u: dict[str, dict[int, tuple[int, int, int, int]]] = {s: {} for s in symbols}
        self.pending: dict[str, dict[int, BookTicker]] = {s: {} for s in symbols}
        self.checked = dict.fromkeys(symbols, 0)
        self.mismatched = dict.fromkeys(symbols, 0)
        self.first_mismatch: str | None = None
        self.feed = BinanceMarketFeed(settings.venue, settings.market, KNOWN, self.on_event,
                                      on_health=self.on_health)
        self.task: asyncio.Task[None] | None = None

    def on_health(self, symbol: str, h: BookHealth) -> None:
        self.health[symbol].append(h.status)

    def on_event(self, ev: object) -> None:
        if isinstance(ev, DepthDiff | DepthSnapshot):
            sync = self.feed.syncs[ev.symbol]
            if sync.health.is_live:
                u = sync.last_update_id
                bbo = sync.book.bbo()
                assert bbo is not None
                self.bbo_by_u[ev.symbol][u] = bbo
                bt = self.pending[ev.symbol].pop(u, None)
                if bt is not None:
                    self._compare(bt, bbo)
        elif isinstance(ev, BookTicker):
            bbo = self.bbo_by_u[ev.symbol].get(ev.update_id)
            if bbo is not None:
                self._compare(ev, bbo)
            else:
                self.pending[ev.symbol][ev.update_id] = ev

    def _compare(self, bt: BookTicker, bbo: tuple[int, int, int, int]) -> None:
        inst = KNOWN[bt.symbol]
        want = (inst.price_to_ticks(bt.bid_price), inst.qty_to_lots(bt.bid_qty),
                inst.price_to_ticks(bt.ask_price), inst.qty_to_lots(bt.ask_qty))
        self.checked[bt.symbol] += 1
        if want != bbo:
            self.mismatched[bt.symbol] += 1
            self.first_mismatch = self.first_mismatch or f"{bt.symbol} u={bt.update_id}: {want} != {bbo}"

    async def __aenter__(self) -> Harness:
        self.task = asyncio.create_task(self.feed.run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.task is not None
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(self.task, timeout=5)

    def live(self, *symbols: str) -> bool:
        return all(self.feed.syncs[s].health.status is BookStatus.LIVE for s in symbols)


def two_symbol_items(max_lines: int = 6000) -> list:
    return load_binance_items([SESSIONS["btcusdt_20240808"], SESSIONS["ethusdt_20240808"]], max_lines)


async def test_syncs_both_symbols_and_matches_book_tickers() -> None:
    async with BinanceReplayServer(two_symbol_items(), speed=10) as srv, Harness(srv, [BTC, ETH]) as h:
        await until(lambda: h.live(BTC, ETH) and min(h.checked.values()) >= 30)
        for s in (BTC, ETH):
            st = h.feed.syncs[s].stats
            assert st.gaps == 0 and st.crossed == 0 and st.snapshots == 1
        assert h.mismatched == {BTC: 0, ETH: 0}, h.first_mismatch
        assert srv.depth_requests == {BTC: 1, ETH: 1}
        # /market carries the trades of both symbols.
        assert srv.sent["trade"] > 0 and h.feed.market_ws.messages > 0


async def test_dropped_depth_message_resyncs_that_symbol_only() -> None:
    async with BinanceReplayServer(two_symbol_items(), speed=10) as srv, Harness(srv, [BTC, ETH]) as h:
        await until(lambda: h.live(BTC, ETH))
        eth_stats_before = h.feed.syncs[ETH].stats.as_dict()
        srv.drop_depth(BTC, after=3)
        await until(lambda: h.feed.syncs[BTC].stats.gaps == 1 and h.live(BTC))
        checked_after_gap = h.checked[BTC]
        await until(lambda: h.checked[BTC] >= checked_after_gap + 20)
        btc, eth = h.feed.syncs[BTC].stats, h.feed.syncs[ETH].stats
        assert srv.dropped[BTC] and btc.resyncs == 1 and btc.snapshots == 2
        assert srv.depth_requests[BTC] == 2 and srv.depth_requests[ETH] == 1
        # ETH: no gap, no resync, no second snapshot, never left LIVE, and it kept applying.
        assert (eth.gaps, eth.resyncs, eth.snapshots) == (0, 0, 1)
        assert eth.applied > eth_stats_before["applied"]
        assert h.health[ETH] == [BookStatus.SYNCING, BookStatus.LIVE]
        assert BookStatus.SYNCING in h.health[BTC][2:]  # BTC went back to SYNCING, then LIVE again
        assert h.feed.public.connects == 1  # the socket was kept
        assert h.mismatched == {BTC: 0, ETH: 0}, h.first_mismatch


async def test_stale_stream_goes_stale_reconnects_and_returns_live() -> None:
    async with (BinanceReplayServer(two_symbol_items(), speed=10) as srv,
                Harness(srv, [BTC, ETH], stale_after_ms=300) as h):
        await until(lambda: h.live(BTC, ETH))
        # under load the 300 ms watchdog may already have cycled the socket once: freeze the live one
        await until(lambda: srv.freeze("public") == 1)
        c0 = h.feed.public.connects
        await until(lambda: h.feed.public.connects == c0 + 1 and h.live(BTC, ETH))
        for s in (BTC, ETH):
            log = h.health[s]
            i = len(log) - 1 - log[::-1].index(BookStatus.STALE)  # the freeze's STALE: the last one
            assert log[i + 1:] [:1] == [BookStatus.SYNCING] and log[-1] is BookStatus.LIVE
            assert h.feed.syncs[s].stats.snapshots == c0 + 1  # one snapshot per connection
        assert h.feed.public.stale_events >= 1
        n = h.checked[BTC]
        await until(lambda: h.checked[BTC] >= n + 10)
        assert h.mismatched == {BTC: 0, ETH: 0}, h.first_mismatch


async def test_disconnect_mid_session_reconnects_resyncs_and_bbo_matches() -> None:
    async with BinanceReplayServer(two_symbol_items(8000), speed=10) as srv, Harness(srv, [BTC, ETH]) as h:
        await until(lambda: h.live(BTC, ETH) and min(h.checked.values()) >= 10)
        assert await srv.disconnect("public") == 1
        await until(lambda: h.feed.public.connects == 2 and h.live(BTC, ETH))
        after = dict(h.checked)
        await until(lambda: all(h.checked[s] >= after[s] + 30 for s in (BTC, ETH)))
        assert h.mismatched == {BTC: 0, ETH: 0}, h.first_mismatch
        for s in (BTC, ETH):
            st = h.feed.syncs[s].stats
            assert st.snapshots == 2 and st.gaps == 0 and st.crossed == 0
            assert srv.depth_requests[s] == 2
        assert h.feed.market_ws.connects == 1  # the other connection was not touched


async def test_snapshot_older_than_buffered_diffs_is_requested_again() -> None:
    items = load_binance_items([SESSIONS["btcusdt_20240808"]], 8000)
    snap_at = next(i for i, it in enumerate(items) if it.kind == "snapshot")
    # Start streaming ~100 depth messages after the recording's snapshot, then serve that old snapshot.
    start = [i for i, it in enumerate(items) if it.kind == "depth" and i > snap_at][100]
    async with BinanceReplayServer(items, speed=10, start_at=start) as srv, Harness(srv, [BTC]) as h:
        srv.old_snapshot_first.add(BTC)
        await until(lambda: h.live(BTC) and h.checked[BTC] >= 20)
        ids = srv.served_ids[BTC]
        assert len(ids) == 2 and ids[0] < ids[1] and ids[0] == items[snap_at].payload["lastUpdateId"]
        st = h.feed.syncs[BTC].stats
        assert st.resyncs == 1 and st.snapshots == 1 and st.gaps == 0
        assert h.mismatched[BTC] == 0, h.first_mismatch


async def test_malformed_messages_are_counted_and_skipped() -> None:
    items = load_binance_items([SESSIONS["btcusdt_20240808"]], 6000)
    async with BinanceReplayServer(items, speed=10) as srv, Harness(srv, [BTC]) as h:
        await until(lambda: h.live(BTC))
        applied = h.feed.syncs[BTC].stats.applied
        srv.inject("public", b'{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","U":')  # truncated
        srv.inject("public", b"not json at all")
        srv.inject("public", b'{"stream":"btcusdt@bookTicker","data":{"e":"bookTicker","s":"BTCUSDT"}}')
        srv.inject("public", b'["an", "array"]')
        await until(lambda: h.feed.malformed == 4)
        await until(lambda: h.feed.syncs[BTC].stats.applied >= applied + 20 and h.checked[BTC] >= 20)
        st = h.feed.syncs[BTC].stats
        assert st.gaps == 0 and h.live(BTC) and h.feed.public.connects == 1
        assert h.mismatched[BTC] == 0, h.first_mismatch


async def test_unknown_fields_and_unknown_events_are_ignored() -> None:
    items = load_binance_items([SESSIONS["btcusdt_20240808"]], 5000)
    async with BinanceReplayServer(items, speed=10, unknown_fields=True) as srv, Harness(srv, [BTC]) as h:
        srv.inject("public", b'{"stream":"btcusdt@rpiDepth@500ms","data":{"e":"rpiDepthUpdate","s":"BTC"}}')
        srv.inject("public", b'{"result":null,"id":7}')
        await until(lambda: h.live(BTC) and h.checked[BTC] >= 30)
        assert h.feed.malformed == 0
        assert h.feed.syncs[BTC].stats.gaps == 0
        assert h.mismatched[BTC] == 0, h.first_mismatch


async def test_rate_limited_snapshot_honours_retry_after() -> None:
    items = load_binance_items([SESSIONS["btcusdt_20240808"]], 4000)
    async with BinanceReplayServer(items, speed=10) as srv, Harness(srv, [BTC]) as h:
        srv.fail_next_depth.append((429, 0.3))
        t0 = asyncio.get_running_loop().time()
        await until(lambda: h.live(BTC))
        assert asyncio.get_running_loop().time() - t0 >= 0.3
        assert srv.depth_requests[BTC] == 2


@pytest.mark.parametrize("env", ["mainnet", "demo", "testnet", "exchange-sim"])
def test_stream_urls_use_the_split_routes(env: str) -> None:
    s = load_settings(overrides={"venue": {"name": "binance-usdm", "environment": env,
                                           "symbols": [BTC, ETH]}})
    feed = BinanceMarketFeed(s.venue, s.market, KNOWN, lambda ev: None)
    assert feed.public_url.endswith(
        "/public/stream?streams=btcusdt@depth@100ms/btcusdt@bookTicker/ethusdt@depth@100ms/ethusdt@bookTicker")
    assert feed.market_url.endswith(
        "/market/stream?streams=btcusdt@aggTrade/btcusdt@markPrice@1s/ethusdt@aggTrade/ethusdt@markPrice@1s")
    if env == "mainnet":
        assert feed.public_url.startswith("wss://fstream.binance.com/public/")
        assert feed.rest_url == "https://fapi.binance.com"


def test_depth_weight_and_weight_limiter() -> None:
    from bot.venues.binance_usdm.rest import WeightLimiter, depth_weight

    assert [depth_weight(n) for n in (5, 10, 20, 50, 100, 500, 1000)] == [2, 2, 2, 2, 5, 10, 20]
    lim = WeightLimiter(100)
    t = 60 * 1000 + 10.0  # 10 s into a minute
    for _ in range(5):
        assert lim.delay_s(20, t) == 0.0
        lim.spend(20, t)
    assert lim.delay_s(20, t) == pytest.approx(50.05)  # budget used: wait for the next minute
    assert lim.delay_s(20, t + 50.1) == 0.0  # a new minute resets the count
    lim.observe_used(90, t + 51)  # the venue counts other processes on our IP too
    assert lim.delay_s(20, t + 51) > 0 and lim.delay_s(10, t + 51) == 0.0
    lim.block(30, t + 52)  # 429/418 Retry-After
    assert lim.delay_s(2, t + 53) == pytest.approx(29.0)
    lim.set_budget_from_exchange_info({"rateLimits": [
        {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
        {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200}]})
    assert lim.budget == 6000
