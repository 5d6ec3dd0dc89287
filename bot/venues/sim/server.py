"""The loopback exchange: Binance USD-M REST and websocket API on ONE port (aiohttp), 127.0.0.1 only.

Routes (docs/exchange-sim.md has the full list with parameters and examples):
- REST `/fapi/v1|v2|v3/...` (rest.py): what the bot and ccxt `binanceusdm` call.
- Market streams, as Binance split them in 2026 (exchange-facts A1): `/public/ws/<s1>/<s2>`,
  `/public/stream?streams=s1/s2` (depth, bookTicker), `/market/ws/...`, `/market/stream?streams=`
  (aggTrade, markPrice, trade); the legacy `/ws/...` and `/stream?streams=` serve everything. JSON
  SUBSCRIBE/UNSUBSCRIBE/LIST_SUBSCRIPTIONS work as on the venue. Combined streams wrap payloads as
  {"stream": name, "data": payload}; trades are served as `trade` or `aggTrade`, whichever is asked.
- User data: `/private/ws?listenKey=K` (and `/private/ws/K`, `/private/stream?listenKey=K`, `/ws/K`):
  ORDER_TRADE_UPDATE, ALGO_UPDATE, ACCOUNT_UPDATE, listenKeyExpired.
- Order entry over Binance's WebSocket API: `/ws-fapi/v1` (ws_api.py): order.place/cancel/status,
  algoOrder.place/cancel, signed per request, on the same engine, limits and faults as REST.
- Control (loopback test harness): `POST /_sim/fault`, `GET /_sim/state` (faults.py).

One task pumps the market source at its own pace (the generator in real time; a recording at
`speed` x its recorded pace, its times shifted to now) into the `SimExchange` core, then fans the
same bytes out to the subscribed sockets. Each socket has its own bounded queue and writer task, so
a slow client cannot stall the market (over the bound it is disconnected, as the venue does).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from bot.errors import MalformedMessage
from bot.logging import get_logger
from bot.venues.sim import wire
from bot.venues.sim.auth import Auth, Limits
from bot.venues.sim.exchange import Report, SimExchange
from bot.venues.sim.faults import Faults
from bot.venues.sim.generator import Message
from bot.venues.sim.orders import AccountReport, AlgoReport, OrderReport
from bot.venues.sim.sources import kind_of_stream

__all__ = ["SimServer", "build_server"]

log = get_logger("sim.server")
_ROUTE_KINDS = {
    "public": {"depth", "bookTicker", "trade"},
    "market": {"aggTrade", "markPrice", "trade"},
    "all": {"depth", "bookTicker", "trade", "aggTrade", "markPrice"},
}
_QUEUE_MAX = 20_000
LISTEN_KEY_TTL_MS = 60 * 60 * 1000


class Conn:
    __slots__ = ("combined", "events", "listen_key", "queue", "route", "subs", "writer", "ws")

    def __init__(self, ws: web.WebSocketResponse, route: str, combined: bool, listen_key: str = "",
                 events: set[str] | None = None) -> None:
        self.ws = ws
        self.route = route
        self.combined = combined
        self.subs: dict[tuple[str, str], str] = {}  # (SYMBOL, kind) -> the stream name as asked
        self.listen_key = listen_key
        self.events = events
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.writer: asyncio.Task[None] | None = None

    def subscribe(self, names: list[str]) -> None:
        allowed = _ROUTE_KINDS[self.route]
        for name in names:
            sym, _, rest = name.partition("@")
            kind = kind_of_stream(rest)
            if kind is not None and kind in allowed:  # misrouted streams get no data, as on the venue
                self.subs[(sym.upper(), kind)] = name

    def unsubscribe(self, names: list[str]) -> None:
        for name in names:
            for k, v in list(self.subs.items()):
                if v == name:
                    del self.subs[k]

    def put(self, data: bytes) -> bool:
        if self.queue.qsize() >= _QUEUE_MAX:
            return False
        self.queue.put_nowait(data)
        return True


class SimServer:
    def __init__(self, exchange: SimExchange, source: Iterator[Message], *, api_key: str = "sim-key",
                 api_secret: str = "sim-secret", host: str = "127.0.0.1", port: int = 18080,
                 speed: float = 1.0, realtime_source: bool = True, faults: list[dict[str, Any]] | None = None) -> None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the exchange simulator binds loopback only")
        self.ex = exchange
        exchange.keep_reports = False
        exchange.listeners.append(self._on_report)
        self.source = source
        self.auth = Auth(api_key, api_secret)
        self.limits = Limits()
        self.faults = Faults(self)
        self.host = host
        self.port = port
        self.speed = speed
        self.realtime_source = realtime_source  # generator: its times are wall times already
        self.conns: set[Conn] = set()
        self.listen_keys: dict[str, int] = {}  # key -> expiry (server ms)
        self._depth_waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.late_tasks: set[asyncio.Task[None]] = set()  # late_execute orders still to be placed
        self._key_counter = 0
        self.messages = 0
        self.requests: dict[str, int] = {}  # REST requests by "METHOD /path" (GET /_sim/state)
        self.source_done = False
        self.protocols: tuple[str, ...] = ("binance", "bybit")  # which venues' APIs app() serves
        self.market_listeners: list[Any] = []  # fn(Message) after the stream faults (the Bybit streams)
        for f in faults or []:
            self.faults.apply(f)

    # ------------------------------------------------------------------ clock
    def now_ms(self) -> int:
        return (time.time_ns() + self.faults.skew_ms * 1_000_000) // 1_000_000

    def engine_now_ns(self) -> int:
        return max(self.ex.now_ns, time.time_ns())

    # ------------------------------------------------------------------ lifecycle
    def app(self) -> web.Application:
        from bot.venues.sim.bybit_rest import add_bybit_routes
        from bot.venues.sim.rest import add_rest_routes

        app = web.Application()
        if "bybit" in self.protocols:
            self.bybit = add_bybit_routes(app, self)  # Bybit v5 on the same port and engine (bybit_rest.py)
        self.faults.add_routes(app)
        if "binance" not in self.protocols:
            return app
        add_rest_routes(app, self)
        from bot.venues.sim.ws_api import PATH, WsApi

        self.ws_api = WsApi(self)  # Binance's WebSocket API for order entry (ws_api.py)
        r = app.router
        r.add_get(PATH, self.ws_api.handle)
        for route in ("public", "market"):
            r.add_get(f"/{route}/ws/{{streams:.+}}", self._ws_market)
            r.add_get(f"/{route}/ws", self._ws_market)
            r.add_get(f"/{route}/stream", self._ws_market)
        r.add_get("/private/ws", self._ws_private)
        r.add_get("/private/ws/{key}", self._ws_private)
        r.add_get("/private/stream", self._ws_private)
        r.add_get("/ws/{streams:.+}", self._ws_legacy)
        r.add_get("/stream", self._ws_market)
        return app

    async def start(self) -> int:
        """Bind, start the market pump; returns the bound port (port 0 picks a free one)."""
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = getattr(site, "_server", None)
        if server is not None and server.sockets:
            self.port = server.sockets[0].getsockname()[1]
        self._tasks.append(asyncio.create_task(self._pump(), name="sim-pump"))
        self._tasks.append(asyncio.create_task(self._expire_keys(), name="sim-listenkeys"))
        return self.port

    async def stop(self) -> None:
        for t in [*self._tasks, *self.late_tasks]:
            t.cancel()
        for t in [*self._tasks, *self.late_tasks]:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        for c in list(self.conns):
            await self.close_conn(c)
        if self._runner is not None:
            await self._runner.cleanup()

    # ------------------------------------------------------------------ market pump
    async def _pump(self) -> None:
        offset_ns: int | None = None
        start_wall = time.time_ns()
        n = 0
        for msg in self.source:
            if self.realtime_source:
                due = msg.ts_ns
            else:
                if offset_ns is None:
                    offset_ns = msg.ts_ns
                due = start_wall + int((msg.ts_ns - offset_ns) / self.speed)
            wait = due - time.time_ns()
            if wait > 0:
                await asyncio.sleep(wait / 1e9)
                n = 0
            else:
                n += 1
                if n % 200 == 0:
                    await asyncio.sleep(0)  # behind schedule: still let requests in
            self.on_market(msg, max(due, self.ex.now_ns))
        self.source_done = True
        log.info("sim_source_exhausted", messages=self.messages)

    def on_market(self, msg: Message, ts_ns: int) -> None:
        self.messages += 1
        try:
            self.ex.on_message(msg.raw, ts_ns)
        except MalformedMessage as e:
            log.warning("sim_bad_message", error=str(e))
            return
        if msg.kind == "snapshot":
            return
        if msg.kind == "depth":
            waiters = self._depth_waiters.pop(msg.symbol, None)
            if waiters:
                for w in waiters:
                    if not w.done():
                        w.set_result(None)
        if not self.faults.stream_allowed(msg, ts_ns):
            return
        for fn in self.market_listeners:
            fn(msg)
        other = None
        for c in list(self.conns):
            if c.route == "private":
                continue
            name = c.subs.get((msg.symbol, msg.kind))
            data = msg.data
            if name is None and msg.kind in ("trade", "aggTrade"):
                want = "aggTrade" if msg.kind == "trade" else "trade"
                name = c.subs.get((msg.symbol, want))
                if name is not None:
                    if other is None:
                        other = _convert_trade(msg.data, want)
                    data = other
            if name is None:
                continue
            self._send(c, name, data)

    def _send(self, c: Conn, name: str, data: bytes) -> None:
        out = b'{"stream":"' + name.encode() + b'","data":' + data + b"}" if c.combined else data
        if not c.put(out):
            log.warning("sim_slow_consumer_disconnected", route=c.route)
            asyncio.get_running_loop().create_task(self.close_conn(c))

    async def next_depth(self, symbol: str, timeout_s: float) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._depth_waiters.setdefault(symbol, []).append(fut)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(fut, timeout_s)

    # ------------------------------------------------------------------ user data
    def _on_report(self, r: Report) -> None:
        if isinstance(r, OrderReport):
            ev = wire.order_update(self.ex, r)
        elif isinstance(r, AlgoReport):
            ev = wire.algo_update(self.ex, r)
        elif isinstance(r, AccountReport):
            ev = wire.account_update(self.ex, r)
        else:
            return
        self.push_private(ev)

    def push_private(self, ev: dict[str, Any], key: str | None = None) -> None:
        if ev["e"] != "listenKeyExpired" and not self.faults.user_event_allowed():
            return  # mute_user_stream: lost, never replayed
        data = None
        for c in list(self.conns):
            if c.route != "private" or (key is not None and c.listen_key != key):
                continue
            if c.events is not None and ev["e"] not in c.events and ev["e"] != "listenKeyExpired":
                continue
            if data is None:
                data = orjson.dumps(ev)
            self._send(c, c.listen_key, data)

    def new_listen_key(self) -> str:
        now = self.now_ms()
        for k, exp in self.listen_keys.items():
            if exp > now:  # an active key is returned again and extended (exchange-facts A4)
                self.listen_keys[k] = now + LISTEN_KEY_TTL_MS
                return k
        self._key_counter += 1
        import hashlib

        key = hashlib.sha256(f"sim-listen-key-{self._key_counter}-{now}".encode()).hexdigest()[:64]
        self.listen_keys[key] = now + LISTEN_KEY_TTL_MS
        return key

    async def expire_listen_key(self, key: str) -> None:
        self.listen_keys.pop(key, None)
        self.push_private({"e": "listenKeyExpired", "E": self.now_ms(), "listenKey": key}, key)
        await asyncio.sleep(0.05)  # let the writer flush the event before the close
        for c in [c for c in self.conns if c.route == "private" and c.listen_key == key]:
            await self.close_conn(c)

    async def _expire_keys(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            now = self.now_ms()
            for k in [k for k, exp in self.listen_keys.items() if exp <= now]:
                await self.expire_listen_key(k)

    # ------------------------------------------------------------------ websockets
    async def _serve(self, request: web.Request, conn: Conn) -> web.WebSocketResponse:
        ws = conn.ws
        await ws.prepare(request)
        self.conns.add(conn)
        conn.writer = asyncio.create_task(self._writer(conn))
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await self._control(conn, msg.data)
                elif msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                    break
        finally:
            self.conns.discard(conn)
            if conn.writer is not None:
                conn.queue.put_nowait(None)
                conn.writer.cancel()
                with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                    await conn.writer
        return ws

    async def _writer(self, conn: Conn) -> None:
        ws = conn.ws
        while True:
            data = await conn.queue.get()
            if data is None or ws.closed:
                return
            try:
                await ws.send_str(data.decode())
            except (ConnectionError, RuntimeError):
                return

    async def _control(self, conn: Conn, text: str) -> None:
        try:
            req = orjson.loads(text)
            method, rid = req.get("method"), req.get("id")
            params = req.get("params") or []
        except (orjson.JSONDecodeError, AttributeError):
            await conn.ws.send_str('{"error":{"code":-1100,"msg":"Invalid JSON"},"id":null}')
            return
        if method == "SUBSCRIBE" and conn.route != "private":
            conn.subscribe(params)
            result: Any = None
        elif method == "UNSUBSCRIBE":
            conn.unsubscribe(params)
            result = None
        elif method == "LIST_SUBSCRIPTIONS":
            result = sorted(conn.subs.values())
        else:
            await conn.ws.send_str(orjson.dumps({"error": {"code": 2, "msg": f"Invalid request: {method}"},
                                                 "id": rid}).decode())
            return
        conn.put(orjson.dumps({"result": result, "id": rid}))

    def _new_ws(self) -> web.WebSocketResponse:
        return web.WebSocketResponse(heartbeat=180.0, max_msg_size=1 << 20)  # venue pings every 3 min

    async def _ws_market(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        route = "public" if path.startswith("/public") else "market" if path.startswith("/market") else "all"
        combined = "/stream" in path
        names = request.match_info.get("streams", "") or request.query.get("streams", "")
        if self.faults.refuse_ws:
            raise web.HTTPServiceUnavailable(text="ws refused by fault")
        conn = Conn(self._new_ws(), route, combined)
        conn.subscribe([n for n in names.split("/") if n])
        return await self._serve(request, conn)

    async def _ws_legacy(self, request: web.Request) -> web.StreamResponse:
        s = request.match_info["streams"]
        if s in self.listen_keys:
            return await self._ws_private(request, key=s)
        return await self._ws_market(request)

    async def _ws_private(self, request: web.Request, key: str | None = None) -> web.StreamResponse:
        key = key or request.match_info.get("key") or request.query.get("listenKey", "")
        if key not in self.listen_keys or self.listen_keys[key] <= self.now_ms():
            return web.json_response({"code": -1125, "msg": "This listenKey does not exist."}, status=400)
        if time.time_ns() < self.faults.refuse_private_until_ns:  # drop_ws private with refuse_ms
            return web.json_response({"code": -1001, "msg": "Internal error (simulated)."}, status=503)
        ev = request.query.get("events")
        conn = Conn(self._new_ws(), "private", "/stream" in request.path, key,
                    set(ev.split("/")) if ev else None)
        return await self._serve(request, conn)

    async def close_conn(self, c: Conn) -> None:
        self.conns.discard(c)
        with contextlib.suppress(Exception):
            await c.ws.close(code=1001, message=b"closed by the simulator")
        c.queue.put_nowait(None)


def _convert_trade(data: bytes, want: str) -> bytes:
    d = orjson.loads(data)
    if want == "aggTrade":
        return orjson.dumps({"e": "aggTrade", "E": d["E"], "a": d["t"], "s": d["s"], "p": d["p"], "q": d["q"],
                             "nq": d["q"], "f": d["t"], "l": d["t"], "T": d["T"], "m": d["m"]})
    return orjson.dumps({"e": "trade", "E": d["E"], "T": d["T"], "s": d["s"], "t": d["a"], "p": d["p"],
                         "q": d["q"], "X": "MARKET", "m": d["m"]})


def build_server(sources: list[str], *, cfg: Any = None, symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT"),
                 seed: int | None = None, port: int = 18080, api_key: str = "sim-key",
                 api_secret: str = "sim-secret", speed: float = 1.0,
                 faults: list[dict[str, Any]] | None = None) -> SimServer:
    """`sources`: ["generated"] (the seeded generator, in real time from now) or recorded files
    (one session, played at `speed`)."""
    from bot.market.instruments import instrument_for
    from bot.settings.sim import SimSection
    from bot.venues.sim.gateway import exchange_from_settings
    from bot.venues.sim.generator import MarketGenerator
    from bot.venues.sim.sources import replay_messages
    from bot.venues.sim.symbols import sim_instruments

    cfg = cfg or SimSection()
    if seed is not None:
        cfg = cfg.model_copy(update={"seed": seed})
    # the loopback server matches on its depth book, the one its REST depth and streams serve (clients
    # price their orders from it); the bookTicker top is the in-process backtest's (issue 13)
    cfg = cfg.model_copy(update={"book_ticker_top": False})
    if sources in ([], ["generated"]):
        insts = sim_instruments(symbols, cfg.gen_start_prices)  # any symbol: derived rules (sim/symbols.py)
        gen = MarketGenerator(list(insts.values()), cfg, start_ns=time.time_ns())
        ex = exchange_from_settings(cfg, insts, zero_latency=True)
        return SimServer(ex, gen.messages(), api_key=api_key, api_secret=api_secret, port=port,
                         realtime_source=True, faults=faults)
    insts = {}
    for i, m in enumerate(replay_messages(sources)):  # find the session's symbols and their grids
        if m.symbol not in insts and m.kind == "depth":
            d = orjson.loads(m.data)
            lv = (d.get("b") or d.get("a") or [[None, None]])[0]
            insts[m.symbol] = instrument_for(m.symbol, lv[0], lv[1])
        if i > 5000:
            break
    if not insts:
        raise ValueError(f"no depth messages in {sources}")
    ex = exchange_from_settings(cfg, insts, zero_latency=True)
    return SimServer(ex, replay_messages(sources), api_key=api_key, api_secret=api_secret, port=port,
                     speed=speed, realtime_source=False, faults=faults)
