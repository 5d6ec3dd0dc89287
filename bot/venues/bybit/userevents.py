"""Bybit v5 private topics -> OrderUpdate / PositionSnapshot (pure, sans-I/O; exchange-facts B3).

Bybit splits what Binance sends in one event into two topics:
- `execution`: one fill (`execId`, `execQty`, `execPrice`, `execFee`, `isMaker`, `leavesQty`, `orderQty`);
- `order`: the order's state (`orderStatus`, `cumExecQty`, `avgPrice`; `cumExecFee` is deprecated).
Their relative order is not promised. The trade machine counts fills from the cumulative filled
quantity and takes price/fee/trade id from the update that raises it, so the cumulative quantity we
report only ever rises with an execution: an `order` message whose `cumExecQty` is ahead of the
executions seen is HELD (keyed by orderId) until they arrive, and released as it is after
`link_wait_ms` (a lost execution: the fill then comes without its fee). Duplicates (reconnect
overlap, REST catch-up) are dropped: fills by (orderId, execId), states when (status, filled) did not
change for that order.

Statuses (orders.status_of): New/Untriggered -> NEW, PartiallyFilled, Triggered -> TRIGGERED, Filled,
Cancelled/PartiallyFilledCanceled/Deactivated -> CANCELED, Rejected. Fills: execType Trade, AdlTrade,
BustTrade (funding and settlement rows are not fills of an order).

The position's stop (stops.py): its system orders (stopOrderType StopLoss/PartialStopLoss/TrailingStop,
no orderLinkId) are reported under the stop leg that owns the symbol's stop (client_id = parent_id =
that leg), held while no leg owns it yet. Their `Deactivated` is not forwarded: a Full stop is
deactivated and re-created when moved, and removed with the position; whether the position is still
protected is read from the `position` topic's `stopLoss` instead: an open position with no stopLoss while
a confirmed owner exists gives `StopMissing` (the stream runner verifies it by REST before reporting
the stop CANCELED, so a stale message cannot raise a false alarm). An owner adopted after a restart and
not yet seen at the venue raises none: the start-up reconciliation looks at it (stops.py `adopt`).

`position` (positionIdx 0, one-way) -> PositionSnapshot (side Buy/Sell, size -> signed lots).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import orjson

from bot.domain.instrument import Instrument
from bot.domain.orders import BalanceUpdate, OrderUpdate, PositionSnapshot
from bot.domain.types import OrderKind, OrderStatus, Side
from bot.errors import MalformedMessage
from bot.market.values import finite
from bot.venues.bybit.orders import (
    POSITION_STOP_TYPES,
    client_id_of,
    kind_of,
    num,
    order_update_from_rest,
    position_from_rest,
)
from bot.venues.bybit.stops import PositionStops

__all__ = ["BybitEventTranslator", "StopMissing"]

_MAX_REMEMBERED = 20_000
_FILL_TYPES = frozenset({"Trade", "AdlTrade", "BustTrade"})


@dataclass(frozen=True, slots=True)
class StopMissing:
    """An open position without its stop while `owner` should be it: verify by REST, then report."""

    symbol: str
    owner: str


Item = OrderUpdate | PositionSnapshot | BalanceUpdate | StopMissing


@dataclass(slots=True)
class _Track:
    symbol: str
    side: Side
    kind: OrderKind
    qty_lots: int
    reduce_only: bool
    exec_lots: int = 0  # sum of the executions seen
    notional: float = 0.0
    reported: int = 0  # cumulative filled lots reported (>= exec_lots after a released order message)


# orders._STATUS's words (exchange-facts B3): anything else is malformed, not "New" (the old default)
_STATUS_WORDS = frozenset(("New", "PartiallyFilled", "Untriggered", "Triggered", "Filled", "Cancelled",
                           "PartiallyFilledCanceled", "Deactivated", "Rejected"))
_SIDES = frozenset(("Buy", "Sell"))
_BAD = (KeyError, TypeError, ValueError, AttributeError, ArithmeticError, orjson.JSONDecodeError)


def _nonneg(d: dict[str, Any], key: str) -> None:
    """A quantity or price field: absent/"" allowed (Bybit leaves unset numbers empty), else a finite
    float >= 0. `orders.num` reads bad values as 0.0, so they are refused here first."""
    v = d.get(key)
    if v is not None and v != "" and not 0.0 <= float(v) < float("inf"):
        raise ValueError(f"{key} out of range: {v!r:.40}")


def _check_order(d: dict[str, Any]) -> None:
    if d.get("side") not in _SIDES:
        raise ValueError(f"unknown side {d.get('side')!r:.20}")
    if d.get("orderStatus") not in _STATUS_WORDS:
        raise ValueError(f"unknown order status {d.get('orderStatus')!r:.40}")
    for k in ("qty", "cumExecQty", "leavesQty", "avgPrice", "price", "triggerPrice"):
        _nonneg(d, k)


def _check_execution(d: dict[str, Any]) -> None:
    if d.get("side") not in _SIDES:
        raise ValueError(f"unknown side {d.get('side')!r:.20}")
    for k in ("execQty", "execPrice", "leavesQty", "orderQty"):
        _nonneg(d, k)
    finite(d.get("execFee") or 0)  # a fee may be negative (a maker rebate), never NaN/inf
    finite(d.get("execTime") or 0)


def _is_zero_price(v: Any) -> bool:
    return num(v) == 0.0


class BybitEventTranslator:
    def __init__(self, instruments: Mapping[str, Instrument], link_wait_ms: int = 2000,
                 position_idx: int = 0) -> None:
        self.instruments = instruments
        self.link_wait_ns = link_wait_ms * 1_000_000
        self.position_idx = position_idx
        self.stops = PositionStops(self.link_wait_ns)
        self.known: dict[str, OrderKind] = {}  # our client ids -> the kind we asked for
        self._tracks: OrderedDict[str, _Track] = OrderedDict()  # venue order id -> what we know
        self._held: dict[str, tuple[int, dict[str, Any]]] = {}  # order id -> (held since, newest message)
        self._fills: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._last: OrderedDict[str, tuple[OrderStatus, int]] = OrderedDict()
        self.live: dict[str, OrderUpdate] = {}  # client id -> last update of our non-final regular order
        self.positions: dict[str, PositionSnapshot] = {}
        self.stop_loss: dict[str, str] = {}  # symbol -> the position's stopLoss as last reported
        self.last_exec_ms = 0
        self.stats = {"messages": 0, "held": 0, "released_unmatched": 0, "duplicates": 0, "fills": 0,
                      "malformed": 0}

    def expect(self, client_id: str, kind: OrderKind) -> None:
        self.known[client_id] = kind

    # ----------------------------------------------------------------------------------- entry point
    def on_message(self, raw: bytes | str | dict[str, Any], ts_recv_ns: int) -> list[Item]:
        """MalformedMessage for bad JSON, a wrong type, NaN/inf, a negative quantity or price, an unknown
        side or status. What the message's earlier items delivered stands (each item is checked before
        it changes any state); the caller catches up by REST for the rest."""
        out: list[Item] = []
        try:
            msg = raw if isinstance(raw, dict) else orjson.loads(raw)
            topic = str(msg.get("topic") or "").split(".", 1)[0]
            data = msg.get("data") or []
            if topic:
                self.stats["messages"] += 1
            if topic == "order":
                for d in data:
                    _check_order(d)
                    out.extend(self.on_order(d, ts_recv_ns))
            elif topic == "execution":
                for d in data:
                    _check_execution(d)
                for d in sorted(data, key=lambda x: int(num(x.get("execTime")))):
                    out.extend(self.on_execution(d, ts_recv_ns))
            elif topic == "position":
                for d in data:
                    out.extend(self.on_position(d, ts_recv_ns))
            elif topic == "wallet":  # the wallet after each fill, fee, funding (exchange-facts B3: wallet topic)
                t_ns = int(num(msg.get("creationTime"))) * 1_000_000
                for d in data:
                    for c in d.get("coin") or []:
                        wb = c.get("walletBalance")
                        if wb not in (None, ""):
                            out.append(BalanceUpdate(str(c.get("coin", "")), finite(wb), finite(wb), t_ns))
        except _BAD as err:
            self.stats["malformed"] += 1
            raise MalformedMessage(f"user event: {type(err).__name__}: {err}"[:300]) from err
        out.extend(self.flush_expired(ts_recv_ns))
        return out

    def flush_expired(self, now_ns: int) -> list[OrderUpdate]:
        out: list[OrderUpdate] = []
        for oid in [k for k, (t0, _) in self._held.items() if now_ns - t0 >= self.link_wait_ns]:
            _, d = self._held.pop(oid)
            self.stats["released_unmatched"] += 1
            out.extend(self._order_state(d, now_ns))
        for u in self.stops.flush_expired(now_ns):
            self.stats["released_unmatched"] += 1
            out.extend(self._emit(u))
        return out

    # ----------------------------------------------------------------------------------- linking
    def _link(self, d: dict[str, Any]) -> tuple[str, str] | None:
        """(client id, parent id) this venue order reports under; None = a position stop with no owner yet."""
        link = client_id_of(str(d.get("orderLinkId") or ""))
        if link:
            return link, ""
        if str(d.get("stopOrderType") or "") in POSITION_STOP_TYPES:
            owner = self.stops.owner(str(d.get("symbol", "")))
            return (owner, owner) if owner else None
        return "", ""  # a manual order, a liquidation: nobody's leg

    def _track(self, oid: str, d: dict[str, Any], inst: Instrument, qty_key: str) -> _Track:
        t = self._tracks.get(oid)
        if t is None:
            link = client_id_of(str(d.get("orderLinkId") or ""))
            kind = self.known.get(link) or kind_of(d)
            t = _Track(inst.symbol, Side.BUY if d.get("side") == "Buy" else Side.SELL, kind,
                       inst.qty_to_lots(d.get(qty_key) or "0"),
                       bool(d.get("reduceOnly") is True or d.get("closeOnTrigger") is True
                            or str(d.get("stopOrderType") or "") in POSITION_STOP_TYPES))
            self._tracks[oid] = t
            if len(self._tracks) > _MAX_REMEMBERED:
                self._tracks.popitem(last=False)
        elif qty_key == "qty" and d.get("qty") not in (None, ""):
            t.qty_lots = inst.qty_to_lots(d["qty"])  # an amended or resized order
        return t

    # ----------------------------------------------------------------------------------- topics
    def on_order(self, d: dict[str, Any], ts_recv_ns: int, *, hold: bool = True) -> list[OrderUpdate]:
        inst = self.instruments.get(str(d.get("symbol", "")))
        if inst is None or d.get("category", "linear") != "linear":
            return []
        pos_stop = not d.get("orderLinkId") and str(d.get("stopOrderType") or "") in POSITION_STOP_TYPES
        if pos_stop and d.get("orderStatus") == "Deactivated":
            return []  # moved or removed with the position: the position topic says whether it is protected
        oid = str(d.get("orderId", ""))
        t = self._track(oid, d, inst, "qty")
        cum = inst.qty_to_lots(d.get("cumExecQty") or "0")
        if hold and cum > t.exec_lots:
            first = self._held.get(oid, (ts_recv_ns, d))[0]
            self._held[oid] = (first, d)
            self.stats["held"] += 1
            return []
        self._held.pop(oid, None)
        return self._order_state(d, ts_recv_ns)

    def _order_state(self, d: dict[str, Any], ts_recv_ns: int) -> list[OrderUpdate]:
        inst = self.instruments[str(d["symbol"])]
        oid = str(d.get("orderId", ""))
        t = self._track(oid, d, inst, "qty")
        cum = inst.qty_to_lots(d.get("cumExecQty") or "0")
        base = order_update_from_rest(d, inst, ts_recv_ns)
        if cum > t.reported:  # released without its executions: the order's own word is all there is
            t.reported = cum
            avg = base.avg_price
        else:
            avg = t.notional / t.exec_lots if t.exec_lots else base.avg_price
        u = replace(base, kind=t.kind, filled_lots=t.reported, avg_price=avg, reduce_only=t.reduce_only)
        return self._linked(u, d, ts_recv_ns)

    def on_execution(self, d: dict[str, Any], ts_recv_ns: int) -> list[OrderUpdate]:
        inst = self.instruments.get(str(d.get("symbol", "")))
        if inst is None or d.get("category", "linear") != "linear" or d.get("execType", "Trade") not in _FILL_TYPES:
            return []
        oid, eid = str(d.get("orderId", "")), str(d.get("execId", ""))
        key = (oid, eid)
        if key in self._fills:
            self.stats["duplicates"] += 1
            return []
        self._fills[key] = None
        if len(self._fills) > _MAX_REMEMBERED:
            self._fills.popitem(last=False)
        exec_ms = int(num(d.get("execTime")))
        self.last_exec_ms = max(self.last_exec_ms, exec_ms)
        t = self._track(oid, d, inst, "orderQty")
        lots, price = inst.qty_to_lots(d.get("execQty") or "0"), num(d.get("execPrice"))
        t.exec_lots += lots
        t.notional += lots * price
        t.reported = max(t.reported, t.exec_lots)
        self.stats["fills"] += 1
        leaves = d.get("leavesQty")
        done = t.exec_lots >= t.qty_lots if t.qty_lots else num(leaves) == 0.0
        if leaves not in (None, "") and num(leaves) > 0:
            done = False
        u = OrderUpdate(
            client_id="", venue_order_id=oid, symbol=inst.symbol, side=t.side, kind=t.kind,
            status=OrderStatus.FILLED if done else OrderStatus.PARTIALLY_FILLED, qty_lots=t.qty_lots,
            filled_lots=t.reported, avg_price=t.notional / t.exec_lots if t.exec_lots else price,
            last_fill_lots=lots, last_fill_price=price, fee=num(d.get("execFee")),
            is_maker=d.get("isMaker") is True, reduce_only=t.reduce_only, trade_id=eid,
            reason="" if d.get("execType", "Trade") == "Trade" else str(d.get("execType")),
            ts_event_ns=exec_ms * 1_000_000, ts_recv_ns=ts_recv_ns)
        out = self._linked(u, d, ts_recv_ns)
        held = self._held.get(oid)
        if held is not None and inst.qty_to_lots(held[1].get("cumExecQty") or "0") <= t.exec_lots:
            del self._held[oid]
            out.extend(self._order_state(held[1], ts_recv_ns))
        return out

    def on_position(self, d: dict[str, Any], ts_recv_ns: int) -> list[PositionSnapshot | StopMissing]:
        inst = self.instruments.get(str(d.get("symbol", "")))
        if inst is None or d.get("category", "linear") != "linear" or \
                int(num(d.get("positionIdx", 0))) != self.position_idx:
            return []
        snap = position_from_rest(d, inst)
        out: list[PositionSnapshot | StopMissing] = []
        if self.positions.get(inst.symbol) != snap:
            self.positions[inst.symbol] = snap
            out.append(snap)
        sl = str(d.get("stopLoss") or "")
        self.stop_loss[inst.symbol] = sl
        owner = self.stops.owner(inst.symbol)
        if snap.qty_lots != 0 and _is_zero_price(sl) and owner and owner not in self.stops.cleared \
                and owner not in self.stops.unverified:
            out.append(StopMissing(inst.symbol, owner))
        return out

    # ----------------------------------------------------------------------------------- delivery
    def _linked(self, u: OrderUpdate, d: dict[str, Any], ts_recv_ns: int) -> list[OrderUpdate]:
        link = self._link(d)
        if link is None:
            self.stops.hold(u.symbol, ts_recv_ns, u)
            return []
        return self._emit(replace(u, client_id=link[0], parent_id=link[1]))

    def _emit(self, u: OrderUpdate) -> list[OrderUpdate]:
        key = u.venue_order_id or u.client_id
        state = (u.status, u.filled_lots)
        if not u.trade_id and self._last.get(key) == state:
            self.stats["duplicates"] += 1
            if u.status.is_final and u.parent_id == "":
                self.live.pop(u.client_id, None)  # a REST look-up confirming the end we already told
            return []
        self._last[key] = state
        self._last.move_to_end(key)
        if len(self._last) > _MAX_REMEMBERED:
            self._last.popitem(last=False)
        if u.client_id and u.parent_id == "":
            if u.status.is_final:
                self.live.pop(u.client_id, None)
            else:
                self.live[u.client_id] = u
        return [u]

    def track(self, u: OrderUpdate) -> None:
        """An order we just placed (its acknowledgement): followed, nothing emitted (the caller has the ack)."""
        self.known.setdefault(u.client_id, u.kind)
        key = u.venue_order_id or u.client_id
        seen = self._last.setdefault(key, (u.status, u.filled_lots))
        if not u.status.is_final and not seen[0].is_final:  # the stream may have told its end already
            self.live.setdefault(u.client_id, u)

    def confirm_stop(self, symbol: str, cid: str, ticks: int | None) -> tuple[str, list[OrderUpdate]]:
        """The venue has `cid` as the position's stop: (previous owner, held stop activity now reported)."""
        old, held = self.stops.confirm(symbol, cid, ticks)
        out: list[OrderUpdate] = []
        for u in held:
            out.extend(self._emit(u))
        return old, out

    def seen_fill(self, venue_order_id: str, exec_id: str) -> bool:
        return (venue_order_id, exec_id) in self._fills
