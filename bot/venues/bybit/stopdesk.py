"""The trade machine's stop legs on Bybit's position stop: set, move, end, verify (the gateway's I/O half
of stops.py; exchange-facts B3).

- `place(req)`: a STOP_MARKET reduce-only -> `POST /v5/position/trading-stop` (tpslMode Full). 34040
  "not modified" means the position already has that stop (the entry's attached one): success. A
  10001 "zero position" while stop activity of the symbol is held means the attached stop fired before
  this leg was set: the leg is that stop (acknowledged TRIGGERED, the held fills follow); without such
  activity it is asked once more after 200 ms (a fill heard before Bybit booked the position), then
  rejected (the machine flattens and halts the symbol: never a position without a stop). An ambiguous
  answer is checked on the position, and sent once more only if the position does not show it
  (setting a stop is idempotent: a second identical request cannot double anything).
- `end(symbol, cid)`: the machine cancels a stop leg. The owner's cancel removes the position's stop
  (stopLoss "0"); a superseded leg's cancel sends nothing (the one stop was moved away from it). Either
  way the leg's end (CANCELED) is published here: no stream event will ever carry it.
- `verify(symbol, owner)`: the stream saw an open position without a stop; if REST agrees, the owner
  leg is reported CANCELED (the machine then flattens and halts the symbol).
- `adopt(req, since_ns)`: after a restart, a journal trade's live stop leg is the position's stop again.
- `lookup(symbol, cid)` (fetch_order of a stop leg): CANCELED when superseded or removed; NEW while the
  position shows its price; FILLED with the fills of the system stop order when the stop fired while we
  were not listening (a StopLoss execution since the leg was set, or since the trade's first fill for an
  adopted leg); EXPIRED when the position is flat and the stop did not fire (it ended with the position,
  e.g. closed by hand); None otherwise (the venue has no such stop: reconciliation places one again).
- `listed_as(symbol, trigger_ticks)`: which leg a position stop listed by GET /v5/order/realtime stands
  for: the owner when the venue's trigger is the owner's (or a move to it is under way), else nobody
  ("": set by hand, or our last request never reached the venue).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from bot.domain.instrument import Instrument
from bot.domain.orders import OrderAck, OrderRequest, OrderUpdate
from bot.domain.types import OrderStatus
from bot.logging import get_logger
from bot.venues.bybit.errors import ClockUnsynced, NotModified, ZeroPosition
from bot.venues.bybit.fills import EXECUTIONS, execution_rows, stop_fill
from bot.venues.bybit.orders import clear_stop_body, price_str, trading_stop_body
from bot.venues.errors import AmbiguousOutcome, RateLimited, VenueUnavailable

if TYPE_CHECKING:
    from bot.venues.bybit.gateway import BybitGateway

__all__ = ["STOP_PATH", "StopDesk"]

STOP_PATH = "/v5/position/trading-stop"


class StopDesk:
    def __init__(self, gw: BybitGateway) -> None:
        self.gw = gw
        self.reqs: dict[str, OrderRequest] = {}
        self.since_ms: dict[str, int] = {}  # stop leg -> exchange time from which a StopLoss fill is its firing
        self.pending: set[str] = set()  # trading-stop requests under way
        self._ended: set[str] = set()
        self.zero_position_retry_s = 0.2
        self._log = get_logger("bybit.stops")

    async def place(self, req: OrderRequest, inst: Instrument) -> OrderAck:
        if req.trigger_ticks is None:
            raise ValueError("STOP_MARKET needs trigger_ticks")
        gw, tr, sym = self.gw, self.gw.tr, req.symbol
        body = trading_stop_body(sym, price_str(inst, req.trigger_ticks), req.working_type, gw.position_idx)
        tr.expect(req.client_id, req.kind)
        tr.stops.begin(sym, req.client_id)
        self.reqs[req.client_id] = req
        # the venue cannot fire this stop before it receives it (an earlier stop's fill is not this one's)
        self.since_ms.setdefault(req.client_id, int(gw.clock.now_exchange_ms(time.time() * 1000.0)))
        gw.stats["stops"] += 1
        self.pending.add(req.client_id)
        try:
            return await self._place(req, body)
        finally:
            self.pending.discard(req.client_id)

    async def _place(self, req: OrderRequest, body: dict[str, Any]) -> OrderAck:
        gw, tr, sym = self.gw, self.gw.tr, req.symbol
        ex = gw._ex()
        status = OrderStatus.NEW
        for attempt in (0, 1):
            try:
                await gw.call(STOP_PATH, ex.privatePostV5PositionTradingStop, body, placing=True)
            except NotModified:
                pass  # 34040: the position already has exactly this stop
            except ClockUnsynced as err:
                await gw.clock_refused(err)
                if attempt == 0:
                    continue  # 10002: refused before processing
                raise
            except ZeroPosition:
                if tr.stops.has_held(sym):
                    status = OrderStatus.TRIGGERED  # the attached stop fired before this leg was set: it is it
                elif attempt == 0:
                    # The machine sets its stop on the first fill it hears of; a position Bybit has not
                    # booked yet answers "zero position". Refused, so nothing was done: ask once more.
                    await asyncio.sleep(self.zero_position_retry_s)
                    continue
                else:
                    raise
            except AmbiguousOutcome as err:
                gw.stats["ambiguous"] += 1
                if not await self.has_stop(sym, body["stopLoss"]):
                    if attempt == 0:
                        continue
                    raise AmbiguousOutcome(f"{req.client_id}: stop not visible on the position ({err})") from err
                gw.stats["ambiguous_found"] += 1
            break
        old, released = tr.confirm_stop(sym, req.client_id, req.trigger_ticks)
        for u in released:
            gw.publish(u)
            if u.status is not OrderStatus.NEW:
                status = OrderStatus.TRIGGERED
        if old:
            self._log.info("position stop moved", symbol=sym, old=old, new=req.client_id, stop=body["stopLoss"])
        return OrderAck(req.client_id, "", status, time.time_ns())

    async def has_stop(self, symbol: str, stop_price: str) -> bool:
        try:
            p = await self.gw.position_raw(symbol)
        except (VenueUnavailable, RateLimited):
            return False
        return p is not None and float(p.get("stopLoss") or 0) == float(stop_price)

    async def end(self, symbol: str, cid: str) -> None:
        gw, stops = self.gw, self.gw.tr.stops
        if stops.owner(symbol) == cid:
            # no position (the stop went with it) / no stop: nothing to remove
            with contextlib.suppress(ZeroPosition, NotModified):
                await gw.call(STOP_PATH, gw._ex().privatePostV5PositionTradingStop,
                              clear_stop_body(symbol, gw.position_idx), placing=True)
            stops.clear(symbol, cid)
            reason = "position stop removed"
        else:
            reason = f"superseded: the position's stop is {stops.owner(symbol) or 'gone'}"
        self.report_ended(symbol, cid, reason)

    def report_ended(self, symbol: str, cid: str, reason: str) -> None:
        if cid in self._ended:
            return
        self._ended.add(cid)
        u = self.state(symbol, cid, OrderStatus.CANCELED, reason)
        if u is not None:
            self.gw.publish(u)

    def state(self, symbol: str, cid: str, status: OrderStatus, reason: str = "") -> OrderUpdate | None:
        req = self.reqs.get(cid)
        if req is None:
            return None
        return OrderUpdate(cid, "", symbol, req.side, req.kind, status, req.qty_lots, 0, 0.0, reduce_only=True,
                           reason=reason, ts_recv_ns=time.time_ns())

    def adopt(self, req: OrderRequest, since_ns: int) -> None:
        """A restored stop leg owns the position's stop again (see BybitGateway.adopt_stop)."""
        if req.trigger_ticks is None:  # a journal row without its price: not ours to own; reconcile replaces it
            self._log.error("stop leg without a trigger price not adopted", client_id=req.client_id)
            return
        tr = self.gw.tr
        tr.expect(req.client_id, req.kind)
        self.reqs[req.client_id] = req
        if since_ns:
            self.since_ms[req.client_id] = since_ns // 1_000_000
        for u in tr.stops.adopt(req.symbol, req.client_id, req.trigger_ticks):
            if since_ns and u.ts_event_ns and u.ts_event_ns < since_ns:
                u = replace(u, client_id="", parent_id="")  # an earlier position's stop: not this trade's
            self.gw.publish(u)

    async def lookup(self, symbol: str, cid: str) -> OrderUpdate | None:
        """fetch_order of a stop leg (module docstring). Venue errors propagate: no guess."""
        stops = self.gw.tr.stops
        if cid in stops.superseded or cid in stops.cleared:
            return self.state(symbol, cid, OrderStatus.CANCELED, "superseded")
        if stops.owner(symbol) != cid:
            return None
        ticks = stops.ticks(symbol)
        p = await self.gw.position_raw(symbol)
        flat = p is None or float(p.get("size") or 0) == 0
        if p is not None and not flat and ticks is not None and \
                float(p.get("stopLoss") or 0) == float(price_str(self.gw.instrument(symbol), ticks)):
            stops.verified(cid)
            return self.state(symbol, cid, OrderStatus.NEW)
        got = await self.fired(symbol, cid)
        if got is None and flat and cid not in self.pending:
            # B3: the position's stop ends with the position (closed by hand, by a target, by an exit of
            # ours): it did not fire and the venue has nothing to show for it -- expired, not "never placed"
            stops.clear(symbol, cid)
            self._ended.add(cid)
            return self.state(symbol, cid, OrderStatus.EXPIRED, "ended with the position")
        return got

    async def fired(self, symbol: str, cid: str) -> OrderUpdate | None:
        """The position's stop fired as `cid`: the system stop order's fills since the leg's start."""
        req, since = self.reqs.get(cid), self.since_ms.get(cid)
        if req is None or since is None:
            return None
        gw = self.gw
        ex = gw._ex()
        rows = await execution_rows(lambda q: gw.call(EXECUTIONS, ex.privateGetV5ExecutionList, q), symbol,
                                    start_ms=since)
        return stop_fill(rows, req, gw.instrument(symbol), since, time.time_ns())

    def listed_as(self, symbol: str, trigger_ticks: int) -> str:
        """The stop leg a listed position stop stands for (module docstring)."""
        stops = self.gw.tr.stops
        owner, ticks = stops.owner(symbol), stops.ticks(symbol)
        if not owner:
            return ""
        moving = any(self.reqs[c].symbol == symbol and self.reqs[c].trigger_ticks == trigger_ticks
                     for c in self.pending if c in self.reqs)
        if ticks is None or ticks == trigger_ticks or moving:
            if not moving:
                stops.verified(owner)
            return owner
        return ""

    async def verify(self, symbol: str, owner: str) -> None:
        p = await self.gw.position_raw(symbol)
        stops = self.gw.tr.stops
        if p is None or float(p.get("size") or 0) == 0 or float(p.get("stopLoss") or 0) != 0:
            return
        if stops.owner(symbol) == owner and owner not in stops.cleared:
            self._log.error("position has no stop at the venue", symbol=symbol, owner=owner)
            stops.clear(symbol, owner)
            self.report_ended(symbol, owner, "the position's stop is gone at the venue")
