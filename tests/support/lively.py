"""The strategy and risk sections of the real-process e2e configs (exchange-sim, paper, shadow): momentum only,
tiny bars and warm-up, and risk limits that never stop a test, so the bot trades often on the loopback exchange's
generated market. These tests are about mechanics (orders, stops, journal), not costs: stops of a few bps are
allowed (`max_cost_r = 1`, `min_target_net_r = -1`)."""

from __future__ import annotations

__all__ = ["lively_sections"]


def lively_sections(*, time_limit_s: float = 3.0, min_stop_bps: float = 2.0, max_stop_bps: float = 50.0,
                    atr_bars: int | None = None) -> str:
    """`[signals]`, `[signals.*]`, `[risk]` and `[ops]` (port 0) as TOML text, to follow a config's own sections."""
    atr = f"atr_bars = {atr_bars}\n" if atr_bars is not None else ""
    return f"""[signals]
ema_fast_bars = 2
ema_slow_bars = 4
{atr}[signals.momentum]
bar_ms = 1000
cooldown_s = 2.0
time_limit_s = {time_limit_s}
min_stop_bps = {min_stop_bps}
max_stop_bps = {max_stop_bps}
swing_bars = 2
pullback_bars = 2
pullback_tolerance_bps = 20.0
min_flow_imbalance = -1.0
[signals.breakout_fade]
enabled = false
[signals.absorption]
enabled = false
[signals.rsi_snapback]
enabled = false
[risk]
risk_per_trade_pct = 0.1
max_cost_r = 1.0
min_target_net_r = -1.0
max_consecutive_losses = 1000
loss_streak_cooldown_s = 0.0
setup_cooldown_s = 0.0
daily_loss_limit_pct = 50.0
max_drawdown_pct = 50.0
[ops]
port = 0
"""
