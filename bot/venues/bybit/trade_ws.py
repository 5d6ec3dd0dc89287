"""Bybit v5 order entry over one persistent authenticated websocket: `/v5/trade` (execution.order_transport = "ws").

Wire (exchange-facts B2 "WS order entry"; Bybit's "Websocket Trade Guideline", docs/v5/websocket/trade):
- `wss://stream.bybit.com/v5/trade` (testnet `stream-testnet`); demo trading has no /v5/trade (B2): there
  the orders stay on REST. With `venue.ws_private_url` set (the loopback exchange), its `/v5/private` becomes
  `/v5/trade`.
- one `{"op":"auth","args":[key, expires_ms, hex HMAC_SHA256(secret, "GET/realtime"+expires)]}` per
  connection (the private stream's auth, userstream.auth_args), answered `{"retCode":0,"op":"auth","connId"}`;
- then `{"reqId", "header": {"X-BAPI-TIMESTAMP", "X-BAPI-RECV-WINDOW"}, "op": "order.create" |
  "order.cancel" | "order.amend", "args": [the REST body]}`; the timestamp is in the exchange's clock (the
  gateway's measured offset, as ccxt's nonce for REST), so a 10002 means what it means on REST;
- answers `{"reqId", "retCode", "retMsg", "op", "data": <REST result>, "header": {"X-Bapi-Limit*", ...}}`:
  retCode and the limit header go through the same translation (errors.translate) and limiter as REST;
- `{"op":"ping"}` every 20 s.

What the caller (BybitGateway) can rely on:
- `TradeSocketDown` = NOT sent (no authenticated open socket) or refused before processing
  (10019: "ws trade service is restarting, do not accept new request"; the socket is then reopened): the
  same request may go over REST, that is not a blind resend;
- a request sent whose answer never comes (timeout, or the socket dropped after the send) is
  AmbiguousOutcome while placing (the gateway looks the order up by orderLinkId), VenueUnavailable otherwise;
- the socket reconnects in the background with capped full-jitter backoff; `ready` is set while it is
  connected and authenticated.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from typing import TYPE_CHECKING, Any

import orjson
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.protocol import State

from bot.logging import get_logger
from bot.venues.bybit.errors import translate
from bot.venues.bybit.orders import create_body
from bot.venues.bybit.userstream import auth_args
from bot.venues.errors import VenueUnavailable
from bot.venues.order_transport import SocketLife
from bot.venues.ws import backoff_delay_s

if TYPE_CHECKING:
    from bot.domain.instrument import Instrument
    from bot.domain.orders import OrderRequest
    from bot.settings.core import VenueSection
    from bot.venues.bybit.gateway import BybitGateway

__all__ = ["BYBIT_TRADE_WS", "BybitTradeSocket", "TradeSocketDown", "trade_url", "ws_cancel", "ws_create"]

BYBIT_TRADE_WS: dict[str, str] = {  # B2: no demo-trading host
    "mainnet": "wss://stream.bybit.com/v5/trade",
    "testnet": "wss://stream-testnet.bybit.com/v5/trade",
}
RESTARTING = 10019  # "ws trade service is restarting": refused, open a new connection (guideline)
# what ends one connection (then REST carries the orders and a new socket is tried); ValueError: an auth
# answer that is not JSON. The socket is the fast path only: nothing of it may end the gateway.
_RETRY = (OSError, TimeoutError, InvalidHandshake, ConnectionClosed, VenueUnavailable, ValueError)


def trade_url(venue: VenueSection) -> str | None:
    """The /v5/trade URL of the venue's environment, or None where Bybit has none (demo trading)."""
    if venue.ws_private_url:
        base = venue.ws_private_url.rstrip("/")
        return base.removesuffix("/v5/private") + "/v5/trade" if base.endswith("/v5/private") else None
    return BYBIT_TRADE_WS.get(venue.environment)


CREATE, CANCEL = "/v5/order/create", "/v5/order/cancel"


async def ws_create(gw: BybitGateway, tw: BybitTradeSocket, req: OrderRequest, inst: Instrument,
                    protective: bool) -> str | None:
    """`order.create` through the gateway's limiter gate while the socket is up: the orderId, or None when the
    order must go over REST (socket down, not sent, or 10019: never processed, so REST is not a resend)."""
    if not tw.ready.is_set():
        gw.stats["ws_fallbacks"] += 1  # the socket is not up: REST (nothing was sent on it)
        return None
    body = create_body(req, inst, gw.position_idx)
    try:
        data = await gw.call(CREATE, lambda: tw.request("order.create", body, CREATE, placing=True),
                             placing=True, protective=protective, http=False)
    except TradeSocketDown as e:
        gw.stats["ws_fallbacks"] += 1
        tw._log.info("order over REST: trade socket down", client_id=req.client_id, why=str(e)[:120])
        return None
    gw.stats["ws_orders"] += 1
    return str(data.get("orderId", ""))


async def ws_cancel(gw: BybitGateway, tw: BybitTradeSocket, symbol: str, link: str) -> bool:
    """`order.cancel` by orderLinkId while the socket is up; False when it must go over REST. Errors (110001
    -> OrderNotFound, ...) are translated as on REST and propagate."""
    if not tw.ready.is_set():
        gw.stats["ws_fallbacks"] += 1
        return False
    body = {"category": "linear", "symbol": symbol, "orderLinkId": link}
    try:
        await gw.call(CANCEL, lambda: tw.request("order.cancel", body, CANCEL, placing=False), http=False)
    except TradeSocketDown:
        gw.stats["ws_fallbacks"] += 1
        return False
    gw.stats["ws_orders"] += 1
    return True


class TradeSocketDown(VenueUnavailable):
    """Not sent over the socket (or refused unprocessed, 10019): the caller sends it over REST."""


class _Refusal(Exception):
    """A non-zero retCode, worded like Bybit's REST body so errors.translate reads it the same way."""

    def __init__(self, code: int, msg: str) -> None:
        super().__init__(orjson.dumps({"retCode": code, "retMsg": msg}).decode())


class _Lost(Exception):
    """The socket closed with the request sent and unanswered."""


class BybitTradeSocket:
    def __init__(self, gw: BybitGateway, url: str, *, ping_interval_s: float = 20.0, reconnect_min_ms: int = 250,
                 reconnect_max_ms: int = 5000, auth_window_ms: int = 10_000, life: SocketLife | None = None) -> None:
        self.gw = gw
        self.url = url
        self.ping_interval_s = ping_interval_s
        self.reconnect_min_ms = reconnect_min_ms
        self.reconnect_max_ms = reconnect_max_ms  # short: this socket is the fast path, REST meanwhile
        self.auth_window_ms = auth_window_ms
        self.timeout_s = gw.venue.request_timeout_ms / 1000.0
        self.ready = asyncio.Event()
        self.conn_id = ""
        self._ws: Any = None
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._leave: asyncio.Event | None = None
        self._last_rx_s = 0.0  # monotonic time of the last frame received (answers, pongs)
        self.last_send_ns = 0  # perf_counter_ns as the last order frame was handed to the socket (bench)
        self.stats = {"connects": 0, "auth_refused": 0, "sent": 0, "answered": 0, "no_answer": 0,
                      "lost_in_flight": 0, "restarting": 0, "pings": 0, "silent": 0}
        self.life = life if life is not None else SocketLife("ws", time.time_ns())  # what the operator sees
        self._leave_reason = ""  # why the bot leaves the current connection (10019, a silent socket)
        self._log = get_logger("bybit.trade_ws")

    # ------------------------------------------------------------------------------------ requests
    async def request(self, op: str, body: dict[str, Any], path: str, *, placing: bool) -> dict[str, Any]:
        """One order op; its `data` (the REST result) or a translated VenueError (see the module doc)."""
        ws = self._ws
        if ws is None or not self.ready.is_set():
            raise TradeSocketDown(f"{op}: /v5/trade not connected")
        rid = f"{op[6:]}{next(self._ids)}"  # unique on the connection (20006 on reuse)
        ts = int(self.gw.clock.now_exchange_ms(self.gw._wall_s() * 1000.0))
        frame = orjson.dumps({"reqId": rid, "header": {"X-BAPI-TIMESTAMP": str(ts),
                                                       "X-BAPI-RECV-WINDOW": str(self.gw.venue.recv_window_ms)},
                              "op": op, "args": [body]}).decode()
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        try:
            if ws.state is not State.OPEN:  # websockets writes nothing unless OPEN: not sent, REST may go
                raise TradeSocketDown(f"{op}: /v5/trade closing")
            self.stats["sent"] += 1
            try:
                self.last_send_ns = time.perf_counter_ns()
                # once OPEN, send() writes the frame before it can raise: a ConnectionClosed from it means
                # "maybe sent", never "not sent"
                async with asyncio.timeout(self.timeout_s):
                    await ws.send(frame)
                    ans = await fut
            except TimeoutError as e:
                self.stats["no_answer"] += 1
                raise translate(_Lost(f"{op} {rid}: no answer in {self.timeout_s:.1f} s"), placing=placing) from e
            except (_Lost, ConnectionClosed) as e:
                self.stats["lost_in_flight"] += 1
                raise translate(_Lost(f"{op} {rid}: {e}"), placing=placing) from e
        finally:
            self._pending.pop(rid, None)
        self.stats["answered"] += 1
        code = ans.get("retCode")
        if not isinstance(code, int):  # an answer we cannot read says nothing about the order's fate
            raise translate(_Lost(f"{op} {rid}: unreadable answer {str(ans)[:120]}"), placing=placing)
        self.gw.limiter.on_response(path, 200, ans.get("header") or {}, code, self.gw._wall_s())
        if code == RESTARTING:
            self.stats["restarting"] += 1
            self.reconnect("10019: ws trade service restarting")
            raise TradeSocketDown(f"{op}: 10019 {ans.get('retMsg', '')}"[:200])
        if code != 0:
            raise translate(_Refusal(code, str(ans.get("retMsg", ""))), placing=placing)
        data = ans.get("data")
        return data if isinstance(data, dict) else {}

    def reconnect(self, reason: str) -> None:
        """Leave the current connection (the run loop opens a new one)."""
        self.ready.clear()
        if self._leave is not None:
            self._leave_reason = reason
            self._log.info("trade socket reconnect", reason=reason)
            self._leave.set()

    # ------------------------------------------------------------------------------------ connection
    async def _auth(self, ws: Any) -> None:
        v = self.gw.venue
        expires = int(self.gw.clock.now_exchange_ms(self.gw._wall_s() * 1000.0)) + self.auth_window_ms
        await ws.send(orjson.dumps({"reqId": "auth", "op": "auth", "args": auth_args(
            v.api_key.get_secret_value(), v.api_secret.get_secret_value(), expires)}).decode())
        async with asyncio.timeout(10.0):
            while True:
                ans = orjson.loads(await ws.recv())
                if isinstance(ans, dict) and ans.get("op") == "auth":
                    break
        if ans.get("retCode") != 0:
            self.stats["auth_refused"] += 1
            raise VenueUnavailable(f"/v5/trade auth refused: {ans.get('retCode')} {str(ans.get('retMsg'))[:200]}")
        self.conn_id = str(ans.get("connId", ""))

    async def run(self) -> None:
        failures = 0
        while True:
            reason = ""
            try:
                async with connect(self.url, open_timeout=10, max_size=1 << 20, ping_interval=None) as ws:
                    await self._auth(ws)
                    failures = 0
                    self.stats["connects"] += 1
                    leave = self._leave = asyncio.Event()
                    self._leave_reason = ""
                    self._ws = ws
                    self.ready.set()
                    self.life.up(time.time_ns())
                    self._log.info("trade socket ready", conn_id=self.conn_id)
                    async with asyncio.TaskGroup() as tg:
                        rd = tg.create_task(self._read(ws))
                        pg = tg.create_task(self._ping(ws))
                        lv = tg.create_task(leave.wait())
                        await asyncio.wait({rd, pg, lv}, return_when=asyncio.FIRST_COMPLETED)
                        for t in (rd, pg, lv):
                            t.cancel()
                    reason = self._leave_reason or f"closed by the venue {ws.close_code or ''} {ws.close_reason or ''}"
            except* _RETRY as eg:
                failures += 1
                e = eg.exceptions[0]
                reason = f"{type(e).__name__}: {e}"
                self._log.warning("trade socket lost; orders go over REST", error=repr(e)[:200], failures=failures)
            finally:
                self._down()
            self.life.down(reason.strip(), time.time_ns())
            await asyncio.sleep(backoff_delay_s(failures, self.reconnect_min_ms, self.reconnect_max_ms))

    def _down(self) -> None:
        self.ready.clear()
        self._ws = None
        self._leave = None
        for rid, fut in list(self._pending.items()):  # sent, unanswered: their outcome is unknown
            if not fut.done():
                fut.set_exception(_Lost(f"{rid}: /v5/trade closed before the answer"))

    async def _read(self, ws: Any) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for raw in ws:
                self._last_rx_s = time.monotonic()
                try:
                    msg = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    self._log.warning("trade socket: not JSON", raw=str(raw)[:200])
                    continue
                if not isinstance(msg, dict):
                    continue
                fut = self._pending.get(str(msg.get("reqId", "")))
                if fut is not None and not fut.done():
                    fut.set_result(msg)
                elif msg.get("op") not in ("pong", "ping"):
                    self._log.warning("trade socket: unmatched answer", msg=str(msg)[:200])

    async def _ping(self, ws: Any) -> None:
        """`{"op":"ping"}` every period (B2); a socket that answered nothing, not even the last ping's pong,
        for two periods is half-open: it is left (orders go over REST until a new one is up) rather than
        letting every request on it time out into an ambiguous outcome."""
        self._last_rx_s = time.monotonic()
        while True:
            await asyncio.sleep(self.ping_interval_s)
            if time.monotonic() - self._last_rx_s > 2 * self.ping_interval_s:
                self.stats["silent"] += 1
                self.reconnect(f"no frame for {2 * self.ping_interval_s:.0f} s")
                return
            await ws.send('{"op":"ping"}')
            self.stats["pings"] += 1

    async def close(self) -> None:
        ws = self._ws
        self._down()
        self.life.down("closed by the bot", time.time_ns())
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close()
