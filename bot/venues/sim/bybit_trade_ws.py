"""Bybit v5 order entry over websocket on the loopback exchange: `/v5/trade` (docs/v5/websocket/trade/guideline).

Wire (exchange-facts B2 "WS order entry"; Bybit's "Websocket Trade Guideline"):
- `{"reqId"?, "op": "auth", "args": [key, expires_ms, hex HMAC(secret, "GET/realtime" + expires)]}` once per
  connection (the private stream's auth, bybit_auth.py) -> `{"reqId"?, "retCode": 0, "retMsg": "OK",
  "op": "auth", "connId"}`; a bad key, signature or an expired `expires`: 10004; malformed args: 10001;
  a second auth: 20001 "repeat auth".
- `{"reqId", "header": {"X-BAPI-TIMESTAMP", "X-BAPI-RECV-WINDOW"?}, "op": "order.create" | "order.amend" |
  "order.cancel", "args": [one REST body]}` -> `{"reqId", "retCode", "retMsg", "op", "data": <the REST
  result>, "header": {"X-Bapi-Limit", "X-Bapi-Limit-Status", "X-Bapi-Limit-Reset-Timestamp", "Traceid",
  "Timenow"}, "connId"}`. The body is handled by the very code of the REST routes (bybit_orders.py), so the
  order errors are the REST ones (110072 duplicate orderLinkId, 110001, 110007, ...) and the attached
  stopLoss / takeProfit of a create arm the position's TP/SL as over REST. The UID limits are the REST
  path's (an order.create spends /v5/order/create's 10/s): over -> 10006.
- Timestamp outside [server - recvWindow, server + 1000): 10002; a reqId used before on the connection:
  20006; an unknown op: 10404; an order op before auth: 10003 [?: the guideline does not say which code;
  Bybit's REST uses 10003 for a request without a valid key].
- `{"op": "ping"}` -> `{"retCode": 0, "retMsg": "OK", "op": "pong", "data": [ms], "connId"}`.

Faults (faults.py), on the same engine as REST: `ws_trade_restart {count}` answers the next order requests
10019 ("ws trade service is restarting": refused, not processed; the client must open a new connection);
`drop_ws {route: "bybit-trade" | "all", refuse_ms}` closes the sockets (and refuses new ones meanwhile);
`error_after_execute` executes the order and never answers (the request's outcome unknown to the client);
`delay_orders_ms` delays creation; `refuse_ws` refuses the handshake. Each order request runs in its own
task, so a delayed one does not hold up the others on the socket (as on the venue).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import WSMsgType, web

from bot.venues.sim.bybit_desk import Ambiguous, BybitError

if TYPE_CHECKING:
    from bot.venues.sim.bybit_rest import BybitRest
    from bot.venues.sim.server import Conn, SimServer

__all__ = ["ROUTE", "BybitTradeWs"]

ROUTE = "bybit-trade"  # Conn.route of these sockets (drop_ws {"route": "bybit-trade"})
_REST_PATH = {"order.create": "/v5/order/create", "order.amend": "/v5/order/amend",
              "order.cancel": "/v5/order/cancel"}


class BybitTradeWs:
    def __init__(self, s: SimServer, rest: BybitRest) -> None:
        self.s = s
        self.rest = rest
        self._conn_ids = itertools.count(1)
        self._trace = itertools.count(1)
        self._req_ids: dict[str, set[str]] = {}  # connId -> reqIds seen on it (20006 on reuse)
        self._ops: dict[str, Callable[[dict[str, Any]], Awaitable[Any]]] = {
            "order.create": rest.orders.create, "order.amend": rest.orders.amend,
            "order.cancel": rest.orders.cancel}

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/v5/trade", self._serve)

    # ------------------------------------------------------------------ connection
    async def _serve(self, request: web.Request) -> web.StreamResponse:
        from bot.venues.sim.server import Conn

        f = self.s.faults
        if f.refuse_ws or time.time_ns() < f.refuse_trade_until_ns:
            raise web.HTTPServiceUnavailable(text="ws refused by fault")
        ws = web.WebSocketResponse(heartbeat=None, max_msg_size=1 << 20)
        await ws.prepare(request)
        c = Conn(ws, ROUTE, False)
        conn_id = f"sim-trade-{next(self._conn_ids)}"
        self._req_ids[conn_id] = set()
        self.s.conns.add(c)
        c.writer = asyncio.create_task(self.s._writer(c))
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    try:
                        req = orjson.loads(msg.data)
                    except orjson.JSONDecodeError:
                        req = None
                    if not isinstance(req, dict):
                        self._put(c, {"retCode": 10001, "retMsg": "params error: not a JSON object", "op": "",
                                      "connId": conn_id})
                        continue
                    self._on_text(c, conn_id, req)
                elif msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                    break
        finally:
            self._req_ids.pop(conn_id, None)
            self.s.conns.discard(c)
            c.queue.put_nowait(None)
            c.writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await c.writer
        return ws

    @staticmethod
    def _put(c: Conn, body: dict[str, Any]) -> None:
        c.put(orjson.dumps(body))

    def _on_text(self, c: Conn, conn_id: str, req: dict[str, Any]) -> None:
        op = str(req.get("op") or "")
        rid = req.get("reqId")
        head: dict[str, Any] = {} if rid is None else {"reqId": rid}
        if op == "ping":
            self._put(c, {**head, "retCode": 0, "retMsg": "OK", "op": "pong", "data": [str(self.s.now_ms())],
                          "connId": conn_id})
        elif op == "auth":
            self._put(c, {**head, **self._auth(c, req.get("args")), "op": "auth", "connId": conn_id})
        elif op in _REST_PATH:
            self.s.requests[f"WS {op}"] = self.s.requests.get(f"WS {op}", 0) + 1  # GET /_sim/state
            t = asyncio.get_running_loop().create_task(self._order_op(c, conn_id, op, req, head))
            self.s.late_tasks.add(t)  # the server's stop cancels what is still running
            t.add_done_callback(self.s.late_tasks.discard)
        else:
            self._put(c, {**head, "retCode": 10404, "retMsg": f"op type is not found: {op}", "op": op,
                          "data": {}, "connId": conn_id})

    def _auth(self, c: Conn, args: Any) -> dict[str, Any]:
        if c.listen_key == "authed":
            return {"retCode": 20001, "retMsg": "repeat auth"}
        if not (isinstance(args, list) and len(args) == 3 and str(args[1]).isdigit()):
            return {"retCode": 10001, "retMsg": "params error: args are [api key, expires, signature]"}
        if not self.rest.auth.ws_auth_ok(str(args[0]), int(args[1]), str(args[2]), self.s.now_ms()):
            return {"retCode": 10004, "retMsg": "Invalid sign"}
        c.listen_key = "authed"
        return {"retCode": 0, "retMsg": "OK"}

    # ------------------------------------------------------------------ order ops
    async def _order_op(self, c: Conn, conn_id: str, op: str, req: dict[str, Any], head: dict[str, Any]) -> None:
        headers: dict[str, str] = {}
        data: Any = {}
        try:
            self._check(c, req, self._req_ids.get(conn_id, set()))
            if self.s.faults.take_trade_restart():
                raise BybitError(10019, "ws trade service is restarting, do not accept new request")
            path = _REST_PATH[op]
            ok, headers = self.rest.uid_limits.admit(path, self.s.now_ms())
            if not ok:
                raise BybitError(10006, "Too many visits!")
            args = req.get("args")
            if not (isinstance(args, list) and len(args) == 1 and isinstance(args[0], dict)):
                raise BybitError(10001, "params error: args holds one order")
            data = await self._ops[op](dict(args[0]))
            code, msg = 0, "OK"
        except BybitError as e:
            code, msg = e.code, e.msg
        except Ambiguous:  # executed; the answer is lost (error_after_execute): the client never hears back
            return
        except (KeyError, ValueError, TypeError) as e:
            code, msg = 10001, f"params error: {e}"
        now = self.s.now_ms()
        self._put(c, {**head, "retCode": code, "retMsg": msg, "op": op, "data": data if code == 0 else {},
                      "header": {**headers, "Traceid": f"sim{next(self._trace):012x}", "Timenow": str(now)},
                      "connId": conn_id})

    def _check(self, c: Conn, req: dict[str, Any], seen: set[str]) -> None:
        """Before processing: auth, the reqId's uniqueness, the header's timestamp (recv window)."""
        if c.listen_key != "authed":
            raise BybitError(10003, "Request not authorized: send auth first")
        rid = req.get("reqId")
        if rid is not None:
            if len(str(rid)) > 36:
                raise BybitError(10001, "params error: reqId longer than 36 characters")
            if str(rid) in seen:
                raise BybitError(20006, "reqId is duplicated")
            seen.add(str(rid))
        h = req.get("header")
        if not isinstance(h, dict) or not str(h.get("X-BAPI-TIMESTAMP", "")).isdigit():
            raise BybitError(10001, "params error: header X-BAPI-TIMESTAMP is required")
        ts, recv_s = int(h["X-BAPI-TIMESTAMP"]), str(h.get("X-BAPI-RECV-WINDOW") or "5000")
        if not recv_s.isdigit():
            raise BybitError(10001, "params error: X-BAPI-RECV-WINDOW")
        server = self.s.now_ms()
        if not server - int(recv_s) <= ts < server + 1000:
            raise BybitError(10002, "invalid request, please check your server timestamp or recv_window param. "
                                    f"req_timestamp[{ts}],server_timestamp[{server}],recv_window[{recv_s}]")
