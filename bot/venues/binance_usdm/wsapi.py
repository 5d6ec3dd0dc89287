"""Order entry over Binance USD-M's WebSocket API (`/ws-fapi/v1`, exchange-facts A2 table, A4 "WebSocket API"):
`execution.order_transport = "ws"`.

The same requests as the REST fast path (signer.py): `orders.order_params` builds them (the same keys,
strings and client ids); this module signs them the ws-fapi way and sends one text frame per request on one
persistent socket (bot/venues/ws_orders.py):
- params + `apiKey`, `timestamp` (ccxt's `nonce()`: our measured clock offset applied, as on REST) and
  `recvWindow`; `signature` = hex HMAC-SHA256 of every other param sorted by name, `key=value` joined by '&'
  (A4: "signed over its params sorted alphabetically"); INT params are JSON integers, DECIMAL ones strings;
- methods: order.place / algoOrder.place (weight 0), order.cancel / algoOrder.cancel;
- answers `{"id", "status", "result" | "error": {"code", "msg", "data"?}, "rateLimits"}`: the rateLimits
  are handed to the limiter as the X-MBX-* headers REST carries; an error becomes the ccxt exception REST
  would have raised for the same status and body, so `errors.translate` maps both the same way (one table:
  -1021 ClockUnsynced, -2021 StopWouldTrigger, -4116 DuplicateClientId, 5xx / -1007 / no answer
  AmbiguousOutcome for a placement, 429/418 RateLimited with the `data.retryAfter` time).
Only HMAC keys: an RSA/Ed25519 key (ccxt signs those) keeps orders on REST.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from typing import Any

import ccxt.async_support as ccxt
import orjson

from bot.venues.binance_usdm.limiter import ORDER_HEADERS, WEIGHT_HEADER
from bot.venues.binance_usdm.signer import _text, nonce_ms  # one rendering of a param, as REST signs it
from bot.venues.endpoints import BINANCE_USDM_WS_API
from bot.venues.order_transport import SocketLife
from bot.venues.ws_orders import WsNoAnswer, WsOrderSocket

__all__ = ["BinanceWsApi", "ws_api_url"]

_PLACE = {"order": "order.place", "algoOrder": "algoOrder.place"}


def ws_api_url(environment: str, rest_url: str) -> str:
    """The ws-fapi URL of an environment; against the loopback exchange (or a REST override) the same host
    as `rest_url`, path /ws-fapi/v1 (bot/venues/sim/ws_api.py)."""
    if environment not in BINANCE_USDM_WS_API:
        if not rest_url:
            raise ValueError("venue.environment = 'exchange-sim' needs venue.rest_url")
        base = rest_url.rstrip("/")
        return ("wss://" + base[8:] if base.startswith("https://") else "ws://" + base.removeprefix("http://")) \
            + "/ws-fapi/v1"
    return BINANCE_USDM_WS_API[environment]


def headers_of(msg: dict[str, Any]) -> dict[str, str]:
    """rateLimits (and an error's retryAfter) as the headers REST answers carry (limiter.on_response)."""
    h: dict[str, str] = {}
    for rl in msg.get("rateLimits") or ():
        kind, interval, n = rl.get("rateLimitType"), rl.get("interval"), rl.get("intervalNum")
        count = str(rl.get("count", 0))
        if kind == "REQUEST_WEIGHT" and interval == "MINUTE" and n == 1:
            h[WEIGHT_HEADER] = count
        elif kind == "ORDERS" and interval == "SECOND" and n == 10:
            h[ORDER_HEADERS[0]] = count
        elif kind == "ORDERS" and interval == "MINUTE" and n == 1:
            h[ORDER_HEADERS[1]] = count
    data = (msg.get("error") or {}).get("data") or {}
    if isinstance(data, dict) and data.get("retryAfter") and data.get("serverTime"):
        h["Retry-After"] = str(max(1, -(-(int(data["retryAfter"]) - int(data["serverTime"])) // 1000)))
    return h


def error_of(method: str, msg: dict[str, Any]) -> Exception:
    """The ccxt exception REST would raise for this status and body (errors.translate reads the code)."""
    status = int(msg.get("status") or 0)
    err = msg.get("error") or {}
    body = orjson.dumps({"code": err.get("code"), "msg": err.get("msg")}).decode()
    text = f"binanceusdm ws {method} {status} {body}"
    e: Exception
    if status >= 500:
        e = ccxt.ExchangeNotAvailable(text)
    elif status == 418:
        e = ccxt.DDoSProtection(f"binanceusdm ws {method} 418 {body}")
    elif status == 429:
        e = ccxt.RateLimitExceeded(text)
    else:
        e = ccxt.ExchangeError(text)
    e.http_status = status  # type: ignore[attr-defined]
    return e


class BinanceWsApi:
    """Signed requests on one ws-fapi socket for one ccxt exchange object (its keys and clock)."""

    def __init__(self, ex: Any, url: str, *, timeout_ms: int,
                 on_response: Callable[[int, dict[str, str], bool, int | None], None],
                 reconnect_min_ms: int = 250, reconnect_max_ms: int = 5_000, life: SocketLife | None = None) -> None:
        self._ex = ex
        self._mac = hmac.new(str(ex.secret or "").encode(), digestmod=hashlib.sha256)
        self._api_key = ex.apiKey
        self._timeout_s = timeout_ms / 1000.0
        self._on_response = on_response
        self._n = 0
        # reconnect cap 5 s (full jitter: ~2.5 s apart on average while the venue refuses): orders go by the
        # slower REST meanwhile, so the socket should come back soon, without a connection storm
        self.socket = WsOrderSocket(url, name="binance ws-fapi", answer_key=_answer_id,
                                    reconnect_min_ms=reconnect_min_ms, reconnect_max_ms=reconnect_max_ms,
                                    life=life)

    @staticmethod
    def usable(ex: Any) -> bool:
        """HMAC keys only (an RSA/Ed25519 secret is signed by ccxt: REST)."""
        return "PRIVATE KEY" not in str(ex.secret or "")

    @property
    def up(self) -> bool:
        return self.socket.up

    def frame(self, method: str, params: dict[str, Any]) -> tuple[int, bytes]:
        """(request id, the signed text frame). `params` is not modified."""
        ex = self._ex
        p = dict(params)
        ts = nonce_ms(ex)
        p["apiKey"] = self._api_key
        p["timestamp"] = ts
        items = [*params.items(), ("apiKey", self._api_key), ("timestamp", str(ts))]
        rw = ex.options.get("recvWindow")
        if rw is not None:
            p["recvWindow"] = int(rw)
            items.append(("recvWindow", str(int(rw))))
        items.sort()
        try:
            payload = "&".join(map("=".join, items))  # order_params gives strings only: the fast join
        except TypeError:
            payload = "&".join([k + "=" + _text(v) for k, v in items])
        h = self._mac.copy()  # key schedule done once (signer.py)
        h.update(payload.encode())
        p["signature"] = h.hexdigest()
        self._n += 1
        return self._n, orjson.dumps({"id": self._n, "method": method, "params": p})

    async def call(self, method: str, params: dict[str, Any], *, placing: bool) -> Any:
        """The answer's result; raises WsNotConnected (nothing sent: use REST), or the ccxt exception REST
        would raise (RequestTimeout when no answer came: translate makes a placement ambiguous)."""
        rid, frame = self.frame(method, params)
        try:
            msg = await self.socket.request(rid, frame, self._timeout_s)
        except WsNoAnswer as e:
            raise ccxt.RequestTimeout(f"binanceusdm ws {method}: {e}") from e
        status = int(msg.get("status") or 0)
        err = msg.get("error")
        code = err.get("code") if isinstance(err, dict) else None
        self._on_response(status, headers_of(msg), placing, code if isinstance(code, int) else None)
        if status == 200 and "result" in msg:
            return msg["result"]
        raise error_of(method, msg)

    def warm_place(self, path: str, params: dict[str, Any]) -> None:
        """`place`'s signed frame, built and dropped (execution/warm.py); its request id is given back."""
        self.frame(_PLACE[path], params)
        self._n -= 1  # synchronous: no frame was built in between, the id was never on the wire

    async def place(self, path: str, params: dict[str, Any]) -> Any:
        """POST /fapi/v1/order or /algoOrder's request as order.place / algoOrder.place."""
        return await self.call(_PLACE[path], params, placing=True)

    async def cancel(self, symbol: str, client_id: str, conditional: bool) -> Any:
        if conditional:
            return await self.call("algoOrder.cancel", {"symbol": symbol, "clientAlgoId": client_id}, placing=False)
        return await self.call("order.cancel", {"symbol": symbol, "origClientOrderId": client_id}, placing=False)

    async def run(self) -> None:
        await self.socket.run()

    async def close(self) -> None:
        await self.socket.close()


def _answer_id(msg: dict[str, Any]) -> Any:
    return msg.get("id")
