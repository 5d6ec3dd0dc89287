"""`SimExchange`: the synchronous core of the exchange simulator (no asyncio).

One object holds, for one account, the per-symbol markets (`SymbolMarket`: book + our resting
orders), the account (`Account`), the conditional ("algo") orders, and a queue of requests in flight.

Driving it (a backtest loop, the async `SimGateway`, the loopback server all do this):

    ex = SimExchange(instruments, ...)
    ex.on_message(raw_bytes, ts_ns)          # or ex.on_event(parsed_event, ts_ns): market data in
    ex.place(OrderRequest(...), now_ns)      # immediate: returns a copy of the order, raises SimError
    t = ex.send("place", req, now_ns=now)    # through the latency model: processed when the market
                                             # clock passes now + latency; result as a RequestResult
    ex.advance_to(ts_ns)                     # move the clock with no market event
    for r in ex.drain(): ...                 # OrderReport / AlgoReport / AccountReport / RequestResult

Time is the market's: `now_ns` is the timestamp of the last event or request processed, and a request
in flight is matched against the book as it is when it *arrives* (requests due at or before an
event's time are processed before that event). Everything is deterministic: ids are counters and
the only randomness is the seeded latency draws.

Binance semantics (exchange-facts A3-A5): LIMIT GTC/IOC/FOK/GTX (GTX that would take: -5022),
MARKET walks the book, reduce-only never flips (-2022 when there is nothing to reduce; quantities are
cut to the position), conditional orders live apart with their own ids (algoId), trigger on
MARK_PRICE or CONTRACT_PRICE (last), -2021 if they would trigger at once, closePosition closes what
is there when they fire. Margin: -2019 when the initial margin of the increase is not available.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable
from typing import Any

from bot.domain.events import BookTicker, DepthDiff, DepthSnapshot, FundingInfo, Trade
from bot.domain.instrument import Instrument
from bot.domain.orders import OrderRequest
from bot.errors import MalformedMessage
from bot.market.book import default_depth_ticks
from bot.market.session import MarketSession
from bot.venues.sim.account import Account, Position
from bot.venues.sim.brackets import brackets_for
from bot.venues.sim.latency import Latency
from bot.venues.sim.matching import Fill, SymbolMarket
from bot.venues.sim.orders import AccountReport, AlgoOrder, AlgoReport, OrderReport, RequestResult, SimError, SimOrder
from bot.venues.sim.queue import queue_model as queue
from bot.venues.sim.triggers import TriggerBook

__all__ = ["SimExchange"]

Report = OrderReport | AlgoReport | AccountReport | RequestResult
_MAX_ALGOS = 200  # open conditional orders across symbols (changelog 2025-12-29)
_NEVER = 1 << 62  # no funding time known
_STREAM = b'{"stream":"'


class SimExchange(TriggerBook):
    def __init__(self, instruments: dict[str, Instrument], *, balance: float = 10_000.0,
                 maker_fee_bps: float = 2.0, taker_fee_bps: float = 5.0, default_leverage: int = 10,
                 isolated: bool = False, funding_rate_bps: float = 1.0, funding_interval_s: int = 8 * 3600,
                 liquidation_fee_bps: float = 125.0, order_latency: Latency | None = None,
                 ref_prices: dict[str, float] | None = None, depth_bps: float = 200.0,
                 keep_reports: bool = True, now_ns: int = 0, queue_model: str = "pro_rata",
                 book_ticker_top: bool = True, funding_source: str = "assumed") -> None:
        self.instruments = dict(instruments)
        self.markets: dict[str, SymbolMarket] = {}
        for sym, inst in self.instruments.items():
            ref = (ref_prices or {}).get(sym)
            self.markets[sym] = SymbolMarket(inst, default_depth_ticks(inst, ref, depth_bps) if ref else 20_000,
                                             queue(queue_model), book_ticker_top)
        if funding_source not in ("recorded", "assumed", "none"):
            raise ValueError(f"funding_source must be recorded, assumed or none, got {funding_source!r}")
        # recorded: only the markPrice stream's rates and times; assumed: funding_rate_bps every interval
        # where the source has none; none: never (issue 13: no invented funding unless asked and labelled)
        self.funding_source = funding_source
        self.account = Account(balance, maker_fee_bps, taker_fee_bps)
        self.default_leverage = default_leverage
        self.leverage: dict[str, int] = {}
        self.isolated: dict[str, bool] = {s: isolated for s in self.instruments}
        self.funding_rate = funding_rate_bps / 10_000
        self.funding_interval_ns = funding_interval_s * 1_000_000_000
        self.liquidation_fee = liquidation_fee_bps / 10_000
        self.order_latency = order_latency or Latency()
        self.now_ns = now_ns
        self.orders: dict[int, SimOrder] = {}
        self.by_client: dict[tuple[str, str], SimOrder] = {}
        self.algos: dict[int, AlgoOrder] = {}
        self.algo_by_client: dict[tuple[str, str], AlgoOrder] = {}
        self.open_algos: dict[str, list[AlgoOrder]] = {s: [] for s in self.instruments}
        self._watch: set[str] = set()  # symbols with a position or open algo orders: mark/last matter
        self._pending: list[tuple[int, int, str, tuple[Any, ...], dict[str, Any]]] = []
        self._next_order_id = 4_000_000_001
        self._next_algo_id = 1_000_000_001
        self._next_trade_id = 700_000_001
        self._next_ticket = 1
        self._seq = 0
        self._last_depth_symbol = ""
        # parsing (and placing bare snapshots) as every replay does; the books themselves are SymbolMarket's
        self._session = MarketSession(book_tickers=False, bybit=False)
        self._bt_markets: dict[bytes, SymbolMarket] = {}  # a recorded ticker's stream name -> its market
        self._funding_min_ns = 0  # earliest next funding time over the symbols (0: not yet set)
        self._liq_cache: dict[str, tuple[int, float]] = {}  # symbol -> (account version, liq price ticks)
        self.keep_reports = keep_reports
        self.reports: list[Report] = []
        self.listeners: list[Callable[[Report], None]] = []
        self.market_events = 0
        # Our fills, newest last (GET /fapi/v1/userTrades): (trade id, order, lots, price ticks, fee,
        # realised PnL, maker, ts ns). Bounded: a long paper session keeps the recent ones.
        self.fills: deque[tuple[int, SimOrder, int, float, float, float, bool, int]] = deque(maxlen=100_000)

    # ================================================================== reports
    def _emit(self, r: Report) -> None:
        if self.keep_reports:
            self.reports.append(r)
        for fn in self.listeners:
            fn(r)

    def drain(self) -> list[Report]:
        out, self.reports = self.reports, []
        return out

    # ================================================================== market data in
    def on_message(self, raw: bytes, ts_ns: int) -> None:
        """One raw Binance message (combined-stream envelope, ws-mode payload or REST snapshot), parsed by
        the market session (bot.market.session: a bare snapshot gets its symbol by the same rule as every
        replay). MalformedMessage when it cannot be decoded.

        bookTickers (most of a session's messages) carry nothing the matching book lacks, so they
        are recognised by their first bytes and kept raw on their market: parsed only when the matching
        needs the top (SymbolMarket.ticker_top), at once when we have resting orders or a watched mark."""
        if raw.find(b"bookTicker", 0, 48) >= 0:
            if (self._pending and self._pending[0][0] <= ts_ns) or ts_ns >= self._funding_min_ns:
                self.advance_to(ts_ns)
            elif ts_ns > self.now_ns:
                self.now_ns = ts_ns
            self.market_events += 1
            if raw.startswith(_STREAM):
                at = raw.find(b"@", 11, 64)
                key = raw[11:at]
                m = self._bt_markets.get(key)
                if m is None and at > 0:
                    m = self.markets.get(key.decode().upper())
                    if m is not None:
                        self._bt_markets[key] = m
                if m is not None:
                    m.on_book_ticker_raw(raw)
                    if m.bids or m.asks or m.symbol in self._watch:
                        self._after_ticker(m)
            return
        ses = self._session
        bad = ses.malformed
        evs = ses.decode(raw, ts_ns)
        if evs is None:
            if ses.malformed != bad:
                raise MalformedMessage(ses.last_error)
            return
        for ev in evs:  # one, or a bare snapshot placed just before the diff that bridges it
            self.on_event(ev, ts_ns)

    def on_event(self, ev: Any, ts_ns: int) -> None:
        if self._pending and self._pending[0][0] <= ts_ns:
            self.advance_to(ts_ns)
        if ts_ns > self.now_ns:
            self.now_ns = ts_ns
        if ts_ns >= self._funding_min_ns:
            self._funding_due(ts_ns)
        self.market_events += 1
        t = type(ev)
        if t is BookTicker:
            m = self.markets.get(ev.symbol)
            if m is not None:
                m.on_book_ticker(ev)
                self._after_ticker(m)
            return
        if t is DepthDiff:
            m = self.markets.get(ev.symbol)
            if m is None:
                return
            self._last_depth_symbol = ev.symbol
            fills = m.apply_diff(ev, ts_ns)
            if fills:
                self._maker_fills(fills)
            if ev.symbol in self._watch and not m.mark_from_stream:
                self._on_prices(m, mark=True, last=False)
        elif t is Trade:
            m = self.markets.get(ev.symbol)
            if m is None:
                return
            px = int(float(ev.price) * m.inv_tick + 0.5)
            lots = int(float(ev.qty) * m.inv_step + 0.5)
            fills = m.on_trade(px, lots, not ev.buyer_is_maker)
            if fills:
                self._maker_fills(fills)
            if ev.symbol in self._watch:
                self._on_prices(m, mark=False, last=True)
        elif t is FundingInfo:
            m = self.markets.get(ev.symbol)
            if m is None or ev.mark_price is None:
                return
            m.mark_from_stream = True
            m.mark_ticks_stream = ev.mark_price * m.inv_tick
            if ev.index_price is not None:
                m.index_ticks = ev.index_price * m.inv_tick
            if ev.funding_rate is not None:
                m.funding_rate = ev.funding_rate
            if ev.next_funding_ns and ev.next_funding_ns > ts_ns and ev.next_funding_ns != m.next_funding_ns:
                m.next_funding_ns = ev.next_funding_ns
                self._funding_min_ns = self._next_funding_min()
            if ev.symbol in self._watch:
                self._on_prices(m, mark=True, last=False)
        elif t is DepthSnapshot:
            sym = ev.symbol or self._last_depth_symbol or (next(iter(self.markets)) if len(self.markets) == 1 else "")
            m = self.markets.get(sym)
            if m is None:
                return
            fills = m.apply_snapshot(ev, ts_ns)
            if fills:
                self._maker_fills(fills)

    def _after_ticker(self, m: SymbolMarket) -> None:
        """A ticker moved the top: our resting orders may fill, a watched mark (stops) may move."""
        fills, moved = m.after_ticker()
        if fills:
            self._maker_fills(fills)
        if moved and m.symbol in self._watch and not m.mark_from_stream:
            self._on_prices(m, mark=True, last=False)

    def advance_to(self, ts_ns: int) -> None:
        """Process the requests that have arrived by `ts_ns`, then move the clock there."""
        pending = self._pending
        while pending and pending[0][0] <= ts_ns:
            arrive, ticket, fn, args, kw = heapq.heappop(pending)
            if arrive > self.now_ns:
                self.now_ns = arrive
            try:
                value = getattr(self, fn)(*args, now_ns=arrive, **kw)
                self._emit(RequestResult(ticket, arrive, value))
            except SimError as e:
                self._emit(RequestResult(ticket, arrive, None, e))
        if ts_ns > self.now_ns:
            self.now_ns = ts_ns
        if self.now_ns >= self._funding_min_ns:
            self._funding_due(self.now_ns)

    def send(self, fn: str, *args: Any, now_ns: int | None = None, **kw: Any) -> int:
        """Schedule a request (`place`, `cancel`, `cancel_algo`, ...) through the order latency."""
        if fn not in ("place", "place_order", "place_algo", "cancel", "cancel_algo", "cancel_all",
                      "cancel_all_algos", "set_leverage", "set_margin_type"):
            raise ValueError(f"not a request: {fn}")
        now = self.now_ns if now_ns is None else now_ns
        ticket = self._next_ticket
        self._next_ticket += 1
        heapq.heappush(self._pending, (now + self.order_latency.draw(), ticket, fn, args, kw))
        return ticket

    def request_arrival_ns(self, ticket: int) -> int:
        """When request `ticket` (in flight) reaches the matching engine; 0 if it is not in flight."""
        return next((p[0] for p in self._pending if p[1] == ticket), 0)

    @property
    def pending_requests(self) -> int:
        return len(self._pending)

    def next_request_ns(self) -> int | None:
        return self._pending[0][0] if self._pending else None

    # ================================================================== helpers
    def market(self, symbol: str) -> SymbolMarket:
        m = self.markets.get(symbol)
        if m is None:
            raise SimError(-1121, "Invalid symbol.")
        return m

    def _pos(self, symbol: str) -> Position:
        m = self.markets[symbol]
        k = m.inst.tick * m.inst.step
        return self.account.position(symbol, k, self.leverage.get(symbol, self.default_leverage),
                                     self.isolated[symbol])

    def position_lots(self, symbol: str) -> int:
        p = self.account.positions.get(symbol)
        return p.qty_lots if p else 0

    def marks(self) -> dict[str, float]:
        return {s: m.mark_ticks() for s, m in self.markets.items()}

    def _refresh_watch(self, symbol: str) -> None:
        if self.position_lots(symbol) or self.open_algos[symbol]:
            self._watch.add(symbol)
        else:
            self._watch.discard(symbol)

    def open_order_margin(self) -> float:
        """Initial margin held by resting orders that would increase a position."""
        tot = 0.0
        for sym, m in self.markets.items():
            if not (m.bids or m.asks):
                continue
            q = self.position_lots(sym)
            lev = self.leverage.get(sym, self.default_leverage)
            k = m.inst.tick * m.inst.step
            for o in m.bids + m.asks:
                if o.reduce_only or (q and (q > 0) != (o.side_sign > 0)):
                    continue
                tot += o.remaining_lots * o.price_ticks * k / lev
        return tot

    def available_balance(self) -> float:
        return self.account.available(self.marks(), self.open_order_margin())

    # ================================================================== orders
    def place(self, req: OrderRequest, now_ns: int | None = None, **kw: Any) -> SimOrder | AlgoOrder:
        if req.kind.is_conditional:
            return self.place_algo(req, now_ns, **kw)
        return self.place_order(req, now_ns)

    def place_order(self, req: OrderRequest, now_ns: int | None = None) -> SimOrder:
        """POST /fapi/v1/order: LIMIT or MARKET (conditional types: -4120, exchange-facts A3)."""
        now = self.now_ns if now_ns is None else now_ns
        m = self.market(req.symbol)
        kind = req.kind.value
        if req.kind.is_conditional:
            raise SimError(-4120, "Order type not supported for this endpoint. Please use the Algo Order API "
                                  "endpoints instead.")
        if req.qty_lots <= 0:
            raise SimError(-4003, "Quantity less than or equal to zero.")
        inst = m.inst
        if req.qty_lots < inst.min_lots:
            raise SimError(-4003, f"Quantity less than minimum quantity {inst.min_qty}.")
        max_lots = inst.qty_to_lots(inst.market_max_qty if kind == "MARKET" else inst.max_qty)
        if max_lots and req.qty_lots > max_lots:
            raise SimError(-4005, "Quantity greater than max quantity.")
        if kind == "LIMIT" and (req.price_ticks is None or req.price_ticks <= 0):
            raise SimError(-4001, "Price less than 0.")
        cid = req.client_id or f"sim{self._next_order_id}"
        prev = self.by_client.get((req.symbol, cid))
        if prev is not None and prev.is_open:
            raise SimError(-4116, "ClientOrderId is duplicated.")
        side = req.side.sign
        tif = req.time_in_force.value if kind == "LIMIT" else "GTC"
        qty = req.qty_lots
        pos_q = self.position_lots(req.symbol)
        if req.reduce_only:
            if pos_q == 0 or (pos_q > 0) == (side > 0):
                raise SimError(-2022, "ReduceOnly Order is rejected.")
            if kind == "MARKET":
                qty = min(qty, abs(pos_q))
        k = inst.tick * inst.step
        if kind == "LIMIT":
            assert req.price_ticks is not None
            ref_px = req.price_ticks
        else:
            bbo = m.bbo()
            if bbo is None:
                raise SimError(-2010, "Order would be rejected: no liquidity.")  # empty book (not synced)
            ref_px = bbo[2] if side > 0 else bbo[0]
        min_notional = float(inst.min_notional or 0)
        if not req.reduce_only and qty * ref_px * k < min_notional - 1e-9:
            raise SimError(-4164, f"Order's notional must be no smaller than {inst.min_notional} "
                                  "(unless you choose reduce only).")
        if kind == "LIMIT" and tif == "GTX" and m.crosses(side, ref_px):
            raise SimError(-5022, "Due to the order could not be executed as maker, the Post Only order will be "
                                  "rejected. The order will not be recorded in the order history")
        if not req.reduce_only:
            increase = qty if (pos_q == 0 or (pos_q > 0) == (side > 0)) else max(0, qty - abs(pos_q))
            if increase:
                lev = self.leverage.get(req.symbol, self.default_leverage)
                need = increase * ref_px * k / lev
                if need > self.available_balance() + 1e-9:
                    raise SimError(-2019, "Margin is insufficient.")
        o = self._new_order(req.symbol, cid, side, kind, tif, qty, req.price_ticks or 0, req.reduce_only, now)
        self._execute(o, m, now)
        return o.copy()

    def _new_order(self, symbol: str, cid: str, side: int, kind: str, tif: str, qty: int, price: int,
                   reduce_only: bool, now: int) -> SimOrder:
        oid = self._next_order_id
        self._next_order_id += 1
        self._seq += 1
        o = SimOrder(oid, cid, symbol, side, kind, tif, qty, price, reduce_only, now, self._seq)
        self.orders[oid] = o
        self.by_client[(symbol, cid)] = o
        self._emit(OrderReport(now, o.copy(), "NEW"))
        return o

    def _execute(self, o: SimOrder, m: SymbolMarket, now: int) -> None:
        """Take what crosses, then rest / expire the remainder by the order's time in force."""
        limit = o.price_ticks if o.type == "LIMIT" else None
        if o.type == "MARKET" or m.crosses(o.side_sign, o.price_ticks):
            if o.tif == "FOK":
                can = sum(q for _, q in m.take(o.side_sign, o.remaining_lots, limit, dry_run=True))
                if can < o.remaining_lots:
                    self._finish(o, m, "EXPIRED", now)
                    return
            for t, q in m.take(o.side_sign, o.remaining_lots, limit):
                self._fill(o, q, t, False, now)
                if not o.is_open:
                    return
        if not o.is_open:
            return
        if o.type == "MARKET" or o.tif in ("IOC", "FOK"):
            self._finish(o, m, "EXPIRED", now)
        else:
            m.join(o)

    def _finish(self, o: SimOrder, m: SymbolMarket, status: str, now: int, reason: str = "") -> None:
        o.status = status
        o.updated_ns = now
        m.remove(o)
        self._emit(OrderReport(now, o.copy(), status, reason=reason))
        if o.parent_algo_id:
            self._child_done(o, now)

    def _maker_fills(self, fills: list[Fill]) -> None:
        now = self.now_ns
        for o, lots, px in fills:
            if o.is_open:
                self._fill(o, min(lots, o.remaining_lots), px, True, now)

    def _fill(self, o: SimOrder, lots: int, px: float, maker: bool, now: int, exec_type: str = "TRADE",
              fee_rate: float | None = None) -> None:
        sym = o.symbol
        m = self.markets[sym]
        pos = self._pos(sym)
        if o.reduce_only:
            q = pos.qty_lots
            allowed = abs(q) if q and (q > 0) != (o.side_sign > 0) else 0
            lots = min(lots, allowed)
            if lots <= 0:
                self._finish(o, m, "EXPIRED", now, "reduce-only order has nothing to reduce")
                return
        rate = fee_rate if fee_rate is not None else (self.account.maker_fee if maker else self.account.taker_fee)
        realized, fee = self.account.fill(pos, o.side_sign, lots, px, rate, now)
        o.filled_lots += lots
        o.avg_notional_tl += lots * px
        o.status = "FILLED" if o.filled_lots >= o.qty_lots else "PARTIALLY_FILLED"
        o.updated_ns = now
        tid = self._next_trade_id
        self._next_trade_id += 1
        if o.status == "FILLED":
            m.remove(o)
        self.fills.append((tid, o, lots, px, fee, realized, maker, now))
        self._emit(OrderReport(now, o.copy(), exec_type, lots, px, fee, realized, maker, tid))
        self._emit(AccountReport(now, "ORDER", (sym,)))
        self._after_position_change(sym, now)
        if o.parent_algo_id and o.status == "FILLED":
            self._child_done(o, now)

    def _after_position_change(self, sym: str, now: int) -> None:
        """Reduce-only orders never flip: expire resting ones left with nothing to reduce."""
        m = self.markets[sym]
        q = self.position_lots(sym)
        for o in [o for o in m.bids + m.asks if o.reduce_only]:
            if q == 0 or (q > 0) == (o.side_sign > 0):
                self._finish(o, m, "EXPIRED", now, "reduce-only order has nothing to reduce")
        self._refresh_watch(sym)

    # ---------------------------------------------------------------- cancel / query
    def _find(self, symbol: str, client_id: str | None, order_id: int | None) -> SimOrder | None:
        if order_id:
            o = self.orders.get(int(order_id))
            return o if o is not None and o.symbol == symbol else None
        if client_id:
            return self.by_client.get((symbol, client_id))
        raise SimError(-1102, "Mandatory parameter 'orderId' or 'origClientOrderId' was not sent.")

    def cancel(self, symbol: str, client_id: str | None = None, order_id: int | None = None,
               now_ns: int | None = None) -> SimOrder:
        now = self.now_ns if now_ns is None else now_ns
        m = self.market(symbol)
        o = self._find(symbol, client_id, order_id)
        if o is None or not o.is_open:
            raise SimError(-2011, "Unknown order sent.")
        self._finish(o, m, "CANCELED", now)
        return o.copy()

    def cancel_all(self, symbol: str, now_ns: int | None = None) -> list[SimOrder]:
        now = self.now_ns if now_ns is None else now_ns
        m = self.market(symbol)
        out = []
        for o in sorted(m.bids + m.asks, key=lambda o: o.seq):
            self._finish(o, m, "CANCELED", now)
            out.append(o.copy())
        return out

    def query(self, symbol: str, client_id: str | None = None, order_id: int | None = None) -> SimOrder:
        self.market(symbol)
        o = self._find(symbol, client_id, order_id)
        if o is None:
            raise SimError(-2013, "Order does not exist.")
        return o.copy()

    def open_orders(self, symbol: str | None = None) -> list[SimOrder]:
        ms = [self.market(symbol)] if symbol else list(self.markets.values())
        return [o.copy() for m in ms for o in sorted(m.bids + m.asks, key=lambda o: o.seq)]

    # ---------------------------------------------------------------- account settings
    def set_leverage(self, symbol: str, leverage: int, now_ns: int | None = None) -> int:
        self.market(symbol)
        top = brackets_for(symbol)[0].initial_leverage
        if not 1 <= leverage <= top:
            raise SimError(-4028, f"Leverage {leverage} is not valid")
        self.leverage[symbol] = leverage
        p = self.account.positions.get(symbol)
        if p is not None:
            p.leverage = leverage
        self.account.version += 1
        return leverage

    def set_margin_type(self, symbol: str, isolated: bool, now_ns: int | None = None) -> bool:
        m = self.market(symbol)
        if self.isolated[symbol] == isolated:
            raise SimError(-4046, "No need to change margin type.")
        if self.position_lots(symbol):
            raise SimError(-4048, "Margin type cannot be changed if there exists position.")
        if m.bids or m.asks:
            raise SimError(-4047, "Margin type cannot be changed if there exists open orders.")
        self.isolated[symbol] = isolated
        p = self.account.positions.get(symbol)
        if p is not None:
            p.isolated = isolated
        self.account.version += 1
        return isolated

    # ---------------------------------------------------------------- funding
    def _funding_due(self, now: int) -> None:
        """Pay funding for every symbol whose funding time has come (and set the first times)."""
        if self.funding_source == "none":
            self._funding_min_ns = _NEVER
            return
        iv = self.funding_interval_ns
        assumed = self.funding_source == "assumed"
        for m in self.markets.values():
            if not m.next_funding_ns:
                if now and assumed:  # recorded: the markPrice stream sets the times (FundingInfo)
                    m.next_funding_ns = (now // iv + 1) * iv  # 00:00/08:00/16:00 UTC for 8 h
                continue
            if now >= m.next_funding_ns:
                self._fund(m, now)
                while m.next_funding_ns <= now:
                    m.next_funding_ns += iv
        self._funding_min_ns = self._next_funding_min() if now else 0

    def _next_funding_min(self) -> int:
        if self.funding_source == "none":
            return _NEVER
        return min((m.next_funding_ns for m in self.markets.values() if m.next_funding_ns), default=_NEVER)

    def settle_funding(self, now_ns: int, symbol: str = "", rate: float | None = None) -> int:
        """Settle funding now, out of schedule (the server's `settle_funding` control): every held
        position (or `symbol`'s) pays or receives at `rate` (default: the market's). Returns how many."""
        n = 0
        for m in self.markets.values():
            if symbol in ("", m.symbol):
                n += self._fund(m, now_ns, rate if rate is not None else
                                (m.funding_rate if m.funding_rate is not None else self.funding_rate))
        return n

    def _fund(self, m: SymbolMarket, now: int, rate: float | None = None) -> int:
        p = self.account.positions.get(m.symbol)
        if p is None or not p.qty_lots:
            return 0
        if rate is None:
            if m.funding_rate is not None:
                rate = m.funding_rate
            elif self.funding_source == "assumed":
                rate = self.funding_rate
            else:
                return 0  # recorded: no rate was ever quoted for this market, so none is paid
        pay = self.account.funding(p, m.mark_ticks(), rate)
        self._emit(AccountReport(now, "FUNDING_FEE", (m.symbol,), pay))
        self._check_liquidation(now)
        return 1
