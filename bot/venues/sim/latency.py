"""Latency model: how long an order takes to reach the matching engine, and market data to reach us.

A draw is `base + jitter`, in integer nanoseconds, from its own seeded `random.Random` (so the order
path and the market-data path do not disturb each other's sequence: same seed, same inputs, same
draws). Kinds: "constant" (base only), "uniform" (base + U(0, jitter)), "lognormal" (base + a
lognormal with median `jitter`, sigma 0.5: the long right tail of real networks).
"""

from __future__ import annotations

import math
import random

__all__ = ["Latency"]

_KINDS = ("constant", "uniform", "lognormal")


class Latency:
    __slots__ = ("_rng", "base_ns", "jitter_ns", "kind")

    def __init__(self, base_ns: int = 0, jitter_ns: int = 0, kind: str = "constant", seed: int = 0) -> None:
        if kind not in _KINDS:
            raise ValueError(f"latency kind must be one of {_KINDS}, got {kind!r}")
        if base_ns < 0 or jitter_ns < 0:
            raise ValueError("latencies must be >= 0")
        self.base_ns = base_ns
        self.jitter_ns = jitter_ns
        self.kind = kind
        self._rng = random.Random(seed)

    @classmethod
    def from_ms(cls, base_ms: float, jitter_ms: float = 0.0, kind: str = "constant", seed: int = 0) -> Latency:
        return cls(int(base_ms * 1_000_000), int(jitter_ms * 1_000_000), kind, seed)

    def draw(self) -> int:
        if self.kind == "constant" or not self.jitter_ns:
            return self.base_ns
        if self.kind == "uniform":
            return self.base_ns + int(self._rng.random() * self.jitter_ns)
        return self.base_ns + int(self.jitter_ns * math.exp(0.5 * self._rng.gauss(0.0, 1.0)))
