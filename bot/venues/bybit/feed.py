"""Bybit v5 linear public market feed: one websocket, orderbook/publicTrade/tickers -> syncs -> DOM.

Wire rules (exchange-facts B1/B2):
- `wss://stream.bybit.com/v5/public/linear` (testnet `stream-testnet`; demo trading uses mainnet public);
- subscribe `{"op":"subscribe","args":["orderbook.{depth}.{SYM}","publicTrade.{SYM}","tickers.{SYM}"]}`;
- a JSON `{"op":"ping"}` every 20 s, else the connection is cut after 10 min without data;
- after subscribing Bybit pushes a snapshot then deltas; a new snapshot or `u = 1` resets the book.
`BybitBookSync` flags `u != last u + 1` (not promised by the docs, true on recorded data); the feed then
unsubscribes and resubscribes that symbol's orderbook topic, which makes Bybit push a fresh snapshot.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from typing import Any

import orjson

from bot.domain.events import DepthDiff
from bot.domain.instrument import Instrument
from bot.errors import MalformedMessage
from bot.logging import get_logger
from bot.market.book import OrderBook, default_depth_ticks
from bot.market.health import BookHealth
from bot.market.instruments import instrument_for
from bot.market.sync import BybitBookSync
from bot.settings.core import MarketSection, VenueSection
from bot.venues.bybit.parse import parse_message
from bot.venues.endpoints import BYBIT_PUBLIC_LINEAR
from bot.venues.feed_common import FeedHealthMixin
from bot.venues.ws import WsConfig, WsStream

__all__ = ["PUBLIC_LINEAR", "BybitMarketFeed"]

PUBLIC_LINEAR = BYBIT_PUBLIC_LINEAR


class BybitMarketFeed(FeedHealthMixin):
    def __init__(self, venue: VenueSection, market: MarketSection, instruments: dict[str, Instrument],
                 on_event: Callable[[Any], None], *,
                 on_raw: Callable[[bytes, int], None] | None = None,
                 on_health: Callable[[str, BookHealth], None] | None = None,
                 ref_prices: dict[str, float] | None = None) -> None:
        self.market = market
        self.symbols = tuple(venue.symbols)
        self.on_event = on_event
        self.on_raw = on_raw
        self.on_health = on_health
        self._log = get_logger("feed", venue="bybit")
        self.url = venue.ws_public_url or PUBLIC_LINEAR[venue.environment]
        self.books: dict[str, OrderBook] = {}
        self.syncs: dict[str, BybitBookSync] = {}
        for sym in self.symbols:
            # Bybit's own instrument if given; else the embedded rules (a finer grid than the venue's is
            # still exact for book keeping: every venue price is a whole number of finer ticks).
            inst = instruments.get(sym) or instrument_for(sym)
            book = OrderBook(inst, default_depth_ticks(inst, (ref_prices or {}).get(sym), market.depth_bps))
            self.books[sym] = book
            self.syncs[sym] = BybitBookSync(book, resync_on_gap=market.bybit_resync_on_gap)
        cfg = WsConfig.from_market(market, ping_payload=b'{"op":"ping"}')
        self.stream = WsStream("bybit-public", self.url, cfg, self._on_message, on_open=self._on_open,
                               on_close=self._on_close, on_stale=self._on_stale)
        self._want = asyncio.Event()
        self._req_ids = itertools.count(1)
        self.malformed = 0
        self.resubscribes = 0
        self.rejected: list[str] = []

    def topics(self, sym: str) -> list[str]:
        return [f"orderbook.{self.market.bybit_depth}.{sym}", f"publicTrade.{sym}", f"tickers.{sym}"]

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.stream.run())
            tg.create_task(self._resync_loop())

    # ------------------------------------------------------------------ connection events
    async def _op(self, op: str, args: list[str]) -> bool:
        req = {"req_id": f"{op[:3]}{next(self._req_ids)}", "op": op, "args": args}
        return await self.stream.send(orjson.dumps(req))

    async def _on_open(self, stream: WsStream, rollover: bool) -> None:
        if not rollover:
            for sync in self.syncs.values():
                sync.reset("connected: waiting for the snapshot", time.time_ns())
                self._health_changed(sync)
        # One request per symbol keeps each under Bybit's args size limit whatever the symbol count.
        for sym in self.symbols:
            await self._op("subscribe", self.topics(sym))

    def _on_close(self, reason: str) -> None:
        for sync in self.syncs.values():
            sync.reset(f"disconnected: {reason}", time.time_ns())
            self._health_changed(sync)

    def _on_stale(self, reason: str) -> None:
        self._mark_stale_all(reason)

    # ------------------------------------------------------------------ messages
    def _on_message(self, raw: bytes, ts_recv_ns: int) -> None:
        # One error boundary per message (issue 11): malformed -> counted and skipped (a damaged book
        # resubscribes); anything else -> logged with its traceback, that symbol resyncs; the socket
        # and the other symbols go on.
        if self.on_raw is not None:
            self.on_raw(raw, ts_recv_ns)
        sym = None
        try:
            events = parse_message(raw, ts_recv_ns)
            if not events:
                self._control(raw)
                return
            for ev in events:
                sym = ev.symbol if type(ev) is DepthDiff else None
                if type(ev) is DepthDiff and not self._apply_diff(ev, ts_recv_ns):
                    continue
                self.on_event(ev)
        except MalformedMessage as e:
            self._malformed(e, raw)
        except Exception as e:
            self._handler_error(e, raw, sym)

    def _control(self, raw: bytes) -> None:
        """Pong and subscription acks; a refused subscription is logged (a wrong symbol or topic)."""
        try:
            msg = orjson.loads(raw)
        except orjson.JSONDecodeError:  # parse_message decoded it already; kept for a direct caller
            return
        if isinstance(msg, dict) and msg.get("success") is False:
            self.rejected.append(str(msg.get("ret_msg", ""))[:200])
            self._log.error("bybit_request_rejected", op=msg.get("op"), ret_msg=msg.get("ret_msg"))

    async def _resync_loop(self) -> None:
        while True:
            await self._want.wait()
            self._want.clear()
            for sym, sync in self.syncs.items():
                if not sync.needs_snapshot:
                    continue
                sync.snapshot_requested()
                topic = f"orderbook.{self.market.bybit_depth}.{sym}"
                # Unsubscribe + subscribe makes Bybit push a fresh snapshot of this symbol only.
                if await self._op("unsubscribe", [topic]) and await self._op("subscribe", [topic]):
                    self.resubscribes += 1
                    self._log.info("bybit_resubscribed", symbol=sym, reason=sync.health.reason)
