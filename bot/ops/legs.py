"""What the live trades hold at the exchange, for the operator: each position's protective stop and
take-profit targets, and every order of ours resting (or being placed) at the venue.

Read from the engine's live trade machines (bot.execution.trade.TradeMachine: `plan`, `legs`,
`stop_leg`, `lim`), duck-typed so this module imports nothing of execution. Pure and cheap (a few legs
per trade): the app calls `publish(state, engine.trades.values())` with its housekeeping, so `/status`,
the terminal view and the web view show the stop and the resting orders the moment the venue holds them,
without one REST call (a venue's open-orders query costs weight; the machines already know).

A leg counts as resting when it is not final (NEW, PARTIALLY_FILLED, TRIGGERED, or PENDING_NEW = sent,
not yet acknowledged: shown as such). The stop shown is the trade's current stop leg's trigger (after a
breakeven move, the new one); while a replacement is unconfirmed the trade's stop_ticks is what it aims at.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum
from typing import Any, Protocol

__all__ = ["protection_and_orders", "publish"]


class _State(Protocol):
    def set_protection(self, by_symbol: dict[str, dict[str, Any]]) -> None: ...
    def set_open_orders(self, orders: list[dict[str, Any]]) -> None: ...


def _v(x: Any) -> str:
    return str(x.value) if isinstance(x, Enum) else str(x)


def protection_and_orders(trades: Iterable[Any]) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """(symbol -> {"stop_price", "stop_confirmed", "targets": [prices], "trade_ids", "setup"}, resting orders).
    A symbol with several live trades (scale-in trades of different setups) shows the nearest stop."""
    prot: dict[str, dict[str, Any]] = {}
    orders: list[dict[str, Any]] = []
    for m in trades:
        plan, lim = m.plan, m.lim
        sym = plan.symbol
        stop_leg = m.stop_leg
        live = [leg for leg in m.legs.values() if not leg.status.is_final]
        for leg in live:
            req = leg.req
            price_ticks = req.price_ticks if req.price_ticks is not None else req.trigger_ticks
            orders.append({
                "client_id": leg.client_id, "symbol": sym, "trade_id": plan.trade_id, "role": _v(leg.role),
                "kind": _v(req.kind), "side": _v(req.side), "qty": lim.qty(req.qty_lots),
                "price": lim.px(price_ticks) if price_ticks is not None else None,
                "status": _v(leg.status), "confirmed": bool(leg.confirmed), "reduce_only": bool(req.reduce_only),
            })
        if not m.pos_lots and not live:
            continue
        stop_ticks = stop_leg.req.trigger_ticks if stop_leg is not None and not stop_leg.status.is_final \
            else (m.stop_ticks if m.pos_lots else None)
        targets = sorted(lim.px(leg.req.price_ticks) for leg in live
                         if _v(leg.role) == "tp" and leg.req.price_ticks is not None)
        if not targets and not m.pos_lots:  # an entry still working: the plan's targets
            targets = sorted(lim.px(px) for px, _ in plan.tp_tiers)
        entry = {"stop_price": lim.px(stop_ticks) if stop_ticks is not None else lim.px(plan.stop_ticks),
                 "stop_confirmed": bool(stop_leg is not None and stop_leg.confirmed
                                        and not stop_leg.status.is_final),
                 "targets": targets, "trade_ids": [plan.trade_id], "setup": plan.setup}
        have = prot.get(sym)
        if have is None:
            prot[sym] = entry
        else:  # two trades on one symbol: the nearest stop to the market is the one to watch
            have["trade_ids"].append(plan.trade_id)
            have["targets"] = sorted({*have["targets"], *targets})
            nearer = max if plan.sign > 0 else min
            have["stop_price"] = nearer(have["stop_price"], entry["stop_price"])
            have["stop_confirmed"] = have["stop_confirmed"] and entry["stop_confirmed"]
    return prot, orders


def publish(state: _State, trades: Iterable[Any]) -> None:
    """Into the runtime state: the protection merged into /status positions, the resting orders."""
    prot, orders = protection_and_orders(list(trades))
    state.set_protection(prot)
    state.set_open_orders(orders)
