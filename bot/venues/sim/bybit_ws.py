"""Bybit v5 websockets of the loopback exchange: public `/v5/public/linear` and private `/v5/private`.

Public (exchange-facts B1; docs/v5/websocket/public):
- `{"op":"subscribe","args":["orderbook.50.BTCUSDT","publicTrade.BTCUSDT","tickers.BTCUSDT"]}`, answered
  `{"success":true,"ret_msg":"","conn_id":..,"req_id":..,"op":"subscribe"}` (unknown topic: success false);
- `orderbook.{1,50,200,1000}.{SYM}`: a `snapshot` of the top N at subscription, then a `delta` of the
  levels that changed in the top N (size "0" = removed) after every book update of the engine; `u` goes
  up by one per message of that stream (a snapshot resets it), `seq` is the engine's update id;
  unsubscribe + subscribe gives a fresh snapshot (what the bot does to resync);
- `publicTrade.{SYM}`: one message per trade print, `S` = the taker's side;
- `tickers.{SYM}`: a snapshot at subscription, then deltas with mark/index/funding every mark update and
  the top of book when it changes;
- `{"op":"ping"}` -> `{"success":true,"ret_msg":"pong","op":"ping",...}`.
Private (docs/v5/websocket/private): `auth` first (bybit_auth.py), then `subscribe` to `order`,
`execution`, `position`, `wallet` (or their `.linear` forms); events in order execution, order,
position, wallet; `{"op":"ping"}` -> `{"op":"pong","args":[ms]}`. The `mute_user_stream` fault mutes
these like the Binance user stream; `drop_ws` with route all / bybit-public / bybit-private closes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import WSMsgType, web

from bot.venues.sim import bybit_wire as bw
from bot.venues.sim.exchange import Report
from bot.venues.sim.generator import Message
from bot.venues.sim.orders import AccountReport, AlgoReport, OrderReport

if TYPE_CHECKING:
    from bot.venues.sim.bybit_rest import BybitRest
    from bot.venues.sim.server import Conn, SimServer

__all__ = ["BybitStreams"]

_DEPTHS = (1, 50, 200, 1000)
_PRIVATE_TOPICS = {"order", "execution", "position", "wallet"}


class _Book:
    """One `orderbook.N.SYM` stream: the top N last sent and its `u`."""

    __slots__ = ("asks", "bids", "u")

    def __init__(self) -> None:
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self.u = 0


class BybitStreams:
    def __init__(self, s: SimServer, rest: BybitRest) -> None:
        self.s = s
        self.ex = s.ex
        self.rest = rest
        self.books: dict[tuple[str, int], _Book] = {}
        self.tickers_sent: set[tuple[int, str]] = set()  # (conn id, symbol) that had their snapshot
        self._ids = itertools.count(1)
        rest.desk.ex.listeners.append(self._on_report)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/v5/public/linear", self._public)
        app.router.add_get("/v5/private", self._private)

    # ------------------------------------------------------------------ plumbing
    def _conns(self, route: str) -> list[Conn]:
        return [c for c in self.s.conns if c.route == route]

    @staticmethod
    def _put(c: Conn, body: dict[str, Any] | bytes) -> None:
        c.put(body if isinstance(body, bytes) else orjson.dumps(body))

    async def _serve(self, request: web.Request, route: str, on_text: Any) -> web.WebSocketResponse:
        from bot.venues.sim.server import Conn

        if self.s.faults.refuse_ws:
            raise web.HTTPServiceUnavailable(text="ws refused by fault")
        ws = web.WebSocketResponse(heartbeat=None, max_msg_size=1 << 20)
        await ws.prepare(request)
        c = Conn(ws, route, False)
        c.events = set()  # bybit: subscribed topics
        self.s.conns.add(c)
        c.writer = asyncio.create_task(self.s._writer(c))
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    try:
                        req = orjson.loads(msg.data)
                    except orjson.JSONDecodeError:
                        self._put(c, {"success": False, "ret_msg": "error:invalid json", "op": ""})
                        continue
                    if isinstance(req, dict):
                        on_text(c, req)
                elif msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                    break
        finally:
            self.s.conns.discard(c)
            c.queue.put_nowait(None)
            c.writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await c.writer
        return ws

    def _ack(self, c: Conn, req: dict[str, Any], ok: bool = True, msg: str = "") -> None:
        self._put(c, {"success": ok, "ret_msg": msg, "conn_id": f"sim-{id(c)}", "req_id": req.get("req_id", ""),
                      "op": req.get("op", "")})

    # ------------------------------------------------------------------ public
    async def _public(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, "bybit-public", self._public_op)

    def _public_op(self, c: Conn, req: dict[str, Any]) -> None:
        op, args = req.get("op"), req.get("args") or []
        assert c.events is not None
        if op == "ping":
            self._ack(c, req, True, "pong")
            return
        if op not in ("subscribe", "unsubscribe"):
            self._ack(c, req, False, f"error:unknown op {op}")
            return
        bad = [t for t in args if not self._valid_topic(str(t))]
        if bad:
            self._ack(c, req, False, f"error:handler not found,topic:{bad[0]}")
            return
        if op == "unsubscribe":
            c.events.difference_update(args)
            self._ack(c, req)
            return
        self._ack(c, req)
        pub = self._conns("bybit-public")
        for t in args:
            kind, _, rest = t.partition(".")
            if kind == "orderbook":
                n, _, sym = rest.partition(".")
                self._put(c, self._book_snapshot(sym, int(n), pub))  # before c joins: no delta for it
            c.events.add(t)
            if kind == "tickers":
                self._put(c, self._ticker_msg(rest, "snapshot"))

    def _valid_topic(self, t: str) -> bool:
        parts = t.split(".")
        if parts[0] == "orderbook" and len(parts) == 3:
            return parts[1].isdigit() and int(parts[1]) in _DEPTHS and parts[2] in self.ex.markets
        return parts[0] in ("publicTrade", "tickers") and len(parts) == 2 and parts[1] in self.ex.markets

    def _top(self, sym: str, n: int) -> tuple[dict[int, int], dict[int, int]]:
        b = self.ex.markets[sym].book
        return dict(b.bids(n)), dict(b.asks(n))

    def _book_msg(self, sym: str, n: int, kind: str, bids: list[list[str]], asks: list[list[str]],
                  u: int) -> dict[str, Any]:
        ms = self.s.now_ms()
        seq = max(0, self.ex.markets[sym].sync.last_update_id)
        return {"topic": f"orderbook.{n}.{sym}", "type": kind, "ts": ms,
                "data": {"s": sym, "b": bids, "a": asks, "u": u, "seq": seq}, "cts": ms}

    def _book_snapshot(self, sym: str, n: int, pub: list[Conn]) -> dict[str, Any]:
        """The stream brought up to the engine's book first (the other subscribers get that delta), so a
        new subscriber's snapshot and everyone's next delta share one `u` line."""
        st = self.books.setdefault((sym, n), _Book())
        self._advance(sym, n, st, pub)
        fmt = bw.Fmt.of(self.ex.markets[sym].inst)
        return self._book_msg(sym, n, "snapshot", [[fmt.price(t), fmt.qty(q)] for t, q in st.bids.items()],
                              [[fmt.price(t), fmt.qty(q)] for t, q in st.asks.items()], st.u)

    def _advance(self, sym: str, n: int, st: _Book, pub: list[Conn]) -> None:
        """Diff the top N against what the stream last said; send the delta to its subscribers."""
        bids, asks = self._top(sym, n)
        fmt = bw.Fmt.of(self.ex.markets[sym].inst)
        db = [[fmt.price(t), fmt.qty(q)] for t, q in bids.items() if st.bids.get(t) != q] + \
            [[fmt.price(t), "0"] for t in st.bids if t not in bids]
        da = [[fmt.price(t), fmt.qty(q)] for t, q in asks.items() if st.asks.get(t) != q] + \
            [[fmt.price(t), "0"] for t in st.asks if t not in asks]
        if st.u and not db and not da:
            return
        st.bids, st.asks = bids, asks
        st.u += 1
        topic = f"orderbook.{n}.{sym}"
        subs = [c for c in pub if c.events and topic in c.events]
        if subs:
            data = orjson.dumps(self._book_msg(sym, n, "delta", db, da, st.u))
            for c in subs:
                self._put(c, data)

    def on_market(self, msg: Message) -> None:
        """Called by the server for every market message that passed the stream faults."""
        pub = self._conns("bybit-public")
        if not pub:
            return
        sym = msg.symbol
        if msg.kind == "depth":
            for (bsym, n), st in self.books.items():
                topic = f"orderbook.{n}.{sym}"
                if bsym == sym and any(c.events and topic in c.events for c in pub):
                    self._advance(sym, n, st, pub)
        elif msg.kind in ("trade", "aggTrade"):
            topic = f"publicTrade.{sym}"
            subs = [c for c in pub if c.events and topic in c.events]
            if subs:
                d = orjson.loads(msg.data)
                tid = d.get("a", d.get("t", 0))
                out = orjson.dumps({"topic": topic, "type": "snapshot", "ts": d.get("T", self.s.now_ms()), "data": [
                    {"T": d.get("T"), "s": sym, "S": "Sell" if d.get("m") else "Buy", "v": d["q"], "p": d["p"],
                     "L": "ZeroPlusTick", "i": str(tid), "BT": False, "RPI": False, "seq": tid}]})
                for c in subs:
                    self._put(c, out)
        elif msg.kind in ("markPrice", "bookTicker"):
            topic = f"tickers.{sym}"
            subs = [c for c in pub if c.events and topic in c.events]
            if subs:
                data = orjson.dumps(self._ticker_msg(sym, "delta"))
                for c in subs:
                    self._put(c, data)

    def _ticker_msg(self, sym: str, kind: str) -> dict[str, Any]:
        return {"topic": f"tickers.{sym}", "type": kind, "data": self.rest.ticker(sym), "cs": next(self._ids),
                "ts": self.s.now_ms()}

    # ------------------------------------------------------------------ private
    async def _private(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, "bybit-private", self._private_op)

    def _private_op(self, c: Conn, req: dict[str, Any]) -> None:
        op, args = req.get("op"), req.get("args") or []
        assert c.events is not None
        if op == "ping":
            self._put(c, {"req_id": req.get("req_id", ""), "op": "pong", "args": [str(self.s.now_ms())],
                          "conn_id": f"sim-{id(c)}"})
        elif op == "auth":
            ok = len(args) == 3 and isinstance(args[1], int | str) and str(args[1]).isdigit() and \
                self.rest.auth.ws_auth_ok(str(args[0]), int(args[1]), str(args[2]), self.s.now_ms())
            if ok:
                c.listen_key = "authed"
            self._ack(c, req, ok, "" if ok else "error:signature verification failed")
        elif op in ("subscribe", "unsubscribe"):
            if c.listen_key != "authed":
                self._ack(c, req, False, "Request not authorized")
                return
            topics = {str(t).removesuffix(".linear") for t in args}
            if not topics <= _PRIVATE_TOPICS:
                self._ack(c, req, False, f"error:handler not found,topic:{sorted(topics - _PRIVATE_TOPICS)[0]}")
                return
            if op == "subscribe":
                c.events |= topics
            else:
                c.events -= topics
            self._ack(c, req)
        else:
            self._ack(c, req, False, f"error:unknown op {op}")

    def _push(self, topic: str, rows: list[dict[str, Any]]) -> None:
        subs = [c for c in self._conns("bybit-private") if c.events and topic in c.events]
        if not subs:
            return
        if not self.s.faults.user_event_allowed():
            return  # mute_user_stream: lost, never replayed
        data = orjson.dumps({"id": f"sim-{next(self._ids)}", "topic": topic, "creationTime": self.s.now_ms(),
                             "data": rows})
        for c in subs:
            self._put(c, data)

    def push_position(self, sym: str) -> None:
        """The position's TP/SL changed (trading-stop, an attached stop armed): Bybit pushes the position."""
        if self._conns("bybit-private"):
            sl, tp = self.rest.desk.position_tpsl(sym)
            self._push("position", [bw.position_row(self.ex, sym, sl, tp, next(self.rest.desk.seq), topic=True)])

    def _on_report(self, r: Report) -> None:
        if not self._conns("bybit-private"):
            return
        orders = self.rest.orders
        if isinstance(r, OrderReport):
            row = orders.order_row(r.order)
            if r.last_lots > 0:
                fill = next((f for f in reversed(self.ex.fills) if f[0] == r.trade_id), None)
                if fill is not None:
                    self._push("execution", [bw.exec_row(self.ex, fill, row, r.trade_id)])
            self._push("order", [row])
        elif isinstance(r, AlgoReport):
            self._push("order", [orders.algo_row(r.algo)])
        elif isinstance(r, AccountReport):
            rows = []
            for sym in r.symbols:
                sl, tp = self.rest.desk.position_tpsl(sym)
                rows.append(bw.position_row(self.ex, sym, sl, tp, next(self.rest.desk.seq), topic=True))
            if rows:
                self._push("position", rows)
            self._push("wallet", [bw.wallet(self.ex)])
