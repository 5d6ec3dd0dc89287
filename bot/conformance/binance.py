"""The Binance USD-M conformance lifecycle, on the bot's own gateway and user stream (exchange-facts A2-A5).

Every step calls the code the bot trades with (`BinanceGateway`: start, sync_clock, set_leverage, submit,
fetch_order, cancel; the user stream's `UserEventTranslator`) and hands the venue's raw answers to the
bot's own parsers through `fields.watch`, so "a field the bot relies on" is whatever those parsers read.
Rate-limit headers are the ones `TradeLimiter` reads (limiter.WEIGHT_HEADER / ORDER_HEADERS).

Orders are minimum size and far from the market: a post-only (GTX) BUY limit `far_bps` below the bid (it
rests, never fills; Binance's PERCENT_PRICE filter bounds how far a limit may be, ~5 % on majors, so 3 %),
and a closePosition SELL STOP_MARKET 10 % below the bid (never triggers in the seconds it lives). A SELL
stop above the market is refused with -2021 "Order would immediately trigger" (A3): the bot's protective
path depends on that code, so the step checks it. Everything the run placed is cancelled at the end,
whatever failed. Orders are not amended: the bot never amends (it cancels and re-places), so neither the
gateway nor the loopback exchange has `PUT /fapi/v1/order`, and there is no amend step.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Iterable
from typing import TYPE_CHECKING, Any

import orjson

from bot.conformance.base import (
    EVENT_WAIT_S,
    FAR_STOP_BPS,
    RunBase,
    run_lifecycle,
)
from bot.conformance.base import check_fields as _fields
from bot.conformance.report import Deviation, Report
from bot.domain.orders import OrderRequest, OrderUpdate
from bot.domain.types import OrderKind, OrderStatus, Side
from bot.venues.binance_usdm.gateway import BinanceGateway
from bot.venues.binance_usdm.instruments import parse_exchange_info
from bot.venues.binance_usdm.limiter import ORDER_HEADERS, WEIGHT_HEADER, TradeLimiter
from bot.venues.binance_usdm.orders import ALGO_OPTIONAL, ORDER_OPTIONAL
from bot.venues.binance_usdm.userevents import USER_EVENT_OPTIONAL, UserEventTranslator
from bot.venues.errors import OrderRejected

if TYPE_CHECKING:
    from bot.settings import Settings

__all__ = ["run_binance"]


class _Run(RunBase):
    gw: BinanceGateway

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.gw = BinanceGateway(settings.venue)
        self.cid_limit = f"{self.tag}-lmt"
        self.cid_stop = f"{self.tag}-sl"
        self.cid_bad = f"{self.tag}-bad"
        self.responses: list[tuple[int, dict[str, str], bool]] = []
        self.last_body: dict[str, Any] = {}

    # ------------------------------------------------------------------ wiring
    def _wire(self) -> None:
        """Taps on the gateway's own paths: every response's headers, the raw order answers, the raw
        user-stream events and the updates the engine would get. Nothing changes what the gateway does."""
        gw = self.gw
        ex = gw.ex
        assert ex is not None and gw._signer is not None and gw.translator is not None
        on_response = ex.bot_on_response

        def tap_response(status: int, headers: dict[str, str], placing: bool = False, code: int | None = None
                         ) -> None:
            self.responses.append((status, {k.lower(): v for k, v in (headers or {}).items()}, placing))
            if on_response is not None:
                on_response(status, headers, placing, code)

        ex.bot_on_response = tap_response
        signer = gw._signer
        post = signer.post

        async def tap_post(path: str, params: dict[str, str]) -> Any:
            body = await post(path, params)
            self.last_body = body if isinstance(body, dict) else {}
            return body

        signer.post = tap_post  # type: ignore[method-assign]
        tr = gw.translator
        on_message = tr.on_message

        def tap_message(raw: Any, ts_recv_ns: int) -> Any:
            try:
                msg = raw if isinstance(raw, dict) else orjson.loads(raw)
                self.raw_events.append(msg.get("data", msg) if "stream" in msg else msg)
            except Exception:  # a bad frame is the translator's to report, not ours
                pass
            return on_message(raw, ts_recv_ns)

        tr.on_message = tap_message  # type: ignore[method-assign]

    def _event_of(self, cid: str, status: OrderStatus, conditional: bool) -> dict[str, Any] | None:
        """The raw event that says `cid` is `status`, as the bot's translator reads it (a fresh one: the
        gateway's own drops a NEW it already knows from the order's answer, which is right for the engine
        but would hide the event from this check)."""
        insts = self.gw.instruments
        for msg in self.raw_events:
            probe = UserEventTranslator(insts, 0)
            probe.expect(cid, conditional)
            try:
                got = probe.on_message(dict(msg), time.time_ns())
            except Exception:  # not the event we look for; a bad one fails its own wait
                continue
            if any(isinstance(u, OrderUpdate) and u.client_id == cid and u.status is status for u in got):
                return msg
        return None

    # ------------------------------------------------------------------ steps
    async def exchange_info(self) -> str:
        ex = self.gw.ex
        assert ex is not None
        info = dict(ex.bot_exchange_info or {})
        info["symbols"] = [s for s in info.get("symbols", []) if s.get("symbol") == self.symbol]

        def parse(b: Any) -> object:
            TradeLimiter().set_limits_from_exchange_info(b)
            return parse_exchange_info(b)

        _fields("GET /fapi/v1/exchangeInfo", parse, info)
        return self.filters_verdict("GET /fapi/v1/exchangeInfo", ("tick_size", "step_size", "min_qty", "min_notional"))

    async def server_time(self) -> str:
        body = await self.clock_answer("fapiPublicGetTime")
        _fields("GET /fapi/v1/time", lambda b: float(b["serverTime"]), body)
        return self.clock_verdict("GET /fapi/v1/time")

    async def leverage(self) -> str:
        lev = self.s.risk.max_leverage
        await self.gw.set_leverage(self.symbol, lev)
        return f"{self.symbol} leverage {lev}x"

    async def _bbo(self) -> tuple[float, float]:
        ex = self.gw.ex
        assert ex is not None
        t = await ex.fapiPublicGetTickerBookTicker({"symbol": self.symbol})
        return float(t["bidPrice"]), float(t["askPrice"])

    async def _place(self, req: OrderRequest, conditional: bool) -> str:
        where = "POST /fapi/v1/algoOrder" if conditional else "POST /fapi/v1/order"
        ack = await self.gw.submit(req)
        inst = self.gw.instrument(self.symbol)
        if conditional:
            from bot.venues.binance_usdm.orders import algo_update_from_rest as parse_rest
        else:
            from bot.venues.binance_usdm.orders import order_update_from_rest as parse_rest
        body = self.last_body
        _fields(where, lambda b: (parse_rest(b, inst), self.gw._ack(req, b)), body,
                ALGO_OPTIONAL if conditional else ORDER_OPTIONAL)
        if not ack.venue_order_id:
            raise Deviation(f"{where}: no order id in the answer")
        if ack.status is not OrderStatus.NEW:
            raise Deviation(f"{where}: status {ack.status.value}, expected NEW")
        return f"{req.client_id} id {ack.venue_order_id} {ack.status.value}"

    async def place_limit(self) -> str:
        req = self.far_limit(self.cid_limit, (await self._bbo())[0])
        inst = self.gw.instrument(self.symbol)
        return await self._place(req, conditional=False) + f" at {inst.ticks_to_str(req.price_ticks or 0)}"

    async def place_stop(self) -> str:
        bid, _ = await self._bbo()
        inst = self.gw.instrument(self.symbol)
        trigger = int(bid * (1 - FAR_STOP_BPS / 10_000) / inst.tick)
        req = OrderRequest(self.cid_stop, self.symbol, Side.SELL, OrderKind.STOP_MARKET, 0,
                           trigger_ticks=trigger, close_position=True)
        return await self._place(req, conditional=True) + f" trigger {inst.ticks_to_str(trigger)}"

    async def stream(self, cid: str, status: OrderStatus, conditional: bool) -> str:
        deadline = time.monotonic() + EVENT_WAIT_S
        msg = await self.wait_for(
            lambda: self._event_of(cid, status, conditional),
            lambda: (f"user stream: no event saying {cid} is {status.value} within {EVENT_WAIT_S:.0f} s "
                     f"({len(self.raw_events)} events seen)"), deadline)
        insts = self.gw.instruments

        def parse(b: Any) -> object:
            t = UserEventTranslator(insts, 0)
            t.expect(cid, conditional)
            return t.on_message(b, time.time_ns())

        event = str(msg.get("e"))
        _fields(f"user stream {event}", parse, msg, USER_EVENT_OPTIONAL)
        if status is not OrderStatus.NEW:
            await self.gateway_published(cid, status, f"user stream {event}", time.monotonic() + EVENT_WAIT_S)
        return f"{event} {status.value} for {cid}"

    async def lookup(self, cid: str, conditional: bool, want: OrderStatus) -> str:
        where = "GET /fapi/v1/algoOrder" if conditional else "GET /fapi/v1/order"
        raw = await self.gw.fetch_order_raw(self.symbol, cid, conditional)
        if raw is None:
            raise Deviation(f"{where}: {cid} not found by its client id")
        inst = self.gw.instrument(self.symbol)
        from bot.venues.binance_usdm.orders import algo_update_from_rest, order_update_from_rest

        parse = algo_update_from_rest if conditional else order_update_from_rest
        _fields(where, lambda b: parse(b, inst), raw, ALGO_OPTIONAL if conditional else ORDER_OPTIONAL)
        u = parse(raw, inst)
        if u.status is not want:
            raise Deviation(f"{where}: {cid} is {u.status.value}, expected {want.value}")
        return f"{cid} {u.status.value}"

    async def cancel(self, cid: str, conditional: bool) -> str:
        await self.gw.cancel(self.symbol, cid, conditional)
        return await self.lookup(cid, conditional, OrderStatus.CANCELED)

    async def would_trigger(self) -> str:
        _, ask = await self._bbo()
        inst = self.gw.instrument(self.symbol)
        trigger = int(ask * (1 + FAR_STOP_BPS / 10_000) / inst.tick)
        req = OrderRequest(self.cid_bad, self.symbol, Side.SELL, OrderKind.STOP_MARKET, 0,
                           trigger_ticks=trigger, close_position=True)
        try:
            await self.gw.submit(req)
        except OrderRejected as e:
            if e.code != -2021:
                raise Deviation(f"POST /fapi/v1/algoOrder: error code -2021 expected, got {e.code}") from e
            return "refused with -2021 (Order would immediately trigger)"
        await self.gw.cancel(self.symbol, self.cid_bad, True)
        raise Deviation("POST /fapi/v1/algoOrder: a SELL stop above the market was accepted; -2021 expected")

    async def headers(self) -> str:
        ok = [(h, placing) for status, h, placing in self.responses if 200 <= status < 300]
        if not ok:
            raise Deviation("no successful response seen")
        no_weight = sum(1 for h, _ in ok if WEIGHT_HEADER not in h)
        orders = [h for h, placing in ok if placing]
        missing_order = sorted({name for h in orders for name in ORDER_HEADERS if name not in h})
        problems = []
        if no_weight:
            problems.append(f"header `{WEIGHT_HEADER}` missing on {no_weight} of {len(ok)} responses")
        if not orders:
            problems.append("no order placement answered")
        if missing_order:
            problems.append(f"order placement: header{'s' if len(missing_order) > 1 else ''} "
                            + ", ".join(f"`{n}`" for n in missing_order) + " missing")
        if problems:
            raise Deviation("; ".join(problems))
        return f"{WEIGHT_HEADER} on {len(ok)} responses, order counts on {len(orders)} placements"

    def cleanup_orders(self) -> Iterable[Awaitable[Any]]:
        for cid, conditional in ((self.cid_limit, False), (self.cid_stop, True), (self.cid_bad, True)):
            yield self.gw.cancel(self.symbol, cid, conditional)


async def run_binance(settings: Settings) -> Report:
    rep = Report(settings.venue.name, settings.venue.environment)
    run = _Run(settings)

    async def steps() -> None:
        await rep.step("GET /fapi/v1/exchangeInfo: instrument filters and rate limits", run.exchange_info)
        await rep.step("GET /fapi/v1/time: server time and clock skew", run.server_time)
        await rep.step("POST /fapi/v1/leverage", run.leverage)
        L, S = run.cid_limit, run.cid_stop
        if await rep.step("POST /fapi/v1/order: post-only limit far from the market", run.place_limit):
            await rep.step("user stream: limit NEW", lambda: run.stream(L, OrderStatus.NEW, False))
            await rep.step("GET /fapi/v1/order: the limit by its client id",
                           lambda: run.lookup(L, False, OrderStatus.NEW))
            await rep.step("DELETE /fapi/v1/order: cancel the limit", lambda: run.cancel(L, False))
            await rep.step("user stream: limit CANCELED", lambda: run.stream(L, OrderStatus.CANCELED, False))
        if await rep.step("POST /fapi/v1/algoOrder: closePosition stop far from the market", run.place_stop):
            await rep.step("user stream: stop NEW", lambda: run.stream(S, OrderStatus.NEW, True))
            await rep.step("GET /fapi/v1/algoOrder: the stop by its client id",
                           lambda: run.lookup(S, True, OrderStatus.NEW))
            await rep.step("DELETE /fapi/v1/algoOrder: cancel the stop", lambda: run.cancel(S, True))
            await rep.step("user stream: stop CANCELED", lambda: run.stream(S, OrderStatus.CANCELED, True))
        await rep.step("POST /fapi/v1/algoOrder: a stop that would trigger at once", run.would_trigger)
        await rep.step("rate-limit headers", run.headers)

    return await run_lifecycle(rep, run, "connect: exchangeInfo, clock, user stream", steps)
