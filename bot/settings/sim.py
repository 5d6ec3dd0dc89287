"""Config section: the exchange simulator (matching, latency, fees, market generator)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from bot.settings.core import FrozenModel

__all__ = ["SimSection"]


class SimSection(FrozenModel):
    """[sim] keys. Owned by the sim layer; every key has a unit in its name and a comment."""

    # Same seed + same inputs -> same fills, same generated market.
    seed: int = 7
    # ---- account (USD-M linear perpetuals, quote asset USDT)
    starting_balance_usdt: float = Field(10_000.0, gt=0)
    default_leverage: int = Field(10, ge=1, le=125)
    margin_type: Literal["cross", "isolated"] = "cross"
    # Binance USD-M VIP0 fees: 2 bps maker, 5 bps taker (charged on the fill notional).
    maker_fee_bps: float = Field(2.0, ge=-10, le=100)
    taker_fee_bps: float = Field(5.0, ge=0, le=100)
    # Funding when the source carries no markPrice stream (recorded sessions): rate per interval.
    funding_rate_bps: float = Field(1.0, ge=-300, le=300)
    funding_interval_s: int = Field(8 * 3600, ge=60)
    # Insurance-fund clearance fee on a liquidated notional (BTCUSDT exchangeInfo liquidationFee 0.0125).
    liquidation_fee_bps: float = Field(125.0, ge=0, le=1000)
    # ---- latency (in-process simulation; the loopback server adds none of its own)
    latency_kind: Literal["constant", "uniform", "lognormal"] = "lognormal"
    order_latency_ms: float = Field(4.0, ge=0, le=10_000, description="order -> matching engine, base")
    order_latency_jitter_ms: float = Field(2.0, ge=0, le=10_000, description="order latency jitter (median)")
    market_data_latency_ms: float = Field(2.0, ge=0, le=10_000, description="exchange -> us, base")
    market_data_jitter_ms: float = Field(1.0, ge=0, le=10_000)
    depth_bps: float = Field(200.0, gt=0, le=5000, description="matching-engine book depth each side, bps")
    # ---- loopback server (scalper exchange-sim): faults active from the start, JSON objects as
    # POST /_sim/fault takes them, e.g. '{"kind": "clock_skew_ms", "ms": 1500}' (docs/exchange-sim.md)
    server_faults: tuple[str, ...] = ()
    # ---- market generator (the embedded default market)
    gen_start_prices: dict[str, float] = Field(default_factory=lambda: {"BTCUSDT": 60_000.0, "ETHUSDT": 3_000.0})
    gen_step_ms: int = Field(20, ge=1, le=1000, description="internal simulation step")
    gen_depth_interval_ms: int = Field(100, ge=10, le=1000, description="diff-depth push period (depth@100ms)")
    gen_mark_interval_ms: int = Field(1000, ge=100, le=60_000, description="markPrice push period (@1s)")
    gen_book_ticks: int = Field(1000, ge=50, le=20_000, description="book kept each side of the touch, ticks")
    gen_vol_calm_bps_sqrt_s: float = Field(0.8, ge=0, description="fair-price volatility, calm regime")
    gen_vol_normal_bps_sqrt_s: float = Field(1.8, ge=0, description="fair-price volatility, normal regime")
    gen_vol_burst_bps_sqrt_s: float = Field(5.0, ge=0, description="fair-price volatility, burst regime")
    gen_trend_bps_per_s: float = Field(0.5, ge=0, description="drift of a trending regime")
    gen_regime_mean_s: float = Field(45.0, gt=0, description="mean time between regime switches")
    gen_market_orders_per_s: float = Field(4.0, ge=0, description="Hawkes base intensity of market orders")
    gen_hawkes_branching: float = Field(0.7, ge=0, lt=1, description="Hawkes branching ratio alpha/beta")
    gen_hawkes_decay_per_s: float = Field(4.0, gt=0, description="Hawkes decay beta")
    gen_limit_orders_per_s: float = Field(60.0, ge=0, description="limit arrivals per side")
    gen_cancels_per_s: float = Field(50.0, ge=0, description="cancels per side")
    gen_funding_rate_bps: float = Field(1.0, ge=-300, le=300, description="funding rate the generator quotes")
