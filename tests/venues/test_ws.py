"""WsStream: backoff bounds, stale watchdog -> reconnect, planned rollover with no data hole, JSON ping."""

from __future__ import annotations

import asyncio
import contextlib
import time

import orjson
from aiohttp import WSMsgType, web

from bot.venues.ws import WsConfig, WsStream, backoff_delay_s
from tests.support import until


def test_backoff_is_full_jitter_and_capped() -> None:
    caps = [backoff_delay_s(n, 250, 30_000, rand=lambda: 1.0) for n in range(1, 12)]
    assert caps[:4] == [0.5, 1.0, 2.0, 4.0]
    assert max(caps) == 30.0 and caps[-1] == 30.0
    assert backoff_delay_s(5, 250, 30_000, rand=lambda: 0.0) == 0.0
    assert backoff_delay_s(10**6, 250, 30_000, rand=lambda: 0.5) == 15.0  # no overflow on huge counts


class CounterServer:
    """Broadcasts an increasing counter every `period_s` to every connection, like a live stream."""

    def __init__(self, period_s: float = 0.005) -> None:
        self.period_s = period_s
        self.app = web.Application()
        self.app.router.add_get("/ws", self._handler)
        self.conns: list[web.WebSocketResponse] = []
        self.max_open = 0
        self.accepted = 0
        self.received: list[bytes] = []
        self.silent = False
        self.n = 0
        self._task: asyncio.Task[None] | None = None

    async def _handler(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.conns.append(ws)
        self.accepted += 1
        self.max_open = max(self.max_open, len(self.conns))
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self.received.append(msg.data.encode())
        finally:
            self.conns.remove(ws)
        return ws

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.period_s)
            if self.silent:
                continue
            self.n += 1
            for ws in list(self.conns):
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await ws.send_str(orjson.dumps({"n": self.n}).decode())

    async def __aenter__(self) -> CounterServer:
        self.runner = web.AppRunner(self.app, handle_signals=False)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"ws://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/ws"  # type: ignore[union-attr]
        self._task = asyncio.create_task(self._tick())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        for ws in list(self.conns):
            await ws.close()
        await self.runner.cleanup()


async def _run(stream: WsStream, body) -> None:  # type: ignore[no-untyped-def]
    task = asyncio.create_task(stream.run())
    try:
        await body()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=5)


async def test_messages_carry_receive_time_and_raw_bytes() -> None:
    got: list[tuple[bytes, int]] = []
    async with CounterServer() as srv:
        s = WsStream("t", srv.url, WsConfig(), lambda raw, ts: got.append((raw, ts)))

        async def body() -> None:
            t0 = time.time_ns()
            await until(lambda: len(got) >= 5, 5)
            assert all(isinstance(r, bytes) and orjson.loads(r)["n"] > 0 for r, _ in got)
            assert all(t0 <= ts <= time.time_ns() for _, ts in got)
            assert [ts for _, ts in got] == sorted(ts for _, ts in got)

        await _run(s, body)


async def test_rollover_opens_new_connection_first_and_loses_nothing() -> None:
    got: list[int] = []
    opened: list[bool] = []

    async def on_open(stream: WsStream, rollover: bool) -> None:
        opened.append(rollover)

    async with CounterServer() as srv:
        cfg = WsConfig(rollover_after_s=0.3, rollover_overlap_ms=50, stale_after_ms=2000)
        s = WsStream("t", srv.url, cfg, lambda raw, ts: got.append(orjson.loads(raw)["n"]), on_open=on_open)

        async def body() -> None:
            await until(lambda: s.rollovers >= 3, 10)
            n = len(got)
            await until(lambda: len(got) >= n + 5, 5)

        await _run(s, body)
    assert opened[0] is False and opened[1:] and all(opened[1:])  # only the first open was a fresh start
    assert srv.max_open == 2 and s.disconnects == 0  # old and new overlapped; never a plain disconnect
    seen = set(got)
    missing = [n for n in range(min(seen), max(seen) + 1) if n not in seen]
    assert missing == []  # no data hole across three rollovers
    assert len(got) > len(seen)  # the overlap delivered duplicates (the consumer drops them)


async def test_stale_stream_calls_back_and_reconnects() -> None:
    stale: list[str] = []
    closed: list[str] = []
    got: list[bytes] = []
    async with CounterServer() as srv:
        cfg = WsConfig(stale_after_ms=200, reconnect_min_ms=10, reconnect_max_ms=50)
        s = WsStream("t", srv.url, cfg, lambda raw, ts: got.append(raw), on_close=closed.append,
                     on_stale=stale.append)

        async def body() -> None:
            await until(lambda: len(got) >= 3, 5)
            srv.silent = True
            await until(lambda: s.connects >= 2, 5)
            n = len(got)
            srv.silent = False
            await until(lambda: len(got) >= n + 3, 5)

        await _run(s, body)
    assert s.stale_events >= 1 and stale and "no message for" in stale[0]
    assert closed and closed[0].startswith("stale")
    assert srv.accepted >= 2


async def test_server_disconnect_reconnects_with_backoff() -> None:
    got: list[bytes] = []
    async with CounterServer() as srv:
        cfg = WsConfig(reconnect_min_ms=10, reconnect_max_ms=50)
        s = WsStream("t", srv.url, cfg, lambda raw, ts: got.append(raw))

        async def body() -> None:
            await until(lambda: len(got) >= 3, 5)
            for ws in list(srv.conns):
                await ws.close()
            await until(lambda: s.connects == 2 and s.connected, 5)
            n = len(got)
            await until(lambda: len(got) >= n + 3, 5)

        await _run(s, body)
    assert s.disconnects == 1


async def test_unreachable_host_keeps_retrying_until_cancelled() -> None:
    # Port 1 on loopback refuses connections: each attempt fails fast; backoff bounds the rate.
    s = WsStream("t", "ws://127.0.0.1:1/ws", WsConfig(reconnect_min_ms=10, reconnect_max_ms=40),
                 lambda raw, ts: None)

    async def body() -> None:
        await asyncio.sleep(0.5)

    await _run(s, body)
    assert s.connects == 0 and not s.connected


async def test_json_ping_is_sent_periodically() -> None:
    async with CounterServer() as srv:
        cfg = WsConfig(ping_payload=b'{"op":"ping"}', ping_interval_s=0.05)
        s = WsStream("t", srv.url, cfg, lambda raw, ts: None)

        async def body() -> None:
            await until(lambda: len(srv.received) >= 3, 5)

        await _run(s, body)
    assert set(srv.received) == {b'{"op":"ping"}'}
