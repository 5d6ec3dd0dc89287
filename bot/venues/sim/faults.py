"""Fault injection and the state endpoint of the loopback exchange.

`POST /_sim/fault` with a JSON body (or `--fault JSON` / `[sim] server_faults` at start-up); every
kind, its parameters and defaults are in docs/exchange-sim.md:
drop_ws {route, refuse_ms}, gap {symbol, count}, freeze_stream {ms, stream, symbol}, reject_next_stop {count,
code, msg}, error_after_execute {count, status}, delay_orders_ms {ms}, expire_listen_key,
clock_skew_ms {ms}, ws_trade_restart {count} (Bybit /v5/trade: 10019), rate_limit {retry_after_s, ban_after,
ban_s}, settle_funding {symbol, rate_bps},
mute_user_stream {ms}, late_execute {ms, count}, inject {route, raw, stream}, outside_order {symbol,
side, type, qty, price}, ws_api_silence {count, close} (Binance /ws-fapi/v1: executed, never answered),
deviate {on, drop_field | error_code} (the venue changed under the bot: for
`scalper conformance`), clear.

`GET /_sim/state`: time, account (balances), positions, open orders, open algo orders, books,
listen keys, faults. Both are loopback test controls, not part of the venue's API.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from bot.logging import get_logger
from bot.venues.sim import wire
from bot.venues.sim.generator import Message

if TYPE_CHECKING:
    from bot.domain.orders import OrderRequest
    from bot.venues.sim.server import SimServer

log = get_logger("sim.faults")

__all__ = ["KINDS", "Faults"]

KINDS = ("drop_ws", "gap", "freeze_stream", "reject_next_stop", "error_after_execute", "delay_orders_ms",
         "expire_listen_key", "clock_skew_ms", "rate_limit", "settle_funding", "mute_user_stream", "late_execute",
         "inject", "outside_order", "deviate", "ws_trade_restart", "ws_api_silence", "clear")
_INJECT_ROUTES = ("market", "public", "private", "bybit-public", "bybit-private", "all")


class Faults:
    def __init__(self, server: SimServer) -> None:
        self.server = server
        self.refuse_private_until_ns = 0  # drop_ws private with refuse_ms: reconnects refused until then
        self.skew_ms = 0
        self.delay_orders_ms = 0
        self.reject_stops = 0
        self.reject_code = -2021
        self.reject_msg = "Order would immediately trigger."
        self.error_after_execute = 0
        self.error_status = 503
        self.gaps: dict[str, int] = {}  # symbol ("" = any) -> depth diffs still to skip
        self.freeze_until_ns = 0
        self.freeze_kind = "all"
        self.freeze_symbol = ""
        self.refuse_ws = False
        self.refuse_trade_until_ns = 0  # drop_ws bybit-trade with refuse_ms: new /v5/trade sockets refused
        self.trade_restarts = 0  # ws_trade_restart: the next N Bybit /v5/trade order requests answer 10019
        self.mute_user_until_ns = 0  # user-data events before this wall time are dropped, not replayed
        self.muted_events = 0
        self.late_execute = 0  # next N new orders: ambiguous 503 now, placed `late_ms` later
        self.late_ms = 3000
        self.late_fill = False  # late_execute {"fill": true}: a late LIMIT order that would rest fills at once
        self.late_pending = 0
        self.outside_orders = 0
        self.entries_only = False  # error_after_execute / late_execute: only orders that can open a position
        self.armed_limits: list[dict[str, Any]] = []  # rate_limit {"on": "METHOD /path"}: starts at that request
        self.uid_limited: dict[str, int] = {}  # rate_limit {"code": 10006}: Bybit path -> reset time (ms)
        self.fired: list[dict[str, Any]] = []  # one-shot faults as they took effect: {"kind", "time", ...}
        self.fired_n: dict[str, int] = {}  # ... how many of each kind since start (`fired` keeps the last 100)
        self.applied: list[dict[str, Any]] = []
        self.deviations: list[dict[str, Any]] = []  # deviate {"on": "METHOD /path", drop_field | error_code}

    def clear(self) -> None:
        self.__init__(self.server)  # type: ignore[misc]
        self.server.limits.limited_until_ms = 0
        self.server.limits.banned_until_ms = 0
        ws_api = getattr(self.server, "ws_api", None)
        if ws_api is not None:
            ws_api.silence = ws_api.refuse_until_ns = 0

    def apply(self, f: dict[str, Any]) -> dict[str, Any]:
        kind = f.get("kind")
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; kinds: {', '.join(KINDS)}")
        s = self.server
        if kind == "clear":
            self.clear()
            return {"ok": True}
        self.applied.append(f)
        if kind == "drop_ws":
            route = f.get("route", "all")
            conns = [c for c in s.conns
                     if route == "all" or c.route == route or (route == "market" and c.route == "all")]
            for c in conns:
                asyncio.get_running_loop().create_task(s.close_conn(c))
            if route == "private" and f.get("refuse_ms"):  # new user-stream sockets refused (503) meanwhile
                import time

                self.refuse_private_until_ns = time.time_ns() + int(f["refuse_ms"]) * 1_000_000
            if route in ("bybit-trade", "all") and f.get("refuse_ms"):
                import time

                self.refuse_trade_until_ns = time.time_ns() + int(f["refuse_ms"]) * 1_000_000
            if route in ("ws-api", "all") and f.get("refuse_ms") and hasattr(s, "ws_api"):  # Binance order entry
                s.ws_api.refuse(int(f["refuse_ms"]))
            return {"ok": True, "dropped": len(conns)}
        if kind == "gap":
            sym = str(f.get("symbol", "")).upper()
            self.gaps[sym] = self.gaps.get(sym, 0) + int(f.get("count", 1))
        elif kind == "freeze_stream":
            import time

            self.freeze_until_ns = time.time_ns() + int(f.get("ms", 5000)) * 1_000_000
            self.freeze_kind = f.get("stream", "all")
            self.freeze_symbol = str(f.get("symbol", "")).upper()
        elif kind == "reject_next_stop":
            self.reject_stops += int(f.get("count", 1))
            self.reject_code = int(f.get("code", -2021))
            self.reject_msg = str(f.get("msg", "Order would immediately trigger."))
        elif kind == "error_after_execute":
            self.error_after_execute += int(f.get("count", 1))
            self.error_status = int(f.get("status", 503))
            self.entries_only = bool(f.get("entries_only", False))
        elif kind == "ws_trade_restart":
            self.trade_restarts += int(f.get("count", 1))
        elif kind == "delay_orders_ms":
            self.delay_orders_ms = int(f.get("ms", 500))
        elif kind == "expire_listen_key":
            keys = list(s.listen_keys)
            for k in keys:
                asyncio.get_running_loop().create_task(s.expire_listen_key(k))
            return {"ok": True, "expired": len(keys)}
        elif kind == "clock_skew_ms":
            self.skew_ms = int(f.get("ms", 2000))
        elif kind == "settle_funding":
            rate = float(f["rate_bps"]) / 10_000 if f.get("rate_bps") is not None else None
            n = s.ex.settle_funding(s.engine_now_ns(), str(f.get("symbol", "")).upper(), rate)
            return {"ok": True, "settled": n}
        elif kind == "mute_user_stream":
            import time

            self.mute_user_until_ns = time.time_ns() + int(f.get("ms", 20_000)) * 1_000_000
        elif kind == "late_execute":
            self.late_execute += int(f.get("count", 1))
            self.late_ms = int(f.get("ms", 3000))
            self.late_fill = bool(f.get("fill", False))
            self.entries_only = bool(f.get("entries_only", False))
        elif kind == "inject":
            return {"ok": True, "sent": self._inject(f)}
        elif kind == "ws_api_silence":  # Binance WebSocket API: placements executed, never answered (ws_api.py)
            if not hasattr(s, "ws_api"):
                raise ValueError("ws_api_silence needs the Binance protocol")
            return s.ws_api.apply_fault(f)
        elif kind == "outside_order":
            return {"ok": True, **self._outside_order(f)}
        elif kind == "deviate":
            on = str(f.get("on", "")).split()
            if len(on) != 2 or not on[1].startswith("/"):
                raise ValueError("deviate 'on' is 'METHOD /path', e.g. 'POST /fapi/v1/order'")
            if not f.get("drop_field") and f.get("error_code") is None:
                raise ValueError("deviate needs 'drop_field' (a response field to leave out) or 'error_code'")
            self.deviations.append({**f, "on": f"{on[0].upper()} {on[1]}"})
        elif kind == "rate_limit" and f.get("on"):
            on = str(f["on"]).split()
            if len(on) != 2 or not on[1].startswith("/"):
                raise ValueError("rate_limit 'on' is 'METHOD /path', e.g. 'POST /fapi/v1/algoOrder'")
            if f.get("code") not in (None, 10006) or (f.get("code") and not on[1].startswith("/v5/")):
                raise ValueError("rate_limit 'code' is 10006 (Bybit's per-UID limit), on a /v5/ path only")
            after = f.get("after")  # armed only once that one-shot fault has fired (since now)
            if after is not None and after not in KINDS:
                raise ValueError(f"rate_limit 'after' is a fault kind, e.g. 'error_after_execute', not {after!r}")
            seen = self.fired_n.get(str(after), 0)
            self.armed_limits.append({**f, "on": f"{on[0].upper()} {on[1]}", "_after_seen": seen})
        elif kind == "rate_limit" and f.get("code"):
            raise ValueError("rate_limit with 'code' 10006 needs 'on': the Bybit endpoint it limits")
        elif kind == "rate_limit":
            s.limits.limit(s.now_ms(), int(f.get("retry_after_s", 2)), int(f.get("ban_after", 3)),
                           int(f.get("ban_s", 120)))
        return {"ok": True}

    def _inject(self, f: dict[str, Any]) -> int:
        """One raw text frame, verbatim, on every open socket of `route` (the legacy all-streams sockets
        count as market and public). With `stream`, combined-stream sockets get it wrapped as
        {"stream": stream, "data": raw} the way they get real payloads (combined private sockets: with
        their listen key); `raw` is sent unparsed, so it
        may be anything a broken venue could send."""
        route = str(f.get("route", "market"))
        if route not in _INJECT_ROUTES:
            raise ValueError(f"inject route must be one of {', '.join(_INJECT_ROUTES)}")
        raw = f.get("raw")
        if not isinstance(raw, str):
            raise ValueError("inject needs 'raw': the text frame to send")
        stream = f.get("stream")
        data = raw.encode()
        n = 0
        for c in list(self.server.conns):
            hit = (route == "all" or c.route == route
                   or (route in ("market", "public") and c.route == "all"))
            if not hit:
                continue
            out = data
            wrap = stream or (c.listen_key if c.route == "private" else "")
            if wrap and c.combined:
                out = b'{"stream":"' + str(wrap).encode() + b'","data":' + data + b"}"
            n += c.put(out)
        return n

    def _outside_order(self, f: dict[str, Any]) -> dict[str, Any]:
        """An order on the account as if placed by hand (web UI / another program): a client id that
        is not the bot's, matched and streamed on the user stream like any order."""
        from bot.domain.orders import OrderRequest
        from bot.domain.types import OrderKind, Side, TimeInForce

        s = self.server
        sym = str(f.get("symbol", "")).upper()
        inst = s.ex.market(sym).inst
        side = str(f.get("side", "BUY")).upper()
        typ = str(f.get("type", "MARKET")).upper()
        if side not in ("BUY", "SELL") or typ not in ("MARKET", "LIMIT"):
            raise ValueError("outside_order: side BUY|SELL, type MARKET|LIMIT")
        lots = inst.qty_to_lots(f.get("qty", inst.lots_to_qty(inst.min_lots)))
        price = inst.price_to_ticks(f["price"]) if typ == "LIMIT" else None
        if typ == "LIMIT" and price is None:
            raise ValueError("outside_order LIMIT needs 'price'")
        self.outside_orders += 1
        cid = str(f.get("client_id") or f"web_manual_{self.outside_orders}")
        req = OrderRequest(cid, sym, Side(side), OrderKind(typ), lots, price,
                           time_in_force=TimeInForce.GTC, reduce_only=bool(f.get("reduce_only", False)))
        from bot.venues.sim.orders import SimError

        try:
            o = s.ex.place_order(req, now_ns=s.engine_now_ns())
        except SimError as e:
            raise ValueError(f"outside_order refused: {e.code} {e.msg}") from e
        return {"client_id": cid, "status": o.status}

    # ------------------------------------------------------------------ hooks
    def _fired(self, kind: str, **detail: Any) -> None:
        self.fired.append({"kind": kind, "time": self.server.now_ms(), **detail})
        self.fired_n[kind] = self.fired_n.get(kind, 0) + 1
        del self.fired[:-100]

    def user_event_allowed(self) -> bool:
        """False while `mute_user_stream` holds: the private socket stays open and answers pings, but
        the event is lost (a venue stream that silently stops delivering, issue 11)."""
        if self.mute_user_until_ns:
            import time

            if time.time_ns() < self.mute_user_until_ns:
                self.muted_events += 1
                return False
            self.mute_user_until_ns = 0
        return True

    def deviate(self, method: str, path: str, body: Any) -> Any:
        """The response body as a changed venue would send it (every matching `deviate` fault, for as long
        as it is set): `drop_field` leaves that field out of the body (of each object of a list body);
        `error_code` replaces the code of an error body {"code", "msg"} (a success body is left alone)."""
        on = f"{method} {path}"
        for d in self.deviations:
            if d["on"] != on:
                continue
            field = d.get("drop_field")
            if field:
                for obj in body if isinstance(body, list) else [body, *_bybit_result(body)]:
                    if isinstance(obj, dict):
                        obj.pop(field, None)
            if d.get("error_code") is not None and isinstance(body, dict):
                if "code" in body and "msg" in body:
                    body["code"] = int(d["error_code"])
                elif body.get("retCode"):  # Bybit's envelope: an error is a non-zero retCode (HTTP 200, B2)
                    body["retCode"] = int(d["error_code"])
        return body

    def arm_limit(self, method: str, path: str, now_ms: int) -> None:
        """rate_limit {"on": ...}: the 429 window starts with this request (which is refused too), e.g.
        exactly when the bot places its stop. `now_ms` is the request's own arrival time: a window started
        a millisecond later than the request it refuses would round its Retry-After up a whole second."""
        key = f"{method} {path}"
        for f in self.armed_limits:
            if f.get("after") and self.fired_n.get(f["after"], 0) <= f["_after_seen"]:
                continue  # e.g. Bybit's GET /v5/order/realtime also lists open orders: only look-ups after the 503
            if f["on"] == key:
                self.armed_limits.remove(f)
                s = self.server
                if f.get("code") == 10006:  # Bybit's per-UID, per-endpoint limit: this path only (B2)
                    self.uid_limited[path] = now_ms + int(f.get("retry_after_s", 2)) * 1000
                    self._fired("rate_limit", on=key, code=10006)
                    return
                s.limits.limit(now_ms, int(f.get("retry_after_s", 2)), int(f.get("ban_after", 3)),
                               int(f.get("ban_s", 120)))
                self._fired("rate_limit", on=key)
                return

    def uid_limit(self, path: str, now_ms: int) -> int | None:
        """rate_limit {"code": 10006}: while `path` is limited, the reset time (ms) its answer carries."""
        until = self.uid_limited.get(path)
        if until is None:
            return None
        if now_ms >= until:
            del self.uid_limited[path]
            return None
        return until

    def place_late(self, req: OrderRequest, late_ms: int, before: Any = None, after: Any = None) -> None:
        """late_execute: the request answered "status unknown" and look-ups say -2013 until `late_ms`
        later, when the order reaches the matching engine after all (issue 11: an order that executes
        after the client's look-ups said "not found")."""
        from dataclasses import replace

        from bot.domain.types import TimeInForce
        from bot.venues.sim.orders import SimError

        s = self.server
        self.late_pending += 1

        fill = self.late_fill

        async def later() -> None:
            try:
                await asyncio.sleep(late_ms / 1000)
                now = s.engine_now_ns()
                ioc = req.time_in_force.value in ("IOC", "FOK") and req.kind.value == "LIMIT"
                # "fill" and an IOC/FOK limit: it must not expire before the market reaches its price
                if before is not None:  # the protocol's own book-keeping (Bybit: attached TP/SL)
                    before()
                o = s.ex.place_order(replace(req, time_in_force=TimeInForce.GTC) if fill and ioc else req,
                                     now_ns=now)
                if after is not None:
                    after(o)
                live = s.ex.orders.get(o.order_id)
                if live is not None and fill and ioc:
                    live.tif = req.time_in_force.value
                if fill and live is not None and live.is_open:
                    # "fill": the market comes to its price as it arrives: the rest fills at its own limit
                    # price as maker (a fill the client cannot avoid by cancelling)
                    s.ex._fill(live, live.remaining_lots, float(live.price_ticks), True, now)
            except SimError as e:  # e.g. the client re-used the id meanwhile (-4116): the late copy dies
                log.warning("sim_late_order_refused", cid=req.client_id, code=e.code, msg=e.msg)
            finally:
                self.late_pending -= 1

        task = asyncio.get_running_loop().create_task(later())
        s.late_tasks.add(task)
        task.add_done_callback(s.late_tasks.discard)

    def take_late_execute(self, opening: bool = True) -> int | None:
        """Milliseconds to hold the next new order before placing it, or None. `opening`: the order is
        not reduce-only (with `entries_only`, the others pass untouched)."""
        if self.late_execute and (opening or not self.entries_only):
            self.late_execute -= 1
            self._fired("late_execute")
            return self.late_ms
        return None

    def stream_allowed(self, msg: Message, ts_ns: int) -> bool:
        if self.freeze_until_ns:
            import time

            if time.time_ns() < self.freeze_until_ns:
                if (self.freeze_kind in ("all", msg.kind)) and self.freeze_symbol in ("", msg.symbol):
                    return False
            else:
                self.freeze_until_ns = 0
        if msg.kind == "depth" and self.gaps:
            for key in (msg.symbol, ""):
                n = self.gaps.get(key, 0)
                if n:
                    self.gaps[key] = n - 1
                    if n == 1:
                        del self.gaps[key]
                    return False
        return True

    def take_stop_rejection(self) -> tuple[int, str] | None:
        if self.reject_stops:
            self.reject_stops -= 1
            return self.reject_code, self.reject_msg
        return None

    def take_trade_restart(self) -> bool:
        if self.trade_restarts:
            self.trade_restarts -= 1
            self._fired("ws_trade_restart")
            return True
        return False

    def take_error_after_execute(self, opening: bool = True) -> int | None:
        if self.error_after_execute and (opening or not self.entries_only):
            self.error_after_execute -= 1
            self._fired("error_after_execute")
            return self.error_status
        return None

    # ------------------------------------------------------------------ HTTP
    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/_sim/fault", self._post_fault)
        app.router.add_get("/_sim/state", self._get_state)

    async def _post_fault(self, request: web.Request) -> web.Response:
        try:
            body = orjson.loads(await request.read())
            if not isinstance(body, dict):
                raise ValueError("expected a JSON object")
            return web.json_response(self.apply(body), dumps=lambda o: orjson.dumps(o).decode())
        except (ValueError, orjson.JSONDecodeError) as e:
            return web.json_response({"error": str(e), "kinds": list(KINDS)}, status=400)

    async def _get_state(self, request: web.Request) -> web.Response:
        s = self.server
        ex = s.ex
        books = {}
        for sym, m in ex.markets.items():
            bbo = m.book.bbo()
            books[sym] = {
                "status": m.sync.health.status.value, "last_update_id": m.sync.last_update_id,
                "best_bid": m.inst.ticks_to_price(bbo[0]) if bbo else None,
                "best_ask": m.inst.ticks_to_price(bbo[2]) if bbo else None,
                "mark": m.mark_ticks() * m.inst.tick, "last": m.last_ticks * m.inst.tick,
            }
        now = s.now_ms()
        ws_api = getattr(s, "ws_api", None)
        state = {
            "time": now,
            "account": wire.balance_body(ex, now)[0],
            "positions": wire.position_risk(ex, None, v3=True),
            "open_orders": [wire.order_body(ex, o) for o in ex.open_orders()],
            "open_algo_orders": [wire.algo_body(ex, a) for a in ex.open_algo_orders()],
            "books": books,
            "listen_keys": len(s.listen_keys),
            "connections": {r: sum(1 for c in s.conns if c.route == r) for r in (
                "public", "market", "all", "private", "bybit-public", "bybit-private", "bybit-trade", "ws-api")},
            "messages": s.messages,
            "requests": dict(s.requests),  # REST requests by "METHOD /path" since start, "WS <method>" (ws_api.py)
            # client ids placed over the WebSocket API (the last 1000), how many were never answered
            "ws_api": {"placed": list(ws_api.placed), "silenced": ws_api.silenced} if ws_api is not None else None,
            "source_done": s.source_done,
            "faults": {"skew_ms": self.skew_ms, "delay_orders_ms": self.delay_orders_ms,
                       "reject_next_stop": self.reject_stops, "error_after_execute": self.error_after_execute,
                       "gaps": self.gaps, "frozen": bool(self.freeze_until_ns),
                       "user_stream_muted": bool(self.mute_user_until_ns), "muted_events": self.muted_events,
                       "late_execute": self.late_execute, "late_pending": self.late_pending,
                       "ws_trade_restart": self.trade_restarts,
                       "outside_orders": self.outside_orders,
                       "rate_limited_until_ms": s.limits.limited_until_ms,
                       "rate_limit_armed": [f["on"] for f in self.armed_limits], "fired": self.fired,
                       "uid_limited": dict(self.uid_limited),
                       "banned_until_ms": s.limits.banned_until_ms},
        }
        streams = getattr(getattr(s, "bybit", None), "streams", None)
        if streams is not None:  # Bybit's orderbook.N.SYM streams: their last `u` (a drill's injected delta)
            state["bybit_book_u"] = {f"orderbook.{n}.{sym}": st.u for (sym, n), st in streams.books.items()}
        if request.query.get("history"):
            # every order, algo order and fill since start (drill checks: duplicate client ids, fills
            # the journal must hold); opt-in so the 50 ms state poll stays small
            state["orders"] = [{**wire.order_body(ex, o), "parentClientAlgoId": o.parent_client_id}
                               for o in ex.orders.values()]
            state["algo_orders"] = [wire.algo_body(ex, a) for a in ex.algos.values()]
            state["fills"] = [{"id": tid, "orderId": o.order_id, "clientOrderId": o.client_id, "symbol": o.symbol,
                               "side": o.side, "qty": ex.markets[o.symbol].inst.lots_to_qty(lots),
                               "price": px * ex.markets[o.symbol].inst.tick, "time": ts // 1_000_000}
                              for tid, o, lots, px, _fee, _rp, _maker, ts in ex.fills]
        return web.json_response(state, dumps=lambda o: orjson.dumps(o).decode())


def _bybit_result(body: Any) -> list[Any]:
    """Bybit v5's envelope {"retCode", "result": {...} or {"list": [...]}}: the objects `drop_field` reaches
    (the result, and each row of its list); nothing for a Binance body."""
    if not isinstance(body, dict) or "retCode" not in body or not isinstance(body.get("result"), dict):
        return []
    res = body["result"]
    rows = res.get("list")
    return [res, *(rows if isinstance(rows, list) else [])]
