"""REST routes of the loopback exchange in Bybit v5's protocol (linear USDT perpetuals), exchange-facts B2/B3.

Same engine, account, faults and state endpoint as the Binance routes (rest.py); only the words differ.
Every answer is Bybit's envelope `{"retCode", "retMsg", "result", "retExtInfo", "time"}` with HTTP 200
(business errors too, as on the venue); private routes check the v5 signature (bybit_auth.py) and carry
the UID limit headers. The IP-level `rate_limit` fault answers HTTP 403 "access too frequent" as
Bybit's IP limit does. `delay_orders_ms` delays order creation like the Binance route.

Not simulated (retCode 10001 or 404): conditional LIMIT orders, IndexPrice triggers, Partial tpslMode,
trailing stops, hedge mode (positionIdx 1/2), batch routes, spot/inverse/option (their instrument lists
are empty so an unmodified ccxt `bybit` loads).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from bot.venues.sim import bybit_wire as bw
from bot.venues.sim.bybit_auth import BybitAuth, UidLimits
from bot.venues.sim.bybit_desk import Ambiguous, BybitDesk, BybitError, bybit_error
from bot.venues.sim.bybit_orders import BybitOrders
from bot.venues.sim.orders import SimError

if TYPE_CHECKING:
    from bot.venues.sim.server import SimServer

__all__ = ["add_bybit_routes"]

Params = dict[str, Any]
_DEPTHS = (1, 50, 200, 500)


def _dumps(o: Any) -> str:
    return orjson.dumps(o).decode()


class BybitRest:
    def __init__(self, s: SimServer, desk: BybitDesk) -> None:
        self.s = s
        self.ex = s.ex
        self.desk = desk
        self.auth = BybitAuth(s.auth.api_key, s.auth._secret.decode())
        self.uid_limits = UidLimits()
        self.orders = BybitOrders(s, desk)
        self.streams: Any = None  # bybit_ws.BybitStreams, set by add_bybit_routes (its books: /_sim/state)

    def reply(self, result: Any, code: int = 0, msg: str = "OK", headers: dict[str, str] | None = None,
              status: int = 200, request: web.Request | None = None) -> web.Response:
        body = {"retCode": code, "retMsg": msg, "result": result if result is not None else {}, "retExtInfo": {},
                "time": self.s.now_ms()}
        if request is not None and self.s.faults.deviations:  # the `deviate` fault (scalper conformance)
            body = self.s.faults.deviate(request.method, request.path, body)
        return web.json_response(body, status=status, headers=headers, dumps=_dumps)

    def endpoint(self, fn: Callable[[Params], Awaitable[Any]], private: bool) -> Callable[[web.Request],
                                                                                          Awaitable[web.Response]]:
        async def handler(request: web.Request) -> web.Response:
            s = self.s
            now = s.now_ms()
            raw_q = request.rel_url.raw_query_string
            key = f"{request.method} {request.path}"
            s.requests[key] = s.requests.get(key, 0) + 1  # per endpoint, shown by GET /_sim/state
            body = await request.text() if request.can_read_body else ""
            if s.faults.armed_limits:
                s.faults.arm_limit(request.method, request.path, now)
            limited = s.limits.admit(now, 1)
            if limited is not None:  # the IP limit (and the rate_limit fault): HTTP 403, B2
                return web.Response(status=403, text="access too frequent",
                                    headers={"Retry-After": str(limited[1])})
            headers: dict[str, str] = {}
            try:
                params: Params = dict(request.query)
                if body and request.method == "POST":
                    try:
                        loaded = orjson.loads(body)
                    except orjson.JSONDecodeError as e:
                        raise BybitError(10001, "params error: body is not JSON") from e
                    if not isinstance(loaded, dict):
                        raise BybitError(10001, "params error: body is not a JSON object")
                    params.update(loaded)
                if private:
                    self.auth.verify(dict(request.headers), body if request.method == "POST" else raw_q, now)
                    ok, headers = self.uid_limits.admit(request.path, now)
                    reset = s.faults.uid_limit(request.path, now) if s.faults.uid_limited else None
                    if reset is not None:  # rate_limit {"code": 10006}: this endpoint until its reset (B2)
                        headers = {**headers, "X-Bapi-Limit-Status": "0", "X-Bapi-Limit-Reset-Timestamp": str(reset)}
                        ok = False
                    if not ok:
                        raise BybitError(10006, "Too many visits!")
                result = await fn(params)
            except BybitError as e:
                return self.reply({}, e.code, e.msg, headers, request=request)
            except Ambiguous as e:  # executed, answer lost (error_after_execute)
                return web.Response(status=e.status, text="Bad Gateway", headers=headers)
            except (KeyError, ValueError, TypeError) as e:
                return self.reply({}, 10001, f"params error: {e}", headers, request=request)
            return self.reply(result, headers=headers, request=request)

        return handler

    # ------------------------------------------------------------------ public
    def _symbol(self, p: Params) -> str:
        sym = str(p.get("symbol") or "").upper()
        if sym not in self.ex.markets:
            raise BybitError(10001, "params error: symbol invalid")
        return sym

    async def time(self, p: Params) -> Any:
        ms = self.s.now_ms()
        return {"timeSecond": str(ms // 1000), "timeNano": str(ms * 1_000_000)}

    async def instruments(self, p: Params) -> Any:
        cat = p.get("category", "")
        rows = bw.instruments(self.ex) if cat == "linear" and p.get("status") in (None, "", "Trading") else []
        if p.get("symbol"):
            rows = [r for r in rows if r["symbol"] == str(p["symbol"]).upper()]
        return {"category": cat, "list": rows, "nextPageCursor": ""}

    async def orderbook(self, p: Params) -> Any:
        sym = self._symbol(p)
        limit = int(p.get("limit") or 25)
        if not 1 <= limit <= 500:
            raise BybitError(10001, "params error: limit")
        await self.s.next_depth(sym, 1.0)
        m = self.ex.markets[sym]
        fmt = bw.Fmt.of(m.inst)
        return {"s": sym, "b": [[fmt.price(t), fmt.qty(q)] for t, q in m.book.bids(limit)],
                "a": [[fmt.price(t), fmt.qty(q)] for t, q in m.book.asks(limit)], "ts": self.s.now_ms(),
                "u": max(0, m.sync.last_update_id), "seq": max(0, m.sync.last_update_id), "cts": self.s.now_ms()}

    def ticker(self, sym: str) -> dict[str, Any]:
        m = self.ex.markets[sym]
        inst = m.inst
        fmt = bw.Fmt.of(inst)
        bbo = m.book.bbo() or (0, 0, 0, 0)
        rate = m.funding_rate if m.funding_rate is not None else self.ex.funding_rate
        mark = m.mark_ticks()
        last = m.last_ticks or mark

        def px(ticks: float) -> str:  # Bybit leaves a price it does not have yet empty
            return bw._px(inst, ticks) if ticks else ""

        def bk(ticks: int, qty: int) -> tuple[str, str]:
            return (fmt.price(ticks), fmt.qty(qty)) if ticks else ("", "")

        (bp, bq), (ap, aq) = bk(bbo[0], bbo[1]), bk(bbo[2], bbo[3])
        return {"symbol": sym, "lastPrice": px(last), "indexPrice": px(m.index_ticks or mark),
                "markPrice": px(mark), "prevPrice24h": px(last), "price24hPcnt": "0", "highPrice24h": px(last),
                "lowPrice24h": px(last), "prevPrice1h": px(last), "openInterest": "0", "openInterestValue": "0",
                "turnover24h": "0", "volume24h": "0", "fundingRate": f"{rate:.8f}",
                "nextFundingTime": str(m.next_funding_ns // 1_000_000), "predictedDeliveryPrice": "",
                "basisRate": "", "deliveryFeeRate": "", "deliveryTime": "0", "bid1Price": bp, "bid1Size": bq,
                "ask1Price": ap, "ask1Size": aq, "basis": ""}

    async def tickers(self, p: Params) -> Any:
        syms = [self._symbol(p)] if p.get("symbol") else list(self.ex.markets)
        return {"category": "linear", "list": [self.ticker(s) for s in syms]}

    # ------------------------------------------------------------------ account
    async def query_api(self, p: Params) -> Any:  # ccxt's unified-account probe
        return {"id": "1", "note": "exchange-sim", "apiKey": self.auth.api_key, "readOnly": 0, "secret": "",
                "permissions": {"ContractTrade": ["Order", "Position"], "Wallet": ["AccountTransfer"]},
                "ips": ["*"], "type": 1, "unified": 1, "uta": 1, "userID": 1, "isMaster": True}

    async def account_info(self, p: Params) -> Any:
        return {"unifiedMarginStatus": 6, "marginMode": "REGULAR_MARGIN", "isMasterTrader": False,
                "spotHedgingStatus": "OFF", "updatedTime": str(self.s.now_ms()), "dcpStatus": "OFF",
                "timeWindow": 0, "smpGroup": 0}

    async def coin_info(self, p: Params) -> Any:
        return {"rows": []}

    async def wallet(self, p: Params) -> Any:
        if p.get("accountType", "UNIFIED") != "UNIFIED":
            raise BybitError(10001, "accountType only support UNIFIED.")
        return {"list": [bw.wallet(self.ex)]}

    async def fee_rate(self, p: Params) -> Any:
        syms = [self._symbol(p)] if p.get("symbol") else list(self.ex.markets)
        a = self.ex.account
        return {"list": [{"symbol": s, "takerFeeRate": f"{a.taker_fee:.6f}", "makerFeeRate": f"{a.maker_fee:.6f}"}
                         for s in syms]}

    async def positions(self, p: Params) -> Any:
        if p.get("symbol"):
            syms = [self._symbol(p)]
        elif p.get("settleCoin") or p.get("baseCoin"):
            syms = [s for s in self.ex.markets if self.ex.position_lots(s)]
        else:
            raise BybitError(10001, "params error: symbol or settleCoin is required")
        rows = []
        for s in syms:
            sl, tp = self.desk.position_tpsl(s)
            rows.append(bw.position_row(self.ex, s, sl, tp, next(self.desk.seq)))
        return {"category": "linear", "list": rows, "nextPageCursor": ""}

    async def set_leverage(self, p: Params) -> Any:
        sym = self._symbol(p)
        buy, sell = str(p.get("buyLeverage", "")), str(p.get("sellLeverage", ""))
        if not buy or buy != sell:
            raise BybitError(10001, "buy leverage must equal sell leverage in one-way mode")
        lev = float(buy)
        if lev != int(lev):
            raise BybitError(10001, "leverage invalid: the simulator takes whole numbers")
        if self.ex.leverage.get(sym, self.ex.default_leverage) == int(lev):
            raise BybitError(110043, "Set leverage not modified")
        try:
            self.ex.set_leverage(sym, int(lev))
        except Exception as e:
            raise BybitError(10001, f"leverage invalid: {e}") from e
        return {}

    async def trading_stop(self, p: Params) -> Any:
        sym = self._symbol(p)
        if str(p.get("tpslMode", "Full")) != "Full":
            raise BybitError(10001, "params error: only tpslMode Full is simulated")
        if int(p.get("positionIdx", 0)) != 0:
            raise BybitError(10001, "position idx not match position mode")
        if not self.ex.position_lots(sym):
            raise BybitError(10001, "can not set tp/sl/ts for zero position")
        rejection = self.s.faults.take_stop_rejection()  # reject_next_stop: Bybit's stop placement is here
        if rejection is not None:
            raise bybit_error(SimError(*rejection))
        changed = False
        for which, key, by in (("StopLoss", "stopLoss", "slTriggerBy"), ("TakeProfit", "takeProfit", "tpTriggerBy")):
            if key in p:
                changed |= self.desk.set_position_level(sym, which, str(p[key]), str(p.get(by) or "LastPrice"))
        if not changed:
            raise BybitError(34040, "not modified")
        status = self.s.faults.take_error_after_execute(opening=False)
        if status is not None:
            raise Ambiguous(status)
        return {}


def add_bybit_routes(app: web.Application, s: SimServer) -> BybitRest:
    desk = BybitDesk(s.ex, s.engine_now_ns)
    r = BybitRest(s, desk)
    o = r.orders
    router = app.router
    for method, path, fn, private in (
        ("GET", "/v5/market/time", r.time, False),
        ("GET", "/v5/market/instruments-info", r.instruments, False),
        ("GET", "/v5/market/orderbook", r.orderbook, False),
        ("GET", "/v5/market/tickers", r.tickers, False),
        ("GET", "/v5/user/query-api", r.query_api, True),
        ("GET", "/v5/account/info", r.account_info, True),
        ("GET", "/v5/asset/coin/query-info", r.coin_info, True),
        ("GET", "/v5/account/wallet-balance", r.wallet, True),
        ("GET", "/v5/account/fee-rate", r.fee_rate, True),
        ("GET", "/v5/position/list", r.positions, True),
        ("POST", "/v5/position/set-leverage", r.set_leverage, True),
        ("POST", "/v5/position/trading-stop", r.trading_stop, True),
        ("POST", "/v5/order/create", o.create, True),
        ("POST", "/v5/order/amend", o.amend, True),
        ("POST", "/v5/order/cancel", o.cancel, True),
        ("POST", "/v5/order/cancel-all", o.cancel_all, True),
        ("GET", "/v5/order/realtime", o.realtime, True),
        ("GET", "/v5/order/history", o.history, True),
        ("GET", "/v5/execution/list", o.executions, True),
    ):
        router.add_route(method, path, r.endpoint(fn, private))
    from bot.venues.sim.bybit_ws import BybitStreams

    streams = BybitStreams(s, r)
    r.streams = streams
    streams.add_routes(app)
    s.market_listeners.append(streams.on_market)
    desk.position_listeners.append(streams.push_position)
    from bot.venues.sim.bybit_trade_ws import BybitTradeWs

    BybitTradeWs(s, r).add_routes(app)  # order entry over websocket: /v5/trade
    return r
