"""REST routes of the loopback exchange (Binance USD-M `/fapi`), exchange-facts A2-A5.

Every handler goes through `_Endpoint`: rate limits (429/418 + Retry-After), then API key and, for
signed endpoints, timestamp/recvWindow and the HMAC signature (auth.py), then the call into the
`SimExchange` core; `SimError`s become Binance error bodies {"code": .., "msg": ..}. Parameters come
from the query string and the urlencoded body together, as on the venue.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import orjson
from aiohttp import web

from bot.domain.instrument import Instrument
from bot.domain.orders import OrderRequest
from bot.domain.types import OrderKind, Side, TimeInForce, TriggerPrice
from bot.venues.sim import wire
from bot.venues.sim.orders import SimError

if TYPE_CHECKING:
    from bot.venues.sim.server import SimServer

__all__ = ["add_rest_routes"]

Params = dict[str, str]
_CID = re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$")
_DEPTH_WEIGHT = {5: 2, 10: 2, 20: 2, 50: 2, 100: 5, 500: 10, 1000: 20}
_CONDITIONAL = {"STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET"}


def _dumps(o: Any) -> str:
    return orjson.dumps(o).decode()


class _Ambiguous(Exception):
    def __init__(self, status: int) -> None:
        self.status = status


def _need(p: Params, name: str) -> str:
    v = p.get(name)
    if v is None or v == "":
        raise SimError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")
    return v


def _grid(inst: Instrument, value: str, step: str, code: int, msg: str) -> int:
    try:
        q = Decimal(value) / Decimal(step)
    except InvalidOperation as e:
        raise SimError(-1100, "Illegal characters found in a parameter.") from e
    if q != q.to_integral_value():
        raise SimError(code, msg)
    return int(q)


def _lots(inst: Instrument, value: str) -> int:
    return _grid(inst, value, inst.step_size, -1111, "Precision is over the maximum defined for this asset.")


def _ticks(inst: Instrument, value: str) -> int:
    return _grid(inst, value, inst.tick_size, -4014, "Price not increased by tick size.")


def _bool(v: str | None) -> bool:
    return (v or "").lower() == "true"


def _side(p: Params) -> Side:
    v = _need(p, "side")
    if v not in ("BUY", "SELL"):
        raise SimError(-1117, "Invalid side.")
    return Side(v)


def _one_way(p: Params) -> None:
    if p.get("positionSide", "BOTH") != "BOTH":
        raise SimError(-4061, "Order's position side does not match user's setting.")


class _Endpoint:
    def __init__(self, s: SimServer, fn: Callable[[Params], Awaitable[Any]], weight: int | Callable[[Params], int],
                 signed: bool, key: bool, order: bool) -> None:
        self.s, self.fn, self.weight, self.signed, self.key, self.order = s, fn, weight, signed, key, order

    async def __call__(self, request: web.Request) -> web.Response:
        s = self.s
        now = s.now_ms()
        raw_q = request.rel_url.raw_query_string
        body = await request.text() if request.can_read_body else ""
        params: Params = dict(parse_qsl(raw_q, keep_blank_values=True))
        if body:
            params.update(parse_qsl(body, keep_blank_values=True))
        w = self.weight(params) if callable(self.weight) else self.weight
        key = f"{request.method} {request.path}"
        s.requests[key] = s.requests.get(key, 0) + 1  # per endpoint, shown by GET /_sim/state
        if s.faults.armed_limits:
            s.faults.arm_limit(request.method, request.path, now)
        limited = s.limits.admit(now, w)
        if limited is not None:
            return self._limited(*limited)
        try:
            if self.key or self.signed:
                s.auth.check_key(request.headers.get("X-MBX-APIKEY"))
            if self.signed:
                s.auth.verify(raw_q, body, params, now)
        except SimError as e:
            return web.json_response({"code": e.code, "msg": e.msg}, status=e.http_status,
                                     headers=s.limits.headers(self.order))
        if self.order:
            limited = s.limits.count_order(now)
            if limited is not None:
                return self._limited(*limited)
        headers = s.limits.headers(self.order)
        try:
            result = await self.fn(params)
        except SimError as e:
            body = s.faults.deviate(request.method, request.path, {"code": e.code, "msg": e.msg})
            return web.json_response(body, status=e.http_status, headers=headers)
        except _Ambiguous as e:
            return web.json_response({"code": -1007, "msg": "Timeout waiting for response from backend server. "
                                      "Send status unknown; execution status unknown."}, status=e.status,
                                     headers=headers)
        return web.json_response(s.faults.deviate(request.method, request.path, result), headers=headers,
                                 dumps=_dumps)

    def _limited(self, status: int, retry: int) -> web.Response:
        msg = ("Too many requests; current limit of IP(127.0.0.1) request weight per minute is 2400. "
               "Please use WebSocket Streams for live updates to avoid polling the API.") if status == 429 \
            else "Way too many requests; IP(127.0.0.1) banned. Please use WebSocket Streams for live updates."
        return web.json_response({"code": -1003, "msg": msg}, status=status,
                                 headers={"Retry-After": str(retry), **self.s.limits.headers(self.order)})


class _Rest:
    def __init__(self, s: SimServer) -> None:
        self.s = s
        self.ex = s.ex

    def _inst(self, p: Params) -> Instrument:
        return self.ex.market(_need(p, "symbol").upper()).inst

    # ------------------------------------------------------------------ public
    async def ping(self, p: Params) -> Any:
        return {}

    async def time(self, p: Params) -> Any:
        return {"serverTime": self.s.now_ms()}

    async def exchange_info(self, p: Params) -> Any:
        return wire.exchange_info(self.ex, self.s.now_ms())

    async def depth(self, p: Params) -> Any:
        inst = self._inst(p)
        limit = int(p.get("limit", "500"))
        if limit not in _DEPTH_WEIGHT:
            raise SimError(-1130, "Data sent for parameter 'limit' is not valid.")
        # Answer at the next diff so the snapshot's lastUpdateId is the u of an event that every
        # subscriber has (or is about to get): the U <= lastUpdateId <= u splice then always bridges.
        await self.s.next_depth(inst.symbol, 1.0)
        m = self.ex.markets[inst.symbol]
        if m.sync.last_update_id < 0:
            raise SimError(-1001, "Internal error; unable to process your request. Please try again.", 503)
        fmt = wire.Fmt.of(inst)
        ms = self.s.now_ms()
        return {"lastUpdateId": m.sync.last_update_id, "E": ms, "T": ms,
                "bids": [[fmt.price(t), fmt.qty(q)] for t, q in m.book.bids(limit)],
                "asks": [[fmt.price(t), fmt.qty(q)] for t, q in m.book.asks(limit)]}

    async def book_ticker(self, p: Params) -> Any:
        inst = self._inst(p)
        m = self.ex.markets[inst.symbol]
        bbo = m.book.bbo() or (0, 0, 0, 0)
        fmt = wire.Fmt.of(inst)
        return {"symbol": inst.symbol, "bidPrice": fmt.price(bbo[0]), "bidQty": fmt.qty(bbo[1]),
                "askPrice": fmt.price(bbo[2]), "askQty": fmt.qty(bbo[3]), "time": self.s.now_ms(),
                "lastUpdateId": m.sync.last_update_id}

    async def premium_index(self, p: Params) -> Any:
        syms = [self._inst(p).symbol] if p.get("symbol") else list(self.ex.markets)
        out = []
        for sym in syms:
            m = self.ex.markets[sym]
            tick = m.inst.tick
            rate = m.funding_rate if m.funding_rate is not None else self.ex.funding_rate
            out.append({"symbol": sym, "markPrice": f"{m.mark_ticks() * tick:.8f}",
                        "indexPrice": f"{(m.index_ticks or m.mark_ticks()) * tick:.8f}",
                        "estimatedSettlePrice": f"{m.mark_ticks() * tick:.8f}", "lastFundingRate": f"{rate:.8f}",
                        "interestRate": "0.00010000", "nextFundingTime": m.next_funding_ns // 1_000_000,
                        "time": self.s.now_ms()})
        return out[0] if p.get("symbol") else out

    # ------------------------------------------------------------------ orders
    async def _order_faults(self) -> None:
        if self.s.faults.delay_orders_ms:
            await asyncio.sleep(self.s.faults.delay_orders_ms / 1000)

    def _after_execute(self, opening: bool = True) -> None:
        status = self.s.faults.take_error_after_execute(opening)
        if status is not None:
            raise _Ambiguous(status)

    async def new_order(self, p: Params) -> Any:
        inst = self._inst(p)
        side = _side(p)
        typ = _need(p, "type")
        _one_way(p)
        if typ in _CONDITIONAL:
            raise SimError(-4120, "Order type not supported for this endpoint. Please use the Algo Order API "
                                  "endpoints instead.")
        if typ not in ("LIMIT", "MARKET"):
            raise SimError(-1116, "Invalid orderType.")
        cid = p.get("newClientOrderId") or ""
        if cid and not _CID.match(cid):
            raise SimError(-4015, "Client order id is not valid.")
        lots = _lots(inst, _need(p, "quantity"))
        price = tif = None
        match = p.get("priceMatch") or "NONE"
        if match != "NONE":
            price = self._price_match(inst.symbol, typ, side, match, p.get("price"))
            tif = _need(p, "timeInForce")
        elif typ == "LIMIT":
            price = _ticks(inst, _need(p, "price"))
            tif = _need(p, "timeInForce")
        if typ == "LIMIT" and tif not in TimeInForce.__members__:
            raise SimError(-1115, "Invalid timeInForce.")
        req = OrderRequest(cid, inst.symbol, side, OrderKind(typ), lots, price,
                           time_in_force=TimeInForce(tif or "GTC"), reduce_only=_bool(p.get("reduceOnly")))
        await self._order_faults()
        late_ms = self.s.faults.take_late_execute(opening=not req.reduce_only)
        if late_ms is not None:
            self.s.faults.place_late(req, late_ms)
            raise _Ambiguous(self.s.faults.error_status)
        o = self.ex.place_order(req, now_ns=self.s.engine_now_ns())
        self._after_execute(opening=not req.reduce_only)
        return wire.order_body(self.ex, o)

    def _price_match(self, symbol: str, typ: str, side: Side, match: str, price: str | None) -> int:
        """`priceMatch` (exchange-facts, Binance change-log "standing"): the limit price is the book's, taken
        when the order arrives: QUEUE(_5/_10/_20) our own side's best (5th, 10th, 20th) level, OPPONENT(_n)
        the other side's. LIMIT only, never together with `price`."""
        if typ != "LIMIT":
            raise SimError(-1106, "Parameter 'priceMatch' sent when not required.")
        if price:
            raise SimError(-1106, "Parameter 'price' sent when not required.")
        kind, _, n = match.partition("_")
        if kind not in ("QUEUE", "OPPONENT") or n not in ("", "5", "10", "20"):
            raise SimError(-1130, "Data sent for parameter 'priceMatch' is not valid.")
        book = self.ex.market(symbol).book
        own_bids = (side is Side.BUY) == (kind == "QUEUE")
        levels = book.bids(int(n or 1)) if own_bids else book.asks(int(n or 1))
        if not levels:
            raise SimError(-2010, "Order would be rejected: no liquidity.")
        return levels[-1][0]

    async def cancel_order(self, p: Params) -> Any:
        inst = self._inst(p)
        o = self.ex.cancel(inst.symbol, p.get("origClientOrderId"), int(p.get("orderId") or 0) or None,
                           now_ns=self.s.engine_now_ns())
        return wire.order_body(self.ex, o)

    async def query_order(self, p: Params) -> Any:
        inst = self._inst(p)
        return wire.order_body(self.ex, self.ex.query(inst.symbol, p.get("origClientOrderId"),
                                                      int(p.get("orderId") or 0) or None))

    async def open_order(self, p: Params) -> Any:
        o = await self.query_order(p)
        if o["status"] not in ("NEW", "PARTIALLY_FILLED"):
            raise SimError(-2013, "Order does not exist.")
        return o

    async def open_orders(self, p: Params) -> Any:
        sym = self._inst(p).symbol if p.get("symbol") else None
        return [wire.order_body(self.ex, o) for o in self.ex.open_orders(sym)]

    async def user_trades(self, p: Params) -> Any:
        inst = self._inst(p)
        limit = min(1000, int(p.get("limit", "500")))
        return wire.user_trades(self.ex, inst.symbol, int(p["orderId"]) if p.get("orderId") else None, limit)

    async def cancel_all(self, p: Params) -> Any:
        self.ex.cancel_all(self._inst(p).symbol, now_ns=self.s.engine_now_ns())
        return {"code": 200, "msg": "The operation of cancel all open order is done."}

    # ------------------------------------------------------------------ algo orders (exchange-facts A3)
    async def new_algo(self, p: Params) -> Any:
        inst = self._inst(p)
        if _need(p, "algoType") != "CONDITIONAL":
            raise SimError(-1102, "Mandatory parameter 'algoType' was not sent, was empty/null, or malformed.")
        side = _side(p)
        typ = _need(p, "type")
        _one_way(p)
        if typ not in ("STOP_MARKET", "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET"):
            raise SimError(-1116, "Invalid orderType.")  # STOP/TAKE_PROFIT (limit) are not simulated
        cid = p.get("clientAlgoId") or ""
        if cid and not _CID.match(cid):
            raise SimError(-4015, "Client order id is not valid.")
        close = _bool(p.get("closePosition"))
        lots = _lots(inst, p["quantity"]) if p.get("quantity") else 0
        trig = _ticks(inst, p["triggerPrice"]) if p.get("triggerPrice") else None
        act = _ticks(inst, p["activatePrice"]) if p.get("activatePrice") else 0
        cb = round(float(p["callbackRate"]) * 100) if p.get("callbackRate") else None
        wt = p.get("workingType", "CONTRACT_PRICE")
        if wt not in ("MARK_PRICE", "CONTRACT_PRICE"):
            raise SimError(-1102, "Mandatory parameter 'workingType' was not sent, was empty/null, or malformed.")
        req = OrderRequest(cid, inst.symbol, side, OrderKind(typ), lots, trigger_ticks=trig,
                           reduce_only=_bool(p.get("reduceOnly")), close_position=close,
                           working_type=TriggerPrice(wt), callback_rate_bps=cb)
        await self._order_faults()
        rejection = self.s.faults.take_stop_rejection()
        if rejection is not None:
            raise SimError(*rejection)
        a = self.ex.place_algo(req, now_ns=self.s.engine_now_ns(), activate_ticks=act,
                               price_protect=_bool(p.get("priceProtect")))
        self._after_execute(opening=not (req.reduce_only or close))
        return wire.algo_body(self.ex, a)

    def _algo_ref(self, p: Params) -> tuple[str, str | None, int | None]:
        return self._inst(p).symbol, p.get("clientAlgoId"), int(p.get("algoId") or 0) or None

    async def cancel_algo(self, p: Params) -> Any:
        a = self.ex.cancel_algo(*self._algo_ref(p), now_ns=self.s.engine_now_ns())
        return {**wire.algo_body(self.ex, a), "code": "200", "msg": "success"}

    async def query_algo(self, p: Params) -> Any:
        return wire.algo_body(self.ex, self.ex.query_algo(*self._algo_ref(p)))

    async def open_algos(self, p: Params) -> Any:
        sym = self._inst(p).symbol if p.get("symbol") else None
        return [wire.algo_body(self.ex, a) for a in self.ex.open_algo_orders(sym)]

    async def all_algos(self, p: Params) -> Any:
        sym = self._inst(p).symbol
        return [wire.algo_body(self.ex, a) for a in self.ex.algos.values() if a.symbol == sym]

    async def cancel_all_algos(self, p: Params) -> Any:
        self.ex.cancel_all_algos(self._inst(p).symbol, now_ns=self.s.engine_now_ns())
        return {"code": 200, "msg": "The operation of cancel all open order is done."}

    # ------------------------------------------------------------------ account
    async def commission_rate(self, p: Params) -> Any:
        """GET /fapi/v1/commissionRate: the account's maker/taker rates (the sim's configured fees)."""
        inst = self._inst(p)
        acct = self.ex.account
        return {"symbol": inst.symbol, "makerCommissionRate": f"{acct.maker_fee:.6f}",
                "takerCommissionRate": f"{acct.taker_fee:.6f}", "rpiCommissionRate": f"{acct.maker_fee:.6f}"}

    async def leverage(self, p: Params) -> Any:
        sym = self._inst(p).symbol
        lev = self.ex.set_leverage(sym, int(_need(p, "leverage")))
        return {"leverage": lev, "maxNotionalValue": f"{wire._max_notional(sym, lev):.0f}", "symbol": sym}

    async def margin_type(self, p: Params) -> Any:
        mt = _need(p, "marginType").upper()
        if mt not in ("ISOLATED", "CROSSED", "CROSS"):
            raise SimError(-1102, "Mandatory parameter 'marginType' was not sent, was empty/null, or malformed.")
        self.ex.set_margin_type(self._inst(p).symbol, mt == "ISOLATED")
        return {"code": 200, "msg": "success"}

    async def leverage_bracket(self, p: Params) -> Any:
        syms = [self._inst(p).symbol] if p.get("symbol") else list(self.ex.markets)
        return wire.leverage_brackets(syms)

    async def position_side(self, p: Params) -> Any:
        return {"dualSidePosition": False}

    async def set_position_side(self, p: Params) -> Any:
        if _bool(p.get("dualSidePosition")):
            raise SimError(-4068, "The simulator supports one-way mode only.")
        raise SimError(-4059, "No need to change position side.")

    async def multi_assets(self, p: Params) -> Any:
        return {"multiAssetsMargin": False}

    async def position_risk_v2(self, p: Params) -> Any:
        return wire.position_risk(self.ex, self._inst(p).symbol if p.get("symbol") else None, v3=False)

    async def position_risk_v3(self, p: Params) -> Any:
        return wire.position_risk(self.ex, self._inst(p).symbol if p.get("symbol") else None, v3=True)

    async def account_v2(self, p: Params) -> Any:
        return wire.account_body(self.ex, False, self.s.now_ms())

    async def account_v3(self, p: Params) -> Any:
        return wire.account_body(self.ex, True, self.s.now_ms())

    async def balance(self, p: Params) -> Any:
        return wire.balance_body(self.ex, self.s.now_ms())

    # ------------------------------------------------------------------ user stream (exchange-facts A4)
    async def listen_key_new(self, p: Params) -> Any:
        return {"listenKey": self.s.new_listen_key()}

    async def listen_key_keepalive(self, p: Params) -> Any:
        now = self.s.now_ms()
        live = [k for k, exp in self.s.listen_keys.items() if exp > now]
        if not live:
            raise SimError(-1125, "This listenKey does not exist.")
        for k in live:
            self.s.listen_keys[k] = now + 60 * 60 * 1000
        return {"listenKey": live[0]}

    async def listen_key_delete(self, p: Params) -> Any:
        for k in list(self.s.listen_keys):
            self.s.listen_keys.pop(k, None)
            for c in [c for c in self.s.conns if c.route == "private" and c.listen_key == k]:
                await self.s.close_conn(c)
        return {}


def add_rest_routes(app: web.Application, s: SimServer) -> None:
    r = _Rest(s)
    router = app.router

    def add(method: str, path: str, fn: Callable[[Params], Awaitable[Any]], weight: int | Callable[[Params], int] = 1,
            signed: bool = False, key: bool = False, order: bool = False) -> None:
        ep = _Endpoint(s, fn, weight, signed, key, order)

        async def handler(request: web.Request) -> web.Response:
            return await ep(request)

        router.add_route(method, path, handler)

    add("GET", "/fapi/v1/ping", r.ping)
    add("GET", "/fapi/v1/time", r.time)
    add("GET", "/fapi/v1/exchangeInfo", r.exchange_info)
    add("GET", "/fapi/v1/depth", r.depth, lambda p: _DEPTH_WEIGHT.get(int(p.get("limit", "500") or 500), 10))
    add("GET", "/fapi/v1/ticker/bookTicker", r.book_ticker, 2)
    add("GET", "/fapi/v1/premiumIndex", r.premium_index)
    add("POST", "/fapi/v1/order", r.new_order, 0, signed=True, order=True)
    add("DELETE", "/fapi/v1/order", r.cancel_order, signed=True)
    add("GET", "/fapi/v1/order", r.query_order, signed=True)
    add("GET", "/fapi/v1/openOrder", r.open_order, signed=True)
    add("GET", "/fapi/v1/openOrders", r.open_orders, lambda p: 1 if p.get("symbol") else 40, signed=True)
    add("DELETE", "/fapi/v1/allOpenOrders", r.cancel_all, signed=True)
    add("GET", "/fapi/v1/userTrades", r.user_trades, 5, signed=True)
    add("POST", "/fapi/v1/algoOrder", r.new_algo, 0, signed=True, order=True)
    add("DELETE", "/fapi/v1/algoOrder", r.cancel_algo, signed=True)
    add("GET", "/fapi/v1/algoOrder", r.query_algo, signed=True)
    add("GET", "/fapi/v1/openAlgoOrders", r.open_algos, lambda p: 1 if p.get("symbol") else 40, signed=True)
    add("GET", "/fapi/v1/allAlgoOrders", r.all_algos, 5, signed=True)
    add("DELETE", "/fapi/v1/algoOpenOrders", r.cancel_all_algos, signed=True)
    add("GET", "/fapi/v1/commissionRate", r.commission_rate, 20, signed=True)
    add("POST", "/fapi/v1/leverage", r.leverage, signed=True)
    add("POST", "/fapi/v1/marginType", r.margin_type, signed=True)
    add("GET", "/fapi/v1/leverageBracket", r.leverage_bracket, signed=True)
    add("GET", "/fapi/v1/positionSide/dual", r.position_side, 30, signed=True)
    add("POST", "/fapi/v1/positionSide/dual", r.set_position_side, signed=True)
    add("GET", "/fapi/v1/multiAssetsMargin", r.multi_assets, 30, signed=True)
    add("GET", "/fapi/v2/positionRisk", r.position_risk_v2, 5, signed=True)
    add("GET", "/fapi/v3/positionRisk", r.position_risk_v3, 5, signed=True)
    add("GET", "/fapi/v2/account", r.account_v2, 5, signed=True)
    add("GET", "/fapi/v3/account", r.account_v3, 5, signed=True)
    add("GET", "/fapi/v2/balance", r.balance, 5, signed=True)
    add("GET", "/fapi/v3/balance", r.balance, 5, signed=True)
    add("POST", "/fapi/v1/listenKey", r.listen_key_new, key=True)
    add("PUT", "/fapi/v1/listenKey", r.listen_key_keepalive, key=True)
    add("DELETE", "/fapi/v1/listenKey", r.listen_key_delete, key=True)
