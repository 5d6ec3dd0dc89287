"""The minimal reference of `bench latency --venue exchange-sim`: what the least a bot must do between a
depth message and its order costs on the same box, exchange, data and transport, in the same run.

Per message: `orjson.loads` -> a book per symbol (the project's own ladder, bot.market.book.OrderBook: the
fastest book we have, so the reference is not slowed by a naive one; the diffs applied as they come, no
sequencing check; seeded once from the bot's synced book, as a REST snapshot would seed it) -> a trivial rule (the bench
says "now": the same trigger slots as the bot's entries, taken in turn) -> the request (a LIMIT IOC 20
ticks under its best bid, the minimum quantity, its own client id) signed with HMAC-SHA256 -> handed to
ccxt's `fetch` over the same aiohttp session, in a task started eagerly (as the engine starts an entry).
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

import orjson

from bot.domain.instrument import decimals_of
from bot.market.book import OrderBook

__all__ = ["Reference"]


class Reference:
    def __init__(self, ex: Any, instruments: dict[str, Any], secret: str, api_key: str) -> None:
        self.ex = ex
        self.inst = instruments
        self.url = ex.urls["api"]["fapiPrivate"] + "/order"
        self._mac = hmac.new(secret.encode(), digestmod=hashlib.sha256)
        self._key = api_key
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
        headers = {"X-MBX-APIKEY": self._key, "Content-Type": "application/x-www-form-urlencoded"}
        spawn(self.ex.fetch(self.url, "POST", headers, body))

