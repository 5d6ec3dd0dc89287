"""Loopback exchange servers that replay recorded real market data (tests only, 127.0.0.1, port 0).

`BinanceReplayServer` serves the combined-stream routes `/public/stream?streams=...` and
`/market/stream?streams=...` and `GET /fapi/v1/depth`. One producer walks the recorded lines in
receive-time order (several sessions interleaved) and broadcasts each message to the connections
subscribed to its (symbol, stream kind), like a live exchange: a client that is not connected misses
messages. The server keeps a reference book per symbol (the recording's inline snapshot plus every diff
since, dropped ones included), so a depth request answers the true book at the last diff it sent
(`lastUpdateId` = that diff's `u`, which the client bridges with U <= lastUpdateId <= u).

`BybitReplayServer` serves `/v5/public/linear`: subscribe/unsubscribe/ping ops, the recorded
snapshot+deltas, and after a (re)subscribe a fresh snapshot of its reference book at the current `u`.

Fault knobs: drop a depth message, freeze (connections stay open and go silent), disconnect, serve an
old snapshot first, inject raw (malformed) messages, add unknown fields, answer 429.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from bot.replay.reader import Record, read_session

__all__ = ["BinanceReplayServer", "BybitReplayServer", "Item", "load_binance_items"]

_PUBLIC_KINDS = {"depth", "bookTicker"}


def _kind(stream_suffix: str) -> str:
    # "depth@0ms" / "depth@100ms" / "depth" -> "depth"; "markPrice@1s" -> "markPrice"
    return stream_suffix.split("@", 1)[0]


class Item:
    __slots__ = ("U", "kind", "payload", "raw", "route", "symbol", "ts", "u")

    def __init__(self, ts: int, symbol: str, kind: str, raw: bytes, payload: dict[str, Any]) -> None:
        self.ts = ts
        self.symbol = symbol
        self.kind = kind
        self.raw = raw
        self.payload = payload
        self.route = "public" if kind in _PUBLIC_KINDS else "market"
        self.U = payload.get("U", 0)
        self.u = payload.get("u", 0)


def _session_items(paths: list[Path], max_lines: int) -> Iterator[Item]:
    symbol = ""
    for n, rec in enumerate(read_session(str(p) for p in paths)):
        if n >= max_lines:
            return
        if not isinstance(rec, Record):
            continue
        msg = orjson.loads(rec.raw)
        data = msg.get("data", msg)
        if "lastUpdateId" in data:
            stream = msg.get("stream", "")
            sym = stream.split("@", 1)[0].upper() if stream else symbol
            yield Item(rec.ts_recv_ns, sym, "snapshot", rec.raw, data)
            continue
        sym, _, suffix = msg["stream"].partition("@")
        symbol = sym.upper()
        yield Item(rec.ts_recv_ns, symbol, _kind(suffix), rec.raw, data)


def load_binance_items(sessions: Iterable[list[Path]], max_lines: int = 4000) -> list[Item]:
    """The first `max_lines` lines of each session, interleaved by receive time."""
    return list(heapq.merge(*(_session_items(s, max_lines) for s in sessions), key=lambda it: it.ts))


class _RefBook:
    """The server's true book of one symbol (price strings -> size strings)."""

    def __init__(self) -> None:
        self.bids: dict[str, str] = {}
        self.asks: dict[str, str] = {}
        self.last_u = -1
        self.ready = asyncio.Event()
        self.snapshot: dict[str, Any] | None = None  # the recording's own (old) snapshot

    def load(self, snap: dict[str, Any]) -> None:
        self.snapshot = snap
        self.bids = {p: q for p, q in snap["bids"]}
        self.asks = {p: q for p, q in snap["asks"]}
        self.last_u = snap["lastUpdateId"]
        self.ready.set()

    def apply(self, bids: list[list[str]], asks: list[list[str]]) -> None:
        for side, levels in ((self.bids, bids), (self.asks, asks)):
            for p, q in levels:
                if float(q) == 0.0:
                    side.pop(p, None)
                else:
                    side[p] = q

    def top(self, limit: int) -> tuple[list[list[str]], list[list[str]]]:
        bids = sorted(self.bids.items(), key=lambda kv: -float(kv[0]))[:limit]
        asks = sorted(self.asks.items(), key=lambda kv: float(kv[0]))[:limit]
        return [list(b) for b in bids], [list(a) for a in asks]


class _Conn:
    def __init__(self, ws: web.WebSocketResponse, route: str, subs: set[tuple[str, str]]) -> None:
        self.ws = ws
        self.route = route
        self.subs = subs
        self.topics: dict[str, str] = {}  # Bybit: topic kind -> the exact topic the client asked for
        self.frozen = False


class _ServerBase:
    def __init__(self) -> None:
        self.app = web.Application()
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.conns: list[_Conn] = []
        self.connections: Counter[str] = Counter()
        self._inject: dict[str, list[bytes]] = {}
        self.delivered = 0  # websocket messages handed to a connection

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def close(self) -> None:
        for c in list(self.conns):
            await c.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> _ServerBase:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def base(self) -> str:
        return f"127.0.0.1:{self.port}"

    # knobs shared by both venues
    def freeze(self, route: str) -> int:
        """Current connections of `route` stay open but receive nothing more (a half-dead TCP link)."""
        n = 0
        for c in self.conns:
            if c.route == route and not c.frozen:
                c.frozen = True
                n += 1
        return n

    async def disconnect(self, route: str) -> int:
        n = 0
        for c in list(self.conns):
            if c.route == route:
                await c.ws.close()
                n += 1
        return n

    def inject(self, route: str, raw: bytes) -> None:
        """Send `raw` (malformed or not) to every connection of `route` before the next recorded message."""
        self._inject.setdefault(route, []).append(raw)

    async def _send(self, conn: _Conn, raw: bytes) -> None:
        if conn.frozen or conn.ws.closed:
            return
        with contextlib.suppress(ConnectionError, RuntimeError):
            await conn.ws.send_str(raw.decode())
            self.delivered += 1

    async def _flush_injected(self, route: str) -> None:
        pending = self._inject.pop(route, None)
        if pending:
            for conn in list(self.conns):
                if conn.route == route:
                    for raw in pending:
                        await self._send(conn, raw)


class BinanceReplayServer(_ServerBase):
    def __init__(self, items: list[Item], speed: float = 10.0, start_at: int = 0,
                 unknown_fields: bool = False) -> None:
        super().__init__()
        self.items = items
        self.speed = speed
        self.start_at = start_at  # items before this are applied to the reference books but never sent
        self.unknown_fields = unknown_fields
        self.books: dict[str, _RefBook] = {}
        for it in items:
            self.books.setdefault(it.symbol, _RefBook())
        self.cursor = 0
        self.done = asyncio.Event()
        self.old_snapshot_first: set[str] = set()
        self.fail_next_depth: list[tuple[int, float]] = []  # (HTTP status, Retry-After s)
        self.depth_requests: Counter[str] = Counter()
        self.served_ids: dict[str, list[int]] = {}
        self.dropped: dict[str, list[int]] = {}
        self._drop_after: dict[str, int] = {}
        self.sent: Counter[str] = Counter()
        self._producer: asyncio.Task[None] | None = None
        self.app.router.add_get("/public/stream", self._ws_handler("public"))
        self.app.router.add_get("/market/stream", self._ws_handler("market"))
        self.app.router.add_get("/fapi/v1/depth", self._depth)

    # ---------------------------------------------------------------- knobs
    def drop_depth(self, symbol: str, after: int = 0) -> None:
        """Do not send the (after+1)-th depth message of `symbol` from now on (the reference keeps it)."""
        self._drop_after[symbol] = after

    def unknown(self, raw: bytes) -> bytes:
        # New keys in the envelope and in the payload, like Binance's later `ps`/`st` additions.
        raw = raw.replace(b'"data":{', b'"data":{"zzNew":{"x":[1,"2"]},"st":1,', 1)
        return b'{"zzEnvelope":true,' + raw[1:]

    # ---------------------------------------------------------------- serving
    async def start(self) -> None:
        await super().start()
        # Fast-forward the items before start_at into the reference books.
        for it in self.items[: self.start_at]:
            self._apply(it)
        self.cursor = self.start_at

    async def close(self) -> None:
        if self._producer is not None:
            self._producer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._producer
        await super().close()

    def _apply(self, it: Item) -> None:
        book = self.books[it.symbol]
        if it.kind == "snapshot":
            book.load(it.payload)
        elif it.kind == "depth" and book.ready.is_set() and it.u >= book.last_u:
            book.apply(it.payload["b"], it.payload["a"])
            book.last_u = it.u

    def _ws_handler(self, route: str):  # type: ignore[no-untyped-def]
        async def handler(request: web.Request) -> web.WebSocketResponse:
            ws = web.WebSocketResponse(autoping=True)
            await ws.prepare(request)
            subs = set()
            for s in request.query.get("streams", "").split("/"):
                if s:
                    sym, _, suffix = s.partition("@")
                    subs.add((sym.upper(), _kind(suffix)))
            conn = _Conn(ws, route, subs)
            self.conns.append(conn)
            self.connections[route] += 1
            if self._producer is None:
                self._producer = asyncio.create_task(self._produce())
            try:
                async for msg in ws:
                    if msg.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
                        break
            finally:
                self.conns.remove(conn)
            return ws

        return handler

    async def _produce(self) -> None:
        if self.cursor >= len(self.items):
            self.done.set()
            return
        t0_wall = time.monotonic()
        t0_rec = self.items[self.cursor].ts
        since_yield = 0
        while self.cursor < len(self.items):
            it = self.items[self.cursor]
            self.cursor += 1
            due = t0_wall + (it.ts - t0_rec) / 1e9 / self.speed
            delay = due - time.monotonic()
            if delay > 0.001:
                await asyncio.sleep(delay)
                since_yield = 0
            elif since_yield > 20:
                await asyncio.sleep(0)
                since_yield = 0
            since_yield += 1
            self._apply(it)
            if it.kind == "snapshot":
                continue  # a REST answer in the recording, not a stream message
            await self._flush_injected(it.route)
            if it.kind == "depth" and it.symbol in self._drop_after:
                left = self._drop_after[it.symbol]
                if left == 0:
                    del self._drop_after[it.symbol]
                    self.dropped.setdefault(it.symbol, []).append(it.u)
                    continue
                self._drop_after[it.symbol] = left - 1
            raw = self.unknown(it.raw) if self.unknown_fields else it.raw
            key = (it.symbol, it.kind)
            for conn in list(self.conns):
                if conn.route == it.route and key in conn.subs:
                    await self._send(conn, raw)
            self.sent[it.kind] += 1
        self.done.set()

    async def _depth(self, request: web.Request) -> web.Response:
        sym = request.query.get("symbol", "")
        limit = int(request.query.get("limit", "500"))
        if sym not in self.books:
            return web.json_response({"code": -1121, "msg": "Invalid symbol."}, status=400)
        self.depth_requests[sym] += 1
        if self.fail_next_depth:
            status, retry = self.fail_next_depth.pop(0)
            return web.json_response({"code": -1003, "msg": "Too many requests"}, status=status,
                                     headers={"Retry-After": str(retry)})
        book = self.books[sym]
        await asyncio.wait_for(book.ready.wait(), timeout=10)
        now_ms = int(time.time() * 1000)
        if sym in self.old_snapshot_first and book.snapshot is not None:
            self.old_snapshot_first.discard(sym)
            body = orjson.dumps(book.snapshot)
            self.served_ids.setdefault(sym, []).append(book.snapshot["lastUpdateId"])
        else:
            bids, asks = book.top(limit)
            body = orjson.dumps({"lastUpdateId": book.last_u, "E": now_ms, "T": now_ms, "bids": bids,
                                 "asks": asks})
            self.served_ids.setdefault(sym, []).append(book.last_u)
        used = sum(self.depth_requests.values()) * 20
        return web.Response(body=body, content_type="application/json",
                            headers={"X-MBX-USED-WEIGHT-1M": str(used)})

    def urls(self) -> dict[str, str]:
        return {"rest_url": f"http://{self.base}", "ws_public_url": f"ws://{self.base}/public",
                "ws_market_url": f"ws://{self.base}/market"}


class BybitReplayServer(_ServerBase):
    """Bybit v5 public linear on loopback: replays recorded orderbook lines (any depth topic maps to them)."""

    def __init__(self, lines: list[bytes], interval_s: float = 0.01) -> None:
        super().__init__()
        self.lines = [orjson.loads(x) for x in lines]
        self.interval_s = interval_s
        self.bids: dict[str, str] = {}
        self.asks: dict[str, str] = {}
        self.last_u = -1
        self.cursor = 0
        self.done = asyncio.Event()
        self.subscribes: list[list[str]] = []
        self.unsubscribes: list[list[str]] = []
        self.pings = 0
        self.snapshots_sent = 0
        self._drop_after: int | None = None
        self.dropped: list[int] = []
        self._producer: asyncio.Task[None] | None = None
        self.app.router.add_get("/v5/public/linear", self._handler)

    def drop_delta(self, after: int = 0) -> None:
        self._drop_after = after

    async def close(self) -> None:
        if self._producer is not None:
            self._producer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._producer
        await super().close()

    def _apply(self, msg: dict[str, Any]) -> None:
        d = msg["data"]
        if msg["type"] == "snapshot":
            self.bids, self.asks = {}, {}
        for side, levels in ((self.bids, d["b"]), (self.asks, d["a"])):
            for p, q in levels:
                if float(q) == 0.0:
                    side.pop(p, None)
                else:
                    side[p] = q
        self.last_u = d["u"]

    def _snapshot(self, topic: str) -> bytes:
        bids = sorted(self.bids.items(), key=lambda kv: -float(kv[0]))
        asks = sorted(self.asks.items(), key=lambda kv: float(kv[0]))
        sym = topic.rsplit(".", 1)[1]
        self.snapshots_sent += 1
        return orjson.dumps({"topic": topic, "type": "snapshot", "ts": int(time.time() * 1000),
                             "data": {"s": sym, "b": [list(b) for b in bids], "a": [list(a) for a in asks],
                                      "u": self.last_u, "seq": 0}, "cts": int(time.time() * 1000)})

    async def _handler(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        conn = _Conn(ws, "public", set())
        self.conns.append(conn)
        self.connections["public"] += 1
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    break
                req = orjson.loads(msg.data)
                op = req.get("op")
                if op == "ping":
                    self.pings += 1
                    await self._send(conn, orjson.dumps({"success": True, "ret_msg": "pong", "conn_id": "t",
                                                         "op": "ping", "req_id": req.get("req_id", "")}))
                elif op in ("subscribe", "unsubscribe"):
                    args = list(req.get("args", []))
                    (self.subscribes if op == "subscribe" else self.unsubscribes).append(args)
                    for topic in args:
                        key = (topic.split(".", 1)[0], topic.rsplit(".", 1)[1])
                        if op == "subscribe":
                            conn.subs.add(key)
                        else:
                            conn.subs.discard(key)
                    await self._send(conn, orjson.dumps({"success": True, "ret_msg": "", "conn_id": "t",
                                                         "req_id": req.get("req_id", ""), "op": op}))
                    if op == "subscribe":
                        for topic in args:
                            if topic.startswith("orderbook.") and self.last_u >= 0:
                                await self._send(conn, self._snapshot(topic))
                            conn.topics[topic.split(".", 1)[0]] = topic
                        if self._producer is None:
                            self._producer = asyncio.create_task(self._produce())
        finally:
            self.conns.remove(conn)
        return ws

    async def _produce(self) -> None:
        while self.cursor < len(self.lines):
            await asyncio.sleep(self.interval_s)
            msg = self.lines[self.cursor]
            self.cursor += 1
            self._apply(msg)
            if msg["type"] == "delta" and self._drop_after is not None:
                if self._drop_after == 0:
                    self._drop_after = None
                    self.dropped.append(msg["data"]["u"])
                    continue
                self._drop_after -= 1
            sym = msg["data"]["s"]
            for conn in list(self.conns):
                if ("orderbook", sym) in conn.subs:
                    topic = conn.topics["orderbook"]
                    out = dict(msg, topic=topic)
                    await self._send(conn, orjson.dumps(out))
        self.done.set()

    def urls(self) -> dict[str, str]:
        return {"ws_public_url": f"ws://{self.base}/v5/public/linear"}
