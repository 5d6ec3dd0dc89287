"""OFI-imbalance scalper: a strategy plug-in for scalper (docs/strategies.md).

Goes with the order flow when three readings agree, and only when they agree:
- the order-flow imbalance (Cont-Kukanov-Stoikov OFI) over `ofi_window_s` is at least `min_ofi_touch`
  times the size resting at the touch (a scale-free threshold: the same number fits BTC and ETH);
- the depth imbalance of the top `levels` levels leans the same way by at least `min_book_imbalance`;
- aggressive trades over `flow_window_s` lean the same way by at least `min_trade_imbalance`.
Stop `stop_bps` beyond the touch on the losing side (the engine adds its buffer and clamps it to
[min_stop_bps, max_stop_bps]); target `target_r` times that risk from the entry.

Config (examples/strategies/ofi_scalper.toml):

    [signals.plugins.ofi_scalper]
    path = "ofi_scalper.py"
    object = "OfiImbalanceScalper"
    min_ofi_touch = 3.0
"""

from __future__ import annotations

from bot.strategy import Candidate, MarketView


class OfiImbalanceScalper:
    trigger = "book"  # after every applied depth event...
    min_interval_ms = 100  # ...but at most ten times a second per symbol (exchange time)

    def __init__(self, ofi_window_s: float = 1.0, flow_window_s: float = 1.0, levels: int = 10,
                 min_ofi_touch: float = 3.0, min_book_imbalance: float = 0.3, min_trade_imbalance: float = 0.3,
                 stop_bps: float = 3.0, target_r: float = 1.5, cooldown_s: float = 20.0) -> None:
        if min_ofi_touch <= 0 or stop_bps <= 0 or target_r <= 0:
            raise ValueError("min_ofi_touch, stop_bps and target_r must be > 0")
        self.ofi_window_s = ofi_window_s
        self.flow_window_s = flow_window_s
        self.levels = levels
        self.min_ofi_touch = min_ofi_touch
        self.min_book_imbalance = min_book_imbalance
        self.min_trade_imbalance = min_trade_imbalance
        self.stop_bps = stop_bps
        self.target_r = target_r
        self.cooldown_s = cooldown_s  # read by the engine: no second intent on a symbol for this long

    def propose(self, view: MarketView) -> Candidate | None:
        bid, ask, mid = view.best_bid, view.best_ask, view.mid
        bid_qty, ask_qty = view.bid_size, view.ask_size
        if bid is None or ask is None or mid is None or not bid_qty or not ask_qty:
            return None
        touch = (bid_qty + ask_qty) / 2
        ofi = view.ofi(self.ofi_window_s) / touch
        if abs(ofi) < self.min_ofi_touch:
            return None  # the cheap test first: most events stop here
        book = view.imbalance(self.levels)
        flow = view.trade_imbalance(self.flow_window_s)
        if book is None:
            return None
        dist = mid * self.stop_bps / 1e4
        feats = {"ofi_touch": ofi, "book_imbalance": book, "trade_imbalance": flow}
        if ofi > 0 and book >= self.min_book_imbalance and flow >= self.min_trade_imbalance:
            return Candidate(side="long", stop=bid - dist, target=ask + self.target_r * (ask - (bid - dist)),
                             tag="ofi_long", features=feats)
        if ofi < 0 and book <= -self.min_book_imbalance and flow <= -self.min_trade_imbalance:
            return Candidate(side="short", stop=ask + dist, target=bid - self.target_r * ((ask + dist) - bid),
                             tag="ofi_short", features=feats)
        return None
