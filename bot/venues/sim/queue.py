"""Queue models: where a resting order of ours stands in the FIFO queue at its price (pure, ints).

An order joins *behind the displayed size at its price* (`queue_ahead_lots` = that size). Then:

- a trade at its price on its side eats the queue ahead first, then us (both models: `on_trade`,
  bot/venues/sim/matching.py);
- a displayed size *decrease* at that price that is not explained by a trade we saw is a cancel
  somewhere in the queue, and the models differ on where:
  * `ProRataQueue` (the default, what the simulator always did): spread over the queue,
    qa' = ceil(qa * new / old), rounding against us;
  * `RiskAverseQueue`: assumed to be behind us, so it does not advance us; the queue ahead is only
    capped at the level's new size (qa' = min(qa, new)). This is hftbacktest's
    `RiskAdverseQueueModel` (nkaz001/hftbacktest, hftbacktest/models/queue.py (Python, numba) and
    hftbacktest/src/backtest/models/queue.rs (Rust): "your order's queue position advances only when
    trades occur at the same price level": `new` q = depth at the price, `trade` q -= qty,
    `depth` q = min(q, new_qty)).
    It is the conservative bound for maker fills; the truth on Binance (no L3 data) lies between.
- increases join behind us in both.
"""

from __future__ import annotations

from typing import Protocol

from bot.venues.sim.orders import SimOrder

__all__ = ["MODELS", "ProRataQueue", "QueueModel", "RiskAverseQueue", "queue_model"]


class QueueModel(Protocol):
    name: str

    def on_depth(self, o: SimOrder, new_lots: int) -> None:
        """The displayed size at `o`'s price is now `new_lots` (it was `o.level_lots`)."""


class ProRataQueue:
    name = "pro_rata"

    def on_depth(self, o: SimOrder, new_lots: int) -> None:
        if new_lots < o.level_lots and o.queue_ahead_lots:
            o.queue_ahead_lots = -((-o.queue_ahead_lots * new_lots) // o.level_lots)  # ceil: against us
        o.level_lots = new_lots
        if o.queue_ahead_lots > new_lots:
            o.queue_ahead_lots = new_lots


class RiskAverseQueue:
    name = "risk_averse"

    def on_depth(self, o: SimOrder, new_lots: int) -> None:
        o.level_lots = new_lots
        if o.queue_ahead_lots > new_lots:
            o.queue_ahead_lots = new_lots


MODELS: dict[str, type[ProRataQueue] | type[RiskAverseQueue]] = {"pro_rata": ProRataQueue,
                                                                 "risk_averse": RiskAverseQueue}


def queue_model(name: str) -> QueueModel:
    try:
        return MODELS[name]()
    except KeyError:
        raise ValueError(f"queue model must be one of {sorted(MODELS)}, got {name!r}") from None
