"""Market events: what the venue parsers produce and everything downstream consumes.

Slotted plain classes, not dataclasses with validation: one is built per websocket message on the
hot path. Times are integer nanoseconds: `ts_event_ns` is the exchange's event time, `ts_recv_ns`
our receive time (wall clock, time.time_ns(), so they are comparable).

Depth levels stay as the venue's decimal-string pairs ([price, size]): the book converts each
level exactly once while applying it (one pass instead of two; see market/book.py).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BookTicker",
    "DepthDiff",
    "DepthSnapshot",
    "FundingInfo",
    "Levels",
    "MarketEvent",
    "Trade",
]

Levels = list[list[str]]  # [[price, size], ...] decimal strings, as the venue sent them


class DepthDiff:
    """An incremental depth update with the venue's sequencing ids.

    Binance: first_id=U, final_id=u, prev_final_id=pu.  Bybit: first_id=final_id=u, prev_final_id=-1,
    seq=cross sequence, is_snapshot for `type=snapshot` messages (which replace the book).
    """

    __slots__ = (
        "asks",
        "bids",
        "final_id",
        "first_id",
        "is_snapshot",
        "prev_final_id",
        "seq",
        "symbol",
        "ts_event_ns",
        "ts_recv_ns",
    )

    def __init__(
        self,
        symbol: str,
        first_id: int,
        final_id: int,
        prev_final_id: int,
        bids: Levels,
        asks: Levels,
        ts_event_ns: int,
        ts_recv_ns: int,
        is_snapshot: bool = False,
        seq: int = 0,
    ) -> None:
        self.symbol = symbol
        self.first_id = first_id
        self.final_id = final_id
        self.prev_final_id = prev_final_id
        self.bids = bids
        self.asks = asks
        self.ts_event_ns = ts_event_ns
        self.ts_recv_ns = ts_recv_ns
        self.is_snapshot = is_snapshot
        self.seq = seq

    def __repr__(self) -> str:
        return (
            f"DepthDiff({self.symbol} U={self.first_id} u={self.final_id} pu={self.prev_final_id} "
            f"b={len(self.bids)} a={len(self.asks)} snap={self.is_snapshot})"
        )


class DepthSnapshot:
    """A full book from REST (Binance `GET /fapi/v1/depth`): replaces the book at `last_update_id`."""

    __slots__ = ("asks", "bids", "last_update_id", "symbol", "ts_event_ns", "ts_recv_ns")

    def __init__(
        self, symbol: str, last_update_id: int, bids: Levels, asks: Levels, ts_event_ns: int, ts_recv_ns: int
    ) -> None:
        self.symbol = symbol
        self.last_update_id = last_update_id
        self.bids = bids
        self.asks = asks
        self.ts_event_ns = ts_event_ns
        self.ts_recv_ns = ts_recv_ns

    def __repr__(self) -> str:
        return f"DepthSnapshot({self.symbol} lastUpdateId={self.last_update_id} b={len(self.bids)} a={len(self.asks)})"


class BookTicker:
    """Best bid/ask as the venue states it (`update_id` in the depth stream's id space on Binance)."""

    __slots__ = (
        "ask_price",
        "ask_qty",
        "bid_price",
        "bid_qty",
        "symbol",
        "ts_event_ns",
        "ts_recv_ns",
        "update_id",
    )

    def __init__(
        self,
        symbol: str,
        update_id: int,
        bid_price: str,
        bid_qty: str,
        ask_price: str,
        ask_qty: str,
        ts_event_ns: int,
        ts_recv_ns: int,
    ) -> None:
        self.symbol = symbol
        self.update_id = update_id
        self.bid_price = bid_price
        self.bid_qty = bid_qty
        self.ask_price = ask_price
        self.ask_qty = ask_qty
        self.ts_event_ns = ts_event_ns
        self.ts_recv_ns = ts_recv_ns


class Trade:
    """One print on the tape. `buyer_is_maker` True means the aggressor sold (Binance `m`)."""

    __slots__ = ("buyer_is_maker", "price", "qty", "symbol", "trade_id", "ts_event_ns", "ts_recv_ns")

    def __init__(
        self,
        symbol: str,
        trade_id: int,
        price: str,
        qty: str,
        buyer_is_maker: bool,
        ts_event_ns: int,
        ts_recv_ns: int,
    ) -> None:
        self.symbol = symbol
        self.trade_id = trade_id
        self.price = price
        self.qty = qty
        self.buyer_is_maker = buyer_is_maker
        self.ts_event_ns = ts_event_ns
        self.ts_recv_ns = ts_recv_ns

    @property
    def aggressor_buy(self) -> bool:
        return not self.buyer_is_maker


class FundingInfo:
    """Mark price, index price, funding rate and next funding time (Binance markPrice / Bybit tickers)."""

    __slots__ = (
        "funding_rate",
        "index_price",
        "mark_price",
        "next_funding_ns",
        "symbol",
        "ts_event_ns",
        "ts_recv_ns",
    )

    def __init__(
        self,
        symbol: str,
        mark_price: float | None,
        index_price: float | None,
        funding_rate: float | None,
        next_funding_ns: int | None,
        ts_event_ns: int,
        ts_recv_ns: int,
    ) -> None:
        self.symbol = symbol
        self.mark_price = mark_price
        self.index_price = index_price
        self.funding_rate = funding_rate
        self.next_funding_ns = next_funding_ns
        self.ts_event_ns = ts_event_ns
        self.ts_recv_ns = ts_recv_ns


MarketEvent = DepthDiff | DepthSnapshot | BookTicker | Trade | FundingInfo
AnyDict = dict[str, Any]
