"""A small loopback fake of Bybit v5 (linear) for request-level gateway tests (127.0.0.1, port 0).

It answers only what the gateway uses, in Bybit's words (exchange-facts B2, B3; docs/v5), with responses
constructed in the v5 envelope `{"retCode","retMsg","result","retExtInfo","time"}`. It records every
request (method, path, query, JSON body, headers) and checks what Bybit checks:
- the signature: X-BAPI-SIGN = hex HMAC_SHA256(secret, timestamp + api_key + recv_window + (query | body))
  over the exact bytes received, else retCode 10004;
- the time: server - recv_window <= X-BAPI-TIMESTAMP < server + 1000, else 10002 (`skew_ms` moves the
  server clock).
Faults, consumed once, per route: {"method", "path", "action": "execute_then_500" | "500" | "hang" |
"403" | "code", "code": 10006, "msg": "...", "headers": {...}, "seconds": 0.4}.
The private websocket (/v5/private) answers auth (checking the signature of "GET/realtime"+expires),
subscribe and ping, records what it receives, and pushes what a test gives it (`push`); with
`autopush=True` it also pushes, like Bybit, every order state, execution and position change it makes
(order of topics: execution, order, position; Bybit does not promise one).

The position's stop (trading-stop, or an entry's attached `stopLoss`, tpslMode Full) is what Bybit makes
of it: a system conditional order listed by GET /v5/order/realtime (no orderFilter: all kinds) as
`orderStatus` Untriggered, `stopOrderType` StopLoss, `orderLinkId` "", `qty` "0" (Full: whatever the
position is), `reduceOnly`/`closeOnTrigger` true, `triggerPrice` = the stop, side opposite the position.
Moving the stop deactivates that order and creates a new one (new orderId); clearing it (`stopLoss` "0"),
closing the position or the stop firing ends it (Deactivated; Filled when it fired).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import itertools
import time
from typing import Any

import orjson
from aiohttp import WSMsgType, web

__all__ = ["FakeBybit", "instruments_info", "xrpusdt"]

_OPEN = ("New", "PartiallyFilled", "Untriggered")


def instruments_info() -> list[dict[str, Any]]:
    def sym(name: str, base: str, tick: str, step: str, notional: str) -> dict[str, Any]:
        return {"symbol": name, "contractType": "LinearPerpetual", "status": "Trading", "baseCoin": base,
                "quoteCoin": "USDT", "settleCoin": "USDT", "launchTime": "1585526400000", "deliveryTime": "0",
                "priceScale": "2", "leverageFilter": {"minLeverage": "1", "maxLeverage": "100.00",
                                                      "leverageStep": "0.01"},
                "priceFilter": {"minPrice": "0.10", "maxPrice": "1999999.80", "tickSize": tick},
                "lotSizeFilter": {"maxOrderQty": "1190.000", "maxMktOrderQty": "119.000", "minOrderQty": step,
                                  "qtyStep": step, "postOnlyMaxOrderQty": "1190.000", "minNotionalValue": notional},
                "unifiedMarginTrade": True, "fundingInterval": 480}

    return [sym("BTCUSDT", "BTC", "0.10", "0.001", "5"), sym("ETHUSDT", "ETH", "0.01", "0.01", "5")]


def xrpusdt() -> dict[str, Any]:
    """XRPUSDT as instruments-info lists it (tick 0.0001, step 1): the recorded public sample's symbol."""
    btc = instruments_info()[0]
    return {**btc, "symbol": "XRPUSDT", "baseCoin": "XRP", "priceScale": "4",
            "priceFilter": {"minPrice": "0.0001", "maxPrice": "199.9998", "tickSize": "0.0001"},
            "lotSizeFilter": {**btc["lotSizeFilter"], "minOrderQty": "1", "qtyStep": "1", "maxOrderQty": "1000000",
                              "maxMktOrderQty": "100000"}}


class FakeBybit:
    def __init__(self, api_key: str = "k", secret: str = "s", fill_price: str = "60000.0", *,
                 instruments: list[dict[str, Any]] | None = None, autopush: bool = False) -> None:
        self.api_key, self.secret, self.fill_price = api_key, secret, fill_price
        self.instruments = instruments
        self.autopush = autopush
        self.requests: list[dict[str, Any]] = []
        self.faults: list[dict[str, Any]] = []
        self.skew_ms = 0
        self.exec_shift_ms = 0  # added to execTime only: fills that happened that long ago
        self.orders: dict[str, dict[str, Any]] = {}  # orderLinkId -> order (Bybit words)
        self.by_id: dict[str, dict[str, Any]] = {}  # orderId -> every order, system ones (no orderLinkId) too
        self.stop_order: dict[str, str] = {}  # symbol -> orderId of the position's live stop order
        self.execs: list[dict[str, Any]] = []
        self.positions: dict[str, dict[str, Any]] = {}
        self.leverage: dict[str, str] = {"BTCUSDT": "10", "ETHUSDT": "10"}
        self.ws_clients: list[web.WebSocketResponse] = []
        self.ws_received: list[dict[str, Any]] = []
        self.ws_connects = 0
        self.refuse_auth = False
        self._ids = itertools.count(5001)
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._signed = False
        self._outbox: list[tuple[str, list[dict[str, Any]]]] = []
        self._flusher: asyncio.Task[None] | None = None

    # ---------------------------------------------------------------- server
    async def start(self) -> FakeBybit:
        app = web.Application()
        app.router.add_route("GET", "/v5/private", self._ws)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        await self.drop_ws()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v5/private"

    def server_ms(self) -> int:
        return int(time.time() * 1000) + self.skew_ms

    def calls(self, method: str, path: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["method"] == method and r["path"] == path]

    def position(self, symbol: str = "BTCUSDT") -> dict[str, Any]:
        return self.positions.setdefault(symbol, {
            "symbol": symbol, "side": "", "size": "0", "avgPrice": "0", "positionIdx": 0, "stopLoss": "",
            "slTriggerBy": "", "takeProfit": "", "tpslMode": "Full", "leverage": self.leverage.get(symbol, "10"),
            "unrealisedPnl": "0", "liqPrice": "", "tradeMode": 0, "markPrice": self.fill_price})

    # ---------------------------------------------------------------- websocket
    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=None)
        await ws.prepare(request)
        self.ws_connects += 1
        authed = False
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    break
                m = orjson.loads(msg.data)
                self.ws_received.append(m)
                op, rid = m.get("op"), m.get("req_id", "")
                if op == "auth":
                    key, expires, sig = m["args"]
                    want = hmac.new(self.secret.encode(), f"GET/realtime{expires}".encode(), hashlib.sha256).hexdigest()
                    authed = not self.refuse_auth and key == self.api_key and sig == want and expires > self.server_ms()
                    await ws.send_bytes(orjson.dumps({"success": authed, "ret_msg": "" if authed else
                                                      "error:signature verification failed", "op": "auth",
                                                      "conn_id": "c1", "req_id": rid}))
                elif op == "subscribe":
                    await ws.send_bytes(orjson.dumps({"success": authed, "ret_msg": "" if authed else "not authed",
                                                      "op": "subscribe", "conn_id": "c1", "req_id": rid}))
                    if authed:
                        self.ws_clients.append(ws)
                elif op == "ping":
                    await ws.send_bytes(orjson.dumps({"req_id": rid, "op": "pong", "args": [str(self.server_ms())],
                                                      "conn_id": "c1"}))
        finally:
            if ws in self.ws_clients:
                self.ws_clients.remove(ws)
        return ws

    async def push(self, topic: str, data: list[dict[str, Any]]) -> None:
        body = orjson.dumps({"id": f"m{next(self._ids)}", "topic": topic, "creationTime": self.server_ms(),
                             "data": data})
        for ws in list(self.ws_clients):
            if ws.closed:
                continue
            # a client going away mid-send is the venue's everyday case, not a test failure
            with contextlib.suppress(ConnectionResetError):
                await ws.send_bytes(body)

    def _event(self, topic: str, data: list[dict[str, Any]]) -> None:
        """autopush: queue a snapshot now, sent in order by one task (a venue action is synchronous)."""
        if not self.autopush or not self.ws_clients:
            return
        self._outbox.append((topic, [dict(d) for d in data]))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        while self._outbox:
            topic, data = self._outbox.pop(0)
            await self.push(topic, data)

    def _position_event(self, symbol: str) -> None:
        p = self.position(symbol)
        self._event("position", [{**p, "category": "linear", "entryPrice": p["avgPrice"]}])

    async def drop_ws(self) -> None:
        for ws in list(self.ws_clients):
            await ws.close()

    # ---------------------------------------------------------------- venue actions
    # (pushed on the socket only with autopush: otherwise what happens "while we are away")
    def _exec(self, o: dict[str, Any], qty: str, price: str, fee: str, maker: bool) -> dict[str, Any]:
        filled = float(o["cumExecQty"]) + float(qty)
        o.update(cumExecQty=f"{filled:g}", leavesQty=f"{float(o['qty']) - filled:g}" if float(o["qty"]) else "0",
                 avgPrice=price, orderStatus="Filled" if float(o["qty"]) <= filled else "PartiallyFilled",
                 updatedTime=str(self.server_ms()))
        e = {"category": "linear", "symbol": o["symbol"], "orderId": o["orderId"], "orderLinkId": o["orderLinkId"],
             "side": o["side"], "orderPrice": o["price"], "orderQty": o["qty"], "leavesQty": o["leavesQty"],
             "orderType": o["orderType"], "stopOrderType": o.get("stopOrderType", "UNKNOWN"), "execFee": fee,
             "execId": f"e{next(self._ids)}", "execPrice": price, "execQty": qty, "execType": "Trade",
             "execValue": f"{float(qty) * float(price):g}", "isMaker": maker,
             "execTime": str(self.server_ms() + self.exec_shift_ms),
             "feeRate": "0.00055", "markPrice": price, "seq": next(self._ids)}
        self.execs.append(e)
        p = self.position(o["symbol"])
        signed = (float(p["size"]) if p["side"] == "Buy" else -float(p["size"])) + \
            (float(qty) if o["side"] == "Buy" else -float(qty))
        p.update(size=f"{abs(signed):g}", side="" if signed == 0 else ("Buy" if signed > 0 else "Sell"),
                 avgPrice=price if signed else "0")
        self._event("execution", [e])
        self._event("order", [o])
        if signed == 0:  # the position's stop goes with the position
            self._set_stop(o["symbol"], "", "")
        elif o.get("stopLoss") and not o["reduceOnly"] and not p["stopLoss"]:
            self._set_stop(o["symbol"], o["stopLoss"], o.get("slTriggerBy") or "LastPrice")  # attached: armed now
        self._position_event(o["symbol"])
        return e

    def _set_stop(self, symbol: str, price: str, trigger_by: str) -> None:
        """The position's stop becomes `price` ("" = none): its system order is ended and, for a price, made
        again (Full mode: qty "0", the whole position)."""
        p = self.position(symbol)
        old = self.by_id.get(self.stop_order.pop(symbol, ""))
        if old is not None and old["orderStatus"] == "Untriggered":
            old.update(orderStatus="Deactivated", cancelType="CancelByTpSlTsClear", updatedTime=str(self.server_ms()))
            self._event("order", [old])
        p.update(stopLoss=price, slTriggerBy=trigger_by if price else "")
        if price and float(p["size"]):
            o = self._order({"symbol": symbol, "side": "Sell" if p["side"] == "Buy" else "Buy", "orderType": "Market",
                             "qty": "0", "triggerPrice": price, "triggerDirection": 2 if p["side"] == "Buy" else 1,
                             "reduceOnly": True, "tpslMode": "Full"}, stop_type="StopLoss")
            o.update(closeOnTrigger=True, triggerBy=trigger_by, createType="CreateByStopLoss")
            self.stop_order[symbol] = o["orderId"]
            self._event("order", [o])

    def fill_order(self, link: str, price: str | None = None, qty: str | None = None) -> dict[str, Any]:
        """Fill a resting order (all of it, or `qty`), server side: what happens while we are away."""
        o = self.orders[link]
        return self._exec(o, qty or f"{float(o['qty']) - float(o['cumExecQty']):g}", price or o["price"], "0.02", True)

    def trigger_stop(self, symbol: str = "BTCUSDT", price: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        """The position's stop fires: its system order (no orderLinkId, stopOrderType StopLoss) closes the
        whole position at `price` (default: the stop), taker fee 0.18."""
        p = self.position(symbol)
        o = self.by_id.get(self.stop_order.pop(symbol, ""))
        if o is None:
            raise AssertionError(f"fake: {symbol} has no position stop to trigger")
        o.update(orderStatus="Triggered", qty=p["size"], leavesQty=p["size"], updatedTime=str(self.server_ms()))
        e = self._exec(o, p["size"], price or p["stopLoss"], "0.18", False)
        return o, e

    def close_by_hand(self, symbol: str, price: str, fee: str = "0.2") -> tuple[dict[str, Any], dict[str, Any]]:
        """Someone closes the position on the website: a market order with no orderLinkId."""
        p = self.position(symbol)
        o = self._order({"symbol": symbol, "side": "Sell" if p["side"] == "Buy" else "Buy", "orderType": "Market",
                         "qty": p["size"], "reduceOnly": True})
        e = self._exec(o, p["size"], price, fee, False)
        return o, e

    def open_rows(self, symbol: str) -> list[dict[str, Any]]:
        """What GET /v5/order/realtime lists for the symbol (every kind)."""
        return [o for o in self.by_id.values() if o["symbol"] == symbol and o["orderStatus"] in _OPEN]

    # ---------------------------------------------------------------- http
    def _reply(self, result: Any, code: int = 0, msg: str = "OK", status: int = 200,
               extra: dict[str, str] | None = None) -> web.Response:
        # per-UID limit headers on private endpoints only (public ones are limited per IP)
        headers = {"X-Bapi-Limit": "10", "X-Bapi-Limit-Status": "9",
                   "X-Bapi-Limit-Reset-Timestamp": str(self.server_ms())} if self._signed else {}
        headers.update(extra or {})
        body = {"retCode": code, "retMsg": msg, "result": result, "retExtInfo": {}, "time": self.server_ms()}
        return web.Response(body=orjson.dumps(body), status=status, content_type="application/json", headers=headers)

    def _err(self, code: int, msg: str, extra: dict[str, str] | None = None) -> web.Response:
        return self._reply({}, code, msg, extra=extra)

    async def _handle(self, request: web.Request) -> web.Response:
        raw_query = request.raw_path.split("?", 1)[1] if "?" in request.raw_path else ""
        raw_body = await request.read()
        body = orjson.loads(raw_body) if raw_body else None
        rec = {"method": request.method, "path": request.path, "query": dict(request.query), "body": body,
               "headers": dict(request.headers)}
        self.requests.append(rec)
        self._signed = "X-BAPI-SIGN" in request.headers
        fault = next((f for f in self.faults if f["method"] == request.method and f["path"] == request.path), None)
        if fault is not None:
            self.faults.remove(fault)
            act = fault["action"]
            if act == "403":
                return web.Response(status=403, text="access too frequent", headers=fault.get("headers", {}))
            if act == "500":
                return web.Response(status=500, text="Internal Server Error")
            if act == "hang":
                await asyncio.sleep(fault.get("seconds", 5.0))
            if act == "code":
                return self._err(fault["code"], fault.get("msg", "rejected"), fault.get("headers"))
        if "X-BAPI-SIGN" in request.headers:
            h = request.headers
            ts, recv = int(h["X-BAPI-TIMESTAMP"]), int(h["X-BAPI-RECV-WINDOW"])
            payload = h["X-BAPI-TIMESTAMP"] + h["X-BAPI-API-KEY"] + h["X-BAPI-RECV-WINDOW"] + \
                (raw_body.decode() if request.method == "POST" else raw_query)
            want = hmac.new(self.secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
            if h["X-BAPI-API-KEY"] != self.api_key or h["X-BAPI-SIGN"] != want:
                return self._err(10004, "error sign! origin_string[...]")
            srv = self.server_ms()
            if not (srv - recv <= ts < srv + 1000):
                return self._err(10002, f"invalid request, please check your server timestamp or recv_window param. "
                                        f"req_timestamp[{ts}],server_timestamp[{srv}],recv_window[{recv}]")
        elif request.path not in ("/v5/market/time", "/v5/market/instruments-info"):
            return self._err(10003, "API key is invalid.")
        resp = self._route(request.method, request.path, dict(request.query), body or {})
        if fault is not None and fault["action"] == "execute_then_500":
            return web.Response(status=502, text="Bad Gateway")
        return resp

    def _order(self, b: dict[str, Any], stop_type: str = "UNKNOWN") -> dict[str, Any]:
        trig = b.get("triggerPrice", "")
        o = {"category": "linear", "orderId": f"o{next(self._ids)}", "orderLinkId": b.get("orderLinkId", ""),
             "symbol": b["symbol"], "side": b["side"], "orderType": b["orderType"], "price": b.get("price", "0"),
             "qty": b["qty"], "timeInForce": b.get("timeInForce", "IOC" if b["orderType"] == "Market" else "GTC"),
             "orderStatus": "Untriggered" if trig else "New", "cumExecQty": "0", "cumExecValue": "0",
             "leavesQty": b["qty"], "avgPrice": "", "reduceOnly": bool(b.get("reduceOnly", False)),
             "closeOnTrigger": False, "positionIdx": b.get("positionIdx", 0), "stopOrderType": stop_type,
             "triggerPrice": trig, "triggerDirection": b.get("triggerDirection", 0), "stopLoss": b.get("stopLoss", ""),
             "slTriggerBy": b.get("slTriggerBy", ""), "tpslMode": b.get("tpslMode", ""), "rejectReason": "EC_NoError",
             "cancelType": "UNKNOWN", "createType": "CreateByUser", "createdTime": str(self.server_ms()),
             "updatedTime": str(self.server_ms())}
        if o["orderLinkId"]:
            self.orders[o["orderLinkId"]] = o
        self.by_id[o["orderId"]] = o
        return o

    def _route(self, method: str, path: str, q: dict[str, str], b: dict[str, Any]) -> web.Response:
        key = (method, path)
        if key == ("GET", "/v5/market/instruments-info"):
            rows = [] if q.get("status") == "PreLaunch" else (self.instruments or instruments_info())
            return self._reply({"category": "linear", "list": rows, "nextPageCursor": ""})
        if key == ("GET", "/v5/market/time"):
            ms = self.server_ms()
            return self._reply({"timeSecond": str(ms // 1000), "timeNano": str(ms * 1_000_000)})
        if key == ("POST", "/v5/order/create"):
            link = b.get("orderLinkId", "")
            if link in self.orders:
                return self._err(110072, "OrderLinkedID is duplicate")
            o = self._order(b, stop_type="Stop" if b.get("triggerPrice") else "UNKNOWN")
            self._event("order", [o])
            if o["orderType"] == "Market" and not o["triggerPrice"]:
                self._exec(o, o["qty"], self.fill_price, "0.165", False)  # arms an attached stopLoss
            return self._reply({"orderId": o["orderId"], "orderLinkId": link})
        if key == ("POST", "/v5/order/cancel"):
            c = self.orders.get(b.get("orderLinkId", ""))
            if c is None or c["orderStatus"] not in _OPEN:
                return self._err(110001, "order not exists or too late to cancel")
            o = c
            o.update(orderStatus="Cancelled" if o["orderStatus"] != "Untriggered" else "Deactivated",
                     cancelType="CancelByUser", updatedTime=str(self.server_ms()))
            self._event("order", [o])
            return self._reply({"orderId": o["orderId"], "orderLinkId": o["orderLinkId"]})
        if key in (("GET", "/v5/order/realtime"), ("GET", "/v5/order/history")):
            want_open = path.endswith("realtime")
            # no orderFilter: every kind, the position's own stop (a system order, orderLinkId "") too
            rows = [o for o in self.by_id.values() if (o["orderStatus"] in _OPEN) == want_open
                    and o["symbol"] == q.get("symbol", o["symbol"])
                    and o["orderLinkId"] == q.get("orderLinkId", o["orderLinkId"])]
            return self._reply({"category": "linear", "list": rows, "nextPageCursor": ""})
        if key == ("POST", "/v5/position/trading-stop"):
            p = self.position(b["symbol"])
            if float(p["size"]) == 0:
                return self._err(10001, "can not set tp/sl/ts for zero position")
            new = "" if float(b["stopLoss"]) == 0 else b["stopLoss"]
            if float(new or 0) == float(p["stopLoss"] or 0):  # "1.94" is "1.9400"
                return self._err(34040, "not modified")
            self._set_stop(b["symbol"], new, b.get("slTriggerBy") or "LastPrice")
            self._position_event(b["symbol"])
            return self._reply({})
        if key == ("GET", "/v5/position/list"):
            if "symbol" in q:
                rows = [self.position(q["symbol"])]
            else:
                rows = [p for p in self.positions.values() if float(p["size"]) != 0]
            return self._reply({"category": "linear", "list": rows, "nextPageCursor": ""})
        if key == ("POST", "/v5/position/set-leverage"):
            if self.leverage.get(b["symbol"]) == b["buyLeverage"]:
                return self._err(110043, "Set leverage not modified")
            self.leverage[b["symbol"]] = b["buyLeverage"]
            return self._reply({})
        if key == ("GET", "/v5/account/wallet-balance"):
            return self._reply({"list": [{"accountType": "UNIFIED", "totalEquity": "10010.5",
                                          "totalWalletBalance": "10000", "totalAvailableBalance": "9000.25",
                                          "totalMarginBalance": "10010.5", "coin": []}]})
        if key == ("GET", "/v5/account/fee-rate"):  # the account's fee rates on linear symbols
            return self._reply({"list": [{"symbol": q.get("symbol", "BTCUSDT"), "baseCoin": "",
                                          "takerFeeRate": "0.00055", "makerFeeRate": "0.0002"}]})
        if key == ("GET", "/v5/execution/list"):
            since = int(q.get("startTime", 0))
            rows = [e for e in self.execs
                    if e["symbol"] == q.get("symbol", e["symbol"]) and int(e["execTime"]) >= since
                    and e["orderId"] == q.get("orderId", e["orderId"])]
            return self._reply({"category": "linear", "list": rows[::-1], "nextPageCursor": ""})
        return self._err(10017, f"fake: route not found {method} {path}")
