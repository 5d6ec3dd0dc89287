"""Bybit v5 private websocket: auth, subscribe order/execution/position, ping, reconnect, REST catch-up.

Wire rules (exchange-facts B2, B3):
- `wss://stream.bybit.com/v5/private` (testnet `stream-testnet`, demo `stream-demo`);
- auth first: `{"op":"auth","args":[api_key, expires_ms, hex(HMAC_SHA256(secret, "GET/realtime" + expires))]}`,
  answered `{"op":"auth","success":true|false,"ret_msg":...}`; `expires` is in the exchange's clock (our
  measured offset applied) `auth_window_ms` ahead;
- then `{"op":"subscribe","args":["order","execution","position","wallet"]}` (the all-in-one topics; a
  categorised topic may not share the request), answered like auth;
- `{"op":"ping"}` every 20 s (pong: `{"op":"pong","args":[ts]}`); without it the connection is cut.
A refused auth is a configuration error (keys, permissions): after `max_auth_failures` in a row the
stream stops and the gateway's updates() raises, instead of hammering the venue.

After EVERY subscribe (the first one included: events between start-up and the connection are
otherwise lost) the stream catches up by REST, in this order:
1. executions since the last one seen (GET /v5/execution/list, at most a day back and 100 rows, newest
   first; fills carry their own ids and fees);
2. open orders (GET /v5/order/realtime), new or changed ones;
3. every order we last saw open and no longer is: looked up by orderLinkId (realtime, then history);
4. positions (GET /v5/position/list), and whether the position's stop is still there.
The translator drops what the socket already delivered, so the catch-up can run at any time.

Reconnects use capped full-jitter backoff (bot.venues.ws.backoff_delay_s). A socket silent for three
ping periods (or `user_stream_stale_ms`, if shorter) is dropped and reopened.

Health (bot.venues.stream_health): `on_event(kind, detail)` is told "connected", "lost", "message",
"caught_up", "probe_ok" (a pong) and "probe_failed" (a ping whose pong had not come by the next ping: the
keep-alive probe of B2). `request_reconnect(reason)` leaves the connection at once; the reconnect catches up.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import orjson
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from bot.domain.orders import BalanceUpdate, OrderUpdate, PositionSnapshot
from bot.errors import MalformedMessage
from bot.logging import get_logger
from bot.venues.bybit.orders import client_id_of
from bot.venues.bybit.userevents import StopMissing
from bot.venues.endpoints import BYBIT_PRIVATE_WS
from bot.venues.errors import RateLimited, VenueError, VenueUnavailable
from bot.venues.ws import backoff_delay_s

if TYPE_CHECKING:
    from bot.venues.bybit.gateway import BybitGateway

__all__ = ["DEFAULT_PRIVATE_WS", "TOPICS", "BybitUserStream", "auth_args"]

DEFAULT_PRIVATE_WS = BYBIT_PRIVATE_WS
TOPICS = ("order", "execution", "position", "wallet")  # wallet: the balance between REST checks

_RETRY = (OSError, TimeoutError, InvalidHandshake, ConnectionClosed, VenueUnavailable, RateLimited)


def auth_args(api_key: str, secret: str, expires_ms: int) -> list[Any]:
    sig = hmac.new(secret.encode(), f"GET/realtime{expires_ms}".encode(), hashlib.sha256).hexdigest()
    return [api_key, expires_ms, sig]


class AuthRefused(VenueError):
    """Bybit refused the private websocket's auth (wrong keys, expired timestamp, no permission)."""


class _Reconnect(Exception):
    pass


class BybitUserStream:
    def __init__(self, gw: BybitGateway, *, ping_interval_s: float = 20.0, reconnect_min_ms: int = 250,
                 reconnect_max_ms: int = 30_000, auth_window_ms: int = 10_000, max_auth_failures: int = 3) -> None:
        self.gw = gw
        v = gw.venue
        self.url = (v.ws_private_url or DEFAULT_PRIVATE_WS[v.environment]).rstrip("/")
        self.ping_interval_s = ping_interval_s
        self.stale_s = min(v.user_stream_stale_ms / 1000.0, 3 * ping_interval_s)
        self.reconnect_min_ms = reconnect_min_ms
        self.reconnect_max_ms = reconnect_max_ms
        self.auth_window_ms = auth_window_ms
        self.max_auth_failures = max_auth_failures
        self.connected = asyncio.Event()
        self.caught_up = asyncio.Event()
        # called (synchronously) after every catch-up, the first one included: the app reconciles then
        self.on_caught_up: Callable[[], None] | None = None
        # health evidence for the app (kind, detail): see the module docstring
        self.on_event: Callable[[str, str], None] | None = None
        self._leave: asyncio.Event | None = None
        self._leave_reason = ""
        self._ping_unanswered = 0
        self.stats = {"connects": 0, "auth_refused": 0, "pings": 0, "pongs": 0, "catchups": 0,
                      "catchup_updates": 0, "stop_checks": 0, "pings_unanswered": 0, "reconnects_requested": 0}
        self._ids = itertools.count(1)
        self._since_ms = 0  # executions before this are of no interest (set at the first catch-up)
        self._log = get_logger("bybit.userstream")
        self._repair: asyncio.Task[None] | None = None  # the REST catch-up after a malformed event

    def _tell(self, kind: str, detail: str = "") -> None:
        if self.on_event is not None:
            self.on_event(kind, detail)

    def request_reconnect(self, reason: str) -> bool:
        """Leave the current connection now (reconnect + catch-up follow). False when not connected."""
        if self._leave is None or not self.connected.is_set():
            return False
        self._leave_reason = reason
        self.stats["reconnects_requested"] += 1
        self._leave.set()
        return True

    async def _until_asked_to_leave(self, ev: asyncio.Event) -> None:
        await ev.wait()
        raise _Reconnect(f"requested: {self._leave_reason}")

    # ------------------------------------------------------------------------------------ connection
    async def _request(self, ws: Any, op: str, args: list[Any]) -> dict[str, Any]:
        """Send one op and wait for its answer (messages of other kinds cannot come before a subscribe)."""
        req_id = f"{op}{next(self._ids)}"
        await ws.send(orjson.dumps({"req_id": req_id, "op": op, "args": args}).decode())
        deadline = time.monotonic() + 10.0
        while True:
            raw = await asyncio.wait_for(ws.recv(), timeout=max(0.01, deadline - time.monotonic()))
            msg = orjson.loads(raw)
            if isinstance(msg, dict) and msg.get("op") == op:
                return msg

    async def _open(self, ws: Any) -> None:
        v = self.gw.venue
        expires = int(self.gw.clock.now_exchange_ms(time.time() * 1000.0)) + self.auth_window_ms
        ans = await self._request(ws, "auth", auth_args(v.api_key.get_secret_value(),
                                                        v.api_secret.get_secret_value(), expires))
        if ans.get("success") is not True:
            self.stats["auth_refused"] += 1
            raise AuthRefused(f"private websocket auth refused: {str(ans.get('ret_msg', ''))[:200]}")
        ans = await self._request(ws, "subscribe", list(TOPICS))
        if ans.get("success") is not True:
            raise VenueUnavailable(f"private websocket subscribe refused: {str(ans.get('ret_msg', ''))[:200]}")

    async def run(self) -> None:
        failures = auth_failures = 0
        while True:
            try:
                async with connect(self.url, open_timeout=10, max_size=8 * 1024 * 1024, ping_interval=None) as ws:
                    await self._open(ws)
                    failures = auth_failures = 0
                    self.stats["connects"] += 1
                    self.connected.set()
                    self._ping_unanswered = 0
                    self._tell("connected")
                    leave = self._leave = asyncio.Event()
                    async with asyncio.TaskGroup() as tg:
                        rd = tg.create_task(self._read(ws, tg))
                        pg = tg.create_task(self._ping(ws))
                        lv = tg.create_task(self._until_asked_to_leave(leave))
                        await self.catch_up()
                        self.caught_up.set()
                        self._tell("caught_up")
                        if self.on_caught_up is not None:
                            self.on_caught_up()
                        await asyncio.wait({rd, pg, lv}, return_when=asyncio.FIRST_COMPLETED)
                        raise _Reconnect("connection ended")
            except* AuthRefused as eg:
                auth_failures += 1
                failures += 1
                self._log.error("private stream auth refused", error=str(eg.exceptions[0]), failures=auth_failures)
                if auth_failures >= self.max_auth_failures:
                    raise eg.exceptions[0] from None
            except* _Reconnect as eg:
                self._log.info("private stream reconnect", reason=str(eg.exceptions[0]))
                self._tell("lost", f"reconnecting: {eg.exceptions[0]}")
            except* _RETRY as eg:
                failures += 1
                self._log.warning("private stream lost", error=repr(eg.exceptions[0])[:200], failures=failures)
                self._tell("lost", f"{type(eg.exceptions[0]).__name__}: {str(eg.exceptions[0])[:120]}")
            self._leave = None
            self.connected.clear()
            self.caught_up.clear()
            await asyncio.sleep(backoff_delay_s(failures, self.reconnect_min_ms, self.reconnect_max_ms))

    async def _ping(self, ws: Any) -> None:
        while True:
            await asyncio.sleep(self.ping_interval_s)
            if self._ping_unanswered:  # the last ping got no pong within a whole period
                self.stats["pings_unanswered"] += 1
                self._tell("probe_failed", "no pong to the last ping")
            await ws.send(orjson.dumps({"req_id": f"ping{next(self._ids)}", "op": "ping"}).decode())
            self._ping_unanswered += 1
            self.stats["pings"] += 1

    async def _read(self, ws: Any, tg: asyncio.TaskGroup) -> None:
        tr = self.gw.tr
        tick_s = max(0.05, min(self.stale_s, tr.link_wait_ns / 1e9 / 2 or 0.5))
        last_msg = time.monotonic()
        while True:
            try:
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that meets a
                # message arriving at the same moment, and close() then waits for this task forever
                async with asyncio.timeout(tick_s):
                    raw = await ws.recv(decode=False)
            except TimeoutError:
                self._deliver(tr.flush_expired(time.time_ns()), tg)
                if time.monotonic() - last_msg > self.stale_s:
                    raise _Reconnect("stale private stream") from None
                continue
            last_msg = time.monotonic()
            self._tell("message")
            try:  # one bad event never ends the stream (issue 11): count, log, catch up by REST
                if b'"op"' in raw[:200]:
                    msg = orjson.loads(raw)
                    if not isinstance(msg, dict):
                        raise MalformedMessage("control frame is not an object")
                    if msg.get("op") == "pong":
                        self.stats["pongs"] += 1
                        self._ping_unanswered = 0
                        self._tell("probe_ok")
                    elif msg.get("success") is False:
                        self._log.error("private stream request refused", op=msg.get("op"),
                                        ret_msg=msg.get("ret_msg"))
                    continue
                items = tr.on_message(raw, time.time_ns())
            except (MalformedMessage, orjson.JSONDecodeError) as e:
                self._malformed_event(e, raw, tg)
                continue
            self._deliver(items, tg)

    def _malformed_event(self, err: Exception, raw: bytes, tg: asyncio.TaskGroup) -> None:
        """What the bad event said is lost: the REST catch-up reads the orders' true state instead."""
        self.stats["malformed"] = self.stats.get("malformed", 0) + 1
        self._log.warning("malformed private event; catching up by REST", error=str(err)[:200],
                          sample=bytes(raw[:120]).decode(errors="replace"), count=self.stats["malformed"])
        if self._repair is None or self._repair.done():
            self._repair = tg.create_task(self._catch_up_after_malformed())

    async def _catch_up_after_malformed(self) -> None:
        try:
            await self.catch_up()
        except VenueError as e:  # the next reconnect or malformed event catches up again
            self._log.warning("catch-up after a malformed event failed", error=str(e)[:200])
            return
        if self.on_caught_up is not None:
            self.on_caught_up()

    def _deliver(self, items: Sequence[OrderUpdate | PositionSnapshot | BalanceUpdate | StopMissing],
                 tg: asyncio.TaskGroup | None) -> int:
        n = 0
        for it in items:
            if isinstance(it, StopMissing):
                self.stats["stop_checks"] += 1
                if tg is not None:
                    tg.create_task(self._verify(it))
                continue
            self.gw.publish(it)
            n += 1
        return n

    async def _verify(self, it: StopMissing) -> None:
        try:
            await self.gw.verify_stop(it.symbol, it.owner)
        except (VenueUnavailable, RateLimited) as e:  # the next position message or catch-up asks again
            self._log.warning("stop check failed", symbol=it.symbol, error=str(e))

    # ------------------------------------------------------------------------------------ catch-up
    async def catch_up(self) -> int:
        """Bring the translator (and so the engine) up to date by REST. Returns updates published."""
        gw, tr = self.gw, self.gw.tr
        now_ns = time.time_ns()
        now_ms = int(gw.clock.now_exchange_ms(time.time() * 1000.0))
        if not self._since_ms:
            self._since_ms = now_ms - 60_000
        # Bybit answers [startTime, startTime + 7 days], newest first, 100 rows: start no earlier than a
        # day ago so the newest fills are in the answer (more than 100 fills in one gap would need paging).
        since = max(self._since_ms, tr.last_exec_ms - 5_000, now_ms - 86_400_000)
        n = 0
        before = dict(tr.live)
        for s in gw.symbols:
            for x in await gw.executions(s, since):
                n += self._deliver(tr.on_execution(x, now_ns), None)
        open_ids: set[str] = set()
        for s in gw.symbols:
            for o in await gw.open_orders_raw(s):
                open_ids.add(client_id_of(str(o.get("orderLinkId") or "")))
                n += self._deliver(tr.on_order(o, now_ns, hold=False), None)
        for cid, last in before.items():
            if cid in open_ids:
                continue
            d = await gw.fetch_order_raw(last.symbol, cid)
            if d is not None:
                n += self._deliver(tr.on_order(d, now_ns, hold=False), None)
        missing: list[StopMissing] = []
        rows = await gw.positions_raw()
        for p in rows:
            for it in tr.on_position(p, now_ns):
                if isinstance(it, StopMissing):
                    missing.append(it)
                else:
                    gw.publish(it)
        held = {str(p.get("symbol")) for p in rows if float(p.get("size") or 0) != 0}
        for s, snap in list(tr.positions.items()):
            if s not in held and snap.qty_lots != 0:  # flat at the venue now: say so explicitly
                flat = PositionSnapshot(symbol=s, qty_lots=0, entry_price=0.0)
                tr.positions[s] = flat
                gw.publish(flat)
        for it in missing:
            await gw.verify_stop(it.symbol, it.owner)
        self.stats["catchups"] += 1
        self.stats["catchup_updates"] += n
        return n
