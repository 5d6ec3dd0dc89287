"""Liquidation price, isolated and cross, one-way mode (exchange-facts A5, Binance FAQ formula).

Isolated (TMM1 = 0, UPNL1 = 0, WB = the position's isolated margin):
    LP = (WB + cum − side·Q·EP) / (Q·MMR − side·Q)        side = +1 long, −1 short, Q = |size|
Cross (one-way, the BOTH position of this symbol; other contracts enter through TMM1 and UPNL1):
    LP = (WB − TMM1 + UPNL1 + cum − side·Q·EP) / (Q·MMR − side·Q)
MMR and cum come from the bracket of the notional; when the notional at LP falls in another bracket,
the FAQ says to recompute with that bracket's MMR and cum: we iterate until the bracket is stable.
A result ≤ 0 means the position cannot be liquidated by price (long over-collateralised): 0.0.
"""

from __future__ import annotations

from bot.risk.brackets import Bracket, LeverageBrackets

__all__ = ["liquidation_price_cross", "liquidation_price_isolated"]


def _solve(side: int, qty: float, entry_price: float, collateral: float, brackets: LeverageBrackets) -> float:
    if qty <= 0:
        raise ValueError("qty must be > 0")
    if side not in (1, -1):
        raise ValueError("side must be +1 (long) or -1 (short)")
    b: Bracket | None = brackets.for_notional(qty * entry_price) or brackets.brackets[-1]
    lp = 0.0
    for _ in range(len(brackets.brackets) + 1):
        assert b is not None
        lp = (collateral + b.cum - side * qty * entry_price) / (qty * b.maint_margin_ratio - side * qty)
        if lp <= 0:
            return 0.0
        nb = brackets.for_notional(qty * lp) or brackets.brackets[-1]
        if nb is b:
            break
        b = nb
    return lp


def liquidation_price_isolated(side: int, qty: float, entry_price: float, isolated_margin: float,
                               brackets: LeverageBrackets) -> float:
    """Liquidation price of an isolated one-way position holding `isolated_margin` (WB)."""
    return _solve(side, qty, entry_price, isolated_margin, brackets)


def liquidation_price_cross(side: int, qty: float, entry_price: float, wallet_balance: float,
                            brackets: LeverageBrackets, other_maint_margin: float = 0.0,
                            other_unrealized_pnl: float = 0.0) -> float:
    """Liquidation price of a cross one-way position: the whole wallet backs it, less the maintenance
    margin of the other positions (TMM1) plus their unrealized PnL (UPNL1)."""
    collateral = wallet_balance - other_maint_margin + other_unrealized_pnl
    return _solve(side, qty, entry_price, collateral, brackets)
