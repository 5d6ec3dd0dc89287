"""Cached decimal-string -> integer converters for one instrument (the hot path's only conversion).

Exchanges send prices and sizes as decimal strings ("61800.20", "0.014"). Converting each with
Decimal costs ~1 µs; `round(float(s) * inv)` is exact for any value on the tick/step grid whose
integer count is below 2**52 (the float error of a correctly rounded decimal is < 0.5 ulp, far below
half a tick), and a dict hit on a string we have seen before is cheaper still: price levels near the
touch and common sizes repeat constantly. The caches are bounded: past `max_entries` they are cleared
(a rare, O(1)-amortised event), so a 24 h session cannot grow them without bound.
"""

from __future__ import annotations

from decimal import Decimal

from bot.domain.instrument import Instrument

__all__ = ["Converter", "OffGridError"]

_MAX_ENTRIES = 50_000


class OffGridError(ValueError):
    """A price or size that is not a multiple of the instrument's tick/step: the instrument rules are wrong."""


class Converter:
    __slots__ = ("_inv_step", "_inv_tick", "_lots", "_ticks", "instrument", "max_entries")

    def __init__(self, instrument: Instrument, max_entries: int = _MAX_ENTRIES) -> None:
        self.instrument = instrument
        # 1/tick as an exact-ish float: 1/Decimal avoids 1/0.1 float noise in the multiplier itself.
        self._inv_tick = float(1 / Decimal(instrument.tick_size))
        self._inv_step = float(1 / Decimal(instrument.step_size))
        self._ticks: dict[str, int] = {}
        self._lots: dict[str, int] = {}
        self.max_entries = max_entries

    def ticks(self, price: str) -> int:
        t = self._ticks.get(price)
        if t is None:
            t = self.ticks_slow(price)
        return t

    def lots(self, qty: str) -> int:
        q = self._lots.get(qty)
        if q is None:
            q = self.lots_slow(qty)
        return q

    def ticks_slow(self, price: str) -> int:
        x = float(price) * self._inv_tick
        t = round(x)
        if abs(x - t) > 1e-6 * max(1.0, abs(x)) ** 0.5:
            raise OffGridError(
                f"{self.instrument.symbol}: price {price!r} is not on tick {self.instrument.tick_size}"
            )
        cache = self._ticks
        if len(cache) >= self.max_entries:
            cache.clear()
        cache[price] = t
        return t

    def lots_slow(self, qty: str) -> int:
        x = float(qty) * self._inv_step
        q = round(x)
        if abs(x - q) > 1e-6 * max(1.0, abs(x)) ** 0.5:
            raise OffGridError(
                f"{self.instrument.symbol}: size {qty!r} is not on step {self.instrument.step_size}"
            )
        cache = self._lots
        if len(cache) >= self.max_entries:
            cache.clear()
        cache[qty] = q
        return q
