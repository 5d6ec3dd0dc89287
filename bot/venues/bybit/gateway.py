"""`BybitGateway`: the ExecutionGateway of Bybit v5 linear (USDT perpetuals), through ccxt async `bybit`.

exchange.py builds the ccxt instance (environments, options so ccxt makes no hidden calls, throttle and
retries off, our session); orders.py says where each OrderRequest goes; the protective stop is the
position's (trading-stop, tpslMode Full), which stops.py / stopdesk.py map onto the trade machine's stop
legs; userstream.py runs the private websocket and its REST catch-up.

Rules this class keeps:
- every request passes the BybitLimiter (fed by the X-Bapi-* headers and retCodes of every response);
  errors are translated once (errors.py);
- 10002 -> the clock is resynced from /v5/market/time at once, and a protective request the venue refused
  for it is sent once more (refused before processing, so not a blind resend); entries are refused while
  the clock is not trusted (ClockSync, shared with Binance: the same NTP-style offset estimate);
- an ambiguous placement (timeout, 5xx, 10016) is resolved by looking the order up by orderLinkId,
  realtime then history, a few times, never by resending;
- one aiohttp session, ours: ccxt does not close a session it was given, we do.
- order_transport "ws" (execution.order_transport): order create and cancel go over the /v5/trade socket
  (trade_ws.py) with the same body, orderLinkId, limiter and error translation; over REST while that socket
  is down or answered 10019 (not processed there); a request sent with no answer is ambiguous as on REST.
  The position's stop (trading-stop) has no websocket route on Bybit: it stays REST (stopdesk.py).
- restart safety (bot.execution.recovery, bot.execution.reconcile): `adopt_stop` (the owner registry of the
  position's stop lives in memory), `is_position_level` (never an orphan to cancel), `user_trades`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import aiohttp

from bot.domain.orders import AccountSnapshot, OrderAck, OrderRequest, OrderUpdate
from bot.domain.types import OrderStatus
from bot.settings.core import VenueSection
from bot.venues.bybit.errors import ClockUnsynced, NotModified, OrderNotFound, translate
from bot.venues.bybit.exchange import BybitV5, make_exchange
from bot.venues.bybit.fills import EXECUTIONS, execution_rows, trade_row
from bot.venues.bybit.limiter import BybitLimiter
from bot.venues.bybit.orders import (
    POSITION_LEVEL_TYPES,
    POSITION_STOP_TYPES,
    create_args,
    is_position_stop,
    is_protective,
    link_id,
    num,
    order_update_from_rest,
    parse_instruments,
    position_from_rest,
)
from bot.venues.bybit.stopdesk import StopDesk
from bot.venues.bybit.trade_ws import BybitTradeSocket, trade_url, ws_cancel, ws_create
from bot.venues.bybit.userevents import BybitEventTranslator
from bot.venues.bybit.userstream import BybitUserStream
from bot.venues.errors import AmbiguousOutcome, RateLimited, VenueError, VenueUnavailable
from bot.venues.gateway_common import LiveGateway
from bot.venues.order_transport import SocketLife
from bot.venues.ports import GatewayCapabilities, OrderTransportSnapshot

__all__ = ["BybitGateway", "BybitV5", "make_exchange"]  # the last two re-exported for tests

CREATE, CANCEL = "/v5/order/create", "/v5/order/cancel"
REALTIME, HISTORY, POSITIONS = "/v5/order/realtime", "/v5/order/history", "/v5/position/list"


class BybitGateway(LiveGateway):
    name = "bybit"
    # eager_submit: submit() does its own work (checks, request, signature, ccxt, hand-off to aiohttp) before it
    # first waits (tests/sim/test_bybit_eager.py), so the engine records an entry after its send, as on Binance
    capabilities = GatewayCapabilities(account_trades=True, raw_order_lookup=True, position_level_stop=True,
                                       stream_missed_hook=True, retry_after=True, cancel_by_venue_id=True,
                                       eager_submit=True, order_transport=True)
    stream_name = "private stream"
    log_name = "bybit.gateway"

    def __init__(self, venue: VenueSection, *, session: aiohttp.ClientSession | None = None,
                 wall_s: Callable[[], float] = time.time, ping_interval_s: float = 20.0,
                 order_transport: str = "rest") -> None:
        if venue.bybit_position_idx != 0:
            raise ValueError("venue.bybit_position_idx: only one-way mode (0) is supported")
        super().__init__(venue, session=session, wall_s=wall_s)
        self.position_idx = 0
        self.ping_interval_s = ping_interval_s
        self.ex: BybitV5 | None = None
        self.limiter = BybitLimiter(budget_frac=venue.order_budget_frac)
        self._settle: set[str] = set()
        self.translator: BybitEventTranslator | None = None
        self.user_stream: BybitUserStream | None = None
        self.stop_desk = StopDesk(self)
        self._position_level: dict[str, set[str]] = {}  # symbol -> listed order ids of its position's TP/SL
        self.order_transport = order_transport  # "rest" | "ws" (execution.order_transport)
        self.trade_ws: BybitTradeSocket | None = None
        self.transport_life = SocketLife(order_transport, time.time_ns())  # its state, for the operator
        self.stats = {"orders": 0, "stops": 0, "ambiguous": 0, "ambiguous_found": 0, "clock_resyncs": 0,
                      "rate_limited": 0, "ws_orders": 0, "ws_fallbacks": 0}

    # ------------------------------------------------------------------------------------ life cycle
    def blocked_for_s(self, now_s: float) -> float:
        """ports.RetryAfterState: the longest block the limiter holds (an IP ban, a per-UID 10006)."""
        return self.limiter.blocked_for_s(now_s)

    async def start(self, autorun: bool = True) -> None:
        """Markets, clock; then (autorun) the private stream and the clock resync in a task of ours.
        With autorun=False the caller runs `run()` in its own TaskGroup (or not at all: tests)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=32, ttl_dns_cache=300, enable_cleanup_closed=True))
        ex = make_exchange(self.venue, self._session)
        ex.bot_on_response = self._on_response
        self.ex = ex
        try:
            await ex.load_markets()  # GET /v5/market/instruments-info (+ its PreLaunch page), C4
        except Exception as e:
            raise translate(e, placing=False) from e
        allinst = parse_instruments(ex.bot_instruments or [m["info"] for m in ex.markets.values()])
        for s in self.symbols:
            if s not in allinst:
                raise VenueUnavailable(f"{s} is not listed by {self.venue.environment} instruments-info")
            self._instruments[s] = allinst[s]
        for m in ex.markets.values():
            if m["id"] in self._instruments and m.get("linear"):
                self._ccxt_symbol[m["id"]] = m["symbol"]
                self._settle.add(str(m.get("settleId") or "USDT"))
        self.translator = BybitEventTranslator(self._instruments, self.venue.algo_link_wait_ms, self.position_idx)
        await self.sync_clock()
        self.user_stream = BybitUserStream(self, ping_interval_s=self.ping_interval_s)
        if self.order_transport == "ws":
            url = trade_url(self.venue)
            if url is None:
                self._log.warning("order_transport ws: Bybit has no /v5/trade here (demo trading, B2); orders "
                                  "go over REST", env=self.venue.environment)
                self.transport_life.disable(f"no /v5/trade on {self.venue.environment} (B2): orders go over REST",
                                            time.time_ns())
            else:
                self.trade_ws = BybitTradeSocket(self, url, ping_interval_s=self.ping_interval_s,
                                                 life=self.transport_life)
        if autorun:
            self._autorun()

    def order_transport_state(self) -> OrderTransportSnapshot:
        """ports.OrderTransportReport: the /v5/trade socket's state, the order frames sent on it (answered,
        refused or unanswered) and the order requests that went over REST while it was not up."""
        sent = self.trade_ws.stats["sent"] if self.trade_ws is not None else 0
        return self.transport_life.snapshot(self.name, sent, self.stats["ws_fallbacks"])

    async def run(self) -> None:
        """The private stream, the clock resync and (order_transport ws) the /v5/trade socket."""
        assert self.user_stream is not None
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.user_stream.run())
            tg.create_task(self._clock_loop())
            if self.trade_ws is not None:
                tg.create_task(self.trade_ws.run())

    async def close(self) -> None:
        await super().close()
        if self.trade_ws is not None:
            await self.trade_ws.close()

    def _ex(self) -> BybitV5:
        if self.ex is None or self.translator is None:
            raise VenueUnavailable("gateway not started")
        return self.ex

    @property
    def tr(self) -> BybitEventTranslator:
        assert self.translator is not None
        return self.translator

    # ------------------------------------------------------------------------------------ plumbing
    def _on_response(self, path: str, status: int, headers: dict[str, str], ret_code: int | None) -> None:
        self.limiter.on_response(path, status, headers, ret_code, self._wall_s())

    async def call(self, path: str, fn: Callable[..., Awaitable[Any]], *args: Any, placing: bool = False,
                   protective: bool = True, http: bool = True) -> Any:
        """One REST request: the limiter's gate, then ccxt, errors translated once. `http=False`: `fn` sends
        the op over the /v5/trade socket (its UID limit is the REST path's, the HTTP IP budget is not)."""
        now = self._wall_s()
        wait = self.limiter.delay_s(path, now, protective=protective, http=http)
        if wait > 0:
            if self.limiter.blocked_for_s(now, path) > 0 or wait * 1000 > self.venue.limiter_max_wait_ms:
                self.stats["rate_limited"] += 1
                raise RateLimited(f"bybit limiter: {path} must wait {wait:.3f} s", retry_after_s=wait,
                                  banned=self.limiter.banned)
            await asyncio.sleep(wait)
        self.limiter.spend(path, self._wall_s(), http=http)
        try:
            return await fn(*args)
        except VenueError:
            raise  # the /v5/trade socket's answers come translated already (trade_ws.py)
        except Exception as e:
            now = self._wall_s()
            raise translate(e, placing=placing, retry_after_s=self.limiter.blocked_for_s(now, path),
                            banned=self.limiter.banned) from e

    async def sync_clock(self, samples: int = 3) -> None:
        """Measure the offset to Bybit (GET /v5/market/time, public) and apply it to ccxt's nonce."""
        ex = self._ex()
        async with self._clock_lock:
            got: list[tuple[float, float, float]] = []
            for _ in range(samples):
                t0 = self._wall_s() * 1000.0
                res = await self.call("/v5/market/time", ex.publicGetV5MarketTime, {})
                t1 = self._wall_s() * 1000.0
                nano = (res.get("result") or {}).get("timeNano")
                got.append((t0, int(nano) / 1e6 if nano else float(res["time"]), t1))
            self.clock.on_samples(got)
            ex.options["timeDifference"] = self.clock.time_difference_ms
            self.limiter.offset_s = self.clock.offset_ms / 1000.0
            self.stats["clock_resyncs"] += 1
            self._log.info("clock synced", offset_ms=round(self.clock.offset_ms, 1), rtt_ms=round(self.clock.rtt_ms, 1),
                           entries=self.clock.entry_refusal() or "allowed")

    async def clock_refused(self, err: ClockUnsynced) -> None:
        self.clock.invalidate(str(err))
        await self.sync_clock()

    # ------------------------------------------------------------------------------------ orders
    async def submit(self, req: OrderRequest) -> OrderAck:
        self._ex()
        inst = self._instruments[req.symbol]
        protective = is_protective(req)
        if not protective and (refusal := self.clock.entry_refusal()):
            raise ClockUnsynced(f"entry refused: {refusal}")
        if is_position_stop(req):
            return await self.stop_desk.place(req, inst)
        args = create_args(req, inst, self._ccxt_symbol[req.symbol], self.position_idx)
        self.tr.expect(req.client_id, req.kind)
        if "stopLoss" in args[5]:
            self.tr.stops.attach(req.symbol, req.client_id)
        for attempt in (0, 1):
            self.stats["orders"] += 1
            try:
                vid = await self._create(req, inst, args, protective)
            except ClockUnsynced as err:
                await self.clock_refused(err)
                if protective and attempt == 0:
                    self._log.warning("clock refused a protective order; resent after resync", client_id=req.client_id)
                    continue  # 10002: refused before processing, so this is not a blind resend
                raise
            except AmbiguousOutcome as err:
                return await self._resolve_ambiguous(req, err)
            self.tr.track(OrderUpdate(req.client_id, vid, req.symbol, req.side, req.kind, OrderStatus.NEW,
                                      req.qty_lots, 0, 0.0, reduce_only=req.reduce_only))
            # Bybit acknowledges only {orderId, orderLinkId}: the order's fate comes on the stream (B3).
            return OrderAck(req.client_id, vid, OrderStatus.NEW, time.time_ns())
        raise AssertionError("unreachable")

    async def _create(self, req: OrderRequest, inst: Any, args: tuple[Any, ...], protective: bool) -> str:
        """POST /v5/order/create, or `order.create` on the /v5/trade socket while it is up; the orderId."""
        if self.trade_ws is not None:
            vid = await ws_create(self, self.trade_ws, req, inst, protective)
            if vid is not None:
                return vid
        o = await self.call(CREATE, self._ex().create_order, *args, placing=True, protective=protective)
        return str((o.get("info") or {}).get("orderId", ""))

    async def _resolve_ambiguous(self, req: OrderRequest, err: AmbiguousOutcome) -> OrderAck:
        """The order may exist: look it up by orderLinkId, a few times (Bybit places asynchronously)."""
        self.stats["ambiguous"] += 1
        delays_ms = self.venue.ambiguous_lookup_delays_ms
        for i, delay_ms in enumerate(delays_ms):
            if delay_ms:
                await asyncio.sleep(delay_ms / 1000.0)
            try:
                u = await self.fetch_order(req.symbol, req.client_id)
            except (VenueUnavailable, RateLimited) as e:
                self._log.warning("ambiguous look-up failed", client_id=req.client_id, attempt=i, error=str(e))
                continue
            if u is not None:
                self.stats["ambiguous_found"] += 1
                self._log.warning("ambiguous placement resolved: the order exists", client_id=req.client_id,
                                  status=u.status.value)
                self.tr.track(u)
                return OrderAck(req.client_id, u.venue_order_id, u.status, time.time_ns())
        raise AmbiguousOutcome(f"{req.client_id}: not found after {len(delays_ms)} look-ups ({err})") from err

    async def cancel(self, symbol: str, client_id: str, conditional: bool = False) -> None:
        """Idempotent: an order the venue no longer knows is not an error (its final state comes on the
        stream). A stop leg is the position's stop: see `_end_stop_leg`."""
        ex = self._ex()
        if self.tr.stops.is_member(client_id):
            return await self.stop_desk.end(symbol, client_id)
        try:
            if self.trade_ws is not None and await ws_cancel(self, self.trade_ws, symbol, link_id(client_id)):
                return
            await self.call(CANCEL, ex.cancel_order, None, self._ccxt_symbol[symbol],
                            {"orderLinkId": link_id(client_id)})
        except OrderNotFound:
            self._log.info("cancel: order not open", client_id=client_id)

    async def cancel_venue_order(self, symbol: str, venue_order_id: str) -> None:
        """ports.VenueIdCancel: by orderId (an order placed by hand has no orderLinkId, B3); idempotent."""
        try:
            await self.call(CANCEL, self._ex().cancel_order, venue_order_id, self._ccxt_symbol[symbol])
        except OrderNotFound:
            self._log.info("cancel: order not open", venue_order_id=venue_order_id)

    # ------------------------------------------------------------------------------------ look-ups
    async def fetch_order(self, symbol: str, client_id: str, conditional: bool = False) -> OrderUpdate | None:
        if self.tr.stops.is_member(client_id):
            return await self.stop_desk.lookup(symbol, client_id)
        d = await self.fetch_order_raw(symbol, client_id)
        if d is None:
            return None
        u = order_update_from_rest(d, self._instruments[symbol], time.time_ns())
        return replace(u, kind=self.tr.known.get(client_id, u.kind))

    async def verify_stop(self, symbol: str, owner: str) -> None:
        await self.stop_desk.verify(symbol, owner)

    def adopt_stop(self, req: OrderRequest, since_ns: int = 0) -> None:
        """After a restart: a journal trade's live stop leg `req` is the position's stop again. Called for
        each live stop leg of a trade, oldest first (the last one owns the stop, the others are superseded),
        before the first reconciliation. `since_ns`: the venue time of the trade's first fill; a position
        stop execution after it is this stop having fired while we were away (fetch_order finds it)."""
        self._ex()
        self.stop_desk.adopt(req, since_ns)

    def is_position_level(self, u: OrderUpdate) -> bool:
        """`u` (from open_orders) is the position's own stop (or take-profit): it goes with the position,
        and has no orderLinkId to cancel it by (removing it is a trading-stop, which only its owner leg
        does)."""
        return u.venue_order_id in self._position_level.get(u.symbol, ())

    async def fetch_order_raw(self, symbol: str, client_id: str, conditional: bool = False) -> dict[str, Any] | None:
        """By orderLinkId: GET /v5/order/realtime (open), then /v5/order/history (ended); every kind, so
        `conditional` (reconcile.leg_fills passes it) changes nothing."""
        ex = self._ex()
        q = {"category": "linear", "symbol": symbol, "orderLinkId": link_id(client_id)}
        for path, fn in ((REALTIME, ex.privateGetV5OrderRealtime), (HISTORY, ex.privateGetV5OrderHistory)):
            rows = _rows(await self.call(path, fn, dict(q)))
            if rows:
                return rows[0]
        return None

    async def open_orders_raw(self, symbol: str) -> list[dict[str, Any]]:
        """Every open order of the symbol, conditional ones included (GET /v5/order/realtime)."""
        return _rows(await self.call(REALTIME, self._ex().privateGetV5OrderRealtime,
                                     {"category": "linear", "symbol": symbol}))

    async def open_orders(self, symbol: str | None = None) -> list[OrderUpdate]:
        """Every open order, the position's own stop included (reported under the stop leg it stands for,
        or with no client id: StopDesk.listed_as)."""
        out: list[OrderUpdate] = []
        for s in [symbol] if symbol else list(self.symbols):
            inst = self._instruments[s]
            level: set[str] = set()
            for d in await self.open_orders_raw(s):
                sot = "" if d.get("orderLinkId") else str(d.get("stopOrderType") or "")
                if sot in POSITION_LEVEL_TYPES:
                    level.add(str(d.get("orderId", "")))
                if sot in POSITION_STOP_TYPES:
                    cid = self.stop_desk.listed_as(s, inst.price_to_ticks(d.get("triggerPrice") or "0"))
                else:
                    link = self.tr._link(d)
                    cid = link[0] if link else ""
                u = order_update_from_rest(d, inst, time.time_ns(), client_id=cid)
                if cid and not self.tr.stops.is_member(cid):
                    u = replace(u, kind=self.tr.known.get(cid, u.kind))
                    self.tr.expect(cid, u.kind)
                out.append(u)
            self._position_level[s] = level
        return out

    async def user_trades(self, symbol: str, order_id: str = "", start_ms: int = 0) -> list[dict[str, Any]]:
        """GET /v5/execution/list: the fills of one order, or (no order id) the account's fills on the
        symbol from `start_ms` (a position closed by hand while we were away), in the words reconcile
        reads (bot.venues.bybit.fills.trade_row)."""
        ex = self._ex()
        rows = await execution_rows(lambda q: self.call(EXECUTIONS, ex.privateGetV5ExecutionList, q), symbol,
                                    order_id=order_id, start_ms=start_ms)
        return [trade_row(r) for r in rows]

    async def executions(self, symbol: str, since_ms: int) -> list[dict[str, Any]]:
        """GET /v5/execution/list from `since_ms`, oldest first: fills we may have missed. The same reading as
        user_trades (fills.execution_rows: pages, fills only, ties in one millisecond in the venue's `seq` order;
        sorting the newest-first answer by execTime alone left two fills of one millisecond newest first)."""
        ex = self._ex()
        return await execution_rows(lambda q: self.call(EXECUTIONS, ex.privateGetV5ExecutionList, q), symbol,
                                    start_ms=since_ms)

    async def positions_raw(self) -> list[dict[str, Any]]:
        """GET /v5/position/list per settle coin; our symbols, one-way positions only."""
        out: list[dict[str, Any]] = []
        for coin in sorted(self._settle):
            rows = _rows(await self.call(POSITIONS, self._ex().privateGetV5PositionList,
                                         {"category": "linear", "settleCoin": coin}))
            out.extend(p for p in rows if p.get("symbol") in self._instruments
                       and int(float(p.get("positionIdx") or 0)) == self.position_idx)
        return out

    async def position_raw(self, symbol: str) -> dict[str, Any] | None:
        rows = _rows(await self.call(POSITIONS, self._ex().privateGetV5PositionList,
                                     {"category": "linear", "symbol": symbol}))
        return next((p for p in rows if int(float(p.get("positionIdx") or 0)) == self.position_idx), None)

    async def fee_rates(self, symbol: str) -> tuple[str, str]:
        """GET /v5/account/fee-rate (category linear): the account's (maker, taker) rates on the symbol as
        decimal strings ("0.0002" = 2 bps), for the cost model at start-up."""
        rows = _rows(await self.call("/v5/account/fee-rate", self._ex().privateGetV5AccountFeeRate,
                                     {"category": "linear", "symbol": symbol}))
        row = next((r for r in rows if r.get("symbol") == symbol), None)
        if row is None:
            raise VenueUnavailable(f"/v5/account/fee-rate: no row for {symbol}")
        return str(row["makerFeeRate"]), str(row["takerFeeRate"])

    async def set_leverage(self, symbol: str, leverage: int) -> None:
        with contextlib.suppress(NotModified):  # 110043: already this leverage
            await self.call("/v5/position/set-leverage", self._ex().set_leverage, leverage, self._ccxt_symbol[symbol])

    async def account(self) -> AccountSnapshot:
        """GET /v5/account/wallet-balance (UNIFIED) and the positions."""
        res = await self.call("/v5/account/wallet-balance", self._ex().privateGetV5AccountWalletBalance,
                              {"accountType": "UNIFIED"})
        w = (_rows(res) or [{}])[0]
        positions = []
        for p in await self.positions_raw():
            snap = position_from_rest(p, self._instruments[p["symbol"]])
            if snap.qty_lots:
                positions.append(snap)
        return AccountSnapshot(equity=num(w.get("totalEquity")), available=num(w.get("totalAvailableBalance")),
                               wallet_balance=num(w.get("totalWalletBalance")), positions=tuple(positions))

    # ------------------------------------------------------------------------------------ streams


def _rows(res: Any) -> list[dict[str, Any]]:
    return list(((res or {}).get("result") or {}).get("list") or [])
