"""The minimal reference of `bench latency --venue exchange-sim`: what the least a bot must do between a
depth message and its order costs on the same box, exchange, data and transport, in the same run.

Per message: `orjson.loads` -> a book per symbol (the project's own ladder, bot.market.book.OrderBook: the
fastest book we have, so the reference is not slowed by a naive one; the diffs applied as they come, no
sequencing check; seeded once from the bot's synced book, as a REST snapshot would seed it) -> a trivial rule (the bench
says "now": the same trigger slots as the bot's entries, taken in turn) -> the request (a LIMIT IOC 20
ticks under its best bid, the minimum quantity, its own client id) signed with HMAC-SHA256 -> POSTed on
the same aiohttp session with the same request headers, in a task started eagerly (as the engine starts an
entry; the bot's signer posts on that session directly too, without ccxt's fetch preamble).
Nothing else: no sequencing check, no features, no risk, no journal, no planning, no trade machine. The
time runs from the same receive stamp to the same hand-off to aiohttp as the bot's entries.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import aiohttp
import orjson
import yarl

from bot.domain.instrument import decimals_of
from bot.market.book import OrderBook

__all__ = ["Reference"]


class Reference:
    def __init__(self, ex: Any, instruments: dict[str, Any], secret: str, api_key: str) -> None:
        self.ex = ex
        self.inst = instruments
        self.url = yarl.URL(ex.urls["api"]["fapiPrivate"] + "/order", encoded=True)
        self._mac = hmac.new(secret.encode(), digestmod=hashlib.sha256)
        self._headers = ex.prepare_request_headers({"X-MBX-APIKEY": api_key,
                                                    "Content-Type": "application/x-www-form-urlencoded"})
        t = ex.timeout / 1000
        self._timeout = aiohttp.ClientTimeout(total=t, sock_connect=t, sock_read=t)
        self.books: dict[str, OrderBook] = {}
        self.n = 0

    def seed(self, symbol: str, book: Any) -> None:
        """The snapshot: the bot's synced book (ticks, lots) at the start, in the reference's own units."""
        own = OrderBook(self.inst[symbol], book.depth_ticks)
        own.apply_snapshot_ticks(book.bids(), book.asks())
        self.books[symbol] = own

    def on_raw(self, raw: bytes) -> tuple[str, int] | None:
        """Parse + apply one message; returns (symbol, best bid ticks) of a depth message it applied."""
        msg = orjson.loads(raw)
        d = msg.get("data", msg)
        if d.get("e") != "depthUpdate":
            return None
        sym = d["s"]
        book = self.books.get(sym)
        if book is None:
            return None
        book.apply_diff(d["b"], d["a"])
        bid = book.best_bid_ticks
        return None if bid is None else (sym, bid)

    def order(self, symbol: str, bid_ticks: int, spawn: Callable[[Any], Any]) -> None:
        """The rule fired: build, sign and hand the IOC to the transport (`spawn` starts the send)."""
        inst = self.inst[symbol]
        self.n += 1
        px = (bid_ticks - 20) * inst.tick
        # the least quantity the exchange takes: LOT_SIZE.minQty and MIN_NOTIONAL (exchange-facts A5)
        lots = max(round(float(inst.min_qty) / inst.step), math.ceil(float(inst.min_notional) / (px * inst.step)))
        params = {"symbol": symbol, "side": "BUY", "type": "LIMIT", "timeInForce": "IOC",
                  "quantity": f"{lots * inst.step:.{decimals_of(inst.step_size)}f}",
                  "price": f"{px:.{decimals_of(inst.tick_size)}f}",
                  "newClientOrderId": f"ref-{self.n}", "timestamp": time.time_ns() // 1_000_000}
        query = urlencode(params)
        h = self._mac.copy()
        h.update(query.encode())
        body = query + "&signature=" + h.hexdigest()
        spawn(self._post(body))

    async def _post(self, body: str) -> Any:
        async with self.ex.session.post(self.url, data=body.encode(), headers=dict(self._headers),
                                        timeout=self._timeout) as r:
            raw = await r.read()
            if r.status >= 400:  # counted by the bench as a reference error
                raise RuntimeError(f"HTTP {r.status}: {raw[:200]!r}")
            return orjson.loads(raw)

