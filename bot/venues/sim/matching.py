"""Matching of our orders against one symbol's L2 market (pure, synchronous, ints).

The market book is the venue's displayed book, rebuilt from the source's depth messages by the same
`BinanceBookSync` + `OrderBook` the bot uses (the snapshot/U/u/pu splice included). Our orders are not
displayed in it; they live beside it:

- Resting orders join the FIFO queue *behind the displayed size at their price* when they arrive
  (`queue_ahead_lots`). The queue ahead shrinks by (a) trades at that price on our side (an
  aggressor hitting that level eats the queue first, then us), and (b) pro rata by the other size
  decreases at that level seen in the depth stream (cancels): qa' = ceil(qa * new / old), rounding
  against us. Increases join behind us. Caveat: Binance sends trades and depth on separate streams, so
  a trade's own size decrease can reach us as a depth decrease first and count twice (slightly
  optimistic queue); replayed data have no better information.
- A trade *through* our price (a sell print below our bid, a buy print above our ask) fills all of
  our remaining size: the aggressor swept past our level, and we had priority there.
- When the opposite side of the book comes to our price (a crossing depth update), we fill as maker
  at our price against the displayed size that crosses.
- Taking liquidity (market orders, crossing limits) walks the displayed book level by level (honest
  slippage). What we take is remembered per level (`_taken_*`) until the venue publishes that level
  again (or a snapshot), so two orders in a row cannot both take the same displayed lots.
- How cancels move the queue ahead is the queue model's (bot/venues/sim/queue.py, `[sim] queue_model`):
  pro rata (above) or risk-averse (hftbacktest's: only trades advance us).
- The top of the book: the depth diffs trail the venue's bookTicker stream (a median ~26 ms on the
  recorded sessions, issue 13). When the source has a bookTicker newer than the last applied diff (its
  `u` is in the depth stream's id space, exchange-facts A1), its best bid/ask and sizes *are* the top
  (`[sim] book_ticker_top`): depth levels better than it are stale and hidden, the depth book supplies
  the levels behind it. Once a diff with a later id is applied, the depth book is the top again.
  Recorded tickers are kept raw and parsed only when the top is needed (an order, a resting order, a
  watched mark): most of a session's messages are tickers.
"""

from __future__ import annotations

import orjson

from bot.domain.events import BookTicker, DepthDiff, DepthSnapshot
from bot.domain.instrument import Instrument
from bot.market.book import OrderBook
from bot.market.sync import BinanceBookSync
from bot.venues.sim.orders import SimOrder
from bot.venues.sim.queue import ProRataQueue, QueueModel

__all__ = ["Fill", "SymbolMarket"]

Fill = tuple[SimOrder, int, int]  # (our order, lots, price ticks): a maker fill at our price


class SymbolMarket:
    __slots__ = ("_bt_seen", "_taken_ask", "_taken_bid", "asks", "bids", "book", "bt_ask", "bt_ask_lots", "bt_bid",
                 "bt_bid_lots", "bt_raw", "bt_u", "funding_rate", "index_ticks", "inst", "inv_step", "inv_tick",
                 "last_ticks", "mark_from_stream", "mark_ticks_stream", "next_funding_ns", "queue", "symbol",
                 "sync", "use_book_ticker")

    def __init__(self, instrument: Instrument, depth_ticks: int = 20_000, queue: QueueModel | None = None,
                 use_book_ticker: bool = True) -> None:
        self.inst = instrument
        self.symbol = instrument.symbol
        self.book = OrderBook(instrument, depth_ticks)
        self.sync = BinanceBookSync(self.book)
        self.inv_tick = 1.0 / instrument.tick
        self.inv_step = 1.0 / instrument.step
        self.bids: list[SimOrder] = []  # our resting BUY orders
        self.asks: list[SimOrder] = []  # our resting SELL orders
        self._taken_ask: dict[int, list[int]] = {}  # ticks -> [lots we took, displayed size then]
        self._taken_bid: dict[int, list[int]] = {}
        self.last_ticks = 0  # last trade price (Binance "CONTRACT_PRICE")
        self.mark_from_stream = False
        self.mark_ticks_stream = 0.0
        self.index_ticks = 0.0
        self.funding_rate: float | None = None
        self.next_funding_ns = 0
        self.queue: QueueModel = queue or ProRataQueue()
        self.use_book_ticker = use_book_ticker
        self.bt_raw: bytes | None = None  # the last recorded ticker, not parsed yet
        self.bt_u = -1  # its update id (-1: none yet)
        self.bt_bid = self.bt_bid_lots = self.bt_ask = self.bt_ask_lots = 0
        self._bt_seen = (0, 0)  # the ticker top's prices when last acted on (after_ticker)

    # ------------------------------------------------------------------ the top of the book
    def on_book_ticker_raw(self, raw: bytes) -> None:
        """A recorded ticker line (kept; parsed when the top is needed)."""
        if self.use_book_ticker:
            self.bt_raw = raw

    def on_book_ticker(self, ev: BookTicker) -> None:
        if self.use_book_ticker and ev.update_id is not None and ev.update_id > self.bt_u:
            self.bt_raw = None
            self._set_bt(ev.update_id, ev.bid_price, ev.bid_qty, ev.ask_price, ev.ask_qty)

    def _set_bt(self, u: int, b: object, bq: object, a: object, aq: object) -> None:
        it, ist = self.inv_tick, self.inv_step
        self.bt_u = u
        self.bt_bid = int(float(b) * it + 0.5)  # type: ignore[arg-type]
        self.bt_bid_lots = int(float(bq) * ist + 0.5)  # type: ignore[arg-type]
        self.bt_ask = int(float(a) * it + 0.5)  # type: ignore[arg-type]
        self.bt_ask_lots = int(float(aq) * ist + 0.5)  # type: ignore[arg-type]

    def ticker_top(self) -> bool:
        """Is the bookTicker the top now (newer than the last applied diff)? Parses a kept raw ticker."""
        raw = self.bt_raw
        if raw is not None:
            self.bt_raw = None
            try:
                d = orjson.loads(raw)
                d = d.get("data", d)
                u = int(d["u"])
                if u > self.bt_u:
                    self._set_bt(u, d["b"], d["B"], d["a"], d["A"])
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
                pass  # a damaged ticker: the depth book stays the top (the bot's session counts the line)
        if self.bt_u < 0:
            return False
        return self.bt_u > self.sync._last_u and self.bt_bid_lots > 0 and self.bt_ask_lots > 0

    def best_bid_ticks(self) -> int | None:
        return self.bt_bid if self.ticker_top() else self.book.best_bid_ticks

    def best_ask_ticks(self) -> int | None:
        return self.bt_ask if self.ticker_top() else self.book.best_ask_ticks

    def bbo(self) -> tuple[int, int, int, int] | None:
        """(bid ticks, bid lots, ask ticks, ask lots) of the matching top, None if a side is empty."""
        if self.ticker_top():
            return self.bt_bid, self.bt_bid_lots, self.bt_ask, self.bt_ask_lots
        return self.book.bbo()

    def mid_ticks(self) -> float | None:
        if self.ticker_top():
            return (self.bt_bid + self.bt_ask) / 2.0
        return self.book.mid_ticks()

    def size_at(self, side_sign: int, ticks: int) -> int:
        """Displayed size at `ticks` on the bid (+1) or ask (-1) side of the matching book."""
        if self.ticker_top():
            if side_sign > 0:
                if ticks >= self.bt_bid:
                    return self.bt_bid_lots if ticks == self.bt_bid else 0
            elif ticks <= self.bt_ask:
                return self.bt_ask_lots if ticks == self.bt_ask else 0
        return self.book.bid_size(ticks) if side_sign > 0 else self.book.ask_size(ticks)

    def _levels(self, buy: bool, n: int) -> tuple[list[tuple[int, int]], bool]:
        """The first `n` levels a taker meets (asks for a buy), and whether the side has no more."""
        depth = self.book.asks(n) if buy else self.book.bids(n)
        exhausted = len(depth) < n
        if not self.ticker_top():
            return depth, exhausted
        if buy:
            top = self.bt_ask
            rest = [lv for lv in depth if lv[0] > top]
            return [(top, self.bt_ask_lots), *rest], exhausted
        top = self.bt_bid
        rest = [lv for lv in depth if lv[0] < top]
        return [(top, self.bt_bid_lots), *rest], exhausted

    def after_ticker(self) -> tuple[list[Fill], bool]:
        """(maker fills, top prices moved) after a ticker: the other side may have come to our resting
        orders, the size at our price may have changed. Most tickers change only sizes away from our
        prices: those cost no queue update (the hot path of a backtest: most messages are tickers)."""
        if not self.ticker_top():
            return [], False
        top = (self.bt_bid, self.bt_ask)
        moved = top != self._bt_seen
        self._bt_seen = top
        if (self.bids or self.asks) and (moved or any(o.price_ticks == top[0] for o in self.bids)
                                         or any(o.price_ticks == top[1] for o in self.asks)):
            return self._after_depth(), moved
        return [], moved

    # ------------------------------------------------------------------ prices
    def mark_ticks(self) -> float:
        """Mark price in (float) ticks: the markPrice stream when the source has one, else the mid
        (recorded sessions carry no markPrice; the mid is the closest public proxy), else last."""
        if self.mark_from_stream:
            return self.mark_ticks_stream
        mid = self.mid_ticks()
        if mid is not None:
            return mid
        return float(self.last_ticks)

    def reference_ticks(self, working_type: str) -> float:
        if working_type == "MARK_PRICE":
            return self.mark_ticks()
        if self.last_ticks:
            return float(self.last_ticks)
        return self.mark_ticks()

    # ------------------------------------------------------------------ book input
    def apply_diff(self, ev: DepthDiff, now_ns: int) -> list[Fill]:
        applied = self.sync.stats.applied
        self.sync.on_diff(ev, now_ns)
        self._bt_seen = (0, 0)  # the depth may be the top now: the next ticker acts in full
        if (self._taken_ask or self._taken_bid) and self.sync.stats.applied != applied:
            it = self.inv_tick
            # The venue published these levels again: whatever we took there is in the new size.
            for taken, levels in ((self._taken_ask, ev.asks), (self._taken_bid, ev.bids)):
                if taken:
                    for p, _ in levels:
                        taken.pop(int(float(p) * it + 0.5), None)
        if self.bids or self.asks:
            return self._after_depth()
        return []

    def apply_snapshot(self, snap: DepthSnapshot, now_ns: int) -> list[Fill]:
        self.sync.on_snapshot(snap, now_ns)
        self._taken_ask.clear()
        self._taken_bid.clear()
        if self.bids or self.asks:
            return self._after_depth()
        return []

    def _after_depth(self) -> list[Fill]:
        queue = self.queue
        for orders, side in ((self.bids, 1), (self.asks, -1)):
            for o in orders:
                queue.on_depth(o, self.size_at(side, o.price_ticks))
        fills: list[Fill] = []
        if self.bids:
            ba = self.best_ask_ticks()
            if ba is not None:
                for o in sorted(self.bids, key=lambda o: (-o.price_ticks, o.seq)):
                    if o.price_ticks < ba:
                        break
                    got = sum(q for _, q in self.take(1, o.remaining_lots, o.price_ticks))
                    if got:
                        fills.append((o, got, o.price_ticks))
        if self.asks:
            bb = self.best_bid_ticks()
            if bb is not None:
                for o in sorted(self.asks, key=lambda o: (o.price_ticks, o.seq)):
                    if o.price_ticks > bb:
                        break
                    got = sum(q for _, q in self.take(-1, o.remaining_lots, o.price_ticks))
                    if got:
                        fills.append((o, got, o.price_ticks))
        return fills

    def on_trade(self, price_ticks: int, lots: int, aggressor_buy: bool) -> list[Fill]:
        """Maker fills of our resting orders from one print of the tape."""
        self.last_ticks = price_ticks
        orders = self.asks if aggressor_buy else self.bids
        if not orders:
            return []
        fills: list[Fill] = []
        for o in sorted(orders, key=lambda o: o.seq):
            p = o.price_ticks
            through = price_ticks > p if aggressor_buy else price_ticks < p
            if through:
                fills.append((o, o.remaining_lots, p))
            elif price_ticks == p:
                qa = o.queue_ahead_lots
                if qa >= lots:
                    o.queue_ahead_lots = qa - lots
                    o.level_lots = max(0, o.level_lots - lots)
                else:
                    o.queue_ahead_lots = 0
                    o.level_lots = max(0, o.level_lots - qa)
                    n = min(o.remaining_lots, lots - qa)
                    if n > 0:
                        fills.append((o, n, p))
        return fills

    # ------------------------------------------------------------------ our orders
    def join(self, o: SimOrder) -> None:
        """Rest `o` at its price, FIFO behind the displayed size there."""
        lvl = self.size_at(o.side_sign, o.price_ticks)
        if o.side_sign > 0:
            self.bids.append(o)
        else:
            self.asks.append(o)
        o.queue_ahead_lots = lvl
        o.level_lots = lvl

    def remove(self, o: SimOrder) -> None:
        orders = self.bids if o.side_sign > 0 else self.asks
        if o in orders:
            orders.remove(o)

    def crosses(self, side_sign: int, price_ticks: int) -> bool:
        """Would a limit order at this price take liquidity now?"""
        if side_sign > 0:
            ba = self.best_ask_ticks()
            return ba is not None and price_ticks >= ba
        bb = self.best_bid_ticks()
        return bb is not None and price_ticks <= bb

    def take(self, side_sign: int, lots: int, limit_ticks: int | None = None,
             dry_run: bool = False) -> list[tuple[int, int]]:
        """Walk the opposite side for up to `lots`, no worse than `limit_ticks`; [(ticks, lots)] taken."""
        out: list[tuple[int, int]] = []
        if lots <= 0:
            return out
        buy = side_sign > 0
        taken = self._taken_ask if buy else self._taken_bid
        rem = lots
        n = 16
        start = 0
        while rem > 0:
            levels, exhausted = self._levels(buy, n)
            for t, q in levels[start:]:
                if limit_ticks is not None and (t > limit_ticks if buy else t < limit_ticks):
                    return out
                used = taken.get(t)
                if used is not None and used[1] != q:
                    used = None
                avail = q - used[0] if used is not None else q
                if avail <= 0:
                    continue
                x = avail if avail < rem else rem
                out.append((t, x))
                if not dry_run:
                    if used is None:
                        taken[t] = [x, q]
                    else:
                        used[0] += x
                rem -= x
                if rem == 0:
                    return out
            if exhausted:
                break  # the book is exhausted
            start = len(levels)
            n *= 4
        return out
