"""A reconnecting websocket client for market-data streams (the thin async shell, architecture habit 1).

One `WsStream` keeps one logical stream (one URL) alive:
- reconnect with capped, full-jitter exponential backoff (delay = uniform(0, min(max, min * 2**n)));
- a staleness watchdog: no message for `stale_after_ms` -> `on_stale(reason)`, then a reconnect;
- an optional application-level JSON ping (Bybit v5 wants `{"op":"ping"}` every 20 s, exchange-facts B2);
- a planned rollover before the venue's 24 h cut (Binance closes every connection at 24 h, A1/A4): the
  new connection is opened *before* the old one is closed and both deliver for `rollover_overlap_ms`,
  so there is no data hole (the book syncs drop duplicates: `u <= last u`);
- every message is handed over as raw bytes with `ts_recv_ns = time.time_ns()` taken at receipt.
  Parsing (orjson) is the caller's.

Callbacks: `on_message(raw, ts_recv_ns)` (sync, on the hot path), `on_open(stream, rollover)` (async:
subscribe, reset syncs), `on_close(reason)`, `on_stale(reason)`. An exception raised by a callback is a
bug: it propagates and ends `run()` (no `except Exception: continue`). So the feeds wrap every message
in their own boundary (binance_usdm/feed.py, bybit/feed.py: count, log, resync that book) and nothing
raises out of `on_message` for one bad message (issue 11).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from bot.logging import get_logger

__all__ = ["WsConfig", "WsStream", "backoff_delay_s"]

# Failures that mean "this connection is gone / could not be made": retry with backoff.
_CONNECT_ERRORS = (OSError, TimeoutError, InvalidHandshake, ConnectionClosed, asyncio.IncompleteReadError)


def backoff_delay_s(failures: int, min_ms: int, max_ms: int,
                    rand: Callable[[], float] = random.random) -> float:
    """Full-jitter exponential backoff (AWS architecture blog): uniform over [0, min(max, min * 2**n)]."""
    cap_ms = min(max_ms, min_ms * (2 ** min(failures, 30)))
    return rand() * cap_ms / 1000.0


class WsConfig:
    __slots__ = ("max_size_bytes", "open_timeout_s", "ping_interval_s", "ping_payload", "reconnect_max_ms",
                 "reconnect_min_ms", "rollover_after_s", "rollover_overlap_ms", "stale_after_ms")

    def __init__(self, *, reconnect_min_ms: int = 250, reconnect_max_ms: int = 30_000,
                 stale_after_ms: int = 5000, rollover_after_s: float = 23.5 * 3600,
                 rollover_overlap_ms: int = 2000, ping_payload: bytes | None = None,
                 ping_interval_s: float = 20.0, open_timeout_s: float = 10.0,
                 max_size_bytes: int = 16 * 1024 * 1024) -> None:
        self.reconnect_min_ms = reconnect_min_ms
        self.reconnect_max_ms = reconnect_max_ms
        self.stale_after_ms = stale_after_ms
        self.rollover_after_s = rollover_after_s
        self.rollover_overlap_ms = rollover_overlap_ms
        self.ping_payload = ping_payload
        self.ping_interval_s = ping_interval_s
        self.open_timeout_s = open_timeout_s
        self.max_size_bytes = max_size_bytes

    @classmethod
    def from_market(cls, market: object, *, ping_payload: bytes | None = None) -> WsConfig:
        m = market  # a MarketSection; typed loosely so this module does not import settings
        return cls(reconnect_min_ms=m.reconnect_min_ms, reconnect_max_ms=m.reconnect_max_ms,  # type: ignore[attr-defined]
                   stale_after_ms=m.stale_after_ms, rollover_after_s=m.rollover_after_s,  # type: ignore[attr-defined]
                   rollover_overlap_ms=m.rollover_overlap_ms,  # type: ignore[attr-defined]
                   ping_payload=ping_payload, ping_interval_s=m.bybit_ping_interval_s,  # type: ignore[attr-defined]
                   open_timeout_s=m.ws_open_timeout_ms / 1000.0)  # type: ignore[attr-defined]


class _Conn:
    __slots__ = ("first_message", "id", "ws")

    def __init__(self, ws: ClientConnection, conn_id: int) -> None:
        self.ws = ws
        self.id = conn_id
        self.first_message = asyncio.Event()


class WsStream:
    """One logical websocket stream, kept alive until `run()` is cancelled."""

    def __init__(self, name: str, url: str | Callable[[], str], cfg: WsConfig,
                 on_message: Callable[[bytes, int], None],
                 on_open: Callable[[WsStream, bool], Awaitable[None]] | None = None,
                 on_close: Callable[[str], None] | None = None,
                 on_stale: Callable[[str], None] | None = None,
                 rand: Callable[[], float] = random.random) -> None:
        self.name = name
        self._url = url
        self.cfg = cfg
        self._on_message = on_message
        self._on_open = on_open
        self._on_close = on_close
        self._on_stale = on_stale
        self._rand = rand
        self._log = get_logger("ws", stream=name)
        self._current: _Conn | None = None
        self._conns: set[_Conn] = set()  # every connection not yet finished (two during a rollover)
        self._kick = asyncio.Event()  # watchdog -> supervisor: drop the current connection
        self._last_msg_mono_ns = time.monotonic_ns()
        self._next_id = 0
        # Counters for tests, metrics and the status line.
        self.connects = 0
        self.disconnects = 0
        self.stale_events = 0
        self.rollovers = 0
        self.messages = 0

    # ------------------------------------------------------------------ public
    @property
    def connected(self) -> bool:
        return self._current is not None

    @property
    def url(self) -> str:
        return self._url() if callable(self._url) else self._url

    async def send(self, data: bytes | str) -> bool:
        """Send on the current connection; False when there is none (the next on_open resubscribes)."""
        conn = self._current
        if conn is None:
            return False
        try:
            await conn.ws.send(data if isinstance(data, str) else data.decode())
        except ConnectionClosed:
            return False
        return True

    async def run(self) -> None:
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._watchdog())
                if self.cfg.ping_payload is not None:
                    tg.create_task(self._pinger())
                await self._supervise(tg)
        finally:
            # Cancelled (shutdown) or failed: close what is still open, politely but briefly.
            for conn in list(self._conns):
                with contextlib.suppress(TimeoutError, ConnectionClosed, OSError):
                    await asyncio.wait_for(conn.ws.close(), timeout=1.0)
            self._conns.clear()
            self._current = None

    # ------------------------------------------------------------------ internals
    def _delay_s(self, failures: int) -> float:
        return backoff_delay_s(failures, self.cfg.reconnect_min_ms, self.cfg.reconnect_max_ms, self._rand)

    async def _open(self) -> _Conn:
        url = self.url
        ws = await connect(url, open_timeout=self.cfg.open_timeout_s, max_size=self.cfg.max_size_bytes,
                           compression=None, ping_interval=20, ping_timeout=20, close_timeout=2,
                           max_queue=4096, proxy=None)
        self._next_id += 1
        self.connects += 1
        conn = _Conn(ws, self._next_id)
        self._conns.add(conn)
        return conn

    async def _connect_with_backoff(self, rollover: bool) -> _Conn:
        failures = 0
        while True:
            try:
                conn = await self._open()
            except InvalidURI:
                raise  # a configuration error: retrying cannot help
            except _CONNECT_ERRORS as e:
                failures += 1
                delay = self._delay_s(failures)
                self._log.warning("ws_connect_failed", error=repr(e)[:200], retry_in_s=round(delay, 3))
                await asyncio.sleep(delay)
                continue
            prev = self._current
            self._current = conn  # on_open subscribes through self.send(), i.e. on the new connection
            try:
                if self._on_open is not None:
                    await self._on_open(self, rollover)
            except ConnectionClosed as e:
                self._current = prev
                failures += 1
                await conn.ws.close()
                delay = self._delay_s(failures)
                self._log.warning("ws_closed_during_open", error=repr(e)[:200], retry_in_s=round(delay, 3))
                await asyncio.sleep(delay)
                continue
            self._log.info("ws_connected", conn=conn.id, rollover=rollover)
            return conn

    async def _read(self, conn: _Conn) -> str:
        """Hand over every message until the connection ends; returns why it ended."""
        ws = conn.ws
        on_message = self._on_message
        try:
            while True:
                raw = await ws.recv(decode=False)
                ts_recv_ns = time.time_ns()
                self._last_msg_mono_ns = time.monotonic_ns()
                self.messages += 1
                if not conn.first_message.is_set():
                    conn.first_message.set()
                on_message(raw if isinstance(raw, bytes) else raw.encode(), ts_recv_ns)
        except ConnectionClosed as e:
            self._conns.discard(conn)
            return f"closed: {e}"
        except (OSError, asyncio.IncompleteReadError) as e:
            self._conns.discard(conn)
            return f"transport error: {e!r}"
        # CancelledError: the connection stays in _conns and run() closes it.

    async def _supervise(self, tg: asyncio.TaskGroup) -> None:
        failures = 0
        while True:
            conn = await self._connect_with_backoff(rollover=False)
            self._last_msg_mono_ns = time.monotonic_ns()
            self._kick.clear()
            reader = tg.create_task(self._read(conn))
            reason = await self._serve(tg, conn, reader)
            delivered = (self._current or conn).first_message.is_set()
            self._current = None
            self.disconnects += 1
            self._log.warning("ws_disconnected", reason=reason)
            if self._on_close is not None:
                self._on_close(reason)
            # A connection that delivered data restarts the backoff; one that died silent escalates it.
            failures = 1 if delivered else failures + 1
            await asyncio.sleep(self._delay_s(failures))

    async def _serve(self, tg: asyncio.TaskGroup, conn: _Conn, reader: asyncio.Task[str]) -> str:
        """Wait for the connection to end, a stale kick, or the rollover deadline (which swaps them)."""
        deadline = time.monotonic() + self.cfg.rollover_after_s
        while True:
            kick = asyncio.ensure_future(self._kick.wait())
            try:
                done, _ = await asyncio.wait({reader, kick}, timeout=max(0.0, deadline - time.monotonic()),
                                             return_when=asyncio.FIRST_COMPLETED)
            finally:
                kick.cancel()
            if reader in done:
                return reader.result()
            if self._kick.is_set():
                self._kick.clear()
                await conn.ws.close()
                await reader
                return "stale: no message within the watchdog limit"
            # Rollover: open the new connection first, let both deliver, then close the old one.
            new = await self._connect_with_backoff(rollover=True)
            self._current = new
            new_reader = tg.create_task(self._read(new))
            with contextlib.suppress(TimeoutError):  # the watchdog deals with a silent new connection
                await asyncio.wait_for(new.first_message.wait(), timeout=self.cfg.stale_after_ms / 1000.0)
            await asyncio.sleep(self.cfg.rollover_overlap_ms / 1000.0)
            await conn.ws.close()
            await reader
            self.rollovers += 1
            self._log.info("ws_rolled_over", old=conn.id, new=new.id)
            conn, reader = new, new_reader
            deadline = time.monotonic() + self.cfg.rollover_after_s

    async def _watchdog(self) -> None:
        limit_ns = self.cfg.stale_after_ms * 1_000_000
        period_s = min(1.0, self.cfg.stale_after_ms / 4000.0)
        while True:
            await asyncio.sleep(period_s)
            if self._current is None or self._kick.is_set():
                self._last_msg_mono_ns = time.monotonic_ns()
                continue
            silent_ns = time.monotonic_ns() - self._last_msg_mono_ns
            if silent_ns > limit_ns:
                self.stale_events += 1
                reason = f"no message for {silent_ns // 1_000_000} ms (limit {self.cfg.stale_after_ms} ms)"
                self._log.warning("ws_stale", reason=reason)
                if self._on_stale is not None:
                    self._on_stale(reason)
                self._kick.set()

    async def _pinger(self) -> None:
        assert self.cfg.ping_payload is not None
        payload = self.cfg.ping_payload
        while True:
            await asyncio.sleep(self.cfg.ping_interval_s)
            await self.send(payload)
