"""The trade machine's legs after the entry (a part of bot.execution.trade.TradeMachine, split out of trade.py
to keep it small; the rules are in trade.py's module doc): fills and the position, the protective stop and its
moves, the take-profit tiers, scale-ins, exits and the close. Pure, like the machine: each method appends the
actions to carry out to `out`."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from bot.domain.types import CloseReason, OrderKind, OrderStatus, RejectReason, TimeInForce
from bot.execution import entry_styles
from bot.execution.actions import (
    Action,
    HaltSymbol,
    Leg,
    LegRole,
    Timer,
    TradeClosed,
    TradeState,
)
from bot.execution.planner import slice_lots

if TYPE_CHECKING:
    from bot.execution.trade import TradeMachine

__all__ = [
    "breakeven_ticks",
    "close",
    "confirm",
    "flat",
    "flatten",
    "grow",
    "leg_ended",
    "maybe_add",
    "on_fill",
    "place_stop",
    "place_tps",
    "send_exit",
    "shrink",
    "stop_after_add",
    "stop_for_increment",
]

_MS = 1_000_000
_MAX_EXIT_RETRIES = 3  # refused exits re-sent at once; after that with a capped backoff, never given up
_EXIT_RETRY_FIRST_MS = 250
_EXIT_RETRY_CAP_MS = 5_000


def confirm(m: TradeMachine, leg: Leg, now_ns: int, out: list[Action]) -> None:
    if leg.confirmed:
        return
    leg.confirmed = True
    if leg.role is LegRole.STOP and leg is m.stop_leg:
        m._unschedule(Timer.STOP_CONFIRM, out)
        if m.stop_confirm_ms is None:
            m.stop_confirm_ms = (now_ns - m.first_fill_ns) / _MS
        for other in m._open_legs(LegRole.STOP):
            if other is not leg:
                m._cancel(other, out)
        if m.state is TradeState.PROTECTING:
            m._set(TradeState.PROTECTED, f"{leg.client_id} confirmed", out,
                      stop_confirm_ms=m.stop_confirm_ms)


def on_fill(m: TradeMachine, leg: Leg, lots: int, price: float, now_ns: int, out: list[Action]) -> None:
    if leg.role.opens:
        grow(m, lots, price)
        m.inc_avg[max(leg.tier, 1)] = leg.avg_price
        if leg.role is LegRole.ENTRY:
            m.first_entry = leg.avg_price
        first = not m.opened
        if first:
            m.opened = True
            m.first_fill_ns = now_ns
            m.best_ticks = m.last_ticks = round(price / m.lim.tick)
            m._set(TradeState.PROTECTING, "first entry fill", out, entry_ts_ns=now_ns, entry_price=price,
                      stop_price=m.lim.px(m.stop_ticks))
            if m.plan.no_progress_ns:
                m._schedule(Timer.NO_PROGRESS, now_ns + m.plan.no_progress_ns, out)
            m._schedule(Timer.MAX_HOLD, now_ns + m.plan.max_hold_ns, out)
        if m.state is TradeState.EXITING:
            m._send_exit(lots, now_ns, out)  # a late fill while flattening: out with it at once
            return
        m._place_stop(now_ns, out, "entry fill" if leg.role is LegRole.ENTRY else "add fill",
                         stop_after_add(m, leg.tier) if leg.role is LegRole.ADD else None)
        if first and m.exit_reason is not None:  # a flatten was asked before the first fill
            m._flatten(m.exit_reason, "flatten requested before the fill", now_ns, out)
        return
    shrink(m, lots, price)
    if m.pos_lots == 0:
        if leg.role is LegRole.STOP:
            reason = CloseReason.TRAILING_STOP if m.trailing else CloseReason.STOP_LOSS
        elif leg.role is LegRole.TP:
            reason = CloseReason.TAKE_PROFIT
        else:
            reason = m.exit_reason or CloseReason.MANUAL
        m._flat(reason, now_ns, out)


def grow(m: TradeMachine, lots: int, price: float) -> None:
    """The position after an opening fill (live and replayed alike)."""
    new_pos = m.pos_lots + lots
    m.avg_entry = (m.avg_entry * m.pos_lots + price * lots) / new_pos if new_pos else 0.0
    m.pos_lots = new_pos
    m.max_pos_lots = max(m.max_pos_lots, new_pos)


def shrink(m: TradeMachine, lots: int, price: float) -> None:
    """The position and realised PnL after a closing fill (live and replayed alike)."""
    m.realized += m.sign * (price - m.avg_entry) * lots * m.lim.step
    m.pos_lots = max(0, m.pos_lots - lots)
    m.exit_lots += lots
    m.exit_value += price * lots


def leg_ended(m: TradeMachine, leg: Leg, now_ns: int, out: list[Action], code: object = None,
               reason: RejectReason = RejectReason.OTHER) -> None:
    role = leg.role
    if role is LegRole.ENTRY and entry_styles.entry_ended(m, leg, now_ns, out, code):
        return  # re-posted at the new touch, or crossed (maker_then_taker): still ENTERING
    if role.opens:
        if not m._open_legs(LegRole.ENTRY, LegRole.ADD):
            m._unschedule(Timer.ENTRY_TIMEOUT, out)
        if not m.opened:
            if m.state is TradeState.ENTERING:
                m._set(TradeState.ABORTED, f"entry {leg.status.value.lower()} unfilled", out)
            return
        if m.state is TradeState.EXITING and m.pos_lots == 0:
            if not m._open_legs(LegRole.ENTRY, LegRole.ADD):
                close(m, now_ns, out)
        elif m.state in (TradeState.PROTECTING, TradeState.PROTECTED) and m.pos_lots > 0 and (
                role is LegRole.ENTRY or leg.filled_lots > 0):
            m._place_tps(out)  # entry done, or an add filled: (re-)slice the targets
        return
    if role is LegRole.STOP:
        if leg is m.stop_leg and m.pos_lots > 0 and not leg.cancel_sent and \
                leg.status is not OrderStatus.FILLED and m.state is not TradeState.EXITING:
            if reason is RejectReason.STOP_WOULD_TRIGGER:
                # the price is already through the stop: take the loss now (exchange-facts A3)
                m._flatten(CloseReason.STOP_LOSS, "stop would trigger immediately", now_ns, out)
            else:
                out.append(HaltSymbol(m.plan.symbol, f"{leg.client_id} {leg.status.value}: {code}"))
                m._flatten(CloseReason.RISK_HALT, f"stop {leg.status.value.lower()}", now_ns, out)
        return
    if role is LegRole.TP:
        refused = leg.status in (OrderStatus.EXPIRED, OrderStatus.CANCELED) or (
            leg.status is OrderStatus.REJECTED and str(code) == str(entry_styles.POST_ONLY_REJECT))
        if refused and not leg.cancel_sent and m.pos_lots > 0 and leg.req.time_in_force is TimeInForce.GTX \
                and m.state in (TradeState.PROTECTING, TradeState.PROTECTED):
            # a post-only target the venue refused or expired (it would have crossed: Binance -5022, Bybit
            # cancels a crossing PostOnly): the price is at the target already, so the same tier goes
            # once as a plain reduce-only GTC LIMIT at the same price (takes at the target or better)
            lots = min(leg.req.qty_lots - leg.filled_lots, m.pos_lots)
            if lots >= 1:
                m._submit(out, LegRole.TP, f"tp{leg.tier}", OrderKind.LIMIT, lots,
                             price=leg.req.price_ticks, intended=leg.intended_ticks, tier=leg.tier)
            return
        if leg.status is OrderStatus.FILLED and m.pos_lots > 0:
            m.tp_filled = max(m.tp_filled, leg.tier)
            be = None
            if leg.tier == 1 and m.cfg.breakeven_after_tp1:
                be = breakeven_ticks(m, m.avg_entry)
            if m.state in (TradeState.PROTECTING, TradeState.PROTECTED):
                m._place_stop(now_ns, out, f"tp{leg.tier} filled", be)
        return
    if role is LegRole.EXIT and leg.status is not OrderStatus.FILLED and m.pos_lots > 0:
        if m._open_legs(LegRole.EXIT):
            return  # another exit is still working
        m._exit_retries += 1
        n = m._exit_retries
        if n <= _MAX_EXIT_RETRIES:
            m._send_exit(m.pos_lots, now_ns, out)
            return
        if n == _MAX_EXIT_RETRIES + 1:  # once: entries stop on the symbol; protecting goes on
            out.append(HaltSymbol(m.plan.symbol, f"{m.tid}: flatten failed {n} times"))
        # never given up while a position exists: again after a capped backoff (EXIT_RETRY)
        wait_ms = min(_EXIT_RETRY_CAP_MS, _EXIT_RETRY_FIRST_MS * 2 ** (n - _MAX_EXIT_RETRIES - 1))
        m._schedule(Timer.EXIT_RETRY, now_ns + wait_ms * _MS, out)


def breakeven_ticks(m: TradeMachine, avg_price: float) -> int:
    """Entry ± fees (the entry's and the exit's), rounded away from the entry to the tick grid."""
    be = avg_price * (1 + m.sign * m._be_fee_frac) / m.lim.tick
    return math.ceil(be - 1e-9) if m.sign > 0 else math.floor(be + 1e-9)


def stop_for_increment(m: TradeMachine, tier: int, avg_price: float) -> int:
    """Stop of the whole position once increment `tier` (2, 3, ..) is in: breakeven after the first add,
    under the previous add's entry after later ones; never looser than the current stop."""
    if tier <= 2:
        want = breakeven_ticks(m, avg_price)
    else:
        prev = m.inc_avg.get(tier - 1, m.avg_entry)
        want = round(prev / m.lim.tick) - m.sign * m.cfg.scale_in_stop_buffer_ticks
    return want if m.sign * (want - m.stop_ticks) > 0 else m.stop_ticks


def stop_after_add(m: TradeMachine, tier: int) -> int:
    return stop_for_increment(m, tier, m.avg_entry)


def place_stop(m: TradeMachine, now_ns: int, out: list[Action], why: str,
                price_ticks: int | None = None) -> None:
    if m.pos_lots <= 0:
        return
    # never a move that would trigger at once (the venue would refuse it): keep the old price, resize only
    if price_ticks is not None and (not m.last_ticks or m.sign * (m.last_ticks - price_ticks) > 0):
        m.stop_ticks = price_ticks
    leg = m._submit(out, LegRole.STOP, "sl", OrderKind.STOP_MARKET, m.pos_lots, trigger=m.stop_ticks,
                       intended=m.stop_ticks, tier=m._versions.get("sl", 0) + 1)
    m.stop_leg = leg
    if m.state is TradeState.PROTECTED:
        m._set(TradeState.PROTECTING, f"new stop ({why})", out)
    m._schedule(Timer.STOP_CONFIRM, now_ns + m.cfg.stop_confirm_timeout_ms * _MS, out)
    m._track_risk()


def place_tps(m: TradeMachine, out: list[Action]) -> None:
    for leg in m._open_legs(LegRole.TP):
        m._cancel(leg, out)
    tiers = [(i, px, f) for i, (px, f) in enumerate(m.plan.tp_tiers, 1) if i > m.tp_filled]
    if not tiers:
        return
    sizes = slice_lots(m.pos_lots, [f for _, _, f in tiers], m.lim.min_lots)
    tif = TimeInForce.GTX if m.cfg.tp_post_only else TimeInForce.GTC  # resting, as maker
    for (i, px, _), lots in zip(tiers[-len(sizes):] if sizes else [], sizes):
        m._submit(out, LegRole.TP, f"tp{i}", OrderKind.LIMIT, lots, price=px, tif=tif, intended=px, tier=i)


def maybe_add(m: TradeMachine, ticks: int, now_ns: int, out: list[Action]) -> bool:
    p = m.plan
    k = m.next_inc
    if k >= len(p.increments) or m.tp_filled or m._open_legs(LegRole.ENTRY, LegRole.ADD):
        return False
    sign, tick = m.sign, m.lim.tick
    if sign * (ticks - m.first_entry / tick) < p.add_trigger_ticks[k - 1]:
        return False
    if sign * (ticks * tick - m.avg_entry) <= 0:
        return False  # never average down
    price = ticks + sign * m.cfg.entry_offset_ticks
    lots = p.increments[k]
    # shrink the add until the whole position's risk to its next stop fits the budget
    while lots > 0:
        new_pos = m.pos_lots + lots
        avg = (m.avg_entry * m.pos_lots + price * tick * lots) / new_pos
        stop = stop_for_increment(m, k + 1, avg)
        risk = new_pos * m.lim.step * max(0.0, sign * (avg - stop * tick))
        if risk <= p.risk_budget:
            break
        lots -= max(1, lots // 10)
    m.next_inc += 1
    if lots < m.lim.min_lots:
        return False
    if m.cfg.entry_order == "market":
        m._submit(out, LegRole.ADD, f"add{k + 1}", OrderKind.MARKET, lots, intended=ticks, tier=k + 1)
    else:
        m._submit(out, LegRole.ADD, f"add{k + 1}", OrderKind.LIMIT, lots, price=price,
                     tif=TimeInForce.IOC, intended=price, tier=k + 1)
    m._schedule(Timer.ENTRY_TIMEOUT, now_ns + m.cfg.entry_timeout_ms * _MS, out)
    return True


def send_exit(m: TradeMachine, lots: int, now_ns: int, out: list[Action]) -> None:
    m._submit(out, LegRole.EXIT, "exit", OrderKind.MARKET, lots, intended=m.last_ticks)


def flatten(m: TradeMachine, reason: CloseReason, why: str, now_ns: int, out: list[Action]) -> None:
    if m.is_final:
        return
    if m.state is TradeState.EXITING:
        # asked again (operator, shutdown): a position with no exit working gets one now, instead of
        # waiting for a retry timer (issue 11: a flatten at SIGTERM once returned with a naked position)
        if m.pos_lots > 0 and not m._open_legs(LegRole.EXIT):
            m._unschedule(Timer.EXIT_RETRY, out)
            m._send_exit(m.pos_lots, now_ns, out)
        return
    if m.exit_reason is None:
        m.exit_reason = reason
    for leg in m._open_legs(LegRole.ENTRY, LegRole.ADD, LegRole.TP):
        m._cancel(leg, out)
    if not m.opened:
        return  # the entry's cancel ends the trade (ABORTED)
    m._set(TradeState.EXITING, why, out)
    if m.pos_lots > 0:
        m._send_exit(m.pos_lots, now_ns, out)
    elif not m._open_legs(LegRole.ENTRY, LegRole.ADD):
        close(m, now_ns, out)


def flat(m: TradeMachine, reason: CloseReason, now_ns: int, out: list[Action]) -> None:
    if m.exit_reason is None:
        m.exit_reason = reason
    for leg in m.legs.values():
        m._cancel(leg, out)  # OCO: every other leg of the trade
    if m._open_legs(LegRole.ENTRY, LegRole.ADD):
        m._set(TradeState.EXITING, "flat; waiting for entry legs to end", out)
    else:
        close(m, now_ns, out)


def close(m: TradeMachine, now_ns: int, out: list[Action]) -> None:
    for leg in m.legs.values():
        m._cancel(leg, out)
    for timer in list(m.deadlines):
        m._unschedule(timer, out)
    reason = m.exit_reason or CloseReason.MANUAL
    pnl = m.realized - m.fees
    r_mult = pnl / m.plan.risk_budget if m.plan.risk_budget > 0 else 0.0
    exit_px = m.exit_value / m.exit_lots if m.exit_lots else 0.0
    m._set(TradeState.CLOSED, reason.value, out, exit_ts_ns=now_ns, exit_price=exit_px,
              exit_reason=reason.value, pnl=pnl, fees=m.fees, r_multiple=r_mult,
              qty=m.lim.qty(m.max_pos_lots), max_open_risk=m.max_open_risk,
              entry_price=m.first_entry, stop_confirm_ms=m.stop_confirm_ms)
    out.append(TradeClosed(m.tid, m.plan.symbol, m.plan.setup, reason, pnl, m.fees, r_mult))
