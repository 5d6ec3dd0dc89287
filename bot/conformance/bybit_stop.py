"""The position's stop on Bybit, as the bot uses it, on a minimum position: loopback exchange only (it opens a
position: market risk anywhere else). Part of the Bybit conformance run (bybit.py; exchange-facts B3).

A market BUY with an attached `stopLoss` (the bot's entry shape: the venue arms the stop as the position
opens), the trade machine's stop leg moving it (`POST /v5/position/trading-stop`, tpslMode Full, through
the gateway's stop desk) and its look-up, the `position` event carrying the moved `stopLoss`, then a
reduce-only close after which no order is left (a Full stop goes with the position).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bot.conformance.base import EVENT_WAIT_S as _EVENT_WAIT_S
from bot.conformance.base import FAR_STOP_BPS as _FAR_STOP_BPS
from bot.conformance.base import RunBase
from bot.conformance.base import check_fields as _fields
from bot.conformance.report import Deviation
from bot.domain.orders import OrderRequest
from bot.domain.types import OrderKind, OrderStatus, Side
from bot.venues.bybit.orders import num, position_from_rest
from bot.venues.bybit.stopdesk import STOP_PATH
from bot.venues.bybit.userevents import BybitEventTranslator

if TYPE_CHECKING:
    from bot.venues.bybit.gateway import BybitGateway

__all__ = ["POSITION_REST_OPTIONAL", "PositionStopSteps"]

# position_from_rest reads the `position` topic's `entryPrice` first and REST's `avgPrice` when it is absent:
# a REST row has no `entryPrice` (B3 position list), so only its `avgPrice` is relied on there
POSITION_REST_OPTIONAL = frozenset({"entryPrice"})


class PositionStopSteps(RunBase):
    """Steps of bybit._Run that need a position (the attributes and helpers below are _Run's)."""

    gw: BybitGateway
    cid_entry: str
    cid_sl: str
    cid_exit: str
    pos_lots: int
    sl_ticks: int

    async def _bbo(self) -> tuple[float, float]:
        raise NotImplementedError

    async def _place(self, req: OrderRequest) -> str:
        raise NotImplementedError

    async def _filled(self, cid: str) -> None:
        await self.wait_for(
            lambda: True if any(u.client_id == cid and u.status is OrderStatus.FILLED for u in self.updates) else None,
            lambda: f"private stream: no FILLED for {cid} within {_EVENT_WAIT_S:.0f} s")

    async def _position_until(self, what: str, ok: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        deadline = time.monotonic() + _EVENT_WAIT_S
        while True:  # bounded by the deadline
            raw = await self.gw.position_raw(self.symbol)
            if raw is not None and ok(raw):
                return raw
            if time.monotonic() > deadline:
                got = {k: (raw or {}).get(k) for k in ("size", "side", "stopLoss")}
                raise Deviation(f"GET /v5/position/list: {what} not seen within {_EVENT_WAIT_S:.0f} s ({got})")
            await asyncio.sleep(0.05)

    async def open_with_attached_stop(self) -> str:
        bid, ask = await self._bbo()
        inst = self.gw.instrument(self.symbol)
        stop = int(bid * (1 - _FAR_STOP_BPS / 10_000) / inst.tick)
        self.pos_lots = self.min_lots(ask)
        req = OrderRequest(self.cid_entry, self.symbol, Side.BUY, OrderKind.MARKET, self.pos_lots,
                           attached_stop_ticks=stop)
        await self._place(req)
        await self._filled(self.cid_entry)
        want = float(inst.ticks_to_str(stop))
        raw = await self._position_until(f"the attached stopLoss {want}",
                                         lambda p: float(p.get("size") or 0) > 0 and num(p.get("stopLoss")) == want)
        _fields("GET /v5/position/list", lambda b: position_from_rest(b, inst), raw, POSITION_REST_OPTIONAL)
        return f"{inst.lots_to_str(self.pos_lots)} bought; the position's stopLoss is {raw.get('stopLoss')}"

    async def move_stop(self) -> str:
        bid, _ = await self._bbo()
        inst = self.gw.instrument(self.symbol)
        self.sl_ticks = int(bid * (1 - (_FAR_STOP_BPS - 200) / 10_000) / inst.tick)
        req = OrderRequest(self.cid_sl, self.symbol, Side.SELL, OrderKind.STOP_MARKET, self.pos_lots,
                           trigger_ticks=self.sl_ticks, reduce_only=True)
        ack = await self.gw.submit(req)  # the stop desk: POST /v5/position/trading-stop (tpslMode Full)
        if ack.status is not OrderStatus.NEW:
            raise Deviation(f"POST {STOP_PATH}: the stop leg is {ack.status.value}, expected NEW")
        want = float(inst.ticks_to_str(self.sl_ticks))
        await self._position_until(f"stopLoss moved to {want}", lambda p: num(p.get("stopLoss")) == want)
        u = await self.gw.fetch_order(self.symbol, self.cid_sl)  # the stop desk's look-up of its leg
        if u is None or u.status is not OrderStatus.NEW:
            raise Deviation(f"GET /v5/position/list: the stop leg reads {u.status.value if u else 'absent'}")
        return f"stopLoss {want} (the stop desk's leg {self.cid_sl} NEW)"

    async def position_event(self) -> str:
        inst = self.gw.instrument(self.symbol)
        want = float(inst.ticks_to_str(self.sl_ticks))
        deadline = time.monotonic() + _EVENT_WAIT_S
        while True:  # bounded by the deadline
            msg = next((m for m in self.raw_events if str(m.get("topic", "")).startswith("position")
                        and any(isinstance(d, dict) and num(d.get("stopLoss")) == want for d in m.get("data") or [])),
                       None)
            if msg is not None:
                break
            if time.monotonic() > deadline:
                raise Deviation(f"private stream: no `position` event with stopLoss {want} within "
                                f"{_EVENT_WAIT_S:.0f} s")
            await asyncio.sleep(0.02)
        tr = BybitEventTranslator(self.gw.instruments, 0, self.gw.position_idx)
        _fields("private stream `position`", lambda b: tr.on_message(b, time.time_ns()), msg)
        return f"`position` size {msg['data'][0].get('size')} stopLoss {want}"

    async def close_position(self) -> str:
        req = OrderRequest(self.cid_exit, self.symbol, Side.SELL, OrderKind.MARKET, self.pos_lots, reduce_only=True)
        await self._place(req)
        await self._filled(self.cid_exit)
        await self.gw.cancel(self.symbol, self.cid_sl)  # the machine ends its stop leg: nothing left to remove
        await self._position_until("a flat position", lambda p: float(p.get("size") or 0) == 0)
        left = await self.gw.open_orders_raw(self.symbol)
        if left:
            raise Deviation(f"GET /v5/order/realtime: {len(left)} order(s) left after the position closed "
                            f"({', '.join(str(d.get('stopOrderType') or d.get('orderType')) for d in left)})")
        return "flat; the position's stop went with it (no order left)"

