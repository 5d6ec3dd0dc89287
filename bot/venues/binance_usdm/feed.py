"""Binance USD-M public market feed: websocket streams + REST snapshots -> book syncs -> DOM -> on_event.

Streams (exchange-facts A1, the 2026 split routes), combined-stream mode:
  <ws_public>/stream?streams=btcusdt@depth@100ms/btcusdt@bookTicker/...   (diff depth, best bid/ask)
  <ws_market>/stream?streams=btcusdt@aggTrade/btcusdt@markPrice@1s/...   (trades, mark price + funding)

Book keeping follows the official "manage a local order book" algorithm through `BinanceBookSync`: the
diffs of a symbol are buffered from the socket, a REST snapshot of THAT symbol is fetched once the
buffer has started (so the snapshot is not older than the buffer's start), and the sync splices them.
A gap resyncs that symbol only and keeps the socket. A reconnect resets every sync of the connection
(the sequence is broken for all of them); the planned 24 h rollover does not (no data hole).

`on_event(ev)` is called after the book was updated, so consumers read the new book. Every message is
handled in its own error boundary: malformed ones (bad JSON, wrong types, NaN/inf/negative values, a
level that cannot be applied) are counted and logged once per `market.malformed_log_every`, a book they
may have damaged resyncs; any other exception is logged with its traceback; the feed goes on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson

from bot.domain.events import DepthDiff
from bot.domain.instrument import Instrument
from bot.errors import MalformedMessage
from bot.logging import get_logger
from bot.market.book import OrderBook, default_depth_ticks
from bot.market.health import BookHealth, BookStatus
from bot.market.sync import BinanceBookSync
from bot.settings.core import MarketSection, VenueSection
from bot.venues.binance_usdm.instruments import instrument_for
from bot.venues.binance_usdm.parse import SNAPSHOT_STREAM_SUFFIX, parse_message, parse_snapshot
from bot.venues.binance_usdm.rest import DepthClient, WeightLimiter, endpoints_for
from bot.venues.errors import RateLimited, VenueUnavailable
from bot.venues.feed_common import FeedHealthMixin
from bot.venues.ws import WsConfig, WsStream, backoff_delay_s

__all__ = ["BinanceMarketFeed", "market_streams", "public_streams"]


def public_streams(symbols: tuple[str, ...] | list[str], depth_stream: str) -> list[str]:
    return [s for sym in symbols for s in (f"{sym.lower()}@{depth_stream}", f"{sym.lower()}@bookTicker")]


def market_streams(symbols: tuple[str, ...] | list[str], trade_stream: str) -> list[str]:
    return [s for sym in symbols for s in (f"{sym.lower()}@{trade_stream}", f"{sym.lower()}@markPrice@1s")]


class BinanceMarketFeed(FeedHealthMixin):
    def __init__(self, venue: VenueSection, market: MarketSection, instruments: dict[str, Instrument],
                 on_event: Callable[[Any], None], *,
                 on_raw: Callable[[bytes, int], None] | None = None,
                 on_health: Callable[[str, BookHealth], None] | None = None,
                 ref_prices: dict[str, float] | None = None,
                 session: aiohttp.ClientSession | None = None) -> None:
        self.venue = venue
        self.market = market
        self.symbols = tuple(venue.symbols)
        self.on_event = on_event
        self.on_raw = on_raw  # the recorder: every raw message and REST snapshot, as received
        self.on_health = on_health
        self._log = get_logger("feed", venue="binance-usdm")
        self.rest_url, ws_public, ws_market = endpoints_for(venue.environment, venue.rest_url,
                                                             venue.ws_public_url, venue.ws_market_url)
        self.books: dict[str, OrderBook] = {}
        self.syncs: dict[str, BinanceBookSync] = {}
        for sym in self.symbols:
            inst = instrument_for(sym, table=instruments)
            ref = (ref_prices or {}).get(sym)
            book = OrderBook(inst, default_depth_ticks(inst, ref, market.depth_bps))
            self.books[sym] = book
            self.syncs[sym] = BinanceBookSync(book)
        self.public_url = f"{ws_public}/stream?streams=" + "/".join(
            public_streams(self.symbols, market.binance_depth_stream))
        self.market_url = f"{ws_market}/stream?streams=" + "/".join(
            market_streams(self.symbols, market.binance_trade_stream))
        cfg = WsConfig.from_market(market)
        cfg.open_timeout_s = min(cfg.open_timeout_s, venue.request_timeout_ms / 1000.0 * 2)
        self.public = WsStream("binance-public", self.public_url, cfg, self._on_public,
                               on_open=self._on_public_open, on_close=self._on_public_close,
                               on_stale=self._on_public_stale)
        self.market_ws = WsStream("binance-market", self.market_url, cfg, self._on_market)
        self.limiter = WeightLimiter(market.rest_weight_budget_per_min)
        self._session = session
        self._depth: DepthClient | None = None
        self._want = asyncio.Event()  # some sync needs a snapshot
        self._seen = dict.fromkeys(self.symbols, False)  # a diff was buffered since the last reset
        self._inflight: set[str] = set()
        self.malformed = 0
        self.snapshot_requests = 0

    # ------------------------------------------------------------------ lifecycle
    async def run(self) -> None:
        own = self._session is None
        session = self._session or aiohttp.ClientSession()
        self._depth = DepthClient(self.rest_url, session, self.limiter, self.market.snapshot_limit,
                                  self.venue.request_timeout_ms / 1000.0)
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.public.run())
                tg.create_task(self.market_ws.run())
                tg.create_task(self._snapshot_loop(tg))
        finally:
            if own:
                await session.close()

    # ------------------------------------------------------------------ /public: depth + bookTicker
    def _on_public(self, raw: bytes, ts_recv_ns: int) -> None:
        # One error boundary per message (issue 11): a malformed one is counted and skipped (a skipped
        # diff breaks the pu chain, so its symbol resyncs); anything else is logged with its traceback
        # and the message's book resyncs. The socket and every other symbol go on.
        if self.on_raw is not None:
            self.on_raw(raw, ts_recv_ns)
        ev = None
        try:
            ev = parse_message(raw, ts_recv_ns)
            if ev is None:
                return
            if type(ev) is DepthDiff:
                if not self._apply_diff(ev, ts_recv_ns):
                    return  # a stream we did not ask for
                self._seen[ev.symbol] = True
            self.on_event(ev)
        except MalformedMessage as e:
            self._malformed(e, raw)
        except Exception as e:
            self._handler_error(e, raw, getattr(ev, "symbol", None))

    async def _on_public_open(self, stream: WsStream, rollover: bool) -> None:
        if rollover:
            return  # both connections deliver during the overlap; duplicates are dropped by u <= last u
        for sym, sync in self.syncs.items():
            self._seen[sym] = False
            before = sync.health.status
            sync.reset("connected: waiting for diffs and a snapshot", time.time_ns())
            if sync.health.status is not before or sync.health.changes == 0:
                self._health_changed(sync)

    def _on_public_close(self, reason: str) -> None:
        for sync in self.syncs.values():
            if sync.health.status is not BookStatus.SYNCING:
                sync.reset(f"disconnected: {reason}", time.time_ns())
                self._health_changed(sync)

    def _on_public_stale(self, reason: str) -> None:
        self._mark_stale_all(reason)

    # ------------------------------------------------------------------ /market: trades + mark price
    def _on_market(self, raw: bytes, ts_recv_ns: int) -> None:
        if self.on_raw is not None:
            self.on_raw(raw, ts_recv_ns)
        try:
            ev = parse_message(raw, ts_recv_ns)
            if ev is not None:
                self.on_event(ev)
        except MalformedMessage as e:
            self._malformed(e, raw)
        except Exception as e:  # no book is touched here: count, log, go on
            self._handler_error(e, raw, None)

    # ------------------------------------------------------------------ snapshots
    async def _snapshot_loop(self, tg: asyncio.TaskGroup) -> None:
        while True:
            await self._want.wait()
            self._want.clear()
            if not self.public.connected:
                continue  # on_open resets the syncs; the next diff asks again
            for sym, sync in self.syncs.items():
                if sync.needs_snapshot and self._seen[sym] and sym not in self._inflight:
                    sync.snapshot_requested()
                    self._inflight.add(sym)
                    tg.create_task(self._fetch_snapshot(sym))

    async def _fetch_snapshot(self, sym: str) -> None:
        sync = self.syncs[sym]
        assert self._depth is not None
        failures = 0
        try:
            for _ in range(1000):  # bounded; each turn waits (rate limiter, backoff) or ends
                if failures:
                    await asyncio.sleep(backoff_delay_s(failures, self.market.reconnect_min_ms,
                                                        self.market.reconnect_max_ms))
                self.snapshot_requests += 1
                try:
                    body, ts_recv_ns = await self._depth.depth(sym)
                except RateLimited as e:
                    failures += 1
                    self._log.warning("snapshot_rate_limited", symbol=sym, retry_after_s=e.retry_after_s,
                                      banned=e.banned)
                    continue  # the limiter holds the next request until Retry-After has passed
                except VenueUnavailable as e:
                    failures += 1
                    self._log.warning("snapshot_failed", symbol=sym, error=str(e)[:200])
                    continue
                if self.on_raw is not None:
                    stream = f"{sym.lower()}{SNAPSHOT_STREAM_SUFFIX}".encode()
                    self.on_raw(b'{"stream":"' + stream + b'","data":' + body + b"}", ts_recv_ns)
                before = sync.health.status
                try:
                    snap = parse_snapshot(orjson.loads(body), sym, ts_recv_ns)
                    sync.on_snapshot(snap, ts_recv_ns)  # malformed levels: it asks for a new one
                except (MalformedMessage, orjson.JSONDecodeError) as e:
                    failures += 1
                    if sync.health.status is not before:
                        self._health_changed(sync)
                    self._malformed(MalformedMessage(f"depth snapshot: {e}"), body)
                    sync.snapshot_requested()  # this task asks again itself, after its backoff
                    continue
                if sync.health.status is not before:
                    self._health_changed(sync)
                self.on_event(snap)
                if not sync.needs_snapshot:
                    return
                # The snapshot was older than every buffered diff: Binance says take another one.
                failures += 1
                sync.snapshot_requested()
                self._log.info("snapshot_too_old", symbol=sym, last_update_id=snap.last_update_id)
        finally:
            self._inflight.discard(sym)
            if sync.needs_snapshot:
                self._want.set()  # a gap arrived while this request was in flight
