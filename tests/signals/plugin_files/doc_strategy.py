"""A plug-in written only from docs/strategies.md (the contract and the view's table): it reads most of
the documented members and follows the aggressive flow, so it trades often enough for the tests."""

from __future__ import annotations

from bot.strategy import Candidate, MarketView


class DocStrategy:
    trigger = "book"
    min_interval_ms = 200

    def __init__(self, window_s: float = 2.0, min_imbalance: float = 0.5, stop_bps: float = 4.0,
                 cooldown_s: float = 5.0) -> None:
        self.window_s = window_s
        self.min_imbalance = min_imbalance
        self.stop_bps = stop_bps
        self.cooldown_s = cooldown_s
        self.calls = 0
        self.seen: dict[str, object] = {}

    def propose(self, view: MarketView) -> Candidate | None:
        self.calls += 1
        mid, bid, ask = view.mid, view.best_bid, view.best_ask
        if mid is None or bid is None or ask is None:
            return None
        # read the documented members (all must work whatever the market)
        bars = view.bars(1)
        self.seen = {"symbol": view.symbol, "now_ns": view.now_ns, "tick": view.tick_size,
                     "ofi": view.ofi(1.0), "ofi_3s": view.ofi(3.0), "imb": view.imbalance(10),
                     "imb5": view.imbalance(5), "bars": len(bars), "ema": view.ema(1, 8), "rsi": view.rsi(1, 10),
                     "atr": view.atr(1, 10), "profile": view.profile(), "funding": view.funding_rate,
                     "next_funding_ns": view.next_funding_ns,
                     "last_bar_end": bars[-1].t_end_ns if len(bars) else None}
        flow = view.trade_imbalance(self.window_s)
        d = mid * self.stop_bps / 1e4
        if flow >= self.min_imbalance:
            return Candidate(side="long", stop=bid - d, target=ask + 2 * d, tag="doc_long", features={"flow": flow})
        if flow <= -self.min_imbalance:
            return Candidate(side="short", stop=ask + d, target=bid - 2 * d, tag="doc_short", features={"flow": flow})
        return None
