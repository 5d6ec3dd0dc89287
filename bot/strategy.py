"""The one public module a strategy plug-in imports (docs/strategies.md is the contract).

    from bot.strategy import Candidate, MarketView

    class MyStrategy:
        bar_s = None          # or seconds: called once per closed bar of that interval
        trigger = "book"      # "book" (every applied depth event), "trade", "any"
        min_interval_ms = 0   # at most one call per symbol per interval (exchange time)

        def __init__(self, **kwargs): ...            # the other keys of [signals.plugins.NAME]

        def propose(self, view: MarketView) -> Candidate | None:
            if view.ofi(1.0) > 5 and view.imbalance(10) > 0.3:
                return Candidate(side="long", stop=view.best_bid - 20 * view.tick_size, target=None, tag="ofi")
            return None

Configured in the TOML config:

    [signals.plugins.my_strategy]
    path = "strategies/my_strategy.py"   # relative to the config file
    object = "MyStrategy"
    threshold = 5                        # -> MyStrategy(threshold=5)

Its intents carry setup = "my_strategy" and go through the same gates, risk and execution as the
built-in setups. A plug-in that raises is disabled for the run, with an alert and a log line.
"""

from __future__ import annotations

from bot.signals.plugins import COMMON_KEYS, TRIGGERS, PluginFailed
from bot.signals.view import Bars, Candidate, MarketView, Profile, QuoteBar

__all__ = ["COMMON_KEYS", "TRIGGERS", "Bars", "Candidate", "MarketView", "PluginFailed", "Profile", "QuoteBar",
           "Strategy"]


class Strategy:
    """An optional base class: the attributes the engine reads, with their defaults. A plug-in does
    not have to inherit from it (any class with `propose(view)` works)."""

    bar_s: float | None = None  # seconds; when set, propose is called once per closed bar of it
    trigger: str = "book"  # without bar_s: "book" | "trade" | "any"
    min_interval_ms: float = 0.0  # throttle per symbol, exchange time
    # execution parameters; None = [signals.plugin_defaults]
    cooldown_s: float | None = None
    time_limit_s: float | None = None
    stop_buffer_bps: float | None = None
    min_stop_bps: float | None = None
    max_stop_bps: float | None = None
    tp_r_multiples: tuple[float, ...] | None = None
    tp_fractions: tuple[float, ...] | None = None

    def propose(self, view: MarketView) -> Candidate | None:
        raise NotImplementedError
