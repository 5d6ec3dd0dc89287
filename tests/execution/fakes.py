"""A small, faithful in-test ExecutionGateway: acknowledges orders, fills them when told, triggers
STOP_MARKETs and fills resting reduce-only LIMITs when the price crosses them, cancels, keeps an
account (cash + positions) — and records every request, so tests assert the exact orders sent.

Knobs: `hold` (client-id suffixes whose submit never returns: an unconfirmed stop), `reject` (suffix ->
(code, message) raised as OrderRejected), `on_submit` (called before the ack, e.g. to advance a clock).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable

from bot.domain.instrument import Instrument
from bot.domain.types import OrderKind, OrderStatus, Side
from bot.venues.errors import OrderRejected
from bot.venues.ports import NO_EXTRAS, AccountSnapshot, OrderAck, OrderRequest, OrderUpdate, PositionSnapshot


class FakeGateway:
    name = "fake"
    capabilities = NO_EXTRAS

    def __init__(self, instruments: dict[str, Instrument], clock: Callable[[], int], equity: float = 5_000.0):
        self.instruments = instruments
        self.clock = clock
        self.start_equity = equity
        self.cash = 0.0
        self.position: dict[str, int] = {}  # signed lots
        self.last_price: dict[str, float] = {}
        self.sent: list[OrderRequest] = []
        self.cancelled: list[str] = []
        self.leverage: dict[str, int] = {}
        self.orders: dict[str, OrderRequest] = {}
        self.status: dict[str, OrderStatus] = {}
        self.filled: dict[str, int] = {}
        self.avg: dict[str, float] = {}
        self.hold: set[str] = set()
        self.reject: dict[str, tuple[int, str]] = {}
        self.on_submit: Callable[[OrderRequest], None] | None = None
        self._never = asyncio.Event()
        self._q: asyncio.Queue[OrderUpdate] = asyncio.Queue()
        self._ids = itertools.count(1000)

    # -- the port ---------------------------------------------------------------------------------------
    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self._never.set()

    def instrument(self, symbol: str) -> Instrument:
        return self.instruments[symbol]

    async def submit(self, req: OrderRequest) -> OrderAck:
        self.sent.append(req)
        for suffix, (code, msg) in self.reject.items():
            if req.client_id.endswith(suffix):
                raise OrderRejected(msg, code)
        if any(req.client_id.endswith(s) for s in self.hold):
            await self._never.wait()  # the venue never answers
        if self.on_submit is not None:
            self.on_submit(req)
        self.orders[req.client_id] = req
        self.status[req.client_id] = OrderStatus.NEW
        self.filled[req.client_id] = 0
        self.avg[req.client_id] = 0.0
        return OrderAck(req.client_id, str(next(self._ids)), OrderStatus.NEW, self.clock())

    async def cancel(self, symbol: str, client_id: str, conditional: bool = False) -> None:
        self.cancelled.append(client_id)
        st = self.status.get(client_id)
        if st is None:
            raise OrderRejected("Unknown order sent.", -2011)
        if not st.is_final:
            self._emit(client_id, OrderStatus.CANCELED)

    async def fetch_order(self, symbol: str, client_id: str, conditional: bool = False) -> OrderUpdate | None:
        return None

    async def open_orders(self, symbol: str | None = None) -> list[OrderUpdate]:
        return []

    async def set_leverage(self, symbol: str, leverage: int) -> None:
        self.leverage[symbol] = leverage

    async def account(self) -> AccountSnapshot:
        upnl = 0.0
        positions = []
        for sym, lots in self.position.items():
            inst = self.instruments[sym]
            px = self.last_price.get(sym, 0.0)
            upnl += lots * inst.step * px
            positions.append(PositionSnapshot(sym, lots, px))
        equity = self.start_equity + self.cash + upnl
        return AccountSnapshot(equity=equity, available=equity, wallet_balance=equity, positions=tuple(positions))

    async def updates(self) -> AsyncIterator[OrderUpdate]:
        while True:
            yield await self._q.get()

    # -- the test's hand on the market ------------------------------------------------------------------
    def _emit(self, cid: str, status: OrderStatus, lots: int = 0, price: float = 0.0, fee: float = 0.0,
              as_child: bool = False) -> None:
        req = self.orders[cid]
        self.status[cid] = status
        self._q.put_nowait(OrderUpdate(
            client_id=f"x{next(self._ids)}" if as_child else cid, venue_order_id="v" + cid, symbol=req.symbol,
            side=req.side, kind=OrderKind.MARKET if as_child else req.kind, status=status, qty_lots=req.qty_lots,
            filled_lots=self.filled[cid], avg_price=self.avg[cid], last_fill_lots=lots, last_fill_price=price,
            fee=fee, reduce_only=req.reduce_only, trade_id=f"f{next(self._ids)}" if lots else "",
            ts_event_ns=self.clock(), ts_recv_ns=self.clock(), parent_id=cid if as_child else ""))

    def fill(self, cid: str, lots: int, price: float, fee: float = 0.0, as_child: bool = False) -> None:
        req = self.orders[cid]
        inst = self.instruments[req.symbol]
        pos = self.position.get(req.symbol, 0)
        if req.reduce_only:
            lots = min(lots, abs(pos))  # reduce-only never opens or flips
        prev = self.filled[cid]
        self.filled[cid] = prev + lots
        self.avg[cid] = (self.avg[cid] * prev + price * lots) / (prev + lots)
        self.position[req.symbol] = pos + req.side.sign * lots
        self.cash += -req.side.sign * lots * inst.step * price - fee
        self.last_price[req.symbol] = price
        full = self.filled[cid] >= req.qty_lots
        self._emit(cid, OrderStatus.FILLED if full else OrderStatus.PARTIALLY_FILLED, lots, price, fee, as_child)

    def expire(self, cid: str) -> None:
        self._emit(cid, OrderStatus.EXPIRED)

    def trigger(self, cid: str) -> None:
        self._emit(cid, OrderStatus.TRIGGERED)

    def move_price(self, symbol: str, ticks: int) -> None:
        """The market trades at `ticks`: stops whose trigger is crossed fire and fill there; resting LIMITs
        crossed by it fill at their limit (STOP: a SELL triggers at <= trigger, a BUY at >=, A3)."""
        inst = self.instruments[symbol]
        self.last_price[symbol] = ticks * inst.tick
        for cid, req in list(self.orders.items()):
            if req.symbol != symbol or self.status[cid].is_final:
                continue
            left = req.qty_lots - self.filled[cid]
            if req.kind is OrderKind.STOP_MARKET and req.trigger_ticks is not None:
                hit = ticks <= req.trigger_ticks if req.side is Side.SELL else ticks >= req.trigger_ticks
                if hit and self.position.get(symbol, 0):
                    self.trigger(cid)
                    self.fill(cid, left, ticks * inst.tick, as_child=True)
            elif req.kind is OrderKind.LIMIT and req.price_ticks is not None and req.reduce_only:
                hit = ticks >= req.price_ticks if req.side is Side.SELL else ticks <= req.price_ticks
                if hit and self.position.get(symbol, 0):
                    self.fill(cid, left, req.price_ticks * inst.tick)

    def requests(self, since: int = 0) -> list[tuple[str, str, str, int, int | None, int | None, bool]]:
        """(client_id, side, kind, lots, price, trigger, reduce_only) of every order sent, in order."""
        return [(r.client_id, r.side.value, r.kind.value, r.qty_lots, r.price_ticks, r.trigger_ticks, r.reduce_only)
                for r in self.sent[since:]]
