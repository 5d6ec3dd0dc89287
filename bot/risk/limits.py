"""Per-instrument numbers the hot path needs, computed once (the Instrument keeps decimal strings and
converts through Decimal, ~1 µs a call: fine for one-off values, not for every entry)."""

from __future__ import annotations

from dataclasses import dataclass

from bot.domain.instrument import Instrument

__all__ = ["Limits", "limits"]


@dataclass(frozen=True, slots=True)
class Limits:
    tick: float
    step: float
    price_decimals: int
    qty_decimals: int
    min_lots: int  # at least 1
    max_lots: int  # 0: none published
    market_max_lots: int  # 0: none published (MARKET_LOT_SIZE)
    min_notional: float

    def px(self, ticks: int) -> float:
        return round(ticks * self.tick, self.price_decimals)

    def qty(self, lots: int) -> float:
        return round(lots * self.step, self.qty_decimals)


_CACHE: dict[int, tuple[Instrument, Limits]] = {}


def limits(inst: Instrument) -> Limits:
    hit = _CACHE.get(id(inst))
    if hit is not None and hit[0] is inst:
        return hit[1]
    lim = Limits(inst.tick, inst.step, inst.price_decimals, inst.qty_decimals, max(inst.min_lots, 1),
                 inst.max_lots if float(inst.max_qty) > 0 else 0,
                 inst.qty_to_lots(inst.market_max_qty) if float(inst.market_max_qty) > 0 else 0,
                 float(inst.min_notional))
    _CACHE[id(inst)] = (inst, lim)
    return lim
