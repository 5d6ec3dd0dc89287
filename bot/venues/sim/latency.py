"""Latency model: how long an order takes to reach the matching engine, and market data to reach us.

A draw is `base + jitter`, in integer nanoseconds, from its own seeded `random.Random` (so the order
path and the market-data path do not disturb each other's sequence: same seed, same inputs, same
draws). Kinds:

- "constant": base only;
- "uniform": base + U(0, jitter);
- "lognormal": base + a lognormal with median `jitter` and p99 = `p99_over_median` x jitter (sigma =
  ln(p99/median) / 2.326; the default 3.2 is sigma 0.5): the long right tail of real networks;
- "empirical": base + a sample drawn from `samples` (measured latencies, e.g. round trips logged by the
  live bot), rescaled so their median is `jitter`: the measured shape at this path's scale.

`SimLatencies` holds the five paths of a simulated run (issue 13 item 3): market data (exchange ->
bot), compute (a message's receive -> the order leaves the bot), order (bot -> matching engine), ack
(matching engine -> the bot sees the REST answer) and user stream (matching engine -> the bot sees the
ORDER_TRADE_UPDATE).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Latency", "SimLatencies", "latency_kwargs"]

_KINDS = ("constant", "uniform", "lognormal", "empirical")
_Z99 = 2.3263478740408408  # the standard normal's 99th percentile


class Latency:
    __slots__ = ("_rng", "_samples", "base_ns", "jitter_ns", "kind", "sigma")

    def __init__(self, base_ns: int = 0, jitter_ns: int = 0, kind: str = "constant", seed: int = 0,
                 p99_over_median: float = math.exp(0.5 * _Z99), samples: Sequence[float] = ()) -> None:
        if kind not in _KINDS:
            raise ValueError(f"latency kind must be one of {_KINDS}, got {kind!r}")
        if base_ns < 0 or jitter_ns < 0:
            raise ValueError("latencies must be >= 0")
        if p99_over_median < 1.0:
            raise ValueError("p99_over_median must be >= 1")
        self.base_ns = base_ns
        self.jitter_ns = jitter_ns
        self.kind = kind
        self.sigma = math.log(p99_over_median) / _Z99
        self._samples: list[float] = []
        if kind == "empirical":
            xs = sorted(float(x) for x in samples if x >= 0)
            if not xs:
                raise ValueError("an empirical latency needs samples")
            med = xs[len(xs) // 2] if len(xs) % 2 else (xs[len(xs) // 2 - 1] + xs[len(xs) // 2]) / 2
            scale = 1.0 / med if med > 0 else 0.0
            self._samples = [x * scale for x in xs]  # median 1: x jitter_ns at each draw
        self._rng = random.Random(seed)

    @classmethod
    def from_ms(cls, base_ms: float, jitter_ms: float = 0.0, kind: str = "constant", seed: int = 0,
                **kw: Any) -> Latency:
        return cls(int(base_ms * 1_000_000), int(jitter_ms * 1_000_000), kind, seed, **kw)

    @property
    def min_ns(self) -> int:
        """No draw is ever below this (the base: every kind's random part is >= 0)."""
        return self.base_ns

    @property
    def zero(self) -> bool:
        return self.base_ns == 0 and (self.jitter_ns == 0 or self.kind == "constant")

    def draw(self) -> int:
        if self.kind == "constant" or not self.jitter_ns:
            return self.base_ns
        if self.kind == "uniform":
            return self.base_ns + int(self._rng.random() * self.jitter_ns)
        if self.kind == "empirical":
            xs = self._samples
            return self.base_ns + int(xs[int(self._rng.random() * len(xs))] * self.jitter_ns)
        return self.base_ns + int(self.jitter_ns * math.exp(self.sigma * self._rng.gauss(0.0, 1.0)))


@dataclass(frozen=True)
class SimLatencies:
    """The bot-side paths of a simulated run; the order path lives on the exchange (`SimExchange.order_latency`)."""

    compute: Latency
    ack: Latency
    user_stream: Latency

    @classmethod
    def from_settings(cls, cfg: Any) -> SimLatencies:
        """`cfg`: the [sim] section. Each path has its own seed offset (independent draws)."""
        kw = latency_kwargs(cfg)
        return cls(
            compute=Latency.from_ms(cfg.compute_latency_ms, cfg.compute_jitter_ms, cfg.latency_kind, cfg.seed + 2,
                                    **kw),
            ack=Latency.from_ms(cfg.ack_latency_ms, cfg.ack_jitter_ms, cfg.latency_kind, cfg.seed + 3, **kw),
            user_stream=Latency.from_ms(cfg.user_stream_latency_ms, cfg.user_stream_jitter_ms, cfg.latency_kind,
                                        cfg.seed + 4, **kw),
        )


def latency_kwargs(cfg: Any) -> dict[str, Any]:
    """The shape keys of [sim] every path shares."""
    return {"p99_over_median": cfg.latency_p99_over_median, "samples": cfg.latency_samples_ms}
