"""Reconciliation of the exchange with the journal, on start-up and after every reconnect.

`decide(exchange, trades, cfg, now_ns)` is pure: what the exchange says (positions, open orders and
algo orders, REST look-ups of the journal's unfinished legs) + the journal's open trades -> actions.
`apply(actions, gateway, sink)` is the thin async part.

Rules (issue 6, "Restart safety and reconciliation"):
1. Missed updates: a journal leg that is not final and whose venue state differs (filled while we were
   down, cancelled, triggered) -> ApplyUpdate (the engine applies the fill as if it had streamed in).
2. A position with a known trade and no live stop at the exchange -> PlaceStop at once, at the trade's
   stop price (rounded away from the market), reduce-only for the whole position.
3. A position with no known plan -> PlaceStop `unknown_position_stop_bps` from its entry price, or
   Flatten (config `unknown_position_action`), and an alert either way. An existing stop on the closing
   side protecting it is kept (no second one).
4. Exit orders (reduce-only, close-position, conditional) with no position are cancelled: no orphan may
   survive to fire on a later position. Unknown entry orders are cancelled too (they could open a
   position nobody protects). With a position, exit orders that belong to no open trade of it are
   cancelled once the position has its own stop. A position-level stop (Bybit trading-stop: listed as
   an order, but the position's own, removed by the venue with it) is never cancelled as an orphan.
5. The exchange says flat and a trade of the journal held a position and no exit fill explains it ->
   CloseTrade(MANUAL) and an alert. Nothing is ever "assumed flat": a symbol whose state could not be
   fetched is not in `exchange.symbols` and gets no decision at all.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from bot.domain.instrument import Instrument
from bot.domain.types import CloseReason, OrderKind, OrderStatus, Side, TriggerPrice
from bot.venues.binance_usdm.orders import trigger_ticks_away  # pure rounding helper
from bot.venues.errors import OrderRejected, VenueError
from bot.venues.ports import ExecutionGateway, OrderRequest, OrderUpdate, PositionSnapshot

__all__ = [
    "Alert", "ApplyUpdate", "CancelOrder", "CloseTrade", "ExchangeState", "Flatten", "JournalLeg", "JournalTrade",
    "PlaceStop", "ReconcileConfig", "ReconcileSink", "apply", "decide", "fetch_exchange_state", "journal_trades",
    "leg_fills", "outside_fills",
]

_HELD = ("PROTECTING", "PROTECTED", "EXITING")  # trade states in which the trade holds a position
_OPEN = ("PLANNED", "ENTERING", *_HELD)


@dataclass(frozen=True, slots=True)
class JournalLeg:
    client_id: str
    role: str  # entry | add | stop | tp | exit
    kind: OrderKind
    side: Side
    status: OrderStatus
    filled_lots: int = 0


@dataclass(frozen=True, slots=True)
class JournalTrade:
    trade_id: str
    symbol: str
    side: str  # long | short
    state: str
    stop_price: float  # the live protective stop (trades.stop_price, else planned_stop_price)
    legs: tuple[JournalLeg, ...] = ()


@dataclass(frozen=True, slots=True)
class ExchangeState:
    symbols: tuple[str, ...]  # symbols whose positions AND open orders were fetched
    positions: dict[str, PositionSnapshot]  # non-zero positions
    open_orders: tuple[OrderUpdate, ...]  # regular and conditional
    looked_up: dict[str, OrderUpdate | None] = field(default_factory=dict)  # unfinished legs not open
    # client id -> the exact fills (venue trade ids, prices, fees; cumulative filled_lots) of a leg that filled
    # while we were not listening, when the gateway can list them (Binance: userTrades by order id)
    fills: dict[str, tuple[OrderUpdate, ...]] = field(default_factory=dict)
    # venue order ids of open orders that are a position's own stop (gateway `is_position_level`)
    position_stops: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class ReconcileConfig:
    instruments: dict[str, Instrument]
    unknown_position_action: str = "stop"  # "stop" | "flatten"
    unknown_position_stop_bps: float = 50.0
    working_type: TriggerPrice = TriggerPrice.MARK


@dataclass(frozen=True, slots=True)
class ApplyUpdate:
    update: OrderUpdate


@dataclass(frozen=True, slots=True)
class PlaceStop:
    trade_id: str  # "" for a position with no known plan
    req: OrderRequest
    reason: str


@dataclass(frozen=True, slots=True)
class Flatten:
    trade_id: str
    req: OrderRequest
    reason: str


@dataclass(frozen=True, slots=True)
class CancelOrder:
    symbol: str
    client_id: str
    conditional: bool
    reason: str


@dataclass(frozen=True, slots=True)
class CloseTrade:
    trade_id: str
    reason: CloseReason
    detail: str


@dataclass(frozen=True, slots=True)
class Alert:
    kind: str  # emergency | error
    message: str
    symbol: str = ""


Action = ApplyUpdate | PlaceStop | Flatten | CancelOrder | CloseTrade | Alert


def _is_exit(o: OrderUpdate) -> bool:
    return o.reduce_only or o.kind.is_conditional


def _stop_ticks(price: float, side: Side, inst: Instrument) -> int:
    """A stop trigger on the tick, away from the market (SELL stop down, BUY stop up)."""
    return trigger_ticks_away(price, side, OrderKind.STOP_MARKET, inst)


def _suffix(now_ns: int) -> str:
    return format(now_ns // 1_000_000 % 36**6, "x")


def decide(ex: ExchangeState, trades: Sequence[JournalTrade], cfg: ReconcileConfig, now_ns: int) -> list[Action]:
    out: list[Action] = []
    by_cid = {leg.client_id: (t, leg) for t in trades for leg in t.legs}
    # 1. missed updates of unfinished legs: the exact fills first (when known), then the order's state
    open_by_cid = {o.client_id: o for o in ex.open_orders}
    for t in trades:
        if t.symbol not in ex.symbols:
            continue
        for leg in t.legs:
            if leg.status.is_final:
                continue
            out.extend(ApplyUpdate(f) for f in ex.fills.get(leg.client_id, ()) if f.filled_lots > leg.filled_lots)
            u = open_by_cid.get(leg.client_id) or ex.looked_up.get(leg.client_id)
            if u is not None and (u.status is not leg.status or u.filled_lots != leg.filled_lots):
                out.append(ApplyUpdate(u))
    filled_now: dict[str, int] = {}  # client id -> lots filled at the venue, as far as the updates say
    for a in out:
        if isinstance(a, ApplyUpdate):
            cid = a.update.client_id
            filled_now[cid] = max(filled_now.get(cid, 0), a.update.filled_lots)

    for sym in ex.symbols:
        inst = cfg.instruments[sym]
        pos = ex.positions.get(sym)
        lots = pos.qty_lots if pos is not None else 0
        sym_trades = [t for t in trades if t.symbol == sym and t.state in _OPEN]
        orders = [o for o in ex.open_orders if o.symbol == sym]
        removable = [o for o in orders if o.venue_order_id not in ex.position_stops]
        if lots == 0:
            for o in removable:
                owner = by_cid.get(o.client_id)
                entering = owner is not None and owner[0].state in ("PLANNED", "ENTERING") and not _is_exit(o)
                if not entering:
                    why = "orphan exit order, no position" if _is_exit(o) else "entry order of no open trade"
                    out.append(CancelOrder(sym, o.client_id, o.kind.is_conditional, why))
            for t in sym_trades:
                if t.state not in _HELD:
                    continue
                exits_filled = any(filled_now.get(leg.client_id, 0) > leg.filled_lots
                                   for leg in t.legs if leg.role in ("stop", "tp", "exit"))
                if not exits_filled:
                    out.append(CloseTrade(t.trade_id, CloseReason.MANUAL,
                                          "the exchange reports no position and no exit fill explains it"))
                    out.append(Alert("emergency", f"{t.trade_id} closed outside the bot (manual close?)", sym))
            continue
        side_close = Side.SELL if lots > 0 else Side.BUY
        direction = "long" if lots > 0 else "short"
        held = f"position {inst.lots_to_qty(lots):g}"  # signed quantity, for people
        owner_t = next((t for t in sym_trades if t.side == direction and t.state in _HELD), None) or \
            next((t for t in sym_trades if t.side == direction), None)
        stops = [o for o in orders if o.kind in (OrderKind.STOP_MARKET, OrderKind.TRAILING_STOP_MARKET)
                 and o.side is side_close and o.status in (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED)]
        own_cids = {leg.client_id for leg in owner_t.legs} if owner_t is not None else set()
        own_stops = [o for o in stops if o.client_id in own_cids]
        if owner_t is not None:
            if not own_stops:
                price = owner_t.stop_price or 0.0
                if price <= 0:  # no stop known at all: the config's distance from the entry
                    price = _unknown_stop_price(pos, cfg)  # type: ignore[arg-type]
                req = OrderRequest(f"{owner_t.trade_id}-slr{_suffix(now_ns)}", sym, side_close, OrderKind.STOP_MARKET,
                                   abs(lots), trigger_ticks=_stop_ticks(price, side_close, inst), reduce_only=True,
                                   working_type=cfg.working_type)
                why = f"{owner_t.trade_id}: {held} has no live stop"
                out.append(PlaceStop(owner_t.trade_id, req, why))
            # orphans of other (closed or unknown) trades would fire on this position with the wrong size
            for o in removable:
                if _is_exit(o) and o.client_id not in own_cids:
                    out.append(CancelOrder(sym, o.client_id, o.kind.is_conditional, "exit order of no open trade"))
            continue
        # a position nobody planned
        if stops:
            name = stops[0].client_id or "(the position's own)"
            out.append(Alert("emergency", f"{held} of no known trade; kept its stop {name}", sym))
            continue
        if cfg.unknown_position_action == "flatten":
            req = OrderRequest(f"recon-flat-{_suffix(now_ns)}", sym, side_close, OrderKind.MARKET, abs(lots),
                               reduce_only=True)
            out.append(Flatten("", req, f"{sym}: {held} of no known trade"))
        else:
            price = _unknown_stop_price(pos, cfg)  # type: ignore[arg-type]
            req = OrderRequest(f"recon-sl-{_suffix(now_ns)}", sym, side_close, OrderKind.STOP_MARKET, abs(lots),
                               trigger_ticks=_stop_ticks(price, side_close, inst), reduce_only=True,
                               working_type=cfg.working_type)
            out.append(PlaceStop("", req, f"{sym}: {held} of no known trade"))
        out.append(Alert("emergency", f"{held} of no known trade -> {cfg.unknown_position_action}",
                         sym))
    return out


def _unknown_stop_price(pos: PositionSnapshot, cfg: ReconcileConfig) -> float:
    d = cfg.unknown_position_stop_bps / 10_000.0
    return pos.entry_price * (1 - d) if pos.qty_lots > 0 else pos.entry_price * (1 + d)


# ---------------------------------------------------------------------------------------- I/O shell


def journal_trades(journal: Any, instruments: dict[str, Instrument]) -> list[JournalTrade]:
    """Open trades and their legs from the journal (bot.journal.Journal). Legs still PLANNED (written with
    the trade, never sent) are left out: the venue has never seen them."""
    out = []
    marks = ",".join("?" * len(_OPEN))
    for t in journal.rows("trades", f"state IN ({marks})", tuple(_OPEN)):
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
    level = getattr(gw, "is_position_level", None)  # venues whose stop is the position's (Bybit)
    pos_stops = frozenset(o.venue_order_id for o in opened if level is not None and level(o))
    return ExchangeState(tuple(symbols), positions, tuple(opened), looked, fills, pos_stops)


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
    trades_of = getattr(gw, "user_trades", None)
    if trades_of is None:
        return ()
    order_id, parent = u.venue_order_id, ""
    if u.kind.is_conditional and u.parent_id:  # the look-up named the order that executed (Bybit position stop)
        parent = u.parent_id
    elif u.kind.is_conditional:
        raw_of = getattr(gw, "fetch_order_raw", None)
        raw = (await raw_of(symbol, client_id, True) or {}) if raw_of is not None else {}
        order_id, parent = str(raw.get("actualOrderId") or ""), client_id
        if order_id in ("", "0"):
            return ()
    if not order_id:
        return ()
    rows = await trades_of(symbol, order_id)
    return _fill_rows([r for r in rows if str(r.get("orderId", order_id)) == order_id], u,
                      gw.instrument(symbol), parent, time.time_ns())


async def outside_fills(gw: Any, symbol: str, side: Side, since_ns: int, ours: set[str],
                        lots: int) -> list[tuple[int, float, float, int, str, str, bool]]:
    """Fills on `side` since `since_ns` of orders that are not ours (a position closed by hand), oldest
    first, up to `lots`: (lots, price, fee, ts_ns, venue trade id, venue order id, maker). [] when the
    gateway cannot list the account's trades."""
    trades_of = getattr(gw, "user_trades", None)
    if trades_of is None or lots <= 0:
        return []
    inst = gw.instrument(symbol)
    rows = await trades_of(symbol, "", since_ns // 1_000_000)
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
    """Where `apply` hands what is not an order: the engine's side (bot.execution.recovery). Optional:
    `place_stop(action) -> Awaitable[bool]`: True when the trade's own machine placed (or already has) the
    stop, so `apply` does not send one of its own; `before_cancel(action)`: told before a cancel is sent
    (the owner of the order then knows the cancellation is ours, not someone else's)."""

    def on_update(self, u: OrderUpdate) -> Awaitable[None] | None: ...

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
                r = sink.on_update(a.update)
                if r is not None:
                    await r
            elif isinstance(a, PlaceStop):
                own = getattr(sink, "place_stop", None)
                if a.trade_id and own is not None and await own(a):
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
                mark = getattr(sink, "before_cancel", None)
                if mark is not None:
                    mark(a)
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
