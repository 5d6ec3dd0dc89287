"""Leverage brackets: the venue's tiers of max leverage and maintenance margin by position notional.

Shape of Binance `GET /fapi/v1/leverageBracket` (exchange-facts A5):
`[{symbol, notionalCoef?, brackets: [{bracket, initialLeverage, notionalCap, notionalFloor,
maintMarginRatio, cum}]}]`. `cum` is the maintenance amount: maintenance margin =
`notional × maintMarginRatio − cum`, with the bracket that contains the notional. `cum` makes the
maintenance margin continuous at each boundary: cum_n = cum_(n-1) + floor_n × (mmr_n − mmr_(n-1)).

The embedded BTCUSDT/ETHUSDT tables are the published USD-M tiers (2024) so the simulator, the
backtests and the tests size against realistic limits with no network; live trading loads the account's
own brackets (they can differ per account) through `parse_leverage_brackets`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "DEFAULT_BRACKETS",
    "EMBEDDED",
    "Bracket",
    "LeverageBrackets",
    "brackets_for",
    "parse_leverage_brackets",
]


@dataclass(frozen=True, slots=True)
class Bracket:
    bracket: int
    initial_leverage: int  # the highest leverage allowed while the notional is in this bracket
    notional_cap: float  # exclusive upper bound of the bracket (USDT)
    notional_floor: float
    maint_margin_ratio: float
    cum: float  # maintenance amount (USDT)

    def contains(self, notional: float) -> bool:
        return self.notional_floor <= notional < self.notional_cap

    def maint_margin(self, notional: float) -> float:
        return notional * self.maint_margin_ratio - self.cum


@dataclass(frozen=True, slots=True)
class LeverageBrackets:
    symbol: str
    brackets: tuple[Bracket, ...]  # ascending by notional floor

    def __post_init__(self) -> None:
        if not self.brackets:
            raise ValueError(f"{self.symbol}: no leverage brackets")

    def for_notional(self, notional: float) -> Bracket | None:
        """The bracket that holds `notional`; None above the last cap (no leverage allows it)."""
        for b in self.brackets:
            if notional < b.notional_cap:
                return b
        return None

    def max_leverage(self, notional: float) -> int:
        b = self.for_notional(notional)
        return 0 if b is None else b.initial_leverage

    def maint_margin(self, notional: float) -> float:
        b = self.for_notional(notional) or self.brackets[-1]
        return b.maint_margin(notional)


def _table(symbol: str, rows: list[tuple[int, float, float, float, float]]) -> LeverageBrackets:
    """rows: (initialLeverage, notionalFloor, notionalCap, maintMarginRatio, cum)."""
    return LeverageBrackets(symbol, tuple(
        Bracket(i + 1, lev, cap, floor, mmr, cum) for i, (lev, floor, cap, mmr, cum) in enumerate(rows)
    ))


EMBEDDED: dict[str, LeverageBrackets] = {
    "BTCUSDT": _table("BTCUSDT", [
        (125, 0, 50_000, 0.004, 0),
        (100, 50_000, 600_000, 0.005, 50),
        (75, 600_000, 3_000_000, 0.0065, 950),
        (50, 3_000_000, 12_000_000, 0.01, 11_450),
        (25, 12_000_000, 70_000_000, 0.02, 131_450),
        (20, 70_000_000, 100_000_000, 0.025, 481_450),
        (10, 100_000_000, 230_000_000, 0.05, 2_981_450),
        (5, 230_000_000, 480_000_000, 0.1, 14_481_450),
        (4, 480_000_000, 600_000_000, 0.125, 26_481_450),
        (3, 600_000_000, 800_000_000, 0.15, 41_481_450),
        (2, 800_000_000, 1_200_000_000, 0.25, 121_481_450),
        (1, 1_200_000_000, 1_800_000_000, 0.5, 421_481_450),
    ]),
    "ETHUSDT": _table("ETHUSDT", [
        (125, 0, 50_000, 0.004, 0),
        (100, 50_000, 600_000, 0.005, 50),
        (75, 600_000, 3_000_000, 0.0065, 950),
        (50, 3_000_000, 12_000_000, 0.01, 11_450),
        (25, 12_000_000, 50_000_000, 0.02, 131_450),
        (20, 50_000_000, 65_000_000, 0.025, 381_450),
        (10, 65_000_000, 150_000_000, 0.05, 2_006_450),
        (5, 150_000_000, 320_000_000, 0.1, 9_506_450),
        (4, 320_000_000, 400_000_000, 0.125, 17_506_450),
        (3, 400_000_000, 530_000_000, 0.15, 27_506_450),
        (2, 530_000_000, 800_000_000, 0.25, 80_506_450),
        (1, 800_000_000, 1_200_000_000, 0.5, 280_506_450),
    ]),
}

# Conservative tiers for a symbol with no published table (a typical small-cap perpetual's): better to
# under-lever an unknown symbol than to over-lever it.
DEFAULT_BRACKETS = _table("*", [
    (20, 0, 5_000, 0.025, 0),
    (10, 5_000, 25_000, 0.05, 125),
    (5, 25_000, 100_000, 0.1, 1_375),
    (2, 100_000, 250_000, 0.25, 16_375),
    (1, 250_000, 1_000_000, 0.5, 78_875),
])


def brackets_for(symbol: str, table: dict[str, LeverageBrackets] | None = None) -> LeverageBrackets:
    if table and symbol in table:
        return table[symbol]
    return EMBEDDED.get(symbol, DEFAULT_BRACKETS)


def parse_leverage_brackets(payload: list[dict[str, Any]] | dict[str, Any]) -> dict[str, LeverageBrackets]:
    """Decode a `leverageBracket` response (a list, or one object for a single symbol)."""
    items = payload if isinstance(payload, list) else [payload]
    out: dict[str, LeverageBrackets] = {}
    for item in items:
        rows = sorted(item["brackets"], key=lambda b: float(b["notionalFloor"]))
        out[item["symbol"]] = LeverageBrackets(
            item["symbol"],
            tuple(
                Bracket(
                    bracket=int(b["bracket"]),
                    initial_leverage=int(b["initialLeverage"]),
                    notional_cap=float(b["notionalCap"]),
                    notional_floor=float(b["notionalFloor"]),
                    maint_margin_ratio=float(b["maintMarginRatio"]),
                    cum=float(b["cum"]),
                )
                for b in rows
            ),
        )
    return out
