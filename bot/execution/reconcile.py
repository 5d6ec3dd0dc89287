"""Reconciliation of the exchange with the journal, on start-up and after every reconnect.

`decide(exchange, trades, cfg, now_ns)` is pure: what the exchange says (positions, open orders and
algo orders, REST look-ups of the journal's unfinished legs) + the journal's open trades -> actions.
`apply(actions, gateway, sink)` is the thin async part (bot.execution.reconcile_io). Both moved here from
bot.venues (issue 12 item 2): they are the engine's decisions about its own trades, spoken in the trade
machine's states (`TradeState`, `LegRole`), and a venue adapter never needs them.

What a trade's state means to reconciliation is one table, `TRADE_RULES` (every `TradeState` has a row);
which venue report of an order is news for a journal leg is another, `LEG_TRANSITIONS` (a report that would
move a leg backwards - a stale read - is not applied).

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
   position nobody protects). An order placed by hand without a client id (Bybit: no orderLinkId) is
   cancelled by its venue order id. With a position, exit orders that belong to no open trade of it are
   cancelled once the position has its own stop. A position-level stop (Bybit trading-stop: listed as
   an order, but the position's own, removed by the venue with it) is never cancelled as an orphan.
5. The exchange says flat and a trade of the journal held a position and no exit fill explains it ->
   CloseTrade(MANUAL) and an alert. The ends of its exit legs found in the same pass (targets the venue
   expired with the position) are applied quietly, before the close: the position is known gone before any
   exit is re-armed. Nothing is ever "assumed flat": a symbol whose state could not be
   fetched is not in `exchange.symbols` and gets no decision at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from bot.domain.instrument import Instrument, trigger_ticks_away
from bot.domain.orders import AccountSnapshot, OrderRequest, OrderUpdate, PositionSnapshot
from bot.domain.types import CloseReason, OrderKind, OrderStatus, Side, TriggerPrice
from bot.execution.actions import LegRole, TradeState

__all__ = [
    "LEG_TRANSITIONS",
    "OPEN_STATES",
    "REQUEST_WEIGHT_PER_MIN",
    "TRADE_RULES",
    "Alert",
    "ApplyUpdate",
    "CancelOrder",
    "CloseTrade",
    "ExchangeState",
    "Flatten",
    "JournalLeg",
    "JournalTrade",
    "PlaceStop",
    "ReconcileConfig",
    "TradeRule",
    "Unowned",
    "decide",
    "expected_lots",
    "is_news",
    "pass_weight",
    "weight_per_min",
]

@dataclass(frozen=True, slots=True)
class TradeRule:
    """What reconciliation does with an unfinished trade in one state."""

    reconciled: bool  # an open trade: its legs are looked up, its position protected
    holds: bool  # may hold a position: flat at the exchange with no exit fill to explain it -> closed (MANUAL)
    keeps_entry_orders: bool  # its resting entry orders are its own, not orphans, while the symbol is flat


# Every state of the trade machine (bot.execution.actions.TRANSITIONS), one row each (a test checks it is total).
TRADE_RULES: dict[TradeState, TradeRule] = {
    TradeState.PLANNED: TradeRule(reconciled=True, holds=False, keeps_entry_orders=True),
    TradeState.ENTERING: TradeRule(reconciled=True, holds=False, keeps_entry_orders=True),
    TradeState.PROTECTING: TradeRule(reconciled=True, holds=True, keeps_entry_orders=False),
    TradeState.PROTECTED: TradeRule(reconciled=True, holds=True, keeps_entry_orders=False),
    TradeState.EXITING: TradeRule(reconciled=True, holds=True, keeps_entry_orders=False),
    TradeState.CLOSED: TradeRule(reconciled=False, holds=False, keeps_entry_orders=False),
    TradeState.ABORTED: TradeRule(reconciled=False, holds=False, keeps_entry_orders=False),
}
OPEN_STATES = tuple(s for s, r in TRADE_RULES.items() if r.reconciled)  # the journal's unfinished trades
_HELD = frozenset(s for s, r in TRADE_RULES.items() if r.holds)

_S = OrderStatus
# The venue statuses that may follow a leg's journaled status: a look-up or open-order listing reporting one
# of them is news (ApplyUpdate). The same status is news only with more lots filled. Anything else moves the
# leg backwards (a stale read of a busy venue) and is not applied: the machine keeps what it knew.
# An algo order fires (TRIGGERED) and its child order then works and fills (Binance ALGO_UPDATE,
# exchange-facts A3); a Bybit conditional order goes Untriggered (NEW) -> Triggered -> New/Filled (B3).
_AFTER_NEW = frozenset({_S.PARTIALLY_FILLED, _S.FILLED, _S.CANCELED, _S.EXPIRED, _S.TRIGGERED})
LEG_TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    _S.PENDING_NEW: frozenset({_S.NEW, _S.REJECTED}) | _AFTER_NEW,  # written before sending: anything may follow
    _S.NEW: _AFTER_NEW,
    _S.PARTIALLY_FILLED: frozenset({_S.FILLED, _S.CANCELED, _S.EXPIRED, _S.TRIGGERED}),
    _S.TRIGGERED: frozenset({_S.NEW, _S.PARTIALLY_FILLED, _S.FILLED, _S.CANCELED, _S.EXPIRED}),
    _S.FILLED: frozenset(),
    _S.CANCELED: frozenset(),
    _S.EXPIRED: frozenset(),
    _S.REJECTED: frozenset(),
}


def is_news(leg_status: OrderStatus, leg_filled: int, u: OrderUpdate) -> bool:
    """Whether the venue's report `u` of a journal leg tells the machine something it does not know."""
    if u.filled_lots > leg_filled:
        return True  # a fill is always news (fills are counted from the cumulative quantity: no double count)
    return u.status in LEG_TRANSITIONS[leg_status]


@dataclass(frozen=True, slots=True)
class JournalLeg:
    client_id: str
    role: LegRole
    kind: OrderKind
    side: Side
    status: OrderStatus
    filled_lots: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "role", LegRole(self.role))  # the journal stores the value


@dataclass(frozen=True, slots=True)
class JournalTrade:
    trade_id: str
    symbol: str
    side: str  # long | short
    state: TradeState
    stop_price: float  # the live protective stop (trades.stop_price, else planned_stop_price)
    legs: tuple[JournalLeg, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "state", TradeState(self.state))  # the journal stores the value


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
    # the account the positions came from (equity, free margin): the engine's sizing and /status use it too,
    # so a pass costs no second account request (bot.execution.recovery)
    account: AccountSnapshot | None = None


@dataclass(frozen=True, slots=True)
class ReconcileConfig:
    instruments: dict[str, Instrument]
    unknown_position_action: str = "stop"  # "stop" | "flatten"
    unknown_position_stop_bps: float = 50.0
    working_type: TriggerPrice = TriggerPrice.MARK


@dataclass(frozen=True, slots=True)
class ApplyUpdate:
    update: OrderUpdate
    # the leg ended with a position that is gone (closed outside the bot, CloseTrade follows): record its end
    # without the live reactions (a target re-sent, a stop replaced) that would only meet "nothing to reduce"
    quiet: bool = False


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
    client_id: str  # "" for an order placed by hand without one (Bybit: no orderLinkId): by venue id then
    conditional: bool
    reason: str
    venue_order_id: str = ""


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


@dataclass(frozen=True, slots=True)
class Unowned:
    """The exchange holds `lots` (signed) on `symbol` that no open trade of the bot owns (a position or an
    add made by hand): protected by a stop of its own and never netted into a bot trade (the caller halts
    entries on the symbol while it exists)."""

    symbol: str
    lots: int


Action = ApplyUpdate | PlaceStop | Flatten | CancelOrder | CloseTrade | Alert | Unowned

# REST weight of one pass on Binance USD-M (exchange-facts A2 "REST rate limits", A3 endpoint table):
# GET /fapi/v2/account 5, per symbol GET openOrders 1 + GET openAlgoOrders 1 (with a symbol; 40 without),
# each look-up of an unfinished leg (GET order / algoOrder) 1, each userTrades 5.
_W_ACCOUNT, _W_OPEN_PER_SYMBOL, _W_LOOKUP, _W_FILLS = 5, 2, 1, 5
REQUEST_WEIGHT_PER_MIN = 2400  # Binance USD-M IP limit (A2); Bybit's 600 requests / 5 s is looser per pass


def pass_weight(n_symbols: int, lookups: int = 0, fill_lists: int = 0) -> int:
    """IP weight one reconciliation pass spends (the base: account + open orders of every symbol)."""
    return _W_ACCOUNT + _W_OPEN_PER_SYMBOL * n_symbols + _W_LOOKUP * lookups + _W_FILLS * fill_lists


def weight_per_min(n_symbols: int, interval_ms: int) -> float:
    """The base weight the timer spends per minute (the share of REQUEST_WEIGHT_PER_MIN it takes)."""
    return pass_weight(n_symbols) * 60_000 / max(1, interval_ms)


def _held_lots(t: JournalTrade, filled_now: dict[str, int]) -> int:
    """The trade's position (signed lots) as the journal (and the fills found in this pass) say."""
    net = 0
    for leg in t.legs:
        lots = max(leg.filled_lots, filled_now.get(leg.client_id, 0))
        net += lots if leg.role.opens else -lots
    return max(0, net) if t.side == "long" else -max(0, net)


def expected_lots(trades: Sequence[JournalTrade], symbol: str, filled_now: dict[str, int] | None = None) -> int:
    """What the bot's open trades hold on `symbol` (signed lots)."""
    return sum(_held_lots(t, filled_now or {}) for t in trades if t.symbol == symbol and t.state in OPEN_STATES)


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
            if u is not None and is_news(leg.status, leg.filled_lots, u):
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
        sym_trades = [t for t in trades if t.symbol == sym and t.state in OPEN_STATES]
        orders = [o for o in ex.open_orders if o.symbol == sym]
        removable = [o for o in orders if o.venue_order_id not in ex.position_stops]
        if lots == 0:
            for o in removable:
                owner = by_cid.get(o.client_id)
                entering = owner is not None and TRADE_RULES[owner[0].state].keeps_entry_orders and not _is_exit(o)
                if not entering:
                    why = "orphan exit order, no position" if _is_exit(o) else "entry order of no open trade"
                    out.append(CancelOrder(sym, o.client_id, o.kind.is_conditional, why, o.venue_order_id))
            for t in sym_trades:
                if t.state not in _HELD:
                    continue
                exits_filled = any(filled_now.get(leg.client_id, 0) > leg.filled_lots
                                   for leg in t.legs if not leg.role.opens)
                if not exits_filled:
                    out.append(CloseTrade(t.trade_id, CloseReason.MANUAL,
                                          "the exchange reports no position and no exit fill explains it"))
                    out.append(Alert("emergency", f"{t.trade_id} closed outside the bot (manual close?)", sym))
            continue
        side_close = Side.SELL if lots > 0 else Side.BUY
        direction = "long" if lots > 0 else "short"
        held = f"position {inst.lots_to_qty(lots):g}"  # signed quantity, for people
        stops = [o for o in orders if o.kind in (OrderKind.STOP_MARKET, OrderKind.TRAILING_STOP_MARKET)
                 and o.side is side_close and o.status in (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED)]
        # the bot's own size in this direction; the rest of the position is nobody's (a manual add). A trade
        # of this direction that holds nothing (its entry still resting) does not own a position it never filled.
        # Each open trade that holds a part owns it, with its own exits and its own stop: normally one trade per
        # symbol, but an entry that executed after its look-ups said "not found" reopens its trade while the
        # symbol's next trade may already hold (issue 11 late execution): neither's stop is the other's orphan
        holders = [(t, n) for t in sym_trades if t.side == direction and (n := _held_lots(t, filled_now)) != 0]
        mine = sum(n for _, n in holders)
        if holders:
            owners = ", ".join(t.trade_id for t, _ in holders)
            own_cids = {leg.client_id for t in sym_trades if t.side == direction for leg in t.legs}
            excess = lots - mine if abs(lots) > abs(mine) else 0
            for t, n in holders:
                t_cids = {leg.client_id for leg in t.legs}
                if any(o.client_id in t_cids for o in stops):
                    continue
                price = t.stop_price or 0.0
                if price <= 0:  # no stop known at all: the config's distance from the entry
                    price = _unknown_stop_price(pos, cfg)  # type: ignore[arg-type]
                req = OrderRequest(f"{t.trade_id}-slr{_suffix(now_ns)}", sym, side_close, OrderKind.STOP_MARKET,
                                   abs(n) if excess else min(abs(n), abs(lots)),
                                   trigger_ticks=_stop_ticks(price, side_close, inst), reduce_only=True,
                                   working_type=cfg.working_type)
                out.append(PlaceStop(t.trade_id, req, f"{t.trade_id}: {held} has no live stop"))
            open_cids = {leg.client_id for t in sym_trades for leg in t.legs}
            foreign_stops = [o for o in stops if o.client_id not in open_cids
                             and o.venue_order_id not in ex.position_stops]
            # orphans of other (closed or unknown) trades would fire on this position with the wrong size;
            # a stop guarding the size nobody owns is kept
            for o in removable:
                if _is_exit(o) and o.client_id not in own_cids and not (excess and o in foreign_stops):
                    out.append(CancelOrder(sym, o.client_id, o.kind.is_conditional, "exit order of no open trade",
                                           o.venue_order_id))
            if excess and any(o.venue_order_id in ex.position_stops for o in stops):
                # the position's own stop (Bybit trading-stop, tpslMode Full) closes all of it, the manual size
                # included; a stop order of our own there would move that one stop (exchange-facts B3), not add a second
                out.append(Unowned(sym, excess))
                out.append(Alert("emergency", f"{held} holds {inst.lots_to_qty(excess):g} more than "
                                              f"{owners} owns; the position's stop covers it", sym))
            elif abs(lots) < abs(mine):  # part of the bot's size closed outside the bot: its exits would
                # over-close nothing (reduce-only), but the journal's PnL and sizes are wrong: the operator decides
                out.append(Alert("error", f"{held} is less than the {inst.lots_to_qty(mine):g} the bot's trades "
                                          "hold: reduced outside the bot?", sym))
            elif excess:
                out.extend(_cover_unowned(sym, pos, excess, foreign_stops, inst, cfg, now_ns,  # type: ignore[arg-type]
                                          f"{held} holds {inst.lots_to_qty(excess):g} more than "
                                          f"{owners} owns ({inst.lots_to_qty(mine):g})"))
            continue
        # a position nobody planned
        out.append(Unowned(sym, lots))
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
    return _quiet_ends(out, by_cid)


def _quiet_ends(out: list[Action], by_cid: dict[str, tuple[JournalTrade, JournalLeg]]) -> list[Action]:
    """Status-only ends of the exit legs (stop, targets, exits) of a trade closed MANUAL in this pass: quiet."""
    closing = {a.trade_id for a in out if isinstance(a, CloseTrade)}
    if not closing:
        return out
    res: list[Action] = []
    for a in out:
        if isinstance(a, ApplyUpdate):
            u = a.update
            owner = by_cid.get(u.parent_id or u.client_id)
            if owner is not None and owner[0].trade_id in closing and not owner[1].role.opens \
                    and u.status.is_final and u.filled_lots <= owner[1].filled_lots:
                a = ApplyUpdate(u, quiet=True)
        res.append(a)
    return res


def _cover_unowned(sym: str, pos: PositionSnapshot, excess: int, foreign_stops: Sequence[OrderUpdate],
                   inst: Instrument, cfg: ReconcileConfig, now_ns: int, what: str) -> list[Action]:
    """A size beside a bot trade that no trade owns: its own reduce-only stop (`unknown_position_stop_bps`
    from the position's entry) for what the stops nobody owns do not cover yet, an alert, and `Unowned`
    (entries halted on the symbol: a bot trade must never absorb it)."""
    out: list[Action] = [Unowned(sym, excess)]
    # a close-position stop (quantity 0) covers the whole position
    covered = sum(o.qty_lots or abs(pos.qty_lots) for o in foreign_stops)
    missing = abs(excess) - covered
    if missing <= 0:
        out.append(Alert("emergency", f"{what}; its stop is kept", sym))
        return out
    side_close = Side.SELL if pos.qty_lots > 0 else Side.BUY
    req = OrderRequest(f"recon-sl-{_suffix(now_ns)}", sym, side_close, OrderKind.STOP_MARKET, missing,
                       trigger_ticks=_stop_ticks(_unknown_stop_price(pos, cfg), side_close, inst), reduce_only=True,
                       working_type=cfg.working_type)
    out.append(PlaceStop("", req, f"{sym}: {what}"))
    out.append(Alert("emergency", f"{what} -> stop for {inst.lots_to_qty(missing):g}, entries halted", sym))
    return out


def _unknown_stop_price(pos: PositionSnapshot, cfg: ReconcileConfig) -> float:
    d = cfg.unknown_position_stop_bps / 10_000.0
    return pos.entry_price * (1 - d) if pos.qty_lots > 0 else pos.entry_price * (1 + d)
