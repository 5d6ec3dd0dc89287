"""Binance USD-M user data stream: listenKey life cycle, the `/private` websocket, and REST catch-up.

listenKey (exchange-facts A4): `POST /fapi/v1/listenKey` creates (or returns and extends the active key),
`PUT` keeps it alive (the stream closes after 60 min without one; we send it every
`listen_key_keepalive_s`, 30 min by default), and `listenKeyExpired` or a failing keep-alive (-1125 / 400)
means: make a new key and reconnect. Connect to `<ws_private>/ws?listenKey=<key>` (the `/private` route;
the exchange simulator serves `ws://127.0.0.1:18080/private/ws?listenKey=`).

After EVERY connect (the first one included: events between start-up and the connection are otherwise
lost) the stream catches up by REST: open orders and open algo orders (new or changed ones), a look-up
of every order we last saw open and no longer is (filled or cancelled while we were away; a triggered
algo order's child `actualOrderId` is linked to it), the fills of those orders
(`GET /fapi/v1/userTrades`, exact ids, prices and fees), and the positions. The translator drops what the
websocket already delivered, so the catch-up can run at any time without double fills.

Reconnects use capped full-jitter backoff (bot.venues.ws.backoff_delay_s). A socket silent for
`user_stream_stale_ms` is dropped and reopened (Binance pings every 3 min; websockets answers pongs).

Health (bot.venues.stream_health): `on_event(kind, detail)` is told "connected", "lost", "message" (every
message), "caught_up", "probe_ok" / "probe_failed" (the listenKey keep-alive PUT's answer, our only probe:
Binance sends nothing while nothing happens). `request_reconnect(reason)` leaves the connection at once
(the app asks when reconciliation found something the stream never delivered); the reconnect catches up.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from bot.domain.orders import OrderUpdate
from bot.domain.types import OrderStatus, Side
from bot.errors import MalformedMessage
from bot.logging import get_logger
from bot.venues.binance_usdm.orders import algo_update_from_rest, order_update_from_rest
from bot.venues.binance_usdm.userevents import ListenKeyExpired
from bot.venues.endpoints import BINANCE_USDM_PRIVATE_WS
from bot.venues.errors import RateLimited, VenueError, VenueUnavailable
from bot.venues.ws import backoff_delay_s

if TYPE_CHECKING:
    from bot.venues.binance_usdm.gateway import BinanceGateway

__all__ = ["DEFAULT_PRIVATE_WS", "BinanceUserStream", "private_ws_url"]

DEFAULT_PRIVATE_WS = BINANCE_USDM_PRIVATE_WS

_RETRY = (OSError, TimeoutError, InvalidHandshake, InvalidURI, ConnectionClosed, VenueUnavailable, RateLimited)


def private_ws_url(environment: str, override: str = "") -> str:
    return (override or DEFAULT_PRIVATE_WS[environment]).rstrip("/")


class _Reconnect(Exception):
    """Leave this connection: `new_key` when the listenKey is gone."""

    def __init__(self, reason: str, new_key: bool) -> None:
        super().__init__(reason)
        self.new_key = new_key


class BinanceUserStream:
    def __init__(self, gw: BinanceGateway, *, reconnect_min_ms: int = 250, reconnect_max_ms: int = 30_000) -> None:
        self.gw = gw
        v = gw.venue
        self.base_url = private_ws_url(v.environment, v.ws_private_url)
        self.keepalive_s = v.listen_key_keepalive_s
        self.stale_s = v.user_stream_stale_ms / 1000.0
        self.reconnect_min_ms = reconnect_min_ms
        self.reconnect_max_ms = reconnect_max_ms
        self.listen_key = ""
        self.connected = asyncio.Event()
        self.caught_up = asyncio.Event()
        # called (synchronously) after every catch-up, the first one included: the app reconciles then
        self.on_caught_up: Callable[[], None] | None = None
        # health evidence for the app (kind, detail): see the module docstring
        self.on_event: Callable[[str, str], None] | None = None
        self.keepalive_retry_s = 5.0  # a failed keep-alive is asked again this soon (not keepalive_s later)
        self._leave: asyncio.Event | None = None
        self._leave_reason = ""
        self.stats = {"connects": 0, "keys": 0, "keepalives": 0, "catchups": 0, "catchup_updates": 0,
                      "expired": 0, "keepalive_failures": 0, "reconnects_requested": 0}
        self._log = get_logger("binance.userstream")
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
        raise _Reconnect(f"requested: {self._leave_reason}", new_key=False)

    # ------------------------------------------------------------------------------------ listenKey
    async def _call(self, method: str) -> dict[str, Any]:
        ex = self.gw._ex()
        await self.gw._gate(order=False, weight=1, protective=True)
        fn = {"POST": ex.fapiPrivatePostListenKey, "PUT": ex.fapiPrivatePutListenKey,
              "DELETE": ex.fapiPrivateDeleteListenKey}[method]
        try:
            return dict(await fn({}) or {})
        except Exception as e:
            raise self.gw._translate(e, placing=False) from e

    async def new_key(self) -> str:
        res = await self._call("POST")
        self.listen_key = str(res["listenKey"])
        self.stats["keys"] += 1
        return self.listen_key

    async def _keepalive(self) -> None:
        last = time.monotonic()
        while True:
            # short naps so a changed period applies at once; the PUT itself only every keepalive_s
            await asyncio.sleep(min(1.0, max(0.0, last + self.keepalive_s - time.monotonic())))
            if time.monotonic() - last < self.keepalive_s:
                continue
            last = time.monotonic()
            try:
                await self._call("PUT")
            except (VenueUnavailable, RateLimited) as e:
                self._log.warning("listenKey keep-alive failed; retrying", error=str(e))
                self.stats["keepalive_failures"] += 1
                self._tell("probe_failed", f"listenKey keep-alive failed: {type(e).__name__}")
                last = time.monotonic() - self.keepalive_s + self.keepalive_retry_s  # again soon, not in 30 min
                continue
            except VenueError as e:  # -1125 "This listenKey does not exist" / 400
                self._tell("probe_failed", f"listenKey keep-alive refused: {type(e).__name__}")
                raise _Reconnect(f"keep-alive refused: {e}", new_key=True) from e
            self.stats["keepalives"] += 1
            self._tell("probe_ok")

    # ------------------------------------------------------------------------------------ run
    async def run(self) -> None:
        failures = 0
        while True:
            try:
                # POST before every connect: it returns the active key (extended by 60 min) or a new one
                # when the old one expired, so a reconnect never retries a dead key.
                await self.new_key()
                url = f"{self.base_url}/ws?listenKey={self.listen_key}"
                async with connect(url, open_timeout=10, max_size=8 * 1024 * 1024) as ws:
                    failures = 0
                    self.stats["connects"] += 1
                    self.connected.set()
                    self._tell("connected")
                    leave = self._leave = asyncio.Event()
                    async with asyncio.TaskGroup() as tg:
                        ka = tg.create_task(self._keepalive())
                        rd = tg.create_task(self._read(ws))
                        lv = tg.create_task(self._until_asked_to_leave(leave))
                        await self.catch_up()
                        self.caught_up.set()
                        self._tell("caught_up")
                        if self.on_caught_up is not None:
                            self.on_caught_up()
                        # runs until one of them leaves (_Reconnect, a lost socket): the group ends all
                        await asyncio.wait({ka, rd, lv}, return_when=asyncio.FIRST_COMPLETED)
            except* _Reconnect as eg:
                r = eg.exceptions[0]
                assert isinstance(r, _Reconnect)
                self._log.info("user stream reconnect", reason=str(r), new_key=r.new_key)
                self._tell("lost", f"reconnecting: {r}")
            except* _RETRY as eg:
                failures += 1
                self._log.warning("user stream lost", error=str(eg.exceptions[0]), failures=failures)
                self._tell("lost", f"{type(eg.exceptions[0]).__name__}: {str(eg.exceptions[0])[:120]}")
            self._leave = None
            self.connected.clear()
            self.caught_up.clear()
            await asyncio.sleep(backoff_delay_s(failures, self.reconnect_min_ms, self.reconnect_max_ms))

    async def _read(self, ws: Any) -> None:
        tr = self.gw.translator
        assert tr is not None
        tick_s = max(0.05, min(self.stale_s, tr.link_wait_ns / 1e9 / 2 or 0.5))
        last_msg = time.monotonic()
        while True:
            try:
                raw = await asyncio.wait_for(ws.recv(decode=False), timeout=tick_s)
            except TimeoutError:
                for u in tr.flush_expired(time.time_ns()):
                    self.gw.publish(u)
                if time.monotonic() - last_msg > self.stale_s:
                    raise _Reconnect("stale user stream", new_key=False) from None
                continue
            last_msg = time.monotonic()
            self._tell("message")
            try:  # one bad event never ends the stream (issue 11): count, log, catch up by REST
                items = tr.on_message(raw, time.time_ns())
            except MalformedMessage as e:
                self._malformed_event(e, raw)
                continue
            for item in items:
                if isinstance(item, ListenKeyExpired):
                    self.stats["expired"] += 1
                    raise _Reconnect("listenKeyExpired", new_key=True)
                self.gw.publish(item)

    def _malformed_event(self, err: MalformedMessage, raw: bytes) -> None:
        """What the bad event said is lost: the REST catch-up reads the orders' true state instead."""
        self.stats["malformed"] = self.stats.get("malformed", 0) + 1
        self._log.warning("malformed user event; catching up by REST", error=str(err)[:200],
                          sample=bytes(raw[:120]).decode(errors="replace"), count=self.stats["malformed"])
        if self._repair is None or self._repair.done():
            self._repair = asyncio.get_running_loop().create_task(self._catch_up_after_malformed())

    async def _catch_up_after_malformed(self) -> None:
        try:
            await self.catch_up()
        except VenueError as e:  # the next reconnect or malformed event catches up again
            self._log.warning("catch-up after a malformed event failed", error=str(e)[:200])
            return
        if self.on_caught_up is not None:
            self.on_caught_up()

    # ------------------------------------------------------------------------------------ catch-up
    async def catch_up(self) -> int:
        """Bring the translator (and so the engine) up to date by REST. Returns updates published."""
        gw, tr = self.gw, self.gw.translator
        assert tr is not None
        n = 0
        before = dict(tr.live)
        open_now = await gw.open_orders()
        open_ids = {u.client_id for u in open_now}
        for u in open_now:
            prev = before.get(u.client_id)
            if not u.kind.is_conditional and prev is not None and u.filled_lots > prev.filled_lots:
                n += (await self._fills(u, parent=""))[0]
            n += self._publish(tr.accept_rest(u))
        for cid, last in before.items():
            if cid in open_ids:
                continue
            raw = await gw.fetch_order_raw(last.symbol, cid, last.kind.is_conditional)
            if raw is None:
                continue
            inst = gw.instrument(last.symbol)
            if last.kind.is_conditional:
                u = algo_update_from_rest(raw, inst, time.time_ns())
                child = str(raw.get("actualOrderId") or "")
                if child and child != "0":
                    tr.algo_of_child[child] = cid
                    k, lots, avg = await self._child_fills(last, child)
                    n += k
                    if lots and u.filled_lots == 0:  # FINISHED: what the child filled is the algo's fill
                        u = replace(u, status=OrderStatus.FILLED, filled_lots=lots, avg_price=avg)
            else:
                u = order_update_from_rest(raw, inst, time.time_ns())
                if u.filled_lots > last.filled_lots:
                    n += (await self._fills(u, parent=""))[0]
            n += self._publish(tr.accept_rest(u))
        acc = await gw.account()
        held = {p.symbol for p in acc.positions}
        for p in acc.positions:
            tr.positions[p.symbol] = p
            gw.publish(p)
        for s, p in list(tr.positions.items()):
            if s not in held and p.qty_lots != 0:  # flat at the venue now: say so explicitly
                flat = type(p)(symbol=s, qty_lots=0, entry_price=0.0)
                tr.positions[s] = flat
                gw.publish(flat)
        self.stats["catchups"] += 1
        self.stats["catchup_updates"] += n
        return n

    def _publish(self, updates: list[OrderUpdate]) -> int:
        for u in updates:
            self.gw.publish(u)
        return len(updates)

    async def _fills(self, u: OrderUpdate, parent: str) -> tuple[int, int, float]:
        """The fills of one order we did not see, from GET /fapi/v1/userTrades, as fill updates.
        Returns (updates published, lots filled in all, their average price)."""
        tr = self.gw.translator
        assert tr is not None
        inst = self.gw.instrument(u.symbol)
        trades = sorted(await self.gw.user_trades(u.symbol, u.venue_order_id), key=lambda t: int(t["id"]))
        cum, notional, n = 0, 0.0, 0
        for t in trades:
            lots = inst.qty_to_lots(t["qty"])
            cum += lots
            notional += lots * float(t["price"])
            if tr.seen_fill(u.venue_order_id, str(t["id"])):
                continue
            status = OrderStatus.FILLED if u.qty_lots and cum >= u.qty_lots else OrderStatus.PARTIALLY_FILLED
            fill = OrderUpdate(
                client_id=parent or u.client_id, venue_order_id=u.venue_order_id, symbol=u.symbol,
                side=Side(t.get("side", u.side.value)), kind=u.kind, status=status, qty_lots=u.qty_lots,
                filled_lots=cum, avg_price=notional / cum if cum else 0.0, last_fill_lots=lots,
                last_fill_price=float(t["price"]), fee=float(t.get("commission") or 0),
                is_maker=bool(t.get("maker", False)), reduce_only=u.reduce_only, trade_id=str(t["id"]),
                reason="rest catch-up", ts_event_ns=int(t.get("time") or 0) * 1_000_000, ts_recv_ns=time.time_ns(),
                parent_id=parent)
            n += self._publish(tr.accept_rest(fill))
        return n, cum, (notional / cum if cum else 0.0)

    async def _child_fills(self, algo: OrderUpdate, child_id: str) -> tuple[int, int, float]:
        """A triggered algo order's child: its fills under the algo order's client id (userevents docstring)."""
        stub = OrderUpdate(client_id=algo.client_id, venue_order_id=child_id, symbol=algo.symbol, side=algo.side,
                           kind=algo.kind, status=OrderStatus.NEW, qty_lots=algo.qty_lots, filled_lots=0,
                           avg_price=0.0, reduce_only=algo.reduce_only)
        return await self._fills(stub, parent=algo.client_id)

    async def close(self) -> None:
        if self.listen_key:
            with contextlib.suppress(VenueError):
                await self._call("DELETE")
