"""Builders for constructed engine scenarios: a book, prints shaped into bars, depth events."""

from __future__ import annotations

from bot.domain.events import Trade
from bot.domain.instrument import Instrument
from bot.domain.types import EntryIntent
from bot.market.book import OrderBook
from bot.market.health import BookStatus
from bot.signals.engine import SignalEngine

INST = Instrument("binance-usdm", "TESTUSDT", "0.1", "1")  # price 10,000.0 = 100,000 ticks; lots = units
S = 1_000_000_000
LIVE = BookStatus.LIVE


class Feed:
    """Drives a SignalEngine for INST with a book it owns; collects every intent."""

    def __init__(self, engine: SignalEngine, bid: int = 100_000, status: BookStatus = LIVE) -> None:
        self.engine = engine
        self.book = OrderBook(INST, depth_ticks=2000)
        self.status = status
        self.intents: list[EntryIntent] = []
        self.tid = 0
        self.set_touch(bid, 10, bid + 1, 10, ts=0)

    def set_touch(self, bid: int, bid_lots: int, ask: int, ask_lots: int, ts: int, depth_lots: int = 10,
                  ask_depth_lots: int | None = None) -> None:
        """Replace the book: 10 levels a side, one tick apart, touch sizes as given."""
        ad = depth_lots if ask_depth_lots is None else ask_depth_lots
        bids = [(bid - i, bid_lots if i == 0 else depth_lots) for i in range(10)]
        asks = [(ask + i, ask_lots if i == 0 else ad) for i in range(10)]
        self.book.apply_snapshot_ticks(bids, asks)
        self.depth(ts)

    def depth(self, ts: int) -> None:
        self.intents += self.engine.on_depth(INST.symbol, self.book, self.status, ts, ts)

    def trade(self, ts: int, price_ticks: int, lots: int, buy: bool) -> None:
        self.tid += 1
        t = Trade(INST.symbol, self.tid, INST.ticks_to_str(price_ticks), str(lots), not buy, ts, ts)
        self.intents += self.engine.on_trade(t, ts)

    def bar(self, second: int, o: int, h: int, lo: int, c: int, lots: int = 1, buy: bool | None = None) -> None:
        """Prints o, l, h, c (or o, h, l, c on a down bar) inside [second, second + 1) s."""
        up = c >= o
        path = (o, lo, h, c) if up else (o, h, lo, c)
        for k, p in enumerate(path):
            self.trade(second * S + (k + 1) * 200_000_000, p, lots, up if buy is None else buy)
