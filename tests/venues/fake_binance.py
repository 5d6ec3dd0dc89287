"""A small loopback fake of Binance USD-M for request-level gateway tests (127.0.0.1, port 0).

It answers only what the gateway uses, in Binance's words (exchange-facts A2-A4), records every request
(method, path, merged query+form params, headers) and can inject faults per route:
  {"method": "POST", "path": "/fapi/v1/order", "action": "execute_then_500" | "500" | "hang" |
   "429" | "418" | "code", "retry_after": "7", "code": -2019}
Each fault is consumed once. Signed requests are checked against the server clock (skew_ms) with
Binance's rule: timestamp < server + 1000 and server - timestamp <= recvWindow, else -1021.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
from aiohttp import WSMsgType, web

__all__ = ["FakeBinance", "exchange_info"]


def exchange_info() -> dict[str, Any]:
    def sym(name: str, base: str, tick: str, step: str, notional: str) -> dict[str, Any]:
        return {
            "symbol": name, "pair": name, "contractType": "PERPETUAL", "status": "TRADING",
            "baseAsset": base, "quoteAsset": "USDT", "marginAsset": "USDT", "pricePrecision": 2,
            "quantityPrecision": 3, "baseAssetPrecision": 8, "quotePrecision": 8, "underlyingType": "COIN",
            "deliveryDate": 4133404800000, "onboardDate": 1569398400000, "triggerProtect": "0.0500",
            "liquidationFee": "0.012500", "marketTakeBound": "0.05",
            "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET",
                           "TRAILING_STOP_MARKET"],
            "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"],
            "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": "0.10", "maxPrice": "4529764", "tickSize": tick},
                {"filterType": "LOT_SIZE", "minQty": step, "maxQty": "1000", "stepSize": step},
                {"filterType": "MARKET_LOT_SIZE", "minQty": step, "maxQty": "120", "stepSize": step},
                {"filterType": "MAX_NUM_ORDERS", "limit": 200},
                {"filterType": "MIN_NOTIONAL", "notional": notional},
                {"filterType": "PERCENT_PRICE", "multiplierUp": "1.0500", "multiplierDown": "0.9500",
                 "multiplierDecimal": "4"},
            ],
        }

    return {
        "timezone": "UTC", "serverTime": int(time.time() * 1000), "futuresType": "U_MARGINED",
        "rateLimits": [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 2400},
            {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 300},
        ],
        "assets": [], "exchangeFilters": [],
        "symbols": [sym("BTCUSDT", "BTC", "0.10", "0.001", "100"), sym("ETHUSDT", "ETH", "0.01", "0.001", "20")],
    }


class FakeBinance:
    def __init__(self, fill_price: str = "60000.0") -> None:
        self.requests: list[dict[str, Any]] = []
        self.faults: list[dict[str, Any]] = []
        self.skew_ms = 0
        self.fill_price = fill_price
        self.orders: dict[str, dict[str, Any]] = {}  # clientOrderId -> order
        self.algos: dict[str, dict[str, Any]] = {}  # clientAlgoId -> algo order
        self.trades: list[dict[str, Any]] = []
        self.position_amt = "0"
        self.listen_keys: list[str] = []
        self.dead_keys: set[str] = set()
        self.ws_clients: list[web.WebSocketResponse] = []
        self.ws_connects: list[str] = []
        self._next_id = 1000
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.order_count = 0

    # ---------------------------------------------------------------- server
    async def start(self) -> FakeBinance:
        app = web.Application()
        app.router.add_route("*", "/private/ws", self._ws)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        for ws in list(self.ws_clients):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def server_ms(self) -> int:
        return int(time.time() * 1000) + self.skew_ms

    def calls(self, method: str, path: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["method"] == method and r["path"] == path]

    # ---------------------------------------------------------------- websocket
    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        key = request.query.get("listenKey", "")
        ws = web.WebSocketResponse(heartbeat=None)
        if key not in self.listen_keys or key in self.dead_keys:
            raise web.HTTPBadRequest(text="invalid listenKey")
        await ws.prepare(request)
        self.ws_connects.append(key)
        self.ws_clients.append(ws)
        try:
            async for msg in ws:
                if msg.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
                    break
        finally:
            if ws in self.ws_clients:
                self.ws_clients.remove(ws)
        return ws

    async def push(self, event: dict[str, Any]) -> None:
        for ws in list(self.ws_clients):
            await ws.send_bytes(orjson.dumps(event))

    def fill_order(self, cid: str, price: str | None = None) -> dict[str, Any]:
        """Fill a resting order completely, server side (no event sent): what happens while we are away."""
        o = self.orders[cid]
        o.update(status="FILLED", executedQty=o["origQty"], avgPrice=price or o["price"], updateTime=self.server_ms())
        self.trades.append({"symbol": o["symbol"], "id": self._id(), "orderId": o["orderId"], "side": o["side"],
                            "price": o["avgPrice"], "qty": o["origQty"], "commission": "0.02",
                            "commissionAsset": "USDT", "maker": True, "time": self.server_ms()})
        return o

    async def drop_ws(self) -> None:
        for ws in list(self.ws_clients):
            await ws.close()

    # ---------------------------------------------------------------- http
    def _reply(self, body: Any, status: int = 200, extra: dict[str, str] | None = None) -> web.Response:
        headers = {"X-MBX-USED-WEIGHT-1M": str(len(self.requests)), "X-MBX-ORDER-COUNT-10S": str(self.order_count),
                   "X-MBX-ORDER-COUNT-1M": str(self.order_count), **(extra or {})}
        return web.Response(body=orjson.dumps(body), status=status, content_type="application/json",
                            headers=headers)

    def _err(self, code: int, msg: str, status: int = 400) -> web.Response:
        return self._reply({"code": code, "msg": msg}, status)

    async def _handle(self, request: web.Request) -> web.Response:
        params: dict[str, str] = dict(request.query)
        if request.can_read_body:
            params.update({k: str(v) for k, v in (await request.post()).items()})
        rec = {"method": request.method, "path": request.path, "params": params, "headers": dict(request.headers)}
        self.requests.append(rec)
        fault = next((f for f in self.faults if f["method"] == request.method and f["path"] == request.path), None)
        if fault is not None:
            self.faults.remove(fault)
            act = fault["action"]
            if act == "429" or act == "418":
                return self._reply({"code": -1003, "msg": "Too many requests."}, int(act),
                                   {"Retry-After": fault.get("retry_after", "1")})
            if act == "500":
                return web.Response(status=500, text="Internal Server Error")
            if act == "hang":
                await asyncio.sleep(fault.get("seconds", 5.0))
            if act == "code":
                return self._err(fault["code"], fault.get("msg", "rejected"))
        if "signature" in params:
            ts, rw = int(params.get("timestamp", 0)), int(params.get("recvWindow", 5000))
            srv = self.server_ms()
            if not (ts < srv + 1000 and srv - ts <= rw):
                return self._err(-1021, "Timestamp for this request is outside of the recvWindow.")
        resp = await self._route(request.method, request.path, params)
        if fault is not None and fault["action"] == "execute_then_500":
            return web.Response(status=503, text="Service Unavailable")
        return resp

    def _id(self) -> int:
        self._next_id += 1
        return self._next_id

    async def _route(self, method: str, path: str, p: dict[str, str]) -> web.Response:
        key = (method, path)
        if key == ("GET", "/fapi/v1/exchangeInfo"):
            return self._reply(exchange_info())
        if key == ("GET", "/fapi/v1/time"):
            return self._reply({"serverTime": self.server_ms()})
        if path == "/fapi/v1/listenKey":
            if method == "POST":  # the active key again (extended), or a new one when it expired
                if not self.listen_keys or self.listen_keys[-1] in self.dead_keys:
                    self.listen_keys.append(f"lk{len(self.listen_keys) + 1}")
                return self._reply({"listenKey": self.listen_keys[-1]})
            if method == "PUT":
                if not self.listen_keys or self.listen_keys[-1] in self.dead_keys:
                    return self._err(-1125, "This listenKey does not exist.")
                return self._reply({"listenKey": self.listen_keys[-1]})
            return self._reply({})
        if key == ("POST", "/fapi/v1/order"):
            return self._new_order(p)
        if path == "/fapi/v1/order":
            o = self._find(self.orders, p.get("origClientOrderId"), p.get("orderId"), "orderId")
            if o is None:
                return self._err(-2013 if method == "GET" else -2011, "Order does not exist.")
            if method == "DELETE":
                if o["status"] not in ("NEW", "PARTIALLY_FILLED"):
                    return self._err(-2011, "Unknown order sent.")
                o["status"] = "CANCELED"
            return self._reply(o)
        if key == ("POST", "/fapi/v1/algoOrder"):
            return self._new_algo(p)
        if path == "/fapi/v1/algoOrder":
            a = self._find(self.algos, p.get("clientAlgoId"), p.get("algoId"), "algoId")
            if a is None:
                return self._err(-2013 if method == "GET" else -2011, "Order does not exist.")
            if method == "DELETE":
                if a["algoStatus"] != "NEW":
                    return self._err(-2011, "Unknown order sent.")
                a["algoStatus"] = "CANCELED"
            return self._reply(a)
        if key == ("GET", "/fapi/v1/openOrders"):
            return self._reply([o for o in self.orders.values() if o["status"] in ("NEW", "PARTIALLY_FILLED")
                                and o["symbol"] == p.get("symbol", o["symbol"])])
        if key == ("GET", "/fapi/v1/openAlgoOrders"):
            return self._reply([a for a in self.algos.values() if a["algoStatus"] == "NEW"
                                and a["symbol"] == p.get("symbol", a["symbol"])])
        if key == ("GET", "/fapi/v1/userTrades"):
            return self._reply([t for t in self.trades if str(t["orderId"]) == p.get("orderId", str(t["orderId"]))])
        if key == ("GET", "/fapi/v2/account"):
            return self._reply({
                "totalWalletBalance": "10000", "availableBalance": "9000", "totalMarginBalance": "10010",
                "positions": [{"symbol": "BTCUSDT", "positionSide": "BOTH", "positionAmt": self.position_amt,
                               "entryPrice": self.fill_price, "unrealizedProfit": "10", "leverage": "20",
                               "isolated": True}]})
        if key == ("POST", "/fapi/v1/leverage"):
            return self._reply({"symbol": p["symbol"], "leverage": int(p["leverage"]), "maxNotionalValue": "1"})
        if key == ("GET", "/fapi/v1/commissionRate"):  # the account's fee rates (a VIP 1 schedule here)
            return self._reply({"symbol": p["symbol"], "makerCommissionRate": "0.000160",
                                "takerCommissionRate": "0.000400", "rpiCommissionRate": "0.000160"})
        return self._err(-1000, f"fake: no route {method} {path}", 404)

    @staticmethod
    def _find(store: dict[str, dict[str, Any]], cid: str | None, oid: str | None, id_key: str) -> dict[str, Any] | None:
        if cid:
            return store.get(cid)
        return next((o for o in store.values() if str(o[id_key]) == oid), None)

    def _new_order(self, p: dict[str, str]) -> web.Response:
        self.order_count += 1
        cid = p["newClientOrderId"]
        if cid in self.orders and self.orders[cid]["status"] in ("NEW", "PARTIALLY_FILLED"):
            return self._err(-4116, "ClientOrderId is duplicated.")
        market = p["type"] == "MARKET"
        o = {"orderId": self._id(), "symbol": p["symbol"], "status": "FILLED" if market else "NEW",
             "clientOrderId": cid, "price": p.get("price", "0"), "avgPrice": self.fill_price if market else "0",
             "origQty": p["quantity"], "executedQty": p["quantity"] if market else "0",
             "cumQuote": "0", "timeInForce": p.get("timeInForce", "GTC"), "type": p["type"],
             "origType": p["type"], "reduceOnly": p.get("reduceOnly") == "true", "closePosition": False,
             "side": p["side"], "positionSide": "BOTH", "stopPrice": "0", "workingType": "CONTRACT_PRICE",
             "priceProtect": False, "updateTime": self.server_ms(), "time": self.server_ms()}
        self.orders[cid] = o
        if market:
            self.trades.append({"symbol": p["symbol"], "id": self._id(), "orderId": o["orderId"], "side": p["side"],
                                "price": self.fill_price, "qty": p["quantity"], "commission": "0.12",
                                "commissionAsset": "USDT", "maker": False, "time": self.server_ms()})
        return self._reply(o)

    def _new_algo(self, p: dict[str, str]) -> web.Response:
        self.order_count += 1
        cid = p["clientAlgoId"]
        a = {"algoId": self._id(), "clientAlgoId": cid, "algoType": p.get("algoType"), "orderType": p["type"],
             "symbol": p["symbol"], "side": p["side"], "positionSide": "BOTH", "timeInForce": "GTC",
             "quantity": p.get("quantity", "0"), "algoStatus": "NEW", "triggerPrice": p.get("triggerPrice"),
             "price": "0", "workingType": p.get("workingType", "CONTRACT_PRICE"),
             "closePosition": p.get("closePosition") == "true", "reduceOnly": p.get("reduceOnly") == "true",
             "priceProtect": False, "createTime": self.server_ms(), "updateTime": self.server_ms()}
        self.algos[cid] = a
        return self._reply(a)
