"""The cost model (pure): what a round trip costs before the market moves, in bps of the entry price, in
quote and in R (the trade's risk budget, the unit of `r_multiple`).

    round trip = entry fee (maker for a post-only entry, taker otherwise)
               + exit fee (taker: the stop is a STOP_MARKET, time exits go at market)
               + expected slippage (config `risk.slippage_bps`, or the book's impact at the planned size
                 when the caller measured it: MarketView.impact_bps)
               + funding when the trade's time limit can cross a funding time (the side that pays)
    cost_quote = qty × entry price × round trip bps / 1e4
    cost_r     = cost_quote / risk budget

Fees are the venue's taker/maker rates (config `risk.maker_fee_bps` / `taker_fee_bps`: 2 / 5 bps, Binance
USD-M's published VIP 0 schedule; exchange-facts.md does not document the fee endpoints yet). `FeeRates`
carries where they came from; a venue's own rates (Binance `GET /fapi/v1/commissionRate`
makerCommissionRate / takerCommissionRate, Bybit `GET /v5/account/fee-rate`) go in through
`FeeRates.from_rates` and `RiskManager.set_fees`. Reading them at start-up is not wired yet: the
gateways do not call those endpoints and the loopback exchange does not serve them (issue 13 note).

Sizing already takes these costs out of the budget (bot.risk.sizing: qty = budget ÷ (stop + costs)), so a
trade that stops out loses 1 R net; `cost_r` is the share of that R the costs take: with a stop of s bps
and costs of c bps it is c ÷ (s + c). A first target T bps away nets (T − c) ÷ (s + c) R.

Worked example (tests/risk/test_costs.py): entry 50,000, stop 49,940 (12 bps), taker 5 + taker 5 +
slippage 1 = 11 bps, budget 25 -> per unit 60 + 55 = 115, qty 0.217; cost 0.217 × 55 = 11.935 quote =
0.4774 R; target 50,120 (24 bps) nets (120 − 55) × 0.217 = 14.105 = 0.5642 R.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from bot.settings.risk import RiskSection

__all__ = ["CostEstimate", "FeeRates", "book_impact_bps", "breakeven_win_rate", "estimate_round_trip",
           "funding_cost_bps", "target_net_quote"]

_S = 1_000_000_000


@dataclass(frozen=True, slots=True)
class FeeRates:
    """A symbol's fee rates in bps of notional, and where they came from."""

    maker_bps: float
    taker_bps: float
    source: Literal["config", "venue"] = "config"

    @classmethod
    def from_config(cls, cfg: RiskSection) -> FeeRates:
        return cls(cfg.maker_fee_bps, cfg.taker_fee_bps, "config")

    @classmethod
    def from_rates(cls, maker_rate: float | str, taker_rate: float | str) -> FeeRates:
        """From the venue's decimal rates ("0.000200" -> 2 bps): Binance commissionRate's
        makerCommissionRate / takerCommissionRate, Bybit fee-rate's makerFeeRate / takerFeeRate."""
        # rounded to 1e-6 bps: "0.000150" * 1e4 is 1.4999999999999998 in binary floating point
        return cls(round(float(maker_rate) * 1e4, 6), round(float(taker_rate) * 1e4, 6), "venue")


@dataclass(frozen=True, slots=True)
class CostEstimate:
    entry_fee_bps: float
    exit_fee_bps: float
    slippage_bps: float
    funding_bps: float
    notional: float  # qty × entry price
    risk_budget: float

    @property
    def bps(self) -> float:
        """The round trip in bps of the entry price."""
        return self.entry_fee_bps + self.exit_fee_bps + self.slippage_bps + self.funding_bps

    @property
    def quote(self) -> float:
        return self.notional * self.bps / 1e4

    @property
    def r(self) -> float:
        """The round trip in R (inf when the budget is zero: no trade can pay for that)."""
        return self.quote / self.risk_budget if self.risk_budget > 0 else math.inf


def funding_cost_bps(side: int, rate_bps: float, next_funding_ns: int, now_ns: int, hold_ns: int) -> float:
    """Funding the trade pays (bps, >= 0) if it is still open at the next funding time: longs pay a
    positive rate, shorts a negative one (exchange-facts.md, funding). 0 when the time is unknown, the
    limit ends before it, or the side receives."""
    if not next_funding_ns or rate_bps == 0 or next_funding_ns < now_ns or next_funding_ns > now_ns + hold_ns:
        return 0.0
    return max(0.0, side * rate_bps)


def estimate_round_trip(cfg: RiskSection, *, qty: float, entry_price: float, risk_budget: float,
                        entry_is_maker: bool, fees: FeeRates | None = None, impact_bps: float = 0.0,
                        funding_bps: float = 0.0) -> CostEstimate:
    """The expected round trip of `qty` entered at `entry_price`. The exit is priced as a taker (the
    stop's STOP_MARKET, a time exit at market): the worst case the sizing already reserves; slippage is the
    larger of the config's and the book's measured impact at this size."""
    f = fees or FeeRates.from_config(cfg)
    entry_fee = f.maker_bps if entry_is_maker else f.taker_bps
    return CostEstimate(entry_fee_bps=entry_fee, exit_fee_bps=f.taker_bps,
                        slippage_bps=max(cfg.slippage_bps, impact_bps), funding_bps=funding_bps,
                        notional=qty * entry_price, risk_budget=risk_budget)


def target_net_quote(side: int, qty: float, entry_price: float, target_price: float, est: CostEstimate) -> float:
    """What `qty` taken off at `target_price` nets after the whole round trip's costs (the same costs
    whichever way it leaves; a maker take-profit only does better)."""
    return side * (target_price - entry_price) * qty - est.quote


def book_impact_bps(book: object, side_buy: bool, lots: int) -> float | None:
    """Expected slippage (bps of the touch) of a market order of `lots` on the book: |VWAP − touch| from
    bot.market.book.OrderBook's sweep; None when the book cannot fill it."""
    impact = book.impact_ticks(side_buy, lots)  # type: ignore[attr-defined]
    touch = book.best_ask_ticks if side_buy else book.best_bid_ticks  # type: ignore[attr-defined]
    if impact is None or not touch:
        return None
    return float(impact) / float(touch) * 1e4


def breakeven_win_rate(avg_win_r: float, avg_loss_r: float) -> float | None:
    """The win rate at which wins of `avg_win_r` and losses of `avg_loss_r` (> 0, both in R, net of
    costs) break even: L ÷ (W + L). None when wins do not pay (W <= 0)."""
    if avg_win_r <= 0 or avg_loss_r < 0:
        return None
    return avg_loss_r / (avg_win_r + avg_loss_r)
