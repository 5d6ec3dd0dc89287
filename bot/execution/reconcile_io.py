"""The I/O shell of reconciliation (bot.execution.reconcile): read the journal's open trades, fetch the
exchange's picture (positions, open orders and algo orders, look-ups of unfinished legs and their exact
fills) and carry the pure decisions out. Split from reconcile.py, which keeps the pure part. It lives in
execution beside its one caller (bot.execution.recovery), not in venues: it speaks the trade machine's
vocabulary, and it talks to a venue only through the port (bot.venues.ports), never a venue's module.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, cast

from bot.domain.instrument import Instrument
from bot.domain.orders import OrderRequest, OrderUpdate
from bot.domain.types import CloseReason, OrderKind, OrderStatus, Side
from bot.execution.reconcile import (
    OPEN_STATES,
    Action,
    Alert,
    ApplyUpdate,
    CancelOrder,
    CloseTrade,
    ExchangeState,
    Flatten,
    JournalLeg,
    JournalTrade,
    PlaceStop,
)
from bot.venues.errors import OrderRejected, VenueError
from bot.venues.ports import ExecutionGateway, PositionLevelStops, VenueIdCancel

__all__ = ["ReconcileSink", "apply", "fetch_exchange_state", "journal_trades", "leg_fills", "outside_fills"]


def journal_trades(journal: Any, instruments: dict[str, Instrument]) -> list[JournalTrade]:
    """Open trades and their legs from the journal (bot.journal.Journal). Legs still PLANNED (written with
    the trade, never sent) are left out: the venue has never seen them."""
    out = []
    marks = ",".join("?" * len(OPEN_STATES))
    for t in journal.rows("trades", f"state IN ({marks})", tuple(s.value for s in OPEN_STATES)):
        inst = instruments.get(t["symbol"])
        if inst is None:
            continue
        legs = tuple(
            JournalLeg(r["client_id"], r["role"], OrderKind(r["kind"]), Side(r["side"]), OrderStatus(r["status"]),
                       inst.qty_to_lots(r["filled_qty"] or 0))
            for r in journal.rows("legs", "trade_id=?", (t["trade_id"],)) if r["status"] != "PLANNED")
        out.append(JournalTrade(t["trade_id"], t["symbol"], t["side"], t["state"],
                                float(t.get("stop_price") or t.get("planned_stop_price") or 0.0), legs))
    return out


async def fetch_exchange_state(gw: ExecutionGateway, symbols: Sequence[str],
                               trades: Sequence[JournalTrade]) -> ExchangeState:
    """Positions, open orders (regular + algo), look-ups of unfinished journal legs and the exact fills of
    those that filled meanwhile. Raises on any failure: a partial picture must not lead to decisions
    (nothing is assumed flat)."""
    acc = await gw.account()
    positions = {p.symbol: p for p in acc.positions if p.qty_lots != 0}
    opened: list[OrderUpdate] = []
    for s in symbols:
        opened.extend(await gw.open_orders(s))
    open_by_cid = {o.client_id: o for o in opened}
    looked: dict[str, OrderUpdate | None] = {}
    fills: dict[str, tuple[OrderUpdate, ...]] = {}
    for t in trades:
        if t.symbol not in symbols:
            continue
        for leg in t.legs:
            if leg.status.is_final:
                continue
            u = open_by_cid.get(leg.client_id)
            if u is None:
                # PENDING_NEW included: written before sending, outcome unknown if we crashed in between
                u = looked[leg.client_id] = await gw.fetch_order(t.symbol, leg.client_id, leg.kind.is_conditional)
            if u is None:
                continue
            # an algo order reports no fill of its own (its child fills): look whenever it fired or ended
            if u.filled_lots > leg.filled_lots or (leg.kind.is_conditional and u.status in (
                    OrderStatus.TRIGGERED, OrderStatus.FILLED, OrderStatus.EXPIRED)):
                got = await leg_fills(gw, t.symbol, leg.client_id, u)
                if got:
                    fills[leg.client_id] = got
    pos_stops: frozenset[str] = frozenset()
    if gw.capabilities.position_level_stop:  # venues whose stop is the position's (Bybit)
        level = cast(PositionLevelStops, gw).is_position_level
        pos_stops = frozenset(o.venue_order_id for o in opened if level(o))
    return ExchangeState(tuple(symbols), positions, tuple(opened), looked, fills, pos_stops, acc)


def _chrono(r: dict[str, Any]) -> tuple[int, int]:
    """Account trades oldest first: Binance trade ids grow with time; Bybit's are not numbers (its `seq`)."""
    tid = str(r["id"])
    return int(r.get("time") or 0), int(tid) if tid.isdigit() else int(r.get("seq") or 0)


def _fill_rows(rows: Sequence[dict[str, Any]], u: OrderUpdate, inst: Instrument, parent: str,
               now_ns: int) -> tuple[OrderUpdate, ...]:
    """userTrades rows of one order -> fill updates with cumulative quantities (the user stream's shape)."""
    out: list[OrderUpdate] = []
    cum, notional = 0, 0.0
    for t in sorted(rows, key=_chrono):
        lots = inst.qty_to_lots(t["qty"])
        cum += lots
        notional += lots * float(t["price"])
        status = OrderStatus.FILLED if u.qty_lots and cum >= u.qty_lots else OrderStatus.PARTIALLY_FILLED
        out.append(OrderUpdate(
            client_id=parent or u.client_id, venue_order_id=str(t.get("orderId") or u.venue_order_id),
            symbol=u.symbol, side=Side(t.get("side", u.side.value)), kind=u.kind, status=status, qty_lots=u.qty_lots,
            filled_lots=cum, avg_price=notional / cum, last_fill_lots=lots, last_fill_price=float(t["price"]),
            fee=float(t.get("commission") or 0), is_maker=bool(t.get("maker", False)), reduce_only=u.reduce_only,
            trade_id=str(t["id"]), reason="reconcile", ts_event_ns=int(t.get("time") or 0) * 1_000_000,
            ts_recv_ns=now_ns, parent_id=parent))
    return tuple(out)


async def leg_fills(gw: Any, symbol: str, client_id: str, u: OrderUpdate) -> tuple[OrderUpdate, ...]:
    """The exact fills of one of our orders, when the gateway can list them (`user_trades`; for an algo
    order its child's, found through `fetch_order_raw` -> `actualOrderId`). () when it cannot."""
    caps = gw.capabilities
    if not caps.account_trades:
        return ()
    order_id, parent = u.venue_order_id, ""
    if u.kind.is_conditional and u.parent_id:  # the look-up named the order that executed (Bybit position stop)
        parent = u.parent_id
    elif u.kind.is_conditional:
        raw = (await gw.fetch_order_raw(symbol, client_id, True) or {}) if caps.raw_order_lookup else {}
        order_id, parent = str(raw.get("actualOrderId") or ""), client_id
        if order_id in ("", "0"):
            return ()
    if not order_id:
        return ()
    rows = await gw.user_trades(symbol, order_id)
    return _fill_rows([r for r in rows if str(r.get("orderId", order_id)) == order_id], u,
                      gw.instrument(symbol), parent, time.time_ns())


async def outside_fills(gw: Any, symbol: str, side: Side, since_ns: int, ours: set[str],
                        lots: int) -> list[tuple[int, float, float, int, str, str, bool]]:
    """Fills on `side` since `since_ns` of orders that are not ours (a position closed by hand), oldest
    first, up to `lots`: (lots, price, fee, ts_ns, venue trade id, venue order id, maker). [] when the
    gateway cannot list the account's trades."""
    if not gw.capabilities.account_trades or lots <= 0:
        return []
    inst = gw.instrument(symbol)
    rows = await gw.user_trades(symbol, "", since_ns // 1_000_000)
    out = []
    left = lots
    for t in sorted(rows, key=_chrono):
        ts_ns = int(t.get("time") or 0) * 1_000_000
        if left <= 0 or str(t.get("side")) != side.value or str(t.get("orderId")) in ours or ts_ns < since_ns:
            continue
        take = min(left, inst.qty_to_lots(t["qty"]))
        left -= take
        out.append((take, float(t["price"]), float(t.get("commission") or 0), ts_ns, str(t["id"]),
                    str(t.get("orderId") or ""), bool(t.get("maker", False))))
    return out


class ReconcileSink(Protocol):
    """Where `apply` hands what is not an order: the engine's side (bot.execution.recovery)."""

    def on_update(self, u: OrderUpdate, quiet: bool = False) -> Awaitable[None] | None:
        """A missed update into its machine; `quiet` (ApplyUpdate.quiet): the leg ended with the position,
        recorded without the live reactions."""
        ...

    def place_stop(self, a: PlaceStop) -> Awaitable[bool]:
        """True when the trade's own machine placed (or already has) the stop: `apply` sends none of its own.
        False: not the sink's to place (a position of no known trade)."""
        ...

    def before_cancel(self, a: CancelOrder) -> None:
        """Told before a cancel is sent: the order's owner then knows the cancellation is ours."""
        ...

    def on_trade_closed(self, trade_id: str, reason: CloseReason, detail: str) -> Awaitable[None] | None: ...

    def alert(self, kind: str, message: str, symbol: str = "") -> None: ...


async def apply(actions: Sequence[Action], gw: ExecutionGateway, sink: ReconcileSink,
                on_error: Callable[[Action, VenueError], None] | None = None) -> list[tuple[Action, Any]]:
    """Carry the actions out in order. A stop the venue refuses -> flatten at once (a position must never
    stay unprotected) and an emergency alert."""
    done: list[tuple[Action, Any]] = []
    for a in actions:
        try:
            if isinstance(a, ApplyUpdate):
                r = sink.on_update(a.update, quiet=True) if a.quiet else sink.on_update(a.update)
                if r is not None:
                    await r
            elif isinstance(a, PlaceStop):
                if a.trade_id and await sink.place_stop(a):
                    done.append((a, None))
                    continue
                try:
                    done.append((a, await gw.submit(a.req)))
                except OrderRejected as e:
                    sink.alert("emergency", f"{a.reason}: stop refused ({e.code}); flattening", a.req.symbol)
                    flat = OrderRequest(a.req.client_id.replace("sl", "fx", 1)[:36], a.req.symbol, a.req.side,
                                        OrderKind.MARKET, a.req.qty_lots, reduce_only=True)
                    done.append((Flatten(a.trade_id, flat, "stop refused"), await gw.submit(flat)))
                continue
            elif isinstance(a, Flatten):
                done.append((a, await gw.submit(a.req)))
                continue
            elif isinstance(a, CancelOrder):
                if not a.client_id:  # placed by hand without a client id: only its venue id names it
                    if not (a.venue_order_id and gw.capabilities.cancel_by_venue_id):
                        sink.alert("error", f"order {a.venue_order_id or '?'} ({a.reason}) has no client id and "
                                            "this venue cannot cancel by venue id: cancel it by hand", a.symbol)
                        continue
                    await cast(VenueIdCancel, gw).cancel_venue_order(a.symbol, a.venue_order_id)
                    done.append((a, None))
                    continue
                sink.before_cancel(a)
                await gw.cancel(a.symbol, a.client_id, a.conditional)
            elif isinstance(a, CloseTrade):
                r = sink.on_trade_closed(a.trade_id, a.reason, a.detail)
                if r is not None:
                    await r
            elif isinstance(a, Alert):
                sink.alert(a.kind, a.message, a.symbol)
            done.append((a, None))
        except VenueError as e:
            if on_error is None:
                raise
            on_error(a, e)
    return done
