"""The Bybit v5 (linear) conformance lifecycle, on the bot's own gateway and private stream (exchange-facts B2, B3).

Every step calls the code the bot trades with (`BybitGateway`: start, sync_clock, set_leverage, submit,
fetch_order_raw, cancel, position_raw; the private stream's `BybitEventTranslator`) and hands the venue's
raw answers to the bot's own parsers through `fields.watch` (`parse_instruments`, `order_update_from_rest`,
`position_from_rest`, the translator), so "a field the bot relies on" is whatever those parsers read.
Rate-limit headers are the three `BybitLimiter.on_response` reads on every private answer.

Orders are minimum size and far from the market, so nothing fills and no position is opened:
- a PostOnly BUY limit 3 % below the bid (placed, looked up by orderLinkId, cancelled; its `order` events);
- a conditional BUY market stop 10 % above the ask (`triggerPrice` + `triggerDirection` ascending: the
  shape the bot sends for a stop entry; placed, looked up, cancelled; Untriggered / Deactivated events);
- the same conditional order with its trigger below the market: refused with 110092/110093 "expect
  Rising/Falling", which the bot maps to StopWouldTrigger (errors.py) and its protective path relies on;
- the position's stop (`POST /v5/position/trading-stop`, the bot's only stop path on Bybit) sent with no
  position: refused with 10001 "zero position", which the stop desk relies on (ZeroPosition). Skipped when
  the account holds a position on the symbol: conformance never touches a real position's stop.
- against the loopback exchange only (a position is market risk anywhere else), on a flat symbol: the
  position's stop lifecycle on a minimum position (bybit_stop.py).
Not covered: amending an order (the bot never amends: it cancels and re-places, so its gateway has no
`/v5/order/amend` call). Everything the run placed is cancelled at the end (and the loopback position
closed), whatever failed.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

import orjson

from bot.conformance.base import (
    EVENT_WAIT_S,
    FAR_STOP_BPS,
    run_lifecycle,
)
from bot.conformance.base import check_fields as _fields
from bot.conformance.bybit_stop import POSITION_REST_OPTIONAL, PositionStopSteps
from bot.conformance.report import Deviation, Report, Step
from bot.domain.orders import OrderRequest, OrderUpdate
from bot.domain.types import OrderKind, OrderStatus, Side, TriggerPrice
from bot.venues.bybit.errors import TRIGGER_CROSSED_CODES, ZeroPosition, bybit_code
from bot.venues.bybit.gateway import BybitGateway
from bot.venues.bybit.orders import (
    order_update_from_rest,
    parse_instruments,
    position_from_rest,
    trading_stop_body,
)
from bot.venues.bybit.stopdesk import STOP_PATH
from bot.venues.bybit.userevents import BybitEventTranslator
from bot.venues.errors import StopWouldTrigger, VenueError

if TYPE_CHECKING:
    from bot.settings import Settings

__all__ = ["LIMIT_HEADERS", "run_bybit"]

# what BybitLimiter.on_response reads from every private answer (limiter.py; exchange-facts B2)
LIMIT_HEADERS = ("x-bapi-limit", "x-bapi-limit-status", "x-bapi-limit-reset-timestamp")


class _Run(PositionStopSteps):
    gw: BybitGateway
    stream_name = "private stream"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.gw = BybitGateway(settings.venue)
        tag = self.tag
        self.cid_limit = f"{tag}-lmt"
        self.cid_cond = f"{tag}-cnd"
        self.cid_bad = f"{tag}-bad"
        self.cid_entry, self.cid_sl, self.cid_exit = f"{tag}-in", f"{tag}-sl", f"{tag}-out"
        self.pos_lots = 0  # the loopback position's size (PositionStopSteps)
        self.sl_ticks = 0
        self.responses: list[tuple[str, int, dict[str, str]]] = []
        self.last_create: Any = None
        self.flat = False  # set by the position step: only a flat symbol gets the zero-position stop probe

    # ------------------------------------------------------------------ wiring
    def _wire(self) -> None:
        """Taps on the gateway's own paths (every response's headers, the raw create answers, the raw
        private events); nothing changes what the gateway does."""
        gw = self.gw
        ex = gw.ex
        assert ex is not None and gw.translator is not None
        on_response = ex.bot_on_response

        def tap_response(path: str, status: int, headers: dict[str, str], ret_code: int | None) -> None:
            self.responses.append((path, status, {k.lower(): v for k, v in (headers or {}).items()}))
            if on_response is not None:
                on_response(path, status, headers, ret_code)

        ex.bot_on_response = tap_response
        create = ex.privatePostV5OrderCreate

        async def tap_create(params: Any = None) -> Any:
            self.last_create = None
            body = await create(params or {})
            self.last_create = body
            return body

        ex.privatePostV5OrderCreate = tap_create
        tr = gw.translator
        on_message = tr.on_message

        def tap_message(raw: Any, ts_recv_ns: int) -> Any:
            try:
                msg = raw if isinstance(raw, dict) else orjson.loads(raw)
                if isinstance(msg, dict) and msg.get("topic"):
                    self.raw_events.append(msg)
            except Exception:  # a bad frame is the translator's to report, not ours
                pass
            return on_message(raw, ts_recv_ns)

        tr.on_message = tap_message  # type: ignore[method-assign]

    def _probe(self, cid: str, kind: OrderKind) -> BybitEventTranslator:
        t = BybitEventTranslator(self.gw.instruments, 0, self.gw.position_idx)
        t.expect(cid, kind)
        return t

    def _event_of(self, cid: str, kind: OrderKind, status: OrderStatus) -> dict[str, Any] | None:
        """The raw `order` message that says `cid` is `status`, as a fresh translator reads it."""
        for msg in self.raw_events:
            if not str(msg.get("topic", "")).startswith("order"):
                continue
            for d in msg.get("data") or []:
                if not isinstance(d, dict) or d.get("orderLinkId") != cid:
                    continue
                one = {**msg, "data": [d]}
                try:
                    got = self._probe(cid, kind).on_message(dict(one), time.time_ns())
                except Exception:  # not the event we look for; a bad one fails its own wait
                    continue
                if any(isinstance(u, OrderUpdate) and u.client_id == cid and u.status is status for u in got):
                    return one
        return None

    # ------------------------------------------------------------------ steps
    async def instruments(self) -> str:
        ex = self.gw.ex
        assert ex is not None
        # the route load_markets read at start, asked again for the symbol: its raw answer, not ccxt's copy
        body = await self.gw.call("/v5/market/instruments-info", ex.publicGetV5MarketInstrumentsInfo,
                                  {"category": "linear", "symbol": self.symbol})
        _fields("GET /v5/market/instruments-info", lambda b: parse_instruments(b["result"]["list"]), body)
        if self.symbol not in parse_instruments(((body.get("result") or {}).get("list")) or []):
            raise Deviation(f"GET /v5/market/instruments-info: no usable row for {self.symbol}")
        return self.filters_verdict("GET /v5/market/instruments-info", ("tick_size", "step_size", "min_qty"))

    async def server_time(self) -> str:
        body = await self.clock_answer("publicGetV5MarketTime")

        def parse(b: Any) -> object:  # BybitGateway.sync_clock's reading
            nano = (b.get("result") or {}).get("timeNano")
            return int(nano) / 1e6 if nano else float(b["time"])

        _fields("GET /v5/market/time", parse, body)
        return self.clock_verdict("GET /v5/market/time")

    async def leverage(self) -> str:
        lev = self.s.risk.max_leverage
        await self.gw.set_leverage(self.symbol, lev)  # 110043 "not modified" is success (NotModified)
        return f"{self.symbol} leverage {lev}x"

    async def position(self) -> str:
        raw = await self.gw.position_raw(self.symbol)
        if raw is None:
            raise Deviation(f"GET /v5/position/list: no one-way (positionIdx 0) row for {self.symbol}")
        inst = self.gw.instrument(self.symbol)
        _fields("GET /v5/position/list", lambda b: (position_from_rest(b, inst), float(b.get("stopLoss") or 0)),
                raw, POSITION_REST_OPTIONAL)
        snap = position_from_rest(raw, inst)
        self.flat = snap.qty_lots == 0
        return f"{self.symbol} position {inst.lots_to_str(abs(snap.qty_lots))} ({'flat' if self.flat else 'open'})"

    async def _bbo(self) -> tuple[float, float]:
        ex = self.gw.ex
        assert ex is not None
        res = await ex.publicGetV5MarketTickers({"category": "linear", "symbol": self.symbol})
        t = ((res.get("result") or {}).get("list") or [{}])[0]
        return float(t["bid1Price"]), float(t["ask1Price"])

    async def _place(self, req: OrderRequest) -> str:
        where = "POST /v5/order/create"
        ack = await self.gw.submit(req)
        # BybitGateway.submit reads the order id from the answer's `result` (ccxt's `info`)
        _fields(where, lambda b: str(b["result"]["orderId"]), self.last_create)
        if not ack.venue_order_id:
            raise Deviation(f"{where}: no order id in the answer")
        if ack.status is not OrderStatus.NEW:
            raise Deviation(f"{where}: status {ack.status.value}, expected NEW")
        return f"{req.client_id} id {ack.venue_order_id}"

    async def place_limit(self) -> str:
        req = self.far_limit(self.cid_limit, (await self._bbo())[0])
        price = self.gw.instrument(self.symbol).ticks_to_str(req.price_ticks or 0)
        return await self._place(req) + f" PostOnly at {price}"

    def _conditional(self, cid: str, trigger_ticks: int) -> OrderRequest:
        lots = self.min_lots(trigger_ticks * self.gw.instrument(self.symbol).tick)
        return OrderRequest(cid, self.symbol, Side.BUY, OrderKind.STOP_MARKET, lots, trigger_ticks=trigger_ticks)

    async def place_conditional(self) -> str:
        _, ask = await self._bbo()
        inst = self.gw.instrument(self.symbol)
        trigger = int(ask * (1 + FAR_STOP_BPS / 10_000) / inst.tick)
        return await self._place(self._conditional(self.cid_cond, trigger)) + f" trigger {inst.ticks_to_str(trigger)}"

    async def stream(self, cid: str, kind: OrderKind, status: OrderStatus) -> str:
        deadline = time.monotonic() + EVENT_WAIT_S
        msg = await self.wait_for(
            lambda: self._event_of(cid, kind, status),
            lambda: (f"private stream: no `order` event saying {cid} is {status.value} within "
                     f"{EVENT_WAIT_S:.0f} s ({len(self.raw_events)} events seen)"), deadline)
        _fields("private stream `order`", lambda b: self._probe(cid, kind).on_message(b, time.time_ns()), msg)
        word = msg["data"][0].get("orderStatus")
        if status is not OrderStatus.NEW:
            await self.gateway_published(cid, status, "private stream", deadline)
        return f"`order` {word} -> {status.value} for {cid}"

    async def lookup(self, cid: str, want: OrderStatus) -> str:
        where = "GET /v5/order/realtime" if want is OrderStatus.NEW else "GET /v5/order/realtime|history"
        raw = await self.gw.fetch_order_raw(self.symbol, cid)
        if raw is None:
            raise Deviation(f"{where}: {cid} not found by its orderLinkId")
        inst = self.gw.instrument(self.symbol)
        parse: Callable[[Any], OrderUpdate] = lambda b: order_update_from_rest(b, inst, time.time_ns())  # noqa: E731
        _fields(where, parse, raw)
        u = parse(raw)
        if u.status is not want:
            raise Deviation(f"{where}: {cid} is {u.status.value} ({raw.get('orderStatus')}), expected {want.value}")
        return f"{cid} {raw.get('orderStatus')}"

    async def cancel(self, cid: str) -> str:
        await self.gw.cancel(self.symbol, cid)
        return await self.lookup(cid, OrderStatus.CANCELED)

    async def would_trigger(self) -> str:
        where = "POST /v5/order/create"
        bid, _ = await self._bbo()
        inst = self.gw.instrument(self.symbol)
        trigger = int(bid * (1 - FAR_STOP_BPS / 10_000) / inst.tick)  # a rising stop already below the price
        codes = "/".join(str(c) for c in sorted(TRIGGER_CROSSED_CODES))
        try:
            await self.gw.submit(self._conditional(self.cid_bad, trigger))
        except StopWouldTrigger as e:
            return f"refused with {e.code} (the bot's StopWouldTrigger)"
        except VenueError as e:
            raise Deviation(f"{where}: error code {codes} expected, got {_code(e)}") from e
        await self.gw.cancel(self.symbol, self.cid_bad)
        raise Deviation(f"{where}: a rising stop below the market was accepted; {codes} expected")

    async def zero_position_stop(self) -> str:
        where = f"POST {STOP_PATH}"
        gw = self.gw
        ex = gw.ex
        assert ex is not None
        bid, _ = await self._bbo()
        inst = gw.instrument(self.symbol)
        stop = inst.ticks_to_str(int(bid * (1 - FAR_STOP_BPS / 10_000) / inst.tick))
        # the body the stop desk sends (orders.trading_stop_body), on a flat symbol: nothing to protect
        body = trading_stop_body(self.symbol, stop, TriggerPrice.MARK, gw.position_idx)  # the bot's stops: MARK
        try:
            await gw.call(STOP_PATH, ex.privatePostV5PositionTradingStop, body, placing=True)
        except ZeroPosition as e:
            return f"refused with {e.code} zero position (the stop desk's ZeroPosition)"
        except VenueError as e:
            raise Deviation(f"{where}: error 10001 \"zero position\" expected, got {_code(e)}") from e
        raise Deviation(f"{where}: a stop on a flat symbol was accepted; 10001 \"zero position\" expected")

    async def headers(self) -> str:
        private = [(p, h) for p, status, h in self.responses
                   if 200 <= status < 300 and not p.startswith("/v5/market/")]
        if not private:
            raise Deviation("no private answer seen")
        missing: dict[str, set[str]] = {}
        for p, h in private:
            for name in LIMIT_HEADERS:
                if name not in h:
                    missing.setdefault(name, set()).add(p)
        if missing:
            raise Deviation("; ".join(f"header `{n}` missing on {', '.join(sorted(ps))}"
                                      for n, ps in sorted(missing.items())))
        return f"{', '.join(LIMIT_HEADERS)} on {len(private)} private answers"

    def cleanup_orders(self) -> Iterable[Awaitable[Any]]:
        return [self.gw.cancel(self.symbol, cid) for cid in (self.cid_limit, self.cid_cond, self.cid_bad)]

    async def cleanup(self) -> None:
        await super().cleanup()
        if self.pos_lots and self.s.venue.environment == "exchange-sim":  # the loopback position, if still open
            try:
                raw = await self.gw.position_raw(self.symbol)
                lots = self.gw.instrument(self.symbol).qty_to_lots((raw or {}).get("size") or "0")
                if lots:
                    await self.gw.submit(OrderRequest(f"{self.cid_exit}2", self.symbol, Side.SELL, OrderKind.MARKET,
                                                      lots, reduce_only=True))
            except Exception:  # best effort: the failed steps say the position was not closed
                pass


def _code(e: Exception) -> object:
    """The retCode of a translated refusal (OrderRejected keeps it; the others carry it in their text)."""
    return getattr(e, "code", None) or bybit_code(e) or type(e).__name__


async def run_bybit(settings: Settings) -> Report:
    rep = Report(settings.venue.name, settings.venue.environment)
    run = _Run(settings)

    async def steps() -> None:
            await rep.step("GET /v5/market/instruments-info: instrument filters", run.instruments)
            await rep.step("GET /v5/market/time: server time and clock skew", run.server_time)
            await rep.step("POST /v5/position/set-leverage", run.leverage)
            await rep.step("GET /v5/position/list: the symbol's position", run.position)
            L, C = run.cid_limit, run.cid_cond
            lim, cond = OrderKind.LIMIT, OrderKind.STOP_MARKET
            if await rep.step("POST /v5/order/create: PostOnly limit far from the market", run.place_limit):
                await rep.step("private stream: limit New", lambda: run.stream(L, lim, OrderStatus.NEW))
                await rep.step("GET /v5/order/realtime: the limit by its orderLinkId",
                               lambda: run.lookup(L, OrderStatus.NEW))
                await rep.step("POST /v5/order/cancel: cancel the limit", lambda: run.cancel(L))
                await rep.step("private stream: limit Cancelled", lambda: run.stream(L, lim, OrderStatus.CANCELED))
            if await rep.step("POST /v5/order/create: conditional stop far from the market", run.place_conditional):
                await rep.step("private stream: conditional Untriggered", lambda: run.stream(C, cond, OrderStatus.NEW))
                await rep.step("GET /v5/order/realtime: the conditional by its orderLinkId",
                               lambda: run.lookup(C, OrderStatus.NEW))
                await rep.step("POST /v5/order/cancel: cancel the conditional", lambda: run.cancel(C))
                await rep.step("private stream: conditional Deactivated",
                               lambda: run.stream(C, cond, OrderStatus.CANCELED))
            await rep.step("POST /v5/order/create: a stop that would trigger at once", run.would_trigger)
            if run.flat:
                await rep.step(f"POST {STOP_PATH}: the position's stop with no position", run.zero_position_stop)
            else:
                rep.steps.append(_note(f"POST {STOP_PATH}: the position's stop with no position",
                                       "not run: the account holds a position on the symbol (its stop is not touched)"))
            stop_steps = ("POST /v5/order/create: a market entry with an attached stopLoss (exchange-sim only)",
                          f"POST {STOP_PATH}: the stop leg moves the position's stop",
                          "private stream: `position` with the moved stopLoss",
                          "POST /v5/order/create: reduce-only close; the stop goes with the position")
            if not run.flat or settings.venue.environment != "exchange-sim":
                rep.steps.append(_note(stop_steps[0], "not run: it opens a position (market risk) and runs only "
                                       "against the loopback exchange on a flat symbol"))
            elif await rep.step(stop_steps[0], run.open_with_attached_stop):
                if await rep.step(stop_steps[1], run.move_stop):
                    await rep.step(stop_steps[2], run.position_event)
                await rep.step(stop_steps[3], run.close_position)
            await rep.step("rate-limit headers", run.headers)

    return await run_lifecycle(rep, run, "connect: instruments-info, clock, private stream", steps)


def _note(name: str, detail: str) -> Step:
    return Step(name, True, detail, 0.0)
