"""`BinanceGateway`: the ExecutionGateway of Binance USD-M, through ccxt async `binanceusdm`.

Environments (VenueSection.environment, exchange-facts A2/C1):
- mainnet: ccxt's URLs;
- demo: `enable_demo_trading(True)` (demo-fapi.binance.com, keys from demo.binance.com);
- testnet: `set_sandbox_mode(True)` + `options['disableFuturesSandboxWarning']` (ccxt otherwise refuses
  every signed fapi call); call exactly one of the two;
- exchange-sim: every `fapi*` URL pointed at `venue.rest_url` (C4), no currency/sapi calls.

Rules this class enforces (the issue's "where users lost money"):
- Entries on /fapi/v1/order; stops and take-profits as separate algo orders on /fapi/v1/algoOrder; cancels
  and look-ups of those with `trigger`. Orders are placed with the request ccxt's `create_order` would
  build (orders.order_params), signed by signer.py and sent through ccxt's `fetch` (same transport, hook
  and errors; ~300 us less per entry); everything else goes through ccxt's unified methods.
- ccxt's throttle off (it would space orders 200 ms apart, C4) and no ccxt retries; `TradeLimiter` fed by
  the X-MBX-* headers of every response decides. A 429 blocks for Retry-After what its limit covers (an
  IP-weight 429 on a weighted request does not block order placement, which weighs 0: A2); 418 blocks all.
  Nothing is sent into a Retry-After: RateLimited carries the time left (the engine waits it out for
  stops and exits, then sends again).
- Clock offset measured from /fapi/v1/time and applied (ccxt `timeDifference`); entries refused while
  the clock is not trusted (clock.py); -1021/-5028 -> resync at once; a protective order rejected by
  -1021 (it did not execute: the venue refused it before processing) is sent once more after the resync.
- Errors translated once (errors.py). An ambiguous placement (timeout, 5xx) is resolved by looking the
  order up by its client id (origClientOrderId / clientAlgoId) before anything else, never by resending.
- One aiohttp session, ours (ccxt does not close a session it was given; we do).
- order_transport "ws" (execution.order_transport): placements and cancels go as the same requests over the
  WebSocket API (wsapi.py) while its socket is up, by REST otherwise (nothing was sent on the socket then);
  the same errors, the same look-up by client id when a sent request got no answer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp

from bot.domain.orders import (
    AccountSnapshot,
    FundingPayment,
    OrderAck,
    OrderRequest,
    OrderUpdate,
    PositionSnapshot,
)
from bot.settings.core import VenueSection
from bot.venues.binance_usdm.ccxt_exchange import FAPI_PATHS, BinanceUsdm, ccxt_config
from bot.venues.binance_usdm.errors import ClockUnsynced, OrderNotFound, translate
from bot.venues.binance_usdm.instruments import parse_exchange_info
from bot.venues.binance_usdm.limiter import TradeLimiter
from bot.venues.binance_usdm.orders import (
    OrderGrid,
    algo_status_of,
    algo_update_from_rest,
    is_protective,
    order_params,
    order_update_from_rest,
    status_of,
)
from bot.venues.binance_usdm.signer import OrderSigner
from bot.venues.binance_usdm.userevents import UserEventTranslator
from bot.venues.binance_usdm.userstream import BinanceUserStream
from bot.venues.binance_usdm.wsapi import BinanceWsApi, ws_api_url
from bot.venues.errors import AmbiguousOutcome, OrderRejected, RateLimited, VenueError, VenueUnavailable
from bot.venues.gateway_common import LiveGateway
from bot.venues.order_transport import SocketLife
from bot.venues.ports import GatewayCapabilities, OrderTransportSnapshot
from bot.venues.ws_orders import WsNotConnected

__all__ = ["BinanceGateway", "BinanceUsdm"]  # BinanceUsdm re-exported from ccxt_exchange.py


class BinanceGateway(LiveGateway):
    name = "binance-usdm"
    # eager_submit: submit() does its own work (checks, request, signature, hand-off to aiohttp) before it
    # first waits and needs nothing from its caller to progress (execution/eager.py)
    capabilities = GatewayCapabilities(account_trades=True, raw_order_lookup=True, funding=True,
                                       stream_missed_hook=True, eager_submit=True, retry_after=True,
                                       order_transport=True, warm_submit=True)
    log_name = "binance.gateway"

    def __init__(self, venue: VenueSection, *, session: aiohttp.ClientSession | None = None,
                 wall_s: Callable[[], float] = time.time, order_transport: str = "rest") -> None:
        super().__init__(venue, session=session, wall_s=wall_s)
        self.order_transport = order_transport
        self.ws_api: BinanceWsApi | None = None  # order_transport "ws": the WebSocket API (wsapi.py)
        self.transport_life = SocketLife(order_transport, time.time_ns())  # its state, for the operator
        self.ex: BinanceUsdm | None = None
        self.limiter = TradeLimiter(budget_frac=venue.order_budget_frac)
        self._grids: dict[str, OrderGrid] = {}
        self._signer: OrderSigner | None = None
        self.translator: UserEventTranslator | None = None
        self.user_stream: BinanceUserStream | None = None
        self.stats = {"orders": 0, "ambiguous": 0, "ambiguous_found": 0, "clock_resyncs": 0, "rate_limited": 0,
                      "ws_requests": 0, "rest_fallbacks": 0}

    # ------------------------------------------------------------------------------------ life cycle
    def blocked_for_s(self, now_s: float) -> float:
        """ports.RetryAfterState: the longest Retry-After the limiter holds, of any kind (limiter.py)."""
        return self.limiter.blocked_for_s(now_s)

    async def start(self, autorun: bool = True) -> None:
        """Markets, limits, clock; then (autorun) the user stream and the clock resync in a task of ours.
        With autorun=False the caller runs `run()` in its own TaskGroup."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=32, ttl_dns_cache=300, enable_cleanup_closed=True))
        ex = BinanceUsdm(ccxt_config(self.venue, self._session))
        env = self.venue.environment
        if env == "demo":
            ex.enable_demo_trading(True)
        elif env == "testnet":
            ex.options["disableFuturesSandboxWarning"] = True
            ex.set_sandbox_mode(True)
        if self.venue.rest_url and env in ("exchange-sim", "mainnet", "demo", "testnet"):
            base = self.venue.rest_url.rstrip("/")
            for key, path in FAPI_PATHS.items():
                ex.urls["api"][key] = base + path
        elif env == "exchange-sim":
            raise ValueError("venue.environment = 'exchange-sim' needs venue.rest_url")
        ex.bot_on_response = self._on_response
        self.ex = ex
        try:
            await ex.load_markets()  # one GET /fapi/v1/exchangeInfo (C4)
        except Exception as e:
            raise translate(e, placing=False) from e
        info = ex.bot_exchange_info or {"symbols": [m["info"] for m in ex.markets.values()]}
        self.limiter.set_limits_from_exchange_info(info)
        allinst = parse_exchange_info(info)
        for s in self.symbols:
            if s not in allinst:
                raise VenueUnavailable(f"{s} is not listed by {env} exchangeInfo")
            self._instruments[s] = allinst[s]
        for m in ex.markets.values():
            if m["id"] in self._instruments and m.get("linear"):
                self._ccxt_symbol[m["id"]] = m["symbol"]
                types = (m.get("info") or {}).get("orderTypes") or ()
                self._grids[m["id"]] = OrderGrid(self._instruments[m["id"]], frozenset(types))
        self._signer = OrderSigner(ex)
        if self.order_transport == "ws":
            if BinanceWsApi.usable(ex):
                self.ws_api = BinanceWsApi(ex, ws_api_url(env, self.venue.rest_url),
                                           timeout_ms=self.venue.request_timeout_ms, on_response=self._on_response,
                                           life=self.transport_life)
            else:
                self._log.warning("order_transport ws needs an HMAC key; orders go by REST")
                self.transport_life.disable("the WebSocket API needs an HMAC key: orders go by REST", time.time_ns())
        self.translator = UserEventTranslator(self._instruments, self.venue.algo_link_wait_ms)
        await self.sync_clock()
        self.user_stream = BinanceUserStream(self)
        if autorun:
            # no await after this (App._run_venue wires the user stream's callbacks before its first await):
            # the order socket connects in the background; orders go by REST until it is up
            self._autorun()

    def order_transport_state(self) -> OrderTransportSnapshot:
        """ports.OrderTransportReport: the WebSocket API's state, the order frames sent on it (answered, refused
        or unanswered) and the order requests that went by REST while it was not up."""
        sent = self.ws_api.socket.stats["sent"] if self.ws_api is not None else 0
        return self.transport_life.snapshot(self.name, sent, self.stats["rest_fallbacks"])

    async def run(self) -> None:
        if self.ws_api is None:
            return await super().run()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(super().run())
            tg.create_task(self.ws_api.run())

    async def close(self) -> None:
        await super().close()  # the background task (and the socket's run) first
        if self.ws_api is not None:
            await self.ws_api.close()

    async def _close_stream(self) -> None:
        assert self.user_stream is not None
        await self.user_stream.close()  # DELETE the listenKey

    def _ex(self) -> BinanceUsdm:
        if self.ex is None:
            raise VenueUnavailable("gateway not started")
        return self.ex

    # ------------------------------------------------------------------------------------ feedback
    def _on_response(self, status: int, headers: dict[str, str], placing: bool = False,
                     code: int | None = None) -> None:
        self.limiter.on_response(status, headers, self._wall_s(), order=placing, code=code)

    async def _gate(self, *, order: bool, weight: int, protective: bool) -> None:
        """Never sends into a Retry-After (RateLimited with the time left: the engine waits it out for
        protective orders, exactly that long, and retries); waits up to limiter_max_wait_ms for budget."""
        now = self._wall_s()
        wait = self.limiter.delay_s(order=order, weight=weight, now_s=now, protective=protective)
        if wait > 0:
            if self.limiter.blocked_for_s(now, order=order, weight=weight) > 0 or \
                    wait * 1000 > self.venue.limiter_max_wait_ms:
                self.stats["rate_limited"] += 1
                raise RateLimited(f"trade limiter: wait {wait:.3f} s (used {self.limiter.used})",
                                  retry_after_s=wait, banned=self.limiter.banned)
            await asyncio.sleep(wait)
        self.limiter.spend(order=order, weight=weight, now_s=self._wall_s())

    def _translate(self, e: Exception, *, placing: bool) -> VenueError:
        return translate(e, placing=placing, retry_after_s=self.limiter.blocked_for_s(
            self._wall_s(), order=placing, weight=0 if placing else 1))

    async def sync_clock(self, samples: int = 3) -> None:
        """Measure the offset to the exchange (GET /fapi/v1/time, weight 1) and apply it to ccxt."""
        ex = self._ex()
        async with self._clock_lock:
            got: list[tuple[float, float, float]] = []
            for _ in range(samples):
                await self._gate(order=False, weight=1, protective=True)
                t0 = self._wall_s() * 1000.0
                try:
                    res = await ex.fapiPublicGetTime()
                except Exception as e:
                    raise self._translate(e, placing=False) from e
                t1 = self._wall_s() * 1000.0
                got.append((t0, float(res["serverTime"]), t1))
            self.clock.on_samples(got)
            ex.options["timeDifference"] = self.clock.time_difference_ms
            self.stats["clock_resyncs"] += 1
            self._log.info("clock synced", offset_ms=round(self.clock.offset_ms, 1), rtt_ms=round(self.clock.rtt_ms, 1),
                           entries=self.clock.entry_refusal() or "allowed")

    # ------------------------------------------------------------------------------------ orders
    async def submit(self, req: OrderRequest) -> OrderAck:
        self._ex()  # raises while not started
        protective = is_protective(req)
        if not protective:
            refusal = self.clock.entry_refusal()
            if refusal:
                raise ClockUnsynced(f"entry refused: {refusal}")
        grid = self._grids[req.symbol]
        path, params = order_params(req, grid, req.symbol)  # the request ccxt's create_order would send
        # ccxt's own refusals before sending (create_order_request): nothing is sent
        if grid.order_types is not None and params["type"] not in grid.order_types:
            raise OrderRejected(f"{params['type']} is not a valid order type for {req.symbol}", code="invalid")
        if params.get("quantity") == "0":
            raise OrderRejected(f"{req.client_id}: quantity 0", code="invalid")
        if self.translator is not None:
            self.translator.expect(req.client_id, req.kind.is_conditional)
        for attempt in (0, 1):
            if self.limiter.take_order(self._wall_s(), protective) > 0.0:  # budget now: counted, no await
                await self._gate(order=True, weight=0, protective=protective)  # waits it out or raises
            self.stats["orders"] += 1
            try:
                info = await self._place(path, params)  # signed per attempt: a fresh timestamp
            except Exception as e:
                err = self._translate(e, placing=True)
                if isinstance(err, ClockUnsynced):
                    self.clock.invalidate(str(err))
                    await self.sync_clock()
                    if protective and attempt == 0:
                        self._log.warning("clock rejected a protective order; resent after resync",
                                          client_id=req.client_id)
                        continue  # -1021: refused before processing, so this is not a blind resend
                    raise err from e
                if isinstance(err, AmbiguousOutcome):
                    return await self._resolve_ambiguous(req, err)
                raise err from e
            if not isinstance(info, dict):  # 2xx without an order object: we do not know what happened
                return await self._resolve_ambiguous(req, AmbiguousOutcome(
                    f"{req.client_id}: unreadable answer to POST {path}: {str(info)[:200]}"))
            if self.translator is not None and info:
                inst = self._instruments[req.symbol]
                answered = algo_update_from_rest(info, inst) if req.kind.is_conditional else \
                    order_update_from_rest(info, inst, time.time_ns())
                self.translator.track(answered)
                if not req.kind.is_conditional:  # RESULT answer: executedQty/avgPrice (gateway_common.ack_fill)
                    self.ack_fill(answered, self._fills_of_answered)
            return self._ack(req, info)
        raise AssertionError("unreachable")

    def warm_submit(self, req: OrderRequest) -> None:
        """ports.WarmSubmit: submit's synchronous part for `req` (the clock check, the request, the limiter's
        look, the signed body or frame of the transport in use), dropped: nothing sent, spent or expected."""
        signer = self._signer
        if signer is None or self.ex is None:
            return  # not started
        self.clock.entry_refusal()
        path, params = order_params(req, self._grids[req.symbol], req.symbol)
        self.limiter.delay_s(order=True, weight=0, now_s=self._wall_s(), protective=False)
        ws = self.ws_api
        if ws is not None and ws.up:
            ws.warm_place(path, params)
        else:
            signer.warm(path, params)

    async def _place(self, path: str, params: dict[str, Any]) -> Any:
        """The WebSocket API while its socket is up, else REST (WsNotConnected: nothing was sent)."""
        ws = self.ws_api
        if ws is not None:
            if ws.up:
                try:
                    res = await ws.place(path, params)
                    self.stats["ws_requests"] += 1
                    return res
                except WsNotConnected:
                    pass
            self.stats["rest_fallbacks"] += 1
        assert self._signer is not None
        return await self._signer.post(path, params)

    async def _fills_of_answered(self, u: OrderUpdate) -> int:
        """The exact fills (userTrades) of an order whose answer said it filled, through the stream's
        catch-up path (the translator drops trade ids it has delivered already)."""
        if self.user_stream is None:
            return 0
        return int((await self.user_stream._fills(u, parent=""))[0])

    def _ack(self, req: OrderRequest, info: dict[str, Any]) -> OrderAck:
        if req.kind.is_conditional:
            vid = str(info.get("algoId", ""))
            status = algo_status_of(str(info.get("algoStatus", "NEW")), 0)
        else:
            vid = str(info.get("orderId", ""))
            status = status_of(str(info.get("status", "NEW")))
        return OrderAck(req.client_id, vid, status, time.time_ns())

    async def _resolve_ambiguous(self, req: OrderRequest, err: AmbiguousOutcome) -> OrderAck:
        """The order may exist: look it up by client id, a few times (Binance may still be processing it)."""
        self.stats["ambiguous"] += 1
        delays_ms = self.venue.ambiguous_lookup_delays_ms
        for i, delay_ms in enumerate(delays_ms):
            if delay_ms:
                await asyncio.sleep(delay_ms / 1000.0)
            try:
                u = await self.fetch_order(req.symbol, req.client_id, req.kind.is_conditional)
            except (VenueUnavailable, RateLimited) as e:
                self._log.warning("ambiguous look-up failed", client_id=req.client_id, attempt=i, error=str(e))
                continue
            if u is not None:
                self.stats["ambiguous_found"] += 1
                self._log.warning("ambiguous placement resolved: the order exists", client_id=req.client_id,
                                  status=u.status.value)
                return OrderAck(req.client_id, u.venue_order_id, u.status, time.time_ns())
        raise AmbiguousOutcome(f"{req.client_id}: not found after {len(delays_ms)} look-ups ({err})") from err

    def _lookup_params(self, client_id: str, conditional: bool) -> dict[str, Any]:
        return {"trigger": True, "clientAlgoId": client_id} if conditional else {"origClientOrderId": client_id}

    async def fetch_order(self, symbol: str, client_id: str, conditional: bool = False) -> OrderUpdate | None:
        info = await self.fetch_order_raw(symbol, client_id, conditional)
        if info is None:
            return None
        inst = self._instruments[symbol]
        return algo_update_from_rest(info, inst, time.time_ns()) if conditional else \
            order_update_from_rest(info, inst, time.time_ns())

    async def fetch_order_raw(self, symbol: str, client_id: str, conditional: bool) -> dict[str, Any] | None:
        """The venue's own order dict (catch-up needs `actualOrderId` of a triggered algo order)."""
        ex = self._ex()
        await self._gate(order=False, weight=1, protective=True)
        try:
            o = await ex.fetch_order(None, self._ccxt_symbol[symbol], self._lookup_params(client_id, conditional))
        except Exception as e:
            err = self._translate(e, placing=False)
            if isinstance(err, OrderNotFound):
                return None
            raise err from e
        return o.get("info") or {}

    async def cancel(self, symbol: str, client_id: str, conditional: bool = False) -> None:
        """Idempotent: an order the venue no longer knows (filled, cancelled) is not an error here; its
        final state arrives through updates()."""
        ex = self._ex()
        await self._gate(order=False, weight=1, protective=True)
        try:
            ws = self.ws_api
            if ws is not None and ws.up:
                try:
                    await ws.cancel(symbol, client_id, conditional)
                    self.stats["ws_requests"] += 1
                    return
                except WsNotConnected:
                    self.stats["rest_fallbacks"] += 1
            elif ws is not None:
                self.stats["rest_fallbacks"] += 1
            await ex.cancel_order(None, self._ccxt_symbol[symbol], self._lookup_params(client_id, conditional))
        except Exception as e:
            err = self._translate(e, placing=False)
            if isinstance(err, OrderNotFound):
                self._log.info("cancel: order not open", client_id=client_id, conditional=conditional)
                return
            raise err from e

    async def open_orders(self, symbol: str | None = None) -> list[OrderUpdate]:
        """Regular AND algo orders open at the venue (GET openOrders + openAlgoOrders, per symbol: weight 1
        each; without a symbol Binance charges 40)."""
        ex = self._ex()
        out: list[OrderUpdate] = []
        for s in ([symbol] if symbol else list(self.symbols)):
            inst = self._instruments[s]
            for conditional in (False, True):
                await self._gate(order=False, weight=1, protective=True)
                try:
                    rows = await ex.fetch_open_orders(self._ccxt_symbol[s], None, None,
                                                      {"trigger": True} if conditional else {})
                except Exception as e:
                    raise self._translate(e, placing=False) from e
                for r in rows:
                    info = r.get("info") or {}
                    u = algo_update_from_rest(info, inst) if conditional else order_update_from_rest(info, inst)
                    if self.translator is not None and u.client_id:
                        self.translator.expect(u.client_id, conditional)
                    out.append(u)
        return out

    async def set_leverage(self, symbol: str, leverage: int) -> None:
        ex = self._ex()
        await self._gate(order=False, weight=1, protective=True)
        try:
            await ex.set_leverage(leverage, self._ccxt_symbol[symbol])
        except Exception as e:
            raise self._translate(e, placing=False) from e

    async def account(self) -> AccountSnapshot:
        """GET /fapi/v2/account (weight 5): balances and every position with entry price and leverage."""
        ex = self._ex()
        await self._gate(order=False, weight=5, protective=True)
        try:
            res = await ex.fapiPrivateV2GetAccount()
        except Exception as e:
            raise self._translate(e, placing=False) from e
        positions = []
        for p in res.get("positions", []):
            inst = self._instruments.get(p.get("symbol", ""))
            if inst is None or p.get("positionSide", "BOTH") != "BOTH":
                continue
            lots = inst.qty_to_lots(p.get("positionAmt") or "0")
            if lots == 0:
                continue
            positions.append(PositionSnapshot(
                symbol=p["symbol"], qty_lots=lots, entry_price=float(p.get("entryPrice") or 0),
                unrealized_pnl=float(p.get("unrealizedProfit") or 0), leverage=int(float(p.get("leverage") or 0)),
                isolated=bool(p.get("isolated", False))))
        return AccountSnapshot(
            equity=float(res.get("totalMarginBalance") or 0), available=float(res.get("availableBalance") or 0),
            wallet_balance=float(res.get("totalWalletBalance") or 0), positions=tuple(positions))

    async def fee_rates(self, symbol: str) -> tuple[str, str]:
        """GET /fapi/v1/commissionRate (USER_DATA, weight 20): the account's (maker, taker) rates on the
        symbol as the venue's decimal strings ("0.000200" = 2 bps), for the cost model at start-up."""
        ex = self._ex()
        await self._gate(order=False, weight=20, protective=False)
        try:
            res = await ex.fapiPrivateGetCommissionRate({"symbol": symbol})
        except Exception as e:
            raise self._translate(e, placing=False) from e
        return str(res["makerCommissionRate"]), str(res["takerCommissionRate"])

    async def user_trades(self, symbol: str, order_id: str = "", start_ms: int = 0) -> list[dict[str, Any]]:
        """GET /fapi/v1/userTrades (weight 5): the fills of one order we missed, or (no order id) the
        account's fills on the symbol from `start_ms` (a position closed by hand while we were away)."""
        ex = self._ex()
        await self._gate(order=False, weight=5, protective=True)
        params: dict[str, Any] = {"symbol": symbol}
        if order_id:
            params["orderId"] = order_id
        elif start_ms:
            params["startTime"] = start_ms
        try:
            return list(await ex.fapiPrivateGetUserTrades(params))
        except Exception as e:
            raise self._translate(e, placing=False) from e

    # ------------------------------------------------------------------------------------ streams
    async def funding_updates(self) -> AsyncIterator[FundingPayment]:
        """Funding settlements from ACCOUNT_UPDATE FUNDING_FEE (ports.FundingSource)."""
        while True:
            yield await self._funding.get()
