"""Leverage brackets, maintenance margin and liquidation price (exchange-facts A5).

Binance publishes per symbol a table of notional brackets (`GET /fapi/v1/leverageBracket`):
`initialLeverage` (max leverage inside the bracket), `maintMarginRatio` and `cum` (the maintenance
amount). Maintenance margin = notional * maintMarginRatio - cum, using the bracket that contains the
notional. `cum` is not free: it makes the maintenance margin continuous across bracket edges,
cum_n = cum_{n-1} + floor_n * (mmr_n - mmr_{n-1}); the tables below are built by that rule.

The tables are representative of BTCUSDT/ETHUSDT as published in 2024-2026 (the exact numbers change
from time to time; the simulator serves these same tables on its leverageBracket endpoint, so the bot
and the simulator always agree).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["BRACKETS", "Bracket", "brackets_for", "isolated_liquidation_price", "maint_margin", "risk_brackets"]


@dataclass(frozen=True, slots=True)
class Bracket:
    bracket: int
    initial_leverage: int
    notional_floor: float
    notional_cap: float
    maint_margin_ratio: float
    cum: float


def _build(rows: list[tuple[float, float, int, float]]) -> tuple[Bracket, ...]:
    """rows: (floor, cap, max leverage, mmr); cum follows from continuity (see module docstring)."""
    out: list[Bracket] = []
    cum = 0.0
    prev_mmr = 0.0
    for i, (floor, cap, lev, mmr) in enumerate(rows, 1):
        if out:
            cum += floor * (mmr - prev_mmr)
        out.append(Bracket(i, lev, floor, cap, mmr, round(cum, 8)))
        prev_mmr = mmr
    return tuple(out)


BRACKETS: dict[str, tuple[Bracket, ...]] = {
    "BTCUSDT": _build([
        (0, 50_000, 125, 0.004), (50_000, 500_000, 100, 0.005), (500_000, 8_000_000, 50, 0.01),
        (8_000_000, 50_000_000, 20, 0.025), (50_000_000, 80_000_000, 10, 0.05),
        (80_000_000, 100_000_000, 5, 0.10), (100_000_000, 200_000_000, 4, 0.125),
        (200_000_000, 300_000_000, 3, 0.15), (300_000_000, 500_000_000, 2, 0.25),
        (500_000_000, 800_000_000, 1, 0.5),
    ]),
    "ETHUSDT": _build([
        (0, 50_000, 125, 0.004), (50_000, 500_000, 100, 0.005), (500_000, 8_000_000, 50, 0.01),
        (8_000_000, 50_000_000, 20, 0.025), (50_000_000, 80_000_000, 10, 0.05),
        (80_000_000, 100_000_000, 5, 0.10), (100_000_000, 200_000_000, 4, 0.125),
        (200_000_000, 300_000_000, 3, 0.15), (300_000_000, 500_000_000, 2, 0.25),
    ]),
}
# Any other symbol (recorded sessions of other perps): a small-cap style table.
_DEFAULT = _build([
    (0, 5_000, 75, 0.01), (5_000, 25_000, 50, 0.025), (25_000, 100_000, 20, 0.05),
    (100_000, 250_000, 10, 0.10), (250_000, 1_000_000, 5, 0.125), (1_000_000, 10_000_000, 2, 0.25),
    (10_000_000, 50_000_000, 1, 0.5),
])


def brackets_for(symbol: str) -> tuple[Bracket, ...]:
    return BRACKETS.get(symbol, _DEFAULT)


def bracket_of(brackets: tuple[Bracket, ...], notional: float) -> Bracket:
    for b in brackets:
        if notional < b.notional_cap:
            return b
    return brackets[-1]


def maint_margin(brackets: tuple[Bracket, ...], notional: float) -> float:
    """Maintenance margin of a position of `notional` (quote asset): notional * mmr - cum."""
    b = bracket_of(brackets, abs(notional))
    return abs(notional) * b.maint_margin_ratio - b.cum


def isolated_liquidation_price(brackets: tuple[Bracket, ...], side: int, qty: float, entry: float,
                               wallet: float) -> float:
    """Isolated one-way liquidation price (exchange-facts A5):
    LP = (WB + cum - side*Q*EP) / (Q*MMR - side*Q), side +1 long / -1 short, Q = |size|.

    Starts with the bracket of the entry notional and, as the FAQ says, recomputes with the bracket of
    the liquidation notional when that differs (a few passes settle it). 0.0 when there is none.
    """
    if qty <= 0:
        return 0.0
    b = bracket_of(brackets, qty * entry)
    lp = 0.0
    for _ in range(4):
        den = qty * b.maint_margin_ratio - side * qty
        if den == 0:
            return 0.0
        lp = (wallet + b.cum - side * qty * entry) / den
        if lp <= 0:
            return 0.0
        nb = bracket_of(brackets, qty * lp)
        if nb == b:
            break
        b = nb
    return lp


def cross_liquidation_price(brackets: tuple[Bracket, ...], side: int, qty: float, entry: float,
                            cross_wallet: float, other_maint: float, other_upnl: float) -> float:
    """Cross one-way liquidation price of one position, the others held at their current values:
    the same formula with WB - TMM1 + UPNL1 in place of the isolated wallet (exchange-facts A5)."""
    return isolated_liquidation_price(brackets, side, qty, entry, cross_wallet - other_maint + other_upnl)


def risk_brackets() -> dict[str, Any]:
    """These tables as the risk layer's `LeverageBrackets`, so the bot sizes against the very brackets the
    simulator margins and liquidates with (the backtest and `scalper run` on the simulator)."""
    from bot.risk.brackets import Bracket as RiskBracket
    from bot.risk.brackets import LeverageBrackets

    return {sym: LeverageBrackets(sym, tuple(RiskBracket(b.bracket, b.initial_leverage, b.notional_cap,
                                                         b.notional_floor, b.maint_margin_ratio, b.cum)
                                             for b in rows))
            for sym, rows in BRACKETS.items()}
