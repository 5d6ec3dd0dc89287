"""Binance USD-M WebSocket API (`/ws-fapi/v1`) of the loopback exchange: order entry over one socket.

What Binance documents for ws-fapi (exchange-facts A4 "WebSocket API"):
- a request is one text frame `{"id": ID, "method": M, "params": {...}}`; the answer carries the same id,
  `{"id", "status": 200, "result": {...}, "rateLimits": [...]}`, or `{"id", "status": 4xx/5xx, "error":
  {"code", "msg"}, "rateLimits": [...]}`; answers of requests on one socket may come in any order;
- every signed request carries `apiKey`, `timestamp` (and `recvWindow`) and `signature` in its params: the
  hex HMAC-SHA256 of all other params sorted by name, `key=value` joined with '&' (INT params are JSON
  integers, DECIMAL ones strings, booleans `true`/`false`); a wrong signature is -1022 (status 400), an
  unknown key -2015 (401), a stale timestamp -1021 (400), as on REST;
- methods served here: order.place, order.cancel, order.status, algoOrder.place, algoOrder.cancel, the same
  parameters and result objects as POST/DELETE/GET /fapi/v1/order and /fapi/v1/algoOrder (the REST handlers
  of rest.py are called: one engine, one set of checks). order.modify is not simulated (-1020);
- rateLimits: REQUEST_WEIGHT per minute (2400) and ORDERS per 10 s / per minute (300 / 1200), the counters
  the REST answers report as X-MBX-* headers (auth.Limits); over a limit: status 429 (418 when banned),
  error -1003 (or -1015 for orders) with `data.retryAfter` (ms), Binance's ws form of Retry-After.

Faults (faults.py): `drop_ws {"route": "ws-api", "refuse_ms"}` closes these sockets (and refuses new ones
with 503 meanwhile); `delay_orders_ms`, `error_after_execute` (answered status 503, -1007: execution status
unknown), `reject_next_stop`, `late_execute` and `rate_limit` act here as on REST; `ws_api_silence {"count",
"close"}`: the next `count` placements execute but are never answered (`close`: the socket is closed right
after), the client must look them up by client id.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import WSMsgType, web

from bot.logging import get_logger
from bot.venues.sim.orders import SimError

if TYPE_CHECKING:
    from bot.venues.sim.rest import Params
    from bot.venues.sim.server import Conn, SimServer

__all__ = ["PATH", "WsApi", "signature_payload"]

log = get_logger("sim.ws_api")

PATH = "/ws-fapi/v1"
_PLACING = ("order.place", "algoOrder.place")
_AMBIGUOUS_MSG = "Timeout waiting for response from backend server. Send status unknown; execution status unknown."


def _text(v: Any) -> str:
    if v is True:
        return "true"
    if v is False:
        return "false"
    return v if isinstance(v, str) else str(v)


def signature_payload(params: dict[str, Any]) -> str:
    """What Binance's ws-fapi signs: every param but `signature`, sorted by name, `key=value` joined by '&'."""
    return "&".join(f"{k}={_text(params[k])}" for k in sorted(params) if k != "signature")


class WsApi:
    """The `/ws-fapi/v1` handler; one per server (server.app() adds the route)."""

    def __init__(self, s: SimServer) -> None:
        from bot.venues.sim.rest import _Ambiguous, _Rest

        self.s = s
        h = _Rest(s)  # the REST routes' own handlers: one engine, one set of parameter checks
        # method -> (handler, IP weight, counts as an order) as Binance weighs them (order.place 0: A4)
        self.methods: dict[str, tuple[Callable[[Params], Awaitable[Any]], int, bool]] = {
            "order.place": (h.new_order, 0, True),
            "order.cancel": (h.cancel_order, 1, False),
            "order.status": (h.query_order, 1, False),
            "algoOrder.place": (h.new_algo, 0, True),
            "algoOrder.cancel": (h.cancel_algo, 1, False),
        }
        self._ambiguous = _Ambiguous
        self.silence = 0  # ws_api_silence: placements still to execute without an answer
        self.silence_close = False
        self.silenced = 0
        self.placed: list[str] = []  # client ids of the placements that came this way (the last 1000: state)
        self.refuse_until_ns = 0

    # ------------------------------------------------------------------ faults
    def apply_fault(self, f: dict[str, Any]) -> dict[str, Any]:
        if f["kind"] == "ws_api_silence":
            self.silence += int(f.get("count", 1))
            self.silence_close = bool(f.get("close", False))
        return {"ok": True}

    def refuse(self, ms: int) -> None:
        self.refuse_until_ns = time.time_ns() + ms * 1_000_000

    # ------------------------------------------------------------------ socket
    async def handle(self, request: web.Request) -> web.StreamResponse:
        from bot.venues.sim.server import Conn

        s = self.s
        if s.faults.refuse_ws or time.time_ns() < self.refuse_until_ns:
            raise web.HTTPServiceUnavailable(text="ws-api refused by fault")
        ws = web.WebSocketResponse(heartbeat=180.0, max_msg_size=1 << 20)  # the venue pings every 3 min (A4)
        conn = Conn(ws, "ws-api", False)
        await ws.prepare(request)
        s.conns.add(conn)
        pending: set[asyncio.Task[None]] = set()
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    if msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                        break
                    continue
                if s.faults.delay_orders_ms or s.faults.late_execute:
                    # a held request must not hold the others: answers may come out of order, as on the venue
                    t = asyncio.get_running_loop().create_task(self._request(conn, msg.data))
                    pending.add(t)
                    t.add_done_callback(pending.discard)
                else:
                    await self._request(conn, msg.data)
        finally:
            s.conns.discard(conn)
            for t in pending:
                t.cancel()
        return ws

    async def _send(self, conn: Conn, body: dict[str, Any]) -> None:
        if conn.ws.closed:
            return
        with contextlib.suppress(ConnectionError, RuntimeError):
            await conn.ws.send_str(orjson.dumps(body).decode())

    async def _request(self, conn: Conn, text: str) -> None:
        s = self.s
        now = s.now_ms()
        try:
            req = orjson.loads(text)
            rid, method, params = req["id"], req["method"], req.get("params") or {}
            if not isinstance(params, dict) or not isinstance(method, str):
                raise TypeError("params")
        except (orjson.JSONDecodeError, KeyError, TypeError):
            await self._send(conn, {"id": None, "status": 400,
                                    "error": {"code": -1000, "msg": "Malformed request: not a JSON object with "
                                              "id, method and params."}, "rateLimits": self._rate_limits()})
            return
        key = f"WS {method}"
        s.requests[key] = s.requests.get(key, 0) + 1
        entry = self.methods.get(method)
        if entry is None:
            await self._error(conn, rid, 400, -1020, f"Unsupported operation: {method}.")
            return
        fn, weight, is_order = entry
        limited = s.limits.admit(now, weight)
        if limited is not None:
            await self._limited(conn, rid, *limited, now)
            return
        try:
            p = {k: _text(v) for k, v in params.items()}
            s.auth.check_key(p.get("apiKey"))
            # Auth.verify checks timestamp/recvWindow, then the HMAC over the bytes it is given: here the
            # sorted payload the client had to sign
            s.auth.verify(signature_payload(params) + "&signature=" + p.get("signature", ""), "", p, now)
        except SimError as e:
            await self._error(conn, rid, e.http_status, e.code, e.msg)
            return
        if is_order:
            limited = s.limits.count_order(now)
            if limited is not None:
                await self._limited(conn, rid, *limited, now, code=-1015)
                return
        for k in ("apiKey", "signature", "timestamp", "recvWindow"):
            p.pop(k, None)
        if method in _PLACING:
            self.placed.append(p.get("newClientOrderId") or p.get("clientAlgoId") or "")
            del self.placed[:-1000]
        silent = method in _PLACING and self.silence > 0
        if silent:
            self.silence -= 1
            self.silenced += 1
            s.faults._fired("ws_api_silence", method=method)
        try:
            result = await fn(p)
        except SimError as e:
            if not silent:
                await self._error(conn, rid, e.http_status, e.code, e.msg)
            return
        except self._ambiguous as e:
            if not silent:
                await self._error(conn, rid, e.status, -1007, _AMBIGUOUS_MSG)
            return
        finally:
            if silent and self.silence_close:
                await conn.ws.close(code=1011, message=b"closed by the simulator (ws_api_silence)")
        if silent:
            log.info("sim_ws_api_silenced", method=method, id=rid)
            return
        await self._send(conn, {"id": rid, "status": 200, "result": result, "rateLimits": self._rate_limits(is_order)})

    async def _error(self, conn: Conn, rid: Any, status: int, code: int, msg: str,
                     data: dict[str, Any] | None = None) -> None:
        err: dict[str, Any] = {"code": code, "msg": msg}
        if data:
            err["data"] = data
        await self._send(conn, {"id": rid, "status": status, "error": err, "rateLimits": self._rate_limits()})

    async def _limited(self, conn: Conn, rid: Any, status: int, retry_s: int, now_ms: int, code: int = -1003) -> None:
        msg = "Too many requests; please use the websocket for live updates." if status == 429 else \
            "Way too many requests; IP banned."
        await self._error(conn, rid, status, code, msg, {"serverTime": now_ms, "retryAfter": now_ms + retry_s * 1000})

    def _rate_limits(self, orders: bool = False) -> list[dict[str, Any]]:
        lim = self.s.limits
        out = [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": lim.WEIGHT_1M,
                "count": lim.weight_1m}]
        if orders:
            out.append({"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": lim.ORDERS_10S,
                        "count": lim.orders_10s})
            out.append({"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": lim.ORDERS_1M,
                        "count": lim.orders_1m})
        return out
