"""Config section: features and setups ([signals], [signals.momentum], [signals.breakout_fade],
[signals.absorption], [signals.rsi_snapback]) and strategy plug-ins ([signals.plugin_defaults],
[signals.plugins.NAME]: docs/strategies.md).

Sizes that differ across symbols are given in quote currency (USDT notional) or in basis points of the
price and converted per instrument by the signal layer, so one config fits BTC and ETH alike.
"""

from __future__ import annotations

import os
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from bot.settings.core import FrozenModel

__all__ = ["AbsorptionSetup", "BreakoutFadeSetup", "MomentumSetup", "PluginDefaults", "PluginSpec",
           "RsiSnapbackSetup", "SetupCommon", "SignalsSection", "resolve_plugin_paths"]

_BUILTIN_SETUPS = ("momentum", "breakout_fade", "absorption", "rsi_snapback")
_PLUGIN_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,39}$")


class SetupCommon(FrozenModel):
    enabled: bool = True
    cooldown_s: float = Field(45.0, ge=0, description="per symbol: no new intent of this setup for this long")
    time_limit_s: float = Field(60.0, gt=0, description="deadline handed to the lifecycle (time exit)")
    stop_buffer_bps: float = Field(0.5, ge=0, description="stop placed this far beyond the structure level")
    # The method's stops are 0.10-0.15 % and its targets 0.1-0.5 %. At the default fees a taker round trip
    # costs ~11 bps (5 + 5 + 1 slippage): a 12 bps floor keeps it under risk.max_cost_r (0.5 R: 11 / 23 =
    # 0.48) where the old 2 bps floor let it take ~0.8 R; a first target at 2 R (24-30 bps) nets 0.57-0.73 R
    # after costs (risk.min_target_net_r 0.5), where 1 R netted 0.04 R. (issue 13, docs/costs.md)
    min_stop_bps: float = Field(12.0, ge=0, description="stop at least this far from the entry (noise and costs)")
    max_stop_bps: float = Field(15.0, gt=0, description="no intent when the structural stop is farther")
    tp_r_multiples: tuple[float, ...] = Field((2.0, 3.0), description="TP tiers as multiples of the risk R")
    tp_fractions: tuple[float, ...] = Field((0.5, 0.5), description="position fraction per tier, sum 1")

    @model_validator(mode="after")
    def _tiers(self) -> SetupCommon:
        if len(self.tp_r_multiples) != len(self.tp_fractions) or not self.tp_fractions:
            raise ValueError("tp_r_multiples and tp_fractions must be non-empty and of equal length")
        if abs(sum(self.tp_fractions) - 1.0) > 1e-6:
            raise ValueError(f"tp_fractions must sum to 1.0, got {sum(self.tp_fractions)}")
        if any(r <= 0 for r in self.tp_r_multiples):
            raise ValueError("tp_r_multiples must be > 0")
        if self.min_stop_bps > self.max_stop_bps:
            raise ValueError("min_stop_bps must be <= max_stop_bps")
        return self


class MomentumSetup(SetupCommon):
    """Trend on short bars (EMAs stacked, higher highs/lows), pullback to the fast EMA that holds, flow
    turning back with the trend -> enter with the trend."""

    bar_ms: int = Field(5000, description="time bars the setup reads (must be in bar_intervals_ms)")
    swing_bars: int = Field(4, ge=2, description="higher highs/lows: last N bars vs the N before")
    pullback_bars: int = Field(3, ge=1, description="pullback touched the fast EMA in the last N bars")
    pullback_tolerance_bps: float = Field(0.5, ge=0, description="'touched' = within this of the EMA")
    min_flow_imbalance: float = Field(0.1, ge=-1, le=1, description="1 s trade-flow imbalance with the trend")


class BreakoutFadeSetup(SetupCommon):
    """Sharp break of a tight range on high volume that stalls (rejection wick, OFI flip or absorption at
    the extreme) -> enter against the break, target back inside the range."""

    bar_ms: int = Field(1000, description="time bars the setup reads (must be in bar_intervals_ms)")
    range_bars: int = Field(30, ge=5, description="bars that define the range before the break")
    break_bars: int = Field(5, ge=1, description="the break happened within the last N bars")
    range_max_bps: float = Field(8.0, gt=0, description="range high-low at most this wide ('tight')")
    break_min_bps: float = Field(1.0, ge=0, description="extreme beyond the range by at least this")
    break_volume_mult: float = Field(1.5, ge=0, description="break bars' mean volume vs the range's")
    wick_min_frac: float = Field(0.4, ge=0, le=1, description="rejection wick / bar range on the last bar")


class AbsorptionSetup(SetupCommon):
    """Heavy aggression absorbed by a touch level that holds (bids for a long, asks for a short), with the
    top-N imbalance confirming -> enter; stop beyond the absorbing level."""

    min_absorbed_quote: float = Field(100_000.0, gt=0, description="aggressive notional absorbed")
    min_absorption_ratio: float = Field(1.0, ge=0, description="absorbed / peak displayed size at the level")
    min_hold_ms: int = Field(1000, ge=0, description="the level has been the touch for at least this")
    min_imbalance: float = Field(0.1, ge=-1, le=1, description="top-N imbalance on the absorbing side")
    time_limit_s: float = Field(30.0, gt=0, description="deadline handed to the lifecycle (time exit)")


class RsiSnapbackSetup(SetupCommon):
    """RSI leaves an extreme on the short bars at a volume-profile support/resistance -> fade the move,
    target the POC."""

    bar_ms: int = Field(5000, description="time bars the setup reads (must be in bar_intervals_ms)")
    oversold: float = Field(30.0, gt=0, lt=50, description="RSI crossing up through this -> long candidate")
    overbought: float = Field(70.0, gt=50, lt=100, description="RSI crossing down through this -> short")
    level_tolerance_bps: float = Field(3.0, ge=0, description="price within this of VAL/VAH or an HVN")
    swing_bars: int = Field(6, ge=1, description="stop beyond the extreme of the last N bars")


class PluginDefaults(SetupCommon):
    """Execution parameters of the strategy plug-ins (one that has an attribute of the same name wins).

    docs/strategies.md."""

    enabled: bool = Field(True, description="false: the plug-ins are loaded and checked but never called")
    # The plug-ins keep the stops and tiers they were written against (the built-ins' moved to the method's
    # ranges, issue 13); the risk gate's cost checks judge their intents all the same.
    min_stop_bps: float = Field(2.0, ge=0, description="stop at least this far from the entry (noise floor)")
    max_stop_bps: float = Field(25.0, gt=0, description="no intent when the structural stop is farther")
    tp_r_multiples: tuple[float, ...] = Field((1.0, 2.0), description="TP tiers as multiples of the risk R")


class PluginSpec(BaseModel):
    """[signals.plugins.NAME]: `path` and `object`; every other key goes to the class as a keyword
    argument, so unknown keys are allowed here (and only here)."""

    model_config = ConfigDict(frozen=True, extra="allow")

    path: str = Field(min_length=1, description="the strategy's .py file, relative to the config file")
    object: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="the class in that file")

    def kwargs(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


def resolve_plugin_paths(data: dict[str, Any], config_path: str) -> None:
    """Make the plug-ins' relative `path`s relative to the config file's directory (in place, on the
    parsed TOML, before validation). Paths from the environment stay relative to the working directory."""
    plugins = data.get("signals", {}).get("plugins") if isinstance(data.get("signals"), dict) else None
    if not isinstance(plugins, dict):
        return
    base = os.path.dirname(os.path.abspath(config_path))
    for spec in plugins.values():
        if isinstance(spec, dict) and isinstance(spec.get("path"), str) and spec["path"] \
                and not os.path.isabs(spec["path"]):
            spec["path"] = os.path.normpath(os.path.join(base, spec["path"]))


class SignalsSection(FrozenModel):
    """[signals] keys. Owned by the signals layer; every key has a unit in its name and a comment."""

    # ---- top of book / OFI / trade flow
    imbalance_levels: int = Field(10, ge=1, le=100, description="levels per side in the depth imbalance")
    imbalance_decay: float = Field(1.0, gt=0, le=1, description="level weight decay**i; 1.0 = flat top-N")
    ofi_windows_ms: tuple[int, ...] = Field((1000, 10_000), description="rolling OFI windows, exchange time")
    flow_windows_ms: tuple[int, ...] = Field((1000, 10_000), description="rolling trade-flow windows")
    large_trade_quote: float = Field(100_000.0, gt=0, description="one taker order this large is 'large'")
    iceberg_min_refills: int = Field(2, ge=1, description="refills after hits before a level is an iceberg")
    # ---- walls
    wall_levels: int = Field(20, ge=3, le=200, description="levels per side scanned for walls")
    wall_mult: float = Field(5.0, gt=1, description="wall size vs the mean of the other scanned levels")
    wall_min_quote: float = Field(250_000.0, gt=0, description="a wall holds at least this notional")
    wall_pull_frac: float = Field(0.3, gt=0, lt=1, description="'pulled' below this share of its size")
    wall_scan_ms: int = Field(250, ge=1, description="rescan the top levels for walls at most this often")
    # ---- bars, indicators, profile
    bar_intervals_ms: tuple[int, ...] = Field((1000, 5000, 30_000, 60_000), description="time bars kept")
    tick_bar_trades: int = Field(200, ge=1, description="prints per tick bar")
    volume_bar_quote: float = Field(1_000_000.0, gt=0, description="traded notional per volume bar")
    bars_kept: int = Field(300, ge=50, description="closed bars remembered per series")
    ema_fast_bars: int = Field(5, ge=1)
    ema_slow_bars: int = Field(13, ge=2)
    rsi_bars: int = Field(14, ge=2, description="Wilder RSI period")
    atr_bars: int = Field(14, ge=1, description="Wilder ATR period")
    profile_window_s: float = Field(300.0, gt=0, description="rolling volume-profile window")
    profile_bucket_bps: float = Field(0.5, gt=0, description="volume-profile bucket width")
    # Prints are summed per bucket into time slots of this width and whole slots expire, so the profile's
    # memory is buckets x slots whatever the trade rate (issue 11). A print then counts for up to one
    # slot longer than the window: on the recorded sessions 250 ms kept the POC identical and VAH/VAL
    # identical in >= 99.5 % of trades (off by one bucket otherwise) vs keeping every print.
    profile_slot_ms: int = Field(250, ge=1, le=60_000, description="volume-profile time slot")
    value_area_frac: float = Field(0.70, gt=0, le=1, description="value area share of the volume")
    hvn_mult: float = Field(1.5, ge=1, description="high-volume node: bucket volume vs the mean bucket")
    # ---- market context
    btc_symbol: str = "BTCUSDT"  # the reference for correlation/beta and the veto
    corr_sample_ms: int = Field(1000, ge=10, description="return sampling step for correlation/beta")
    corr_samples: int = Field(120, ge=10, description="samples in the rolling correlation/beta")
    btc_veto_window_s: float = Field(30.0, gt=0, description="BTC move measured over this window")
    btc_veto_move_bps: float = Field(15.0, gt=0, description="BTC down this vetoes alt longs (up: shorts)")
    # ---- gates common to every setup
    max_spread_ticks: int = Field(5, ge=1, description="no intent while the spread is wider")
    no_entry_before_funding_s: float = Field(60.0, ge=0, description="no intent this close before funding")
    # ---- setups
    momentum: MomentumSetup = MomentumSetup()
    breakout_fade: BreakoutFadeSetup = BreakoutFadeSetup()
    absorption: AbsorptionSetup = AbsorptionSetup()
    rsi_snapback: RsiSnapbackSetup = RsiSnapbackSetup()
    # ---- strategy plug-ins (docs/strategies.md)
    plugin_defaults: PluginDefaults = PluginDefaults()
    plugins: dict[str, PluginSpec] = Field(
        default_factory=dict,
        description="strategy plug-ins, one table each: [signals.plugins.NAME] path = \"my.py\" (relative to "
                    "this file) object = \"MyStrategy\", every other key a keyword argument of the class; "
                    "intents carry setup = NAME (docs/strategies.md)")

    @model_validator(mode="after")
    def _check(self) -> SignalsSection:
        windows = self.ofi_windows_ms + self.flow_windows_ms
        if not self.ofi_windows_ms or not self.flow_windows_ms or min(windows) <= 0:
            raise ValueError("ofi_windows_ms and flow_windows_ms need at least one window > 0 ms")
        if self.ema_fast_bars >= self.ema_slow_bars:
            raise ValueError("ema_fast_bars must be < ema_slow_bars")
        for name in ("momentum", "breakout_fade", "rsi_snapback"):
            setup = getattr(self, name)
            if setup.enabled and setup.bar_ms not in self.bar_intervals_ms:
                bar_ms = setup.bar_ms
                raise ValueError(f"{name}.bar_ms = {bar_ms} is not in bar_intervals_ms "
                                 f"{self.bar_intervals_ms}")
        for name in self.plugins:
            if name in _BUILTIN_SETUPS:
                raise ValueError(f"plugins.{name}: the name of a built-in setup; choose another")
            if not _PLUGIN_NAME.match(name):
                raise ValueError(f"plugins.{name!r}: a name is a letter then letters, digits, _ (<= 40)")
        return self
