"""Config section: sizing, leverage, limits and the risk gate."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from bot.settings.core import FrozenModel

__all__ = ["RiskSection"]


class RiskSection(FrozenModel):
    """[risk] keys. Owned by the risk layer; every key has a unit in its name and a comment."""

    # -- sizing: qty = equity × risk ÷ (stop distance + fees and slippage per unit), rounded down --
    risk_per_trade_pct: float = Field(0.5, gt=0, le=5)  # equity lost if the initial stop fills, %
    max_leverage: int = Field(20, ge=1, le=125)  # never more, whatever the bracket allows
    # Margin one trade may lock, % of equity. Leverage is the least that keeps the margin under this:
    # leverage only reaches the size the risk allows (5,000 equity, 25 % -> 1,250 margin -> 20× for 25,000).
    max_margin_per_trade_pct: float = Field(25.0, gt=0, le=100)
    margin_mode: Literal["isolated", "cross"] = "isolated"  # which liquidation formula applies
    maker_fee_bps: float = Field(2.0, ge=-5, le=50)  # expected fee of a passive (post-only) fill
    taker_fee_bps: float = Field(5.0, ge=0, le=50)  # expected fee of an aggressive fill (stops exit as taker)
    slippage_bps: float = Field(1.0, ge=0, le=100)  # expected slippage of the stop's market fill
    liq_buffer_stop_multiple: float = Field(3.0, ge=1, le=100)  # liq price >= k × stop distance away

    # -- costs (bot.risk.costs): every entry must be able to pay for its round trip --
    # Round trip (entry fee + taker exit + slippage + funding it may cross) at the planned size, in R: sizing
    # already reserves it, so with a stop s bps away and costs c bps it is c ÷ (s + c). 0.5 means the
    # stop must lie at least as far as the costs: at 5 + 5 + 1 = 11 bps (taker in and out) a stop of
    # >= 11 bps, inside the method's 0.10-0.15 %; the 2-3 bps stops measured before (issue 13) gave 0.8.
    max_cost_r: float = Field(0.5, gt=0, le=1)
    # The nearest target must net at least this (R) after the round trip: a trade whose first target nets
    # x R against a 1 R loss needs a hit rate of 1 ÷ (1 + x) to break even on that tier: 67 % at 0.5.
    # 12 bps stop, 11 bps costs: a 2 R target (24 bps) nets 0.57 R and passes; 1 R (12 bps) nets 0.04 R.
    min_target_net_r: float = Field(0.5, ge=-1, le=10)

    # -- the gate: limits every entry passes --
    max_open_positions: int = Field(2, ge=1, le=50)
    max_notional_per_symbol_usd: float = Field(100_000.0, gt=0)
    max_total_notional_usd: float = Field(150_000.0, gt=0)
    max_orders_per_s: int = Field(10, ge=1)  # our own pacing, under the venue's 300/10 s and 1200/min
    max_orders_per_min: int = Field(300, ge=1)
    daily_loss_limit_pct: float = Field(2.0, gt=0, le=100)  # of the day's starting equity -> HALTED
    max_drawdown_pct: float = Field(3.0, gt=0, le=100)  # from the day's equity peak -> HALTED
    reducing_at_loss_fraction: float = Field(0.75, gt=0, le=1)  # of the daily limit -> REDUCING (exits only)
    max_consecutive_losses: int = Field(3, ge=1)  # then no entries for loss_streak_cooldown_s
    loss_streak_cooldown_s: float = Field(300.0, ge=0)
    setup_cooldown_s: float = Field(60.0, ge=0)  # per setup and symbol after a stop-out
    max_spread_bps: float = Field(5.0, gt=0)  # no entries on a wider spread
    funding_window_s: float = Field(30.0, ge=0)  # no entries this close (either side) to a funding time
    require_live_book: bool = True  # no entries unless the book is LIVE

    @model_validator(mode="after")
    def _limits(self) -> RiskSection:
        if self.max_total_notional_usd < self.max_notional_per_symbol_usd:
            raise ValueError("max_total_notional_usd must be >= max_notional_per_symbol_usd")
        if self.max_orders_per_min < self.max_orders_per_s:
            raise ValueError("max_orders_per_min must be >= max_orders_per_s")
        return self
