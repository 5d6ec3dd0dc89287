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
    # Where funding comes from (issue 13): "recorded" = only the source's markPrice stream (its funding rate
    # and next funding time; a session without one pays no funding), "assumed" = funding_rate_bps every
    # funding_interval_s when the source has no markPrice (the backtest JSON and report say "assumed"),
    # "none" = never. Nothing is invented by default.
    funding_source: Literal["recorded", "assumed", "none"] = "recorded"
    # The assumed rate per interval (funding_source = "assumed"; also the rate of a settle_funding fault on a
    # market that never quoted one).
    funding_rate_bps: float = Field(1.0, ge=-300, le=300)
    funding_interval_s: int = Field(8 * 3600, ge=60)
    # Insurance-fund clearance fee on a liquidated notional (BTCUSDT exchangeInfo liquidationFee 0.0125).
    liquidation_fee_bps: float = Field(125.0, ge=0, le=1000)
    # ---- latency (in-process simulation; the loopback server adds none of its own). Each path is a base plus
    # a seeded random part whose median is the *_jitter_ms key (bot/venues/sim/latency.py): "lognormal" has
    # p99 = latency_p99_over_median x that median, "empirical" draws latency_samples_ms rescaled to it.
    # Defaults: a bot in AWS Tokyo next to Binance's matching engine sees ~2-6 ms one way on REST and
    # the streams (order 4+2 ms, market data 2+1 ms, ack = the answer's way back 4+2 ms); the user stream
    # reports a fill ~5-15 ms after the match (5+3 ms); tick-to-order of the bot measures median 0.86 ms,
    # p99 5.2 ms (docs/architecture.md, bench latency): compute 0.5 ms + a median 0.35 ms.
    latency_kind: Literal["constant", "uniform", "lognormal", "empirical"] = "lognormal"
    latency_p99_over_median: float = Field(3.2, ge=1, le=1000, description="lognormal tail: p99 / median")
    latency_samples_ms: tuple[float, ...] = Field((), description="measured latencies for latency_kind = empirical")
    order_latency_ms: float = Field(4.0, ge=0, le=10_000, description="order -> matching engine, base")
    order_latency_jitter_ms: float = Field(2.0, ge=0, le=10_000, description="order latency jitter (median)")
    market_data_latency_ms: float = Field(2.0, ge=0, le=10_000, description="exchange -> us, base")
    market_data_jitter_ms: float = Field(1.0, ge=0, le=10_000)
    compute_latency_ms: float = Field(0.5, ge=0, le=10_000, description="message received -> order leaves, base")
    compute_jitter_ms: float = Field(0.35, ge=0, le=10_000)
    ack_latency_ms: float = Field(4.0, ge=0, le=10_000, description="matching engine -> REST answer seen, base")
    ack_jitter_ms: float = Field(2.0, ge=0, le=10_000)
    user_stream_latency_ms: float = Field(5.0, ge=0, le=10_000, description="match -> user-stream event seen, base")
    user_stream_jitter_ms: float = Field(3.0, ge=0, le=10_000)
    # ---- matching (bot/venues/sim/queue.py): how a resting order's place in the queue advances.
    # "pro_rata": trades at its price eat the queue ahead, other decreases there shrink it pro rata (cancels
    # spread over the queue); "risk_averse": only trades at its price advance it, a decrease only caps it at
    # the level's new size (hftbacktest RiskAdverseQueueModel): the conservative bound for maker fills.
    queue_model: Literal["pro_rata", "risk_averse"] = "pro_rata"
    # The top of the matching book from the bookTicker stream when the source has one (it leads the depth
    # diffs by a median ~26 ms on the recorded sessions); the depth book supplies the deeper levels.
    book_ticker_top: bool = True
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
