"""Bracket planner (pure): from an entry intent and its risk-approved size to a TradePlan: the entry
order's terms, the protective stop, the take-profit tiers, the scale-in increments and the deadlines.

Entry terms (`entry_terms`) come first because sizing needs the worst price the entry can fill at:
an IOC limit `offset` ticks through the reference can fill up to its limit, a market order is assumed to
slip by the same offset; the stop distance used for sizing is measured from there, so a fill never
puts more than the budget at risk.

Exits are priced net of costs (bot.risk.costs): `tier_nets` gives what each take-profit tier nets after
its share of the round trip; given the risk's estimate (`costs`, Sized.cost), `plan_trade` keeps only the
tiers that net more than nothing (their fraction goes to the ones kept; none kept: the tiers stay as
they are and the risk gate's min_target_net_r is what stops such an intent).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bot.domain.instrument import Instrument
from bot.domain.types import EntryIntent, OrderKind, TimeInForce
from bot.risk.limits import limits

if TYPE_CHECKING:
    from bot.risk.costs import CostEstimate
    from bot.settings.execution import ExecutionSection

__all__ = ["EntryTerms", "TradePlan", "entry_terms", "plan_trade", "scale_in", "slice_lots", "tier_nets"]

_S = 1_000_000_000


@dataclass(frozen=True, slots=True)
class EntryTerms:
    kind: OrderKind
    tif: TimeInForce
    price_ticks: int | None  # the limit price (None for MARKET)
    sizing_ticks: int  # the worst expected fill: what the stop distance is measured from
    is_maker: bool


def entry_terms(intent: EntryIntent, cfg: ExecutionSection) -> EntryTerms:
    sign = 1 if intent.side == "long" else -1
    off = cfg.entry_offset_ticks
    ref = intent.price_ticks
    if cfg.entry != "taker":
        # post-only at our own touch (execution.entry maker | maker_then_taker: entry_styles.py)
        from bot.execution.entry_styles import maker_terms  # here: entry_styles imports EntryTerms
        return maker_terms(intent, cfg)
    if cfg.entry_order == "limit_ioc":
        px = ref + sign * off
        return EntryTerms(OrderKind.LIMIT, TimeInForce.IOC, px, px, False)
    return EntryTerms(OrderKind.MARKET, TimeInForce.GTC, None, ref + sign * off, False)


@dataclass(frozen=True, slots=True)
class TradePlan:
    trade_id: str
    symbol: str
    setup: str
    side: str  # "long" | "short"
    sign: int
    entry: EntryTerms
    ref_ticks: int  # the intent's reference price
    stop_ticks: int  # initial protective stop
    r_ticks: int  # 1 R: the initial stop distance from the sizing price
    increments: tuple[int, ...]  # lots per increment; [0] is the first entry
    add_trigger_ticks: tuple[int, ...]  # favourable move from the first entry before increment k+1
    tp_tiers: tuple[tuple[int, float], ...]  # (price_ticks, fraction of the position)
    max_hold_ns: int
    no_progress_ns: int  # 0: off
    progress_ticks: int  # favourable move that counts as progress
    risk_budget: float
    leverage: int
    intent_ts_ns: int
    features: dict[str, float] = field(default_factory=dict)

    @property
    def planned_lots(self) -> int:
        return sum(self.increments)


def slice_lots(total: int, fractions: tuple[float, ...] | list[float], min_lots: int = 1) -> list[int]:
    """Split `total` lots by fractions, rounding down and giving the remainder to the last slice; a slice
    under `min_lots` is merged into the next one (so no order is below the minimum quantity)."""
    if total <= 0 or not fractions:
        return []
    norm = sum(fractions)
    raw = [math.floor(total * f / norm + 1e-9) for f in fractions[:-1]]
    raw.append(total - sum(raw))
    out: list[int] = []
    carry = 0
    for lots in raw:
        lots += carry
        if lots < min_lots:
            carry = lots
            continue
        out.append(lots)
        carry = 0
    if carry:
        if out:
            out[-1] += carry
        else:
            out.append(carry)
    return out


def tier_nets(tiers: tuple[tuple[int, float], ...] | list[tuple[int, float]], sign: int, entry_ticks: int,
              inst: Instrument, qty_lots: int, costs: CostEstimate) -> tuple[float, ...]:
    """Quote each (price_ticks, fraction) tier nets when its fraction of `qty_lots` entered at
    `entry_ticks` leaves there, after the same fraction of the round trip's costs."""
    lim = limits(inst)
    qty = lim.qty(qty_lots)
    return tuple(f * (sign * (p - entry_ticks) * lim.tick * qty - costs.quote) for p, f in tiers)


def scale_in(qty_lots: int, terms: EntryTerms, inst: Instrument, cfg: ExecutionSection,
             r_ticks: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(lots per increment, [0] the first entry; favourable move in ticks before each add). The engine
    reads the first increment before the rest of the plan: it is the entry order's quantity."""
    if not cfg.scale_in_fractions:
        return (qty_lots,), ()
    lim = limits(inst)
    parts = [math.floor(qty_lots * f + 1e-9) for f in cfg.scale_in_fractions]
    parts[-1] = qty_lots - sum(parts[:-1])
    first_notional = parts[0] * lim.step * terms.sizing_ticks * lim.tick
    # Every increment must be a valid order on its own; otherwise enter once (documented fallback).
    if min(parts) >= lim.min_lots and first_notional >= lim.min_notional:
        return tuple(parts), tuple(max(1, round(r * r_ticks)) for r in cfg.scale_in_trigger_r)
    return (qty_lots,), ()


def plan_trade(trade_id: str, intent: EntryIntent, inst: Instrument, qty_lots: int, terms: EntryTerms,
               cfg: ExecutionSection, risk_budget: float, leverage: int,
               costs: CostEstimate | None = None) -> TradePlan:
    sign = 1 if intent.side == "long" else -1
    r_ticks = abs(terms.sizing_ticks - intent.stop_ticks)
    increments, triggers = scale_in(qty_lots, terms, inst, cfg, r_ticks)
    if intent.targets:
        tiers = [(t.price_ticks, t.fraction) for t in intent.targets]
    else:
        tiers = [(intent.price_ticks + sign * max(1, round(r * r_ticks)), f)
                 for r, f in zip(cfg.tp_r_multiples, cfg.tp_fractions)]
    tiers = [(p, f) for p, f in tiers if sign * (p - terms.sizing_ticks) > 0 and f > 0]
    if costs is not None and tiers:
        paying = [t for t, net in zip(tiers, tier_nets(tiers, sign, terms.sizing_ticks, inst, qty_lots, costs),
                                      strict=True) if net > 0]
        tiers = paying or tiers
    total_f = sum(f for _, f in tiers)
    tiers = [(p, f / total_f) for p, f in tiers]
    hold_s = cfg.max_hold_s if intent.time_limit_s <= 0 else min(cfg.max_hold_s, intent.time_limit_s)
    progress = max(1, round(cfg.no_progress_min_r * r_ticks))
    if cfg.no_progress_min_ticks:
        progress = min(progress, cfg.no_progress_min_ticks)
    return TradePlan(
        trade_id=trade_id, symbol=intent.symbol, setup=intent.setup, side=intent.side, sign=sign, entry=terms,
        ref_ticks=intent.price_ticks, stop_ticks=intent.stop_ticks, r_ticks=r_ticks, increments=increments,
        add_trigger_ticks=triggers, tp_tiers=tuple(tiers), max_hold_ns=int(hold_s * _S),
        no_progress_ns=int(cfg.no_progress_s * _S), progress_ticks=progress, risk_budget=risk_budget,
        leverage=leverage, intent_ts_ns=intent.ts_ns, features=dict(intent.features),
    )
