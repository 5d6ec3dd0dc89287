"""The trade machine's restart methods (bot.execution.restore / recovery catching up with the venue after a
restart): public on TradeMachine so that a restart never calls its internals; each returns the actions to carry
out, like every input of the machine. Split out of trade.py (size), as trade_legs.py and trade_replay.py are.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.domain.orders import OrderRequest
from bot.domain.types import CloseReason, OrderKind, OrderStatus
from bot.execution.actions import Action, Leg, LegRole, StateChanged, Timer, TradeClosed, TradeState

if TYPE_CHECKING:
    from bot.execution.trade import TradeMachine

__all__ = [
    "cancel_leg",
    "close_unknown",
    "live_legs",
    "outside_exit_leg",
    "replace_stop",
    "replace_targets",
    "resend_exit",
    "restart_deadline",
    "restart_flat",
    "restart_move",
]


def restart_move(m: TradeMachine, new: TradeState, reason: str, **fields: object) -> list[Action]:
    """A move the journal missed (a kill between a fill and the state change it causes), inferred on
    restart; only a legal one (TRANSITIONS, else IllegalTransition)."""
    out: list[Action] = []
    m._set(new, reason, out, **fields)
    return out


def restart_flat(m: TradeMachine, reason: CloseReason, ts_ns: int) -> list[Action]:
    """The position is flat (its last exit fill is journaled): other legs cancelled, the trade closed."""
    out: list[Action] = []
    m._flat(reason, ts_ns, out)
    return out


def restart_deadline(m: TradeMachine, timer: Timer, at_ns: int) -> list[Action]:
    """A deadline again after a restart (one already past fires at once)."""
    out: list[Action] = []
    m._schedule(timer, at_ns, out)
    return out


def live_legs(m: TradeMachine, *roles: LegRole) -> list[Leg]:
    """The legs of these roles the venue may still have (not final)."""
    return m._open_legs(*roles)


def cancel_leg(m: TradeMachine, client_id: str) -> list[Action]:
    """Cancel one leg (a stop superseded before a restart whose cancel was never confirmed)."""
    out: list[Action] = []
    leg = m.legs.get(client_id)
    if leg is not None:
        m._cancel(leg, out)
    return out


def resend_exit(m: TradeMachine, now_ns: int) -> list[Action]:
    """A flatten under way whose exit order is gone: a market exit for the whole position."""
    out: list[Action] = []
    if m.pos_lots > 0 and not m._open_legs(LegRole.EXIT):
        m._send_exit(m.pos_lots, now_ns, out)
    return out


def replace_targets(m: TradeMachine) -> list[Action]:
    """The take-profit tiers again for the position (none live after a restart)."""
    out: list[Action] = []
    m._place_tps(out)
    return out


def replace_stop(m: TradeMachine, now_ns: int, why: str) -> list[Action]:
    """A new protective stop for the whole position at the machine's stop price (the venue lost or never
    received the last one), with its confirmation deadline. Nothing when flat or final."""
    out: list[Action] = []
    if m.pos_lots > 0 and not m.is_final:
        m._place_stop(now_ns, out, why)
    return out


def outside_exit_leg(m: TradeMachine, lots: int) -> Leg:
    """A leg "<tid>-manual" standing for orders that are not ours which closed the position (by hand): the
    exchange's fills of them are then applied to it (`on_update`) as the trade's exit."""
    cid = m._cid("manual")
    req = OrderRequest(cid, m.plan.symbol, m.exit_side, OrderKind.MARKET, lots, reduce_only=True)
    leg = Leg(cid, LegRole.EXIT, req, m.last_ticks, status=OrderStatus.NEW, confirmed=True)
    m.legs[cid] = leg
    m.exit_reason = CloseReason.MANUAL
    return leg


def close_unknown(m: TradeMachine, detail: str) -> list[Action]:
    """The exchange says flat and no fill explains it: CLOSED (from any state: the position is gone,
    whatever the machine thought) as MANUAL with exit price, time and PnL unknown; live legs cancelled."""
    out: list[Action] = []
    if m.is_final:
        return out
    for leg in m.legs.values():
        m._cancel(leg, out)
    m.deadlines.clear()
    old, m.state, m.exit_reason = m.state, TradeState.CLOSED, CloseReason.MANUAL
    out.append(StateChanged(m.tid, old, TradeState.CLOSED, f"{detail}; exit price unknown", {
        "exit_reason": CloseReason.MANUAL.value, "exit_price": None, "exit_ts_ns": None, "pnl": None,
        "r_multiple": None, "fees": m.fees, "qty": m.lim.qty(m.max_pos_lots),
        "max_open_risk": m.max_open_risk, "entry_price": m.first_entry or None}))
    # the risk gate counts an unknown result as neither a win nor a loss
    out.append(TradeClosed(m.tid, m.plan.symbol, m.plan.setup, CloseReason.MANUAL, 0.0, m.fees, 0.0))
    return out
