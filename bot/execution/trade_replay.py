"""Restart: the journal's events replayed through the trade machine's own methods (bot.execution.restore);
a part of bot.execution.trade.TradeMachine, split out of trade.py to keep it small."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.domain.types import CloseReason, OrderStatus
from bot.execution import trade_legs
from bot.execution.actions import Leg, LegRole, TradeState

if TYPE_CHECKING:
    from bot.execution.trade import TradeMachine

__all__ = ["exit_reason_of", "replay_end", "replay_fill", "replay_leg", "replay_not_found", "replay_state_change"]


def exit_reason_of(why: str) -> CloseReason | None:
    """The close reason of a flatten, from the reason text the machine journaled when it entered EXITING."""
    if why in CloseReason.__members__:
        return CloseReason(why)
    if why == "max hold":
        return CloseReason.TIME_LIMIT
    if why == "no progress":
        return CloseReason.NO_PROGRESS
    if why.startswith("stop would trigger"):
        return CloseReason.STOP_LOSS
    if why.startswith("stop "):  # "stop not confirmed in 500 ms", "stop rejected", "stop canceled"
        return CloseReason.RISK_HALT
    return None


def replay_leg(m: TradeMachine, leg: Leg, name: str, version: int) -> None:
    """A leg the journal says was sent ("<tid>-sl.3": `name` "sl", `version` 3): known again. New client
    ids continue after the highest version, never one the venue has seen; the newest live stop is the
    one that protects the position (with none live, the newest)."""
    m._versions[name] = max(m._versions.get(name, 0), version)
    m.legs[leg.client_id] = leg
    cur = m.stop_leg
    if leg.role is LegRole.STOP and (cur is None or (not leg.done, leg.tier) > (not cur.done, cur.tier)):
        m.stop_leg = leg


def replay_fill(m: TradeMachine, role: LegRole, lots: int, price: float, fee: float, ts_ns: int) -> None:
    """A journaled fill, oldest first: the position with the live arithmetic, so the trade closes with the
    PnL it would have had."""
    m.fees += fee
    if not role.opens:
        trade_legs.shrink(m, lots, price)
        return
    trade_legs.grow(m, lots, price)
    if not m.opened:
        m.opened = True
        m.first_fill_ns = ts_ns


def replay_state_change(m: TradeMachine, to_state: str, reason: str) -> None:
    """A journaled state change, oldest first: what the trade's legs and fills do not say (a trailing stop,
    the reason of a flatten under way)."""
    if reason == "new stop (trail)":
        m.trailing = True
    if to_state == TradeState.EXITING.value and m.exit_reason is None:
        m.exit_reason = exit_reason_of(reason)


def replay_not_found(m: TradeMachine, client_id: str) -> None:
    """The journal holds `client_id` (an entry) in quarantine: it was given up as "not found" after an
    ambiguous outcome and may still execute, so a late update of it reopens the trade (reopen_late) as it
    would have before the restart (bot/execution/quarantine_restore.py)."""
    if client_id in m.legs:
        m._not_found.add(client_id)


def replay_end(m: TradeMachine, state: TradeState, *, entry_ts_ns: int = 0, stop_confirm_ms: float | None = None,
               max_open_risk: float = 0.0) -> None:
    """The replay is complete: the state the journal last wrote (no transition: nothing happens, the
    machine only remembers), what follows from the legs, and no further scale-ins (the increments not yet
    sent are not journaled; an add on a guess is risk nobody planned)."""
    m.state = state
    for leg in m.legs.values():
        if leg.role.opens and leg.filled_lots:
            m.inc_avg[max(leg.tier, 1)] = leg.avg_price
            if leg.role is LegRole.ENTRY:
                m.first_entry = leg.avg_price
        if leg.role is LegRole.TP and leg.status is OrderStatus.FILLED:
            m.tp_filled = max(m.tp_filled, leg.tier)
    if m.opened and not m.first_entry:
        m.first_entry = m.avg_entry
    if entry_ts_ns:  # the machine's own clock at the first fill (the fill row has the venue's)
        m.first_fill_ns = entry_ts_ns
    m.next_inc = len(m.plan.increments)
    if m.stop_leg is not None and m.stop_leg.req.trigger_ticks is not None:
        m.stop_ticks = m.stop_leg.req.trigger_ticks
    if m.avg_entry:
        m.best_ticks = round(m.avg_entry / m.lim.tick)
    m.stop_confirm_ms = stop_confirm_ms
    m.max_open_risk = max_open_risk
    m._track_risk()
