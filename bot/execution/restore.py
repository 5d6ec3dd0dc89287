"""A trade machine rebuilt from the journal after a restart (pure: journal rows in, machine and actions out).

`restore_machine` gives back the TradeMachine the engine held before it died, from what the journal kept,
replayed through the machine's own methods (`replay_leg`, `replay_fill`, `replay_state_change`,
`replay_end`; restore_machine writes no field of it):
- the plan: side, reference price, planned stop, risk budget and leverage from the `trades` row; the entry's
  terms from its leg; the take-profit tiers from the TP legs (prices, and fractions from their sizes);
  the deadlines from the config the bot runs with now (`max_hold_s`, the setup's `time_limit_s`,
  `no_progress_s`), since the journal keeps no deadline. An adopted trade does not scale in further:
  the increments it had not yet sent are not journaled, and an add on a guess is risk nobody planned;
- the position: lots, average entry, realised PnL, fees and exit value replayed from the `fills` table
  with the machine's own arithmetic, so the trade closes with the same PnL it would have had;
- the legs, with their client ids, statuses, fills and venue ids; the version of every leg name ("sl",
  "sl.2", ...) continues from the highest one sent, so a new client id never collides with one the venue
  has seen (a PLANNED row was never sent: its name is used when the leg goes out, as without a restart).

`repair` catches the state up with the fills when the kill fell between the two; `rearm` schedules the
deadlines again from the first fill (a deadline already past fires at once);
`restore_stop` gives a position whose stop is gone a new one; `end_quietly` records a leg the venue no
longer has without the live-stream reactions (reconciliation replaces a vanished stop, it does not
flatten); `close_outside` and `close_unknown` close a trade whose position was closed outside the bot
(by hand), with the exchange's fills when they are known and with an unknown exit price otherwise.
Each of them acts through the machine's public restart methods (TradeMachine.restart_move, restart_flat,
restart_deadline, live_legs, cancel_leg, resend_exit, replace_targets, replace_stop, outside_exit_leg,
close_unknown): nothing here calls or writes a private member of the machine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from bot.domain.instrument import Instrument
from bot.domain.orders import OrderRequest, OrderUpdate
from bot.domain.types import CloseReason, OrderKind, OrderStatus, Side, TimeInForce, TriggerPrice
from bot.execution.actions import (
    Action,
    Leg,
    LegRole,
    OrderEvent,
    Timer,
    TradeState,
)
from bot.execution.planner import EntryTerms, TradePlan
from bot.execution.trade import TradeMachine, exit_reason_of

if TYPE_CHECKING:
    from bot.settings.execution import ExecutionSection

__all__ = ["ExternalFill", "close_outside", "close_unknown", "end_quietly", "exit_reason_of", "leg_version",
           "rearm", "repair", "restore_machine", "restore_stop", "resume"]

_S = 1_000_000_000
_MS = 1_000_000


@dataclass(frozen=True, slots=True)
class ExternalFill:
    """A fill of an order that is not ours (a position closed by hand), as the exchange reports it."""

    lots: int
    price: float
    fee: float
    ts_ns: int
    venue_trade_id: str = ""
    venue_order_id: str = ""
    is_maker: bool = False


def leg_version(trade_id: str, client_id: str) -> tuple[str, int]:
    """("sl", 3) for "t5-sl.3", ("tp1", 1) for "t5-tp1": the machine's `_cid` naming, read back."""
    name = client_id[len(trade_id) + 1:] if client_id.startswith(trade_id + "-") else client_id
    base, dot, v = name.partition(".")
    return base, int(v) if dot and v.isdigit() else 1


def _ticks(inst: Instrument, price: Any) -> int | None:
    return inst.price_to_ticks(price) if price not in (None, "", 0, 0.0) else None


def _request(row: dict[str, Any], inst: Instrument) -> OrderRequest:
    return OrderRequest(
        row["client_id"], row["symbol"], Side(row["side"]), OrderKind(row["kind"]), inst.qty_to_lots(row["qty"]),
        price_ticks=_ticks(inst, row.get("price")), trigger_ticks=_ticks(inst, row.get("trigger_price")),
        time_in_force=TimeInForce(row.get("time_in_force") or "GTC"), reduce_only=bool(row.get("reduce_only")),
        working_type=TriggerPrice(row.get("working_type") or "MARK_PRICE"))


def _plan(trade: dict[str, Any], legs: Sequence[dict[str, Any]], inst: Instrument, cfg: ExecutionSection,
          time_limit_s: float) -> TradePlan:
    tid = trade["trade_id"]
    sign = 1 if trade["side"] == "long" else -1
    ref = _ticks(inst, trade.get("intent_price")) or 0
    stop = _ticks(inst, trade.get("planned_stop_price")) or 0
    entry = next((r for r in legs if r["role"] == LegRole.ENTRY.value), None)
    if entry is not None:
        kind, tif = OrderKind(entry["kind"]), TimeInForce(entry.get("time_in_force") or "GTC")
        px = _ticks(inst, entry.get("price")) if kind is not OrderKind.MARKET else None
    else:  # a journal without the entry leg: a market entry at the reference
        kind, tif, px = OrderKind.MARKET, TimeInForce.GTC, None
    sizing = px if px is not None else ref + sign * cfg.entry_offset_ticks
    terms = EntryTerms(kind, tif, px, sizing, tif is TimeInForce.GTX)
    r_ticks = abs(sizing - stop) if stop else 0
    # increments: the ones that were sent (entry, then adds by tier); none further after a restart
    def increment(r: dict[str, Any]) -> int:  # "entry" -> 1, "add3" -> 3
        base = leg_version(tid, r["client_id"])[0]
        return int(base[3:]) if base.startswith("add") and base[3:].isdigit() else 1

    # one row per increment: a maker entry re-posted at a new touch ("entry", "entry.2", ...; entry_styles.py)
    # is one increment, its latest version
    latest: dict[str, tuple[int, dict[str, Any]]] = {}
    for r in legs:
        if r["role"] in (LegRole.ENTRY.value, LegRole.ADD.value) and r["status"] != "PLANNED":
            base, v = leg_version(tid, r["client_id"])
            if base not in latest or v >= latest[base][0]:
                latest[base] = (v, r)
    opens = sorted((r for _, r in latest.values()), key=increment)
    increments = tuple(inst.qty_to_lots(r["qty"]) for r in opens) or (
        inst.qty_to_lots(trade.get("planned_qty") or 0),)
    # take-profit tiers: the latest version of each tier's leg (re-sent at the real size with the same price)
    tp: dict[int, tuple[int, int, int]] = {}  # tier -> (version, price ticks, lots)
    for r in legs:
        if r["role"] != LegRole.TP.value or r.get("price") is None:
            continue
        base, v = leg_version(tid, r["client_id"])
        tier = int(base[2:]) if base[2:].isdigit() else 0
        if tier and (tier not in tp or v >= tp[tier][0]):
            tp[tier] = (v, inst.price_to_ticks(r["price"]), inst.qty_to_lots(r["qty"]))
    total = sum(lots for _, _, lots in tp.values()) or 1
    tiers = tuple((tp[i][1], tp[i][2] / total) for i in sorted(tp))
    hold_s = cfg.max_hold_s if time_limit_s <= 0 else min(cfg.max_hold_s, time_limit_s)
    progress = max(1, round(cfg.no_progress_min_r * r_ticks))
    if cfg.no_progress_min_ticks:
        progress = min(progress, cfg.no_progress_min_ticks)
    try:
        features = dict(orjson.loads(trade.get("features") or "{}"))
    except orjson.JSONDecodeError:
        features = {}
    return TradePlan(
        trade_id=tid, symbol=trade["symbol"], setup=trade["setup"], side=trade["side"], sign=sign, entry=terms,
        ref_ticks=ref, stop_ticks=stop, r_ticks=r_ticks, increments=increments, add_trigger_ticks=(),
        tp_tiers=tiers, max_hold_ns=int(hold_s * _S), no_progress_ns=int(cfg.no_progress_s * _S),
        progress_ticks=progress, risk_budget=float(trade.get("risk_budget") or 0.0),
        leverage=int(trade.get("leverage") or 1), intent_ts_ns=int(trade.get("intent_ts_ns") or 0), features=features)


def restore_machine(trade: dict[str, Any], legs: Sequence[dict[str, Any]], fills: Sequence[dict[str, Any]],
                    inst: Instrument, cfg: ExecutionSection, *, taker_fee_bps: float, maker_fee_bps: float,
                    time_limit_s: float = 0.0, states: Sequence[dict[str, Any]] = ()) -> TradeMachine:
    """The machine of an open journal trade. `legs`, `fills`, `states`: its rows of those tables (the trade's
    state_changes), oldest first. Deadlines are not scheduled here (see `rearm`)."""
    tid = trade["trade_id"]
    m = TradeMachine(_plan(trade, legs, inst, cfg, time_limit_s), inst, cfg, taker_fee_bps=taker_fee_bps,
                     maker_fee_bps=maker_fee_bps)
    fees_of: dict[str, float] = {}
    for f in fills:
        fees_of[f["client_id"]] = fees_of.get(f["client_id"], 0.0) + float(f["fee"] or 0.0)
    for r in legs:
        if r["status"] == "PLANNED":
            continue  # planned up front, never sent (the row is updated when it is): the venue never saw it
        base, v = leg_version(tid, r["client_id"])
        role = LegRole(r["role"])
        status = OrderStatus(r["status"])
        tier = 0
        if role is LegRole.TP:
            tier = int(base[2:]) if base[2:].isdigit() else 0
        elif role is LegRole.ADD:
            tier = int(base[3:]) if base[3:].isdigit() else 0
        elif role is LegRole.STOP:
            tier = v
        m.replay_leg(Leg(r["client_id"], role, _request(r, inst), _ticks(inst, r.get("intended_price")) or 0,
                         tier=tier, status=status, confirmed=status is not OrderStatus.PENDING_NEW,
                         filled_lots=inst.qty_to_lots(r.get("filled_qty") or 0),
                         avg_price=float(r.get("avg_price") or 0.0), fees=fees_of.get(r["client_id"], 0.0),
                         venue_order_id=str(r.get("venue_order_id") or "")), base, v)
    for f in fills:
        m.replay_fill(LegRole(f["role"]), inst.qty_to_lots(f["qty"]), float(f["price"]), float(f["fee"] or 0.0),
                      int(f["ts_ns"]))
    for st in states:
        m.replay_state_change(str(st.get("to_state") or ""), str(st.get("reason") or ""))
    m.replay_end(TradeState(trade["state"]), entry_ts_ns=int(trade.get("entry_ts_ns") or 0),
                 stop_confirm_ms=trade.get("stop_confirm_ms"), max_open_risk=float(trade.get("max_open_risk") or 0.0))
    return m


def repair(m: TradeMachine, fills: Sequence[dict[str, Any]]) -> list[Action]:
    """A kill between two journal transactions (a fill or an acknowledgement, then the state change it causes)
    leaves the trade's state behind: an entry fill with the trade still ENTERING -> PROTECTING now; a stop
    acknowledged with the trade still PROTECTING -> PROTECTED; the last exit fill with the trade still open
    -> closed now with the reason of the leg that filled and that fill's time."""
    out: list[Action] = []
    if m.is_final or not m.opened:
        return out
    if m.state is TradeState.ENTERING:
        first = next((f for f in fills if LegRole(f["role"]).opens), None)
        out += m.restart_move(TradeState.PROTECTING, "restart: the entry had filled", entry_ts_ns=m.first_fill_ns,
                              entry_price=float(first["price"]) if first else m.avg_entry,
                              stop_price=m.lim.px(m.stop_ticks))
    sl = m.stop_leg
    if m.state is TradeState.PROTECTING and m.pos_lots > 0 and sl is not None and sl.confirmed and not sl.done:
        out += m.restart_move(TradeState.PROTECTED, f"restart: {sl.client_id} confirmed")  # its ack was journaled
    if m.pos_lots == 0:
        last = next((f for f in reversed(fills) if not LegRole(f["role"]).opens), None)
        if last is not None:
            role = LegRole(last["role"])
            if role is LegRole.STOP:
                reason = CloseReason.TRAILING_STOP if m.trailing else CloseReason.STOP_LOSS
            elif role is LegRole.TP:
                reason = CloseReason.TAKE_PROFIT
            else:
                reason = m.exit_reason or CloseReason.MANUAL
            out += m.restart_flat(reason, int(last["ts_ns"]))
    return out


def rearm(m: TradeMachine, now_ns: int, entry_created_ns: int = 0) -> list[Action]:
    """The deadlines again, from the first fill (MAX_HOLD, NO_PROGRESS) or the entry's creation
    (ENTRY_TIMEOUT). One already past is scheduled in the past: the engine fires it at once."""
    out: list[Action] = []
    if m.is_final:
        return out
    if m.opened and m.state in (TradeState.PROTECTING, TradeState.PROTECTED):
        if m.plan.no_progress_ns and not m.progress_done:
            out += m.restart_deadline(Timer.NO_PROGRESS, m.first_fill_ns + m.plan.no_progress_ns)
        out += m.restart_deadline(Timer.MAX_HOLD, m.first_fill_ns + m.plan.max_hold_ns)
    if m.live_legs(LegRole.ENTRY, LegRole.ADD):
        out += m.restart_deadline(Timer.ENTRY_TIMEOUT, (entry_created_ns or now_ns) + m.cfg.entry_timeout_ms * _MS)
    return out


def resume(m: TradeMachine, venue_lots: int, now_ns: int, entry_created_ns: int = 0) -> tuple[list[Action], str]:
    """Once the exchange confirmed the trade's position (`venue_lots`, signed): its deadlines again (`rearm`),
    superseded stops cancelled, a flatten that was under way sent again if its exit order is gone,
    take-profits placed again if none is live. Returns the actions and a warning ("" when the venue's
    position matches the machine's)."""
    out = rearm(m, now_ns, entry_created_ns)
    warning = ""
    if m.is_final or m.pos_lots <= 0:
        return out, warning
    if m.sign * venue_lots != m.pos_lots:
        warning = f"{m.tid}: the journal holds {m.sign * m.pos_lots} lots, the exchange {venue_lots}"
    sl = m.stop_leg
    if sl is not None and sl.confirmed and not sl.done:
        for other in m.live_legs(LegRole.STOP):
            if other is not sl:  # superseded before the restart, its cancel never confirmed
                out += m.cancel_leg(other.client_id)
    if m.state is TradeState.EXITING:
        out += m.resend_exit(now_ns)
    elif m.state in (TradeState.PROTECTING, TradeState.PROTECTED) and m.plan.tp_tiers and not m.live_legs(
            LegRole.TP, LegRole.ENTRY, LegRole.ADD):
        out += m.replace_targets()
    return out, warning


def restore_stop(m: TradeMachine, now_ns: int, why: str) -> list[Action]:
    """A new protective stop for the whole position at the machine's stop price (the venue lost or never
    received the last one). Nothing when flat."""
    return m.replace_stop(now_ns, why)


def end_quietly(m: TradeMachine, client_id: str, status: OrderStatus, reason: str) -> list[Action]:
    """Record that the venue has a leg as `status` (or does not have it at all) without the live reactions
    (a vanished stop is replaced by reconciliation, not flattened)."""
    leg = m.legs.get(client_id)
    if leg is None or leg.done:
        return []
    leg.status = status
    return [OrderEvent(m.tid, client_id, status, reason, leg.venue_order_id)]


def close_outside(m: TradeMachine, fills: Sequence[ExternalFill], now_ns: int) -> tuple[Leg | None, list[Action]]:
    """The position was closed by orders that are not ours: those fills become the trade's exit (a leg
    "<tid>-manual", reason MANUAL), so the trade closes with the exchange's exit price, time, PnL and fees.
    Returns the new leg (for the journal, before the actions) and the actions."""
    lots = sum(f.lots for f in fills)
    if m.is_final or m.pos_lots <= 0 or lots <= 0:
        return None, []
    leg = m.outside_exit_leg(lots)
    out: list[Action] = []
    cum, notional = 0, 0.0
    for f in fills:
        cum += f.lots
        notional += f.lots * f.price
        status = OrderStatus.FILLED if cum >= lots else OrderStatus.PARTIALLY_FILLED
        out.extend(m.on_update(OrderUpdate(
            leg.client_id, f.venue_order_id, m.plan.symbol, m.exit_side, OrderKind.MARKET, status, lots, cum,
            notional / cum, last_fill_lots=f.lots, last_fill_price=f.price, fee=f.fee, is_maker=f.is_maker,
            reduce_only=True, trade_id=f.venue_trade_id, reason="closed outside the bot", ts_event_ns=f.ts_ns,
            ts_recv_ns=now_ns), f.ts_ns))
    return leg, out


def close_unknown(m: TradeMachine, now_ns: int, detail: str) -> list[Action]:
    """The exchange says flat and no fill of it can be found: CLOSED as MANUAL with exit price, time and PnL
    unknown (NULL in the journal; the report leaves such a trade out; the state change's time says when the
    bot found out). Every live leg is cancelled."""
    return m.close_unknown(detail)
