"""`SimGateway`: the simulator behind the `ExecutionGateway` port (paper trading in process).

The gateway does not own time. Whoever feeds the market (a backtest loop reading a session or the
generator, or the app's paper feed with live public data) drives the exchange core directly and
thereby the clock:

    ex = exchange_from_settings(settings.sim, instruments)
    gw = SimGateway(ex)
    for m in source:                      # a backtest: as fast as the CPU goes
        ex.on_message(m.raw, m.ts_ns)     # sync core; fills, triggers, funding happen here
        await asyncio.sleep(0)            # let the bot's tasks run (they await gw.submit etc.)

The bot's clock (a backtest, issue 13): given `clock` (the bot's time) and `latencies`, a request leaves
the bot at clock() + compute, reaches the matching engine an order latency later (it is stamped on the
bot's clock, never the exchange's), and its answer (ack) and every user-stream event (fills, cancels,
funding) reach the bot `ack` / `user_stream` later: they wait in the gateway until the driver's bot clock
passes them (`release(now_ns)`, `next_release_ns()`), in order per path (one connection each).

With no order latency (`order_latency_ms = 0`, jitter 0) and no bot clock `submit`/`cancel` are processed at once
against the current book. With latency, a request is scheduled at now + latency and `submit` waits
until the driver's clock passes its arrival (the order meets the book as it is then); the driver must
keep feeding (or call `ex.advance_to`). Rejections raise `OrderRejected(code)` exactly as the real
gateways do (the simulator speaks Binance's codes: -2021 is `StopWouldTrigger`, as in binance_usdm.errors).
`updates()` yields every order change (fills, cancels, expiries, triggers) as
`OrderUpdate`s, in the order the exchange produced them; `funding_updates()` every funding settlement
of a held position as a `FundingPayment` (ports.FundingSource; symbol always known here).
"""

from __future__ import annotations

import asyncio
import dataclasses
import heapq
from collections.abc import AsyncIterator, Callable
from typing import Any

from bot.domain.instrument import Instrument
from bot.domain.orders import (
    AccountSnapshot,
    FundingPayment,
    OrderAck,
    OrderRequest,
    OrderUpdate,
    PositionSnapshot,
)
from bot.domain.types import OrderKind, OrderStatus, Side
from bot.settings.sim import SimSection
from bot.venues.errors import DuplicateClientId, OrderRejected, StopWouldTrigger
from bot.venues.ports import GatewayCapabilities
from bot.venues.sim.exchange import Report, SimExchange
from bot.venues.sim.latency import Latency, SimLatencies, latency_kwargs
from bot.venues.sim.orders import (
    AccountReport,
    AlgoOrder,
    AlgoReport,
    OrderReport,
    RequestResult,
    SimError,
    SimOrder,
)
from bot.venues.sim.symbols import reference_prices

__all__ = ["SimGateway", "algo_update", "exchange_from_settings", "order_update"]

_ALGO_STATUS = {"NEW": OrderStatus.NEW, "TRIGGERING": OrderStatus.NEW, "TRIGGERED": OrderStatus.TRIGGERED,
                "CANCELED": OrderStatus.CANCELED, "EXPIRED": OrderStatus.EXPIRED,
                "REJECTED": OrderStatus.REJECTED}


def _rejected(msg: str, code: int) -> OrderRejected:
    """The simulator's Binance code in the trade's words (-2021 "would immediately trigger", -4116 "ClientOrderId
    is duplicated", exchange-facts A3)."""
    if code == -2021:
        return StopWouldTrigger(msg, code)
    return DuplicateClientId(msg, code) if code == -4116 else OrderRejected(msg, code)


def exchange_from_settings(cfg: SimSection, instruments: dict[str, Instrument], keep_reports: bool = False,
                           zero_latency: bool = False) -> SimExchange:
    lat = None if zero_latency else Latency.from_ms(cfg.order_latency_ms, cfg.order_latency_jitter_ms,
                                                    cfg.latency_kind, cfg.seed, **latency_kwargs(cfg))
    return SimExchange(
        instruments, balance=cfg.starting_balance_usdt, maker_fee_bps=cfg.maker_fee_bps,
        taker_fee_bps=cfg.taker_fee_bps, default_leverage=cfg.default_leverage,
        isolated=cfg.margin_type == "isolated", funding_rate_bps=cfg.funding_rate_bps,
        funding_interval_s=cfg.funding_interval_s, liquidation_fee_bps=cfg.liquidation_fee_bps,
        order_latency=lat, ref_prices=reference_prices(list(instruments), cfg.gen_start_prices),
        depth_bps=cfg.depth_bps, keep_reports=keep_reports, queue_model=cfg.queue_model,
        book_ticker_top=cfg.book_ticker_top, funding_source=cfg.funding_source,
    )


def order_update(o: SimOrder, tick: float, r: OrderReport | None = None) -> OrderUpdate:
    kind = OrderKind(o.orig_type) if o.orig_type in OrderKind.__members__ else OrderKind.MARKET
    return OrderUpdate(
        client_id=o.client_id, venue_order_id=str(o.order_id), symbol=o.symbol, side=Side(o.side), kind=kind,
        status=OrderStatus(o.status), qty_lots=o.qty_lots, filled_lots=o.filled_lots,
        avg_price=o.avg_ticks() * tick,
        last_fill_lots=r.last_lots if r else 0, last_fill_price=r.last_ticks * tick if r else 0.0,
        fee=r.fee if r else 0.0, is_maker=r.is_maker if r else False, reduce_only=o.reduce_only,
        trade_id=str(r.trade_id) if r and r.trade_id else "", reason=r.reason if r else "",
        ts_event_ns=r.ts_ns if r else o.updated_ns, ts_recv_ns=r.ts_ns if r else o.updated_ns,
        parent_id=o.parent_client_id,
    )


def algo_update(a: AlgoOrder, tick: float, ts_ns: int | None = None) -> OrderUpdate:
    if a.status == "FINISHED":
        status = OrderStatus.FILLED if a.fill_lots else OrderStatus.EXPIRED
    else:
        status = _ALGO_STATUS[a.status]
    t = a.updated_ns if ts_ns is None else ts_ns
    return OrderUpdate(
        client_id=a.client_algo_id, venue_order_id=str(a.algo_id), symbol=a.symbol, side=Side(a.side),
        kind=OrderKind(a.type), status=status, qty_lots=a.qty_lots, filled_lots=a.fill_lots,
        avg_price=(a.fill_notional_tl / a.fill_lots * tick) if a.fill_lots else 0.0,
        reduce_only=a.reduce_only or a.close_position, reason=a.reason, ts_event_ns=t, ts_recv_ns=t,
    )


class SimGateway:
    name = "sim"
    capabilities = GatewayCapabilities(funding=True)

    def __init__(self, exchange: SimExchange, clock: Callable[[], int] | None = None,
                 latencies: SimLatencies | None = None) -> None:
        self.ex = exchange
        self._queue: asyncio.Queue[OrderUpdate] = asyncio.Queue()
        self._funding: asyncio.Queue[FundingPayment] = asyncio.Queue()
        self._waiting: dict[int, asyncio.Future[RequestResult]] = {}
        self.bot_clock = clock  # the backtest's bot clock (None: no bot-side latency, paper/immediate)
        self.latencies = latencies if clock is not None else None
        # (deliver at ns, seq, what): answers and user-stream events on their way to the bot
        self._delayed: list[tuple[int, int, Any]] = []
        self._seq = 0
        self._last_ack_ns = 0
        self._last_stream_ns = 0
        # client id -> (decision ns = the bot's clock when it asked, sent ns, arrival ns at the engine)
        self.sent: dict[str, tuple[int, int, int]] = {}
        exchange.listeners.append(self._on_report)

    # ------------------------------------------------------------------ the bot's clock (backtests)
    def _later(self, at_ns: int, item: Any) -> None:
        self._seq += 1
        heapq.heappush(self._delayed, (at_ns, self._seq, item))

    def next_release_ns(self) -> int | None:
        return self._delayed[0][0] if self._delayed else None

    @property
    def in_flight(self) -> int:
        return len(self._delayed)

    def release(self, now_ns: int) -> int:
        """Hand the bot what has reached it by `now_ns` (answers, user-stream events); how many."""
        d = self._delayed
        n = 0
        while d and d[0][0] <= now_ns:
            _, _, item = heapq.heappop(d)
            self._deliver(item)
            n += 1
        return n

    def _deliver(self, item: Any) -> None:
        if isinstance(item, RequestResult):
            fut = self._waiting.pop(item.ticket, None)
            if fut is not None and not fut.done():
                fut.set_result(item)
        elif isinstance(item, FundingPayment):
            self._funding.put_nowait(item)
        else:
            self._queue.put_nowait(item)

    # ------------------------------------------------------------------ plumbing
    def _tick(self, symbol: str) -> float:
        return self.ex.markets[symbol].inst.tick

    def _stream_at(self, ts_ns: int) -> int:
        """When a user-stream event of exchange time `ts_ns` reaches the bot (in order: one socket)."""
        assert self.latencies is not None
        t = max(ts_ns + self.latencies.user_stream.draw(), self._last_stream_ns)
        self._last_stream_ns = t
        return t

    def _on_report(self, r: Report) -> None:
        lat = self.latencies
        item: Any = None
        if isinstance(r, OrderReport):
            item = order_update(r.order, self._tick(r.order.symbol), r)
        elif isinstance(r, AlgoReport):
            item = algo_update(r.algo, self._tick(r.algo.symbol), r.ts_ns)
        elif isinstance(r, AccountReport):
            if r.reason == "FUNDING_FEE" and r.balance_change:
                sym = r.symbols[0] if r.symbols else ""
                recv = self._stream_at(r.ts_ns) if lat is not None else r.ts_ns
                item = FundingPayment(sym, r.balance_change, self.ex.account.asset, r.ts_ns, recv,
                                      f"sim:{r.ts_ns}:{sym}")
                if lat is not None:
                    self._later(recv, item)
                    return
        elif isinstance(r, RequestResult):
            if lat is not None and r.ticket in self._waiting:
                t = max(r.ts_ns + lat.ack.draw(), self._last_ack_ns)
                self._last_ack_ns = t
                self._later(t, r)
                return
            item = r
        if item is None:
            return
        if lat is not None and isinstance(item, OrderUpdate):
            recv = self._stream_at(item.ts_event_ns)
            self._later(recv, dataclasses.replace(item, ts_recv_ns=recv))
            return
        self._deliver(item)

    @property
    def _immediate(self) -> bool:
        lat = self.ex.order_latency
        return lat.base_ns == 0 and lat.jitter_ns == 0 and self.latencies is None

    async def _request(self, fn: str, *args: Any, **kw: Any) -> object:
        if self._immediate:
            try:
                return getattr(self.ex, fn)(*args, **kw)
            except SimError as e:
                raise _rejected(e.msg, e.code) from e
        if self.latencies is not None and self.bot_clock is not None:
            decided = self.bot_clock()
            sent = decided + self.latencies.compute.draw()  # stamped on the bot's clock
            ticket = self.ex.send(fn, *args, now_ns=sent, **kw)
            req = args[0] if args else None
            if isinstance(req, OrderRequest):
                self.sent[req.client_id] = (decided, sent, self.ex.request_arrival_ns(ticket))
        else:
            ticket = self.ex.send(fn, *args, **kw)
        fut: asyncio.Future[RequestResult] = asyncio.get_running_loop().create_future()
        self._waiting[ticket] = fut
        res = await fut
        if res.error is not None:
            raise _rejected(res.error.msg, res.error.code) from res.error
        return res.value

    # ------------------------------------------------------------------ the port
    async def start(self) -> None:
        return None

    async def close(self) -> None:
        for fut in self._waiting.values():
            fut.cancel()
        self._waiting.clear()

    def instrument(self, symbol: str) -> Instrument:
        return self.ex.markets[symbol].inst

    async def submit(self, req: OrderRequest) -> OrderAck:
        v = await self._request("place", req)
        if isinstance(v, AlgoOrder):
            return OrderAck(req.client_id, str(v.algo_id), OrderStatus.NEW, v.updated_ns)
        assert isinstance(v, SimOrder)
        return OrderAck(req.client_id, str(v.order_id), OrderStatus(v.status), v.updated_ns)

    async def cancel(self, symbol: str, client_id: str, conditional: bool = False) -> None:
        if conditional:
            await self._request("cancel_algo", symbol, client_id)
        else:
            await self._request("cancel", symbol, client_id)

    async def fetch_order(self, symbol: str, client_id: str, conditional: bool = False) -> OrderUpdate | None:
        try:
            if conditional:
                return algo_update(self.ex.query_algo(symbol, client_id), self._tick(symbol))
            return order_update(self.ex.query(symbol, client_id), self._tick(symbol))
        except SimError:
            return None

    async def open_orders(self, symbol: str | None = None) -> list[OrderUpdate]:
        out = [order_update(o, self._tick(o.symbol)) for o in self.ex.open_orders(symbol)]
        out += [algo_update(a, self._tick(a.symbol)) for a in self.ex.open_algo_orders(symbol)]
        return out

    async def set_leverage(self, symbol: str, leverage: int) -> None:
        await self._request("set_leverage", symbol, leverage)

    async def account(self) -> AccountSnapshot:
        return account_snapshot(self.ex)

    async def updates(self) -> AsyncIterator[OrderUpdate]:  # type: ignore[override]
        while True:
            yield await self._queue.get()

    async def funding_updates(self) -> AsyncIterator[FundingPayment]:
        while True:
            yield await self._funding.get()

    def pending_funding(self) -> list[FundingPayment]:
        """Take the payments not yet consumed (a backtest ending: nothing is left unjournaled)."""
        out = []
        while not self._funding.empty():
            out.append(self._funding.get_nowait())
        return out


def account_snapshot(ex: SimExchange) -> AccountSnapshot:
    marks = ex.marks()
    acct = ex.account
    positions = []
    for sym, p in sorted(acct.positions.items()):
        if not p.qty_lots:
            continue
        tick = ex.markets[sym].inst.tick
        positions.append(PositionSnapshot(
            sym, p.qty_lots, p.entry_ticks * tick, p.upnl(marks[sym]),
            acct.liquidation_price_ticks(p, marks) * tick, p.leverage, p.isolated))
    return AccountSnapshot(acct.wallet + acct.total_upnl(marks), ex.available_balance(), acct.wallet,
                           tuple(positions))
