"""Test helpers: a tiny scripted Binance market feeding a SimExchange (ids chained like the venue's)."""

from __future__ import annotations

from bot.domain.events import DepthDiff, DepthSnapshot, FundingInfo, Trade
from bot.domain.types import OrderKind, Side, TimeInForce, TriggerPrice
from bot.venues.binance_usdm.instruments import KNOWN
from bot.venues.ports import OrderRequest
from bot.venues.sim.exchange import SimExchange

BTC = KNOWN["BTCUSDT"]
MS = 1_000_000


def px(price: str) -> int:
    return BTC.price_to_ticks(price)


class Feed:
    """Drives one symbol of a SimExchange with hand-written depth, trades and mark prices."""

    def __init__(self, ex: SimExchange, symbol: str = "BTCUSDT", t0_ns: int = 1_700_000_000_000 * MS) -> None:
        self.ex = ex
        self.symbol = symbol
        self.u = 1000
        self.t = t0_ns
        self.trade_id = 1

    def step(self, ms: float = 1.0) -> int:
        self.t += int(ms * MS)
        return self.t

    def snapshot(self, bids: list[list[str]], asks: list[list[str]]) -> None:
        t = self.step()
        self.ex.on_event(DepthSnapshot(self.symbol, self.u, bids, asks, t, t), t)
        # the bridging event: U <= lastUpdateId <= u (exchange-facts A1 step 5)
        t = self.step()
        self.ex.on_event(DepthDiff(self.symbol, self.u, self.u + 1, self.u - 1, [], [], t, t), t)
        self.u += 1

    def diff(self, bids: list[list[str]] | None = None, asks: list[list[str]] | None = None) -> None:
        t = self.step()
        self.ex.on_event(DepthDiff(self.symbol, self.u + 1, self.u + 3, self.u, bids or [], asks or [], t, t), t)
        self.u += 3

    def trade(self, price: str, qty: str, seller_aggressor: bool) -> None:
        t = self.step()
        self.ex.on_event(Trade(self.symbol, self.trade_id, price, qty, seller_aggressor, t, t), t)
        self.trade_id += 1

    def mark(self, price: float, rate: float | None = None, next_funding_ns: int | None = None) -> None:
        t = self.step()
        self.ex.on_event(FundingInfo(self.symbol, price, price, rate, next_funding_ns, t, t), t)


def limit(cid: str, side: Side, lots: int, price: str, tif: TimeInForce = TimeInForce.GTC,
          reduce_only: bool = False) -> OrderRequest:
    return OrderRequest(cid, "BTCUSDT", side, OrderKind.LIMIT, lots, px(price), time_in_force=tif,
                        reduce_only=reduce_only)


def market(cid: str, side: Side, lots: int, reduce_only: bool = False) -> OrderRequest:
    return OrderRequest(cid, "BTCUSDT", side, OrderKind.MARKET, lots, reduce_only=reduce_only)


def stop(cid: str, side: Side, lots: int, trigger: str, working: TriggerPrice = TriggerPrice.MARK,
         kind: OrderKind = OrderKind.STOP_MARKET, close_position: bool = False,
         reduce_only: bool = True) -> OrderRequest:
    return OrderRequest(cid, "BTCUSDT", side, kind, 0 if close_position else lots, trigger_ticks=px(trigger),
                        working_type=working, close_position=close_position,
                        reduce_only=reduce_only and not close_position)


def new_exchange(**kw: object) -> SimExchange:
    kw.setdefault("balance", 10_000.0)
    return SimExchange({"BTCUSDT": BTC}, **kw)  # type: ignore[arg-type]


def standard_book(feed: Feed) -> None:
    """60000.0 / 60000.1 touch, 5 levels each side."""
    feed.snapshot(
        bids=[["60000.0", "1.000"], ["59999.9", "0.500"], ["59999.5", "2.000"], ["59999.0", "1.000"],
              ["59990.0", "5.000"]],
        asks=[["60000.1", "0.002"], ["60000.2", "0.003"], ["60000.5", "0.010"], ["60001.0", "1.000"],
              ["60010.0", "5.000"]],
    )
