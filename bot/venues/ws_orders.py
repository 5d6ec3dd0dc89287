"""One persistent order-entry websocket (request/answer by id), shared by the venues' websocket order paths
(Binance USD-M WebSocket API `/ws-fapi/v1`; usable for Bybit v5 `/v5/trade`): the transport only; the venue
module builds and signs the frames and reads the answers.

Rules it keeps (issue 16 item 2; architecture habit "never blindly retry an order placement"):
- `request()` while the socket is not open raises `WsNotConnected` BEFORE anything is written: the caller
  sends the request by REST instead (nothing can have reached the venue);
- once the frame is handed to the socket, the outcome is the venue's answer, or `WsNoAnswer` (no answer
  within the timeout, or the socket closed before it came): the request may have executed; a placement is
  then an ambiguous outcome, looked up by its client id, never sent again;
- the send path is the caller's own coroutine: `ws.send` writes the frame to the transport at once (no
  queue, no writer task); one reader task resolves the answers' futures by id;
- a request without an answer in time also drops the socket (a half-open TCP connection would otherwise
  swallow every following order until the pings notice); the next requests go by REST;
- reconnect in the background with capped full-jitter backoff (ws.backoff_delay_s); `on_open(ws)` (an
  auth frame, Bybit) runs before the socket is declared up.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.protocol import State

from bot.logging import get_logger
from bot.venues.order_transport import SocketLife
from bot.venues.ws import backoff_delay_s

__all__ = ["WsNoAnswer", "WsNotConnected", "WsOrderSocket"]

_CONNECT_ERRORS = (OSError, TimeoutError, InvalidHandshake, ConnectionClosed, asyncio.IncompleteReadError)


class WsNotConnected(Exception):
    """The order socket is down: nothing was sent; use REST."""


class WsNoAnswer(Exception):
    """The frame was sent and no answer came (timeout, or the socket closed first): the request may have
    executed at the venue."""


class WsOrderSocket:
    """`run()` keeps the socket up until cancelled; `request(key, frame, timeout_s)` sends and awaits the
    answer whose `answer_key(msg)` equals `key`."""

    def __init__(self, url: str, *, name: str, answer_key: Callable[[dict[str, Any]], Any],
                 on_open: Callable[[ClientConnection], Awaitable[None]] | None = None,
                 reconnect_min_ms: int = 250, reconnect_max_ms: int = 10_000, open_timeout_s: float = 10.0,
                 life: SocketLife | None = None) -> None:
        self.url = url
        self.name = name
        self._answer_key = answer_key
        self._on_open = on_open
        self._min_ms, self._max_ms = reconnect_min_ms, reconnect_max_ms
        self._open_timeout_s = open_timeout_s
        self._ws: ClientConnection | None = None
        self._pending: dict[Any, asyncio.Future[dict[str, Any]]] = {}
        self._up = asyncio.Event()
        self.stats = {"connects": 0, "disconnects": 0, "sent": 0, "answered": 0, "no_answer": 0, "unmatched": 0}
        self.on_send: Callable[[], None] | None = None  # bench hook: the frame is handed to websockets' send
        self._drop_reason = ""  # set when the bot drops the socket itself (an unanswered request)
        self.life = life if life is not None else SocketLife("ws", time.time_ns())  # what the operator sees
        self._log = get_logger("ws_orders", socket=name)

    @property
    def up(self) -> bool:
        ws = self._ws
        return ws is not None and ws.protocol.state is State.OPEN

    async def wait_up(self, timeout_s: float) -> bool:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._up.wait()
        return self.up

    # ------------------------------------------------------------------ requests
    async def request(self, key: Any, frame: bytes, timeout_s: float) -> dict[str, Any]:
        ws = self._ws
        if ws is None or ws.protocol.state is not State.OPEN:
            raise WsNotConnected(f"{self.name} order socket is down")
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[key] = fut
        if self.on_send is not None:
            self.on_send()
        try:
            try:
                await ws.send(frame, text=True)  # written to the transport before this returns (no task)
            except ConnectionClosed as e:
                # the state was OPEN above: the frame may have gone out before the socket failed
                self.stats["no_answer"] += 1
                raise WsNoAnswer(f"{self.name}: socket closed while sending ({e})") from e
            self.stats["sent"] += 1
            try:
                async with asyncio.timeout(timeout_s):
                    msg = await fut
            except TimeoutError as e:
                self.stats["no_answer"] += 1
                # a venue that does not answer on this socket is not trusted with the next order either: drop
                # it (the next requests go by REST at once, not into another timeout; run() reconnects)
                if ws is self._ws:
                    self._log.warning("no answer on the order socket; dropping it", timeout_ms=timeout_s * 1000)
                    self._drop_reason = f"no answer within {timeout_s * 1000:.0f} ms: dropped by the bot"
                    ws.transport.abort()
                raise WsNoAnswer(f"{self.name}: no answer within {timeout_s * 1000:.0f} ms") from e
            except WsNoAnswer:  # the socket closed before the answer (_down)
                self.stats["no_answer"] += 1
                raise
            self.stats["answered"] += 1
            return msg
        finally:
            self._pending.pop(key, None)

    # ------------------------------------------------------------------ life cycle
    async def run(self) -> None:
        failures = 0
        while True:
            try:
                async with connect(self.url, open_timeout=self._open_timeout_s, max_size=1 << 22,
                                   compression=None, ping_interval=20.0, ping_timeout=20.0) as ws:
                    if self._on_open is not None:
                        await self._on_open(ws)
                    self._ws = ws
                    self.stats["connects"] += 1
                    failures = 0
                    self._up.set()
                    self.life.up(time.time_ns())
                    self._log.info("order socket connected", url=self.url)
                    await self._read(ws)
                    reason = self._drop_reason or f"closed {ws.close_code} {ws.close_reason}".rstrip()
            except InvalidURI:
                raise
            except _CONNECT_ERRORS as e:
                reason = f"{type(e).__name__}: {e}"
            finally:
                self._down()
                self._drop_reason = ""
            self.life.down(reason, time.time_ns())
            failures += 1
            delay = backoff_delay_s(failures, self._min_ms, self._max_ms)
            self._log.warning("order socket down; orders go by REST meanwhile", reason=reason[:200],
                              retry_in_ms=round(delay * 1000))
            await asyncio.sleep(delay)

    async def _read(self, ws: ClientConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for raw in ws:
                try:
                    msg = orjson.loads(raw)
                    key = self._answer_key(msg) if isinstance(msg, dict) else None
                except orjson.JSONDecodeError:
                    key = None
                fut = self._pending.get(key) if key is not None else None
                if fut is None:
                    self.stats["unmatched"] += 1
                    continue
                if not fut.done():
                    fut.set_result(msg)

    def _down(self) -> None:
        if self._ws is not None:
            self.stats["disconnects"] += 1
        self._ws = None
        self._up.clear()
        for key, fut in list(self._pending.items()):  # sent, never answered: the caller resolves them
            if not fut.done():
                fut.set_exception(WsNoAnswer(f"{self.name}: socket closed before the answer to {key}"))

    async def close(self) -> None:
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 2.0)
        self._down()
        self.life.down("closed by the bot", time.time_ns())
