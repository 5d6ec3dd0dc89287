"""Instrument: the exchange's trading rules for one symbol, and the price/size <-> integer conversions.

Prices live in integer ticks and sizes in integer lots everywhere past the venue edge
(architecture.md habit 4). The exchange's decimal strings are converted in exactly two places:
`Instrument.price_to_ticks`/`qty_to_lots` (exact, for one-off values) and the book's own cached
converters (hot path, same rule).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal

from bot.domain.types import OrderKind, Side

__all__ = ["Instrument", "decimals_of", "trigger_ticks_away"]


def decimals_of(step: str) -> int:
    """Number of decimals in a step string: '0.10' -> 1, '0.001' -> 3, '1' -> 0, '1e-5' -> 5."""
    d = Decimal(step).normalize()
    exp = d.as_tuple().exponent
    assert isinstance(exp, int)
    return max(0, -exp)


@dataclass(frozen=True, slots=True)
class Instrument:
    """Trading rules of one symbol. Decimal strings exactly as the venue published them.

    tick_size: PRICE_FILTER.tickSize (Binance) / priceFilter.tickSize (Bybit).
    step_size: LOT_SIZE.stepSize / lotSizeFilter.qtyStep.
    min_notional: MIN_NOTIONAL.notional / lotSizeFilter.minNotionalValue.
    """

    venue: str
    symbol: str
    tick_size: str
    step_size: str
    min_qty: str = "0"
    max_qty: str = "0"  # 0 = no limit published
    market_max_qty: str = "0"
    min_notional: str = "0"
    base_asset: str = ""
    quote_asset: str = ""

    def __post_init__(self) -> None:
        for name in ("tick_size", "step_size"):
            v = getattr(self, name)
            if Decimal(v) <= 0:
                raise ValueError(f"{self.symbol}: {name} must be > 0, got {v!r}")

    # -- floats for display and analytics (never for book keys) --
    @property
    def tick(self) -> float:
        return float(self.tick_size)

    @property
    def step(self) -> float:
        return float(self.step_size)

    @property
    def price_decimals(self) -> int:
        return decimals_of(self.tick_size)

    @property
    def qty_decimals(self) -> int:
        return decimals_of(self.step_size)

    # -- exact conversions (one-off values: snapshots' callers, orders, config) --
    def price_to_ticks(self, price: str | float) -> int:
        """Nearest tick of a price; exact for decimal strings on the tick grid."""
        return int((Decimal(str(price)) / Decimal(self.tick_size)).to_integral_value())

    def qty_to_lots(self, qty: str | float) -> int:
        return int((Decimal(str(qty)) / Decimal(self.step_size)).to_integral_value())

    def ticks_to_price(self, ticks: int) -> float:
        return round(ticks * self.tick, self.price_decimals)

    def lots_to_qty(self, lots: int) -> float:
        return round(lots * self.step, self.qty_decimals)

    def ticks_to_str(self, ticks: int) -> str:
        """Exchange string for a price in ticks (what an order carries)."""
        return str(Decimal(ticks) * Decimal(self.tick_size))

    def lots_to_str(self, lots: int) -> str:
        return str(Decimal(lots) * Decimal(self.step_size))

    @property
    def min_lots(self) -> int:
        return self.qty_to_lots(self.min_qty)

    @property
    def max_lots(self) -> int:
        return self.qty_to_lots(self.max_qty)


def trigger_ticks_away(price: float, side: Side, kind: OrderKind, inst: Instrument) -> int:
    """Round a trigger price to the tick away from the market.

    STOP_MARKET: a SELL (protecting a long) fires at or below its trigger -> round down; a BUY up.
    TAKE_PROFIT_MARKET: the reverse (a SELL take-profit sits above the market -> round up).
    """
    x = price / inst.tick
    near = round(x)
    if abs(x - near) < 1e-9:  # already on the grid (float noise)
        return int(near)
    down = (kind is OrderKind.STOP_MARKET) == (side is Side.SELL)
    return math.floor(x) if down else math.ceil(x)
