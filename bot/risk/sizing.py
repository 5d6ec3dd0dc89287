"""Size an entry from the money at risk, then check it against the exchange filters and the margin.

    qty      = equity × risk% ÷ (stop distance + expected fees and slippage per unit), rounded DOWN
    notional = qty × price
    leverage = the least integer that keeps the margin within max_margin_per_trade_pct of equity
               (leverage only to reach the size the risk allows, never to make it bigger)
    margin   = notional ÷ leverage

Worked example (the seed's): equity 5,000, risk 0.5 % (25), stop 0.1 % away, no fees/slippage ->
notional 25,000; with a 1,250 margin budget (25 %) the leverage is 20× and the margin 1,250.

Fees per unit: the entry fee (maker for a post-only entry, taker otherwise) plus the stop's taker fee
and the stop's expected slippage, all in bps of the entry price.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.domain.instrument import Instrument
from bot.risk.brackets import LeverageBrackets
from bot.risk.limits import limits
from bot.risk.liquidation import liquidation_price_cross, liquidation_price_isolated
from bot.risk.reasons import Denial, DenyReason

if TYPE_CHECKING:
    from bot.risk.costs import CostEstimate
    from bot.settings.risk import RiskSection

__all__ = ["Sized", "floor_lots", "risk_budget", "size_entry"]

_EPS = 1e-9  # relative: 0.5 / 0.001 must floor to 500, not 499 from 499.99999999999994


@dataclass(frozen=True, slots=True)
class Sized:
    qty_lots: int
    qty: float
    price: float
    notional: float
    leverage: int
    margin: float
    liq_price: float  # 0.0: cannot be liquidated by price
    risk_budget: float  # equity × risk%
    loss_at_stop: float  # qty × (stop distance + fees + slippage): <= risk_budget
    per_unit_loss: float
    entry_ticks: int = 0  # the sizing price in ticks (`price` = entry_ticks × tick)
    cost: CostEstimate | None = None  # the round trip at this size (RiskManager.assess fills it)


def risk_budget(equity: float, risk_per_trade_pct: float) -> float:
    return equity * risk_per_trade_pct / 100.0


def floor_lots(qty: float, step: float) -> int:
    return math.floor(qty / step * (1 + _EPS)) if qty > 0 else 0


def size_entry(
    inst: Instrument,
    brackets: LeverageBrackets,
    cfg: RiskSection,
    *,
    equity: float,
    free_margin: float,
    side: int,
    entry_ticks: int,
    stop_ticks: int,
    entry_is_maker: bool = False,
    market_entry: bool = False,
    budget: float | None = None,
    other_maint_margin: float = 0.0,
) -> Sized | Denial:
    """Quantity, leverage and margin for an entry at `entry_ticks` stopped at `stop_ticks`.

    side: +1 long, -1 short. `budget` overrides equity × risk% (scale-ins size against what is left).
    Returns a Denial naming the first rule the entry breaks.
    """
    if side * (entry_ticks - stop_ticks) <= 0:
        return Denial(DenyReason.INVALID_STOP, f"stop {stop_ticks} not on the losing side of {entry_ticks}")
    lim = limits(inst)
    tick = lim.tick
    price = entry_ticks * tick
    stop_distance = abs(entry_ticks - stop_ticks) * tick
    entry_fee_bps = cfg.maker_fee_bps if entry_is_maker else cfg.taker_fee_bps
    fee_bps = entry_fee_bps + cfg.taker_fee_bps + cfg.slippage_bps
    per_unit = stop_distance + price * max(fee_bps, 0.0) / 1e4
    money = risk_budget(equity, cfg.risk_per_trade_pct) if budget is None else budget
    lots = floor_lots(money / per_unit, lim.step)
    qty = lim.qty(lots)
    notional = qty * price

    if lots < lim.min_lots:
        return Denial(DenyReason.BELOW_MIN_QTY,
                      f"{qty} < min {inst.min_qty} (risk {money:.2f} / {per_unit:.6g} per unit)")
    if notional < lim.min_notional:
        return Denial(DenyReason.BELOW_MIN_NOTIONAL, f"{notional:.2f} < {inst.min_notional}")
    max_lots = lim.market_max_lots if market_entry and lim.market_max_lots else lim.max_lots
    if max_lots and lots > max_lots:
        return Denial(DenyReason.ABOVE_MAX_QTY, f"{qty} > max {lim.qty(max_lots)}")

    margin_budget = equity * cfg.max_margin_per_trade_pct / 100.0
    leverage = max(1, math.ceil(notional / margin_budget * (1 - _EPS)))
    if leverage > cfg.max_leverage:
        return Denial(DenyReason.LEVERAGE_ABOVE_CONFIG,
                      f"needs {leverage}x > max_leverage {cfg.max_leverage}x")
    bracket_max = brackets.max_leverage(notional)
    if leverage > bracket_max:
        return Denial(DenyReason.LEVERAGE_ABOVE_BRACKET,
                      f"needs {leverage}x; bracket allows {bracket_max}x at notional {notional:.0f}")
    margin = notional / leverage
    if margin > free_margin:
        return Denial(DenyReason.INSUFFICIENT_MARGIN, f"margin {margin:.2f} > free {free_margin:.2f}")

    if cfg.margin_mode == "isolated":
        liq = liquidation_price_isolated(side, qty, price, margin, brackets)
    else:
        liq = liquidation_price_cross(side, qty, price, equity, brackets,
                                      other_maint_margin=other_maint_margin)
    if liq > 0 and abs(price - liq) < cfg.liq_buffer_stop_multiple * stop_distance:
        return Denial(DenyReason.LIQUIDATION_TOO_CLOSE,
                      f"liq {liq:.2f} is {abs(price - liq):.2f} away < "
                      f"{cfg.liq_buffer_stop_multiple} × stop {stop_distance:.2f}")
    return Sized(lots, qty, price, notional, leverage, margin, liq, money, qty * per_unit, per_unit, entry_ticks)
