"""The cost model and the gate's cost denials, with hand-worked numbers (bot.risk.costs docstring).

BTCUSDT (tick 0.1, step 0.001), equity 5,000, risk 0.5 % -> budget 25. Long at 50,000 (500,000 ticks),
stop 49,940 (12 bps = 60 per unit). Default fees: taker 5 + taker 5 + slippage 1 = 11 bps = 55 per unit;
sizing: 25 / (60 + 55) = 0.2173 -> 0.217. Round trip 0.217 × 55 = 11.935 = 0.4774 R.
"""

from __future__ import annotations

import math

import pytest

from bot.domain.types import EntryIntent, TakeProfitTier
from bot.execution.planner import entry_terms, plan_trade, tier_nets
from bot.risk import Denial, DenyReason, MarketView, RiskGate, RiskManager, Sized
from bot.risk.costs import FeeRates, breakeven_win_rate, estimate_round_trip, funding_cost_bps
from bot.settings.execution import ExecutionSection
from bot.settings.risk import RiskSection
from bot.venues.binance_usdm.instruments import KNOWN

S = 1_000_000_000
T0 = 1_721_347_200 * S + 3_600 * S
LIVE = MarketView(book_live=True, spread_bps=1.0)
BTC = KNOWN["BTCUSDT"]


def intent(target_ticks: int = 501_200, *, side: str = "long", time_limit_s: float = 60.0) -> EntryIntent:
    if side == "long":
        return EntryIntent("BTCUSDT", "long", "s", T0, 500_000, 499_400,
                           (TakeProfitTier(target_ticks, 0.5), TakeProfitTier(target_ticks + 600, 0.5)), time_limit_s)
    return EntryIntent("BTCUSDT", "short", "s", T0, 500_000, 500_600,
                       (TakeProfitTier(target_ticks, 0.5), TakeProfitTier(target_ticks - 600, 0.5)), time_limit_s)


def assess(rm: RiskManager, it: EntryIntent, market: MarketView = LIVE, maker: bool = False) -> Sized | Denial:
    return rm.assess(it, BTC, market, equity=5_000, free_margin=5_000, now_ns=T0, entry_is_maker=maker)


def test_worked_example_passes_and_carries_its_estimate() -> None:
    rm = RiskManager(RiskSection(), equity=5_000, now_ns=T0)
    s = assess(rm, intent())
    assert isinstance(s, Sized) and s.qty == pytest.approx(0.217)
    assert s.cost is not None
    assert s.cost.bps == pytest.approx(11.0)
    assert s.cost.quote == pytest.approx(11.935)
    assert s.cost.r == pytest.approx(0.4774)
    _est, target_r = rm.estimate(intent(), LIVE, s, entry_is_maker=False, now_ns=T0)
    assert target_r == pytest.approx((120 * 0.217 - 11.935) / 25)  # 0.5642 R
    assert not rm.gate.denials


def test_cost_above_max_cost_r_is_denied() -> None:
    rm = RiskManager(RiskSection(max_cost_r=0.45), equity=5_000, now_ns=T0)
    d = assess(rm, intent())
    assert isinstance(d, Denial) and d.reason is DenyReason.COST_TOO_HIGH
    assert "0.477 R" in d.detail and "11.00 bps" in d.detail
    assert rm.gate.denials == {"COST_TOO_HIGH": 1}


def test_first_target_that_does_not_clear_costs_is_denied() -> None:
    rm = RiskManager(RiskSection(), equity=5_000, now_ns=T0)
    d = assess(rm, intent(500_600))  # target 50,060 = 1 R: 60 × 0.217 - 11.935 = 1.085 = 0.0434 R
    assert isinstance(d, Denial) and d.reason is DenyReason.TARGET_BELOW_COST
    assert "0.043 R" in d.detail
    # the same trade with a 0.04 R floor passes
    ok = assess(RiskManager(RiskSection(min_target_net_r=0.04), equity=5_000, now_ns=T0), intent(500_600))
    assert isinstance(ok, Sized)


def test_short_targets_priced_the_other_way() -> None:
    rm = RiskManager(RiskSection(), equity=5_000, now_ns=T0)
    assert isinstance(assess(rm, intent(498_800, side="short")), Sized)  # 24 bps below: 0.5642 R
    d = assess(rm, intent(499_400, side="short"))
    assert isinstance(d, Denial) and d.reason is DenyReason.TARGET_BELOW_COST


def test_maker_entry_costs_less() -> None:
    # maker 2 + taker 5 + slippage 1 = 8 bps = 40 per unit: qty 25 / 100 = 0.25, cost 10 = 0.4 R;
    # a 1 R target nets 60 × 0.25 - 10 = 5 = 0.2 R
    rm = RiskManager(RiskSection(min_target_net_r=0.2), equity=5_000, now_ns=T0)
    s = assess(rm, intent(500_600), maker=True)
    assert isinstance(s, Sized) and s.qty == pytest.approx(0.25) and s.cost is not None
    assert s.cost.r == pytest.approx(0.4) and s.cost.entry_fee_bps == 2.0
    d = assess(RiskManager(RiskSection(min_target_net_r=0.21), equity=5_000, now_ns=T0), intent(500_600), maker=True)
    assert isinstance(d, Denial) and d.reason is DenyReason.TARGET_BELOW_COST


def test_book_impact_and_venue_fees_enter_the_estimate() -> None:
    rm = RiskManager(RiskSection(), equity=5_000, now_ns=T0)
    # 3 bps measured impact: 5 + 5 + 3 = 13 bps = 65 per unit on 0.217: 14.105 = 0.5642 R > 0.5
    d = assess(rm, intent(), MarketView(book_live=True, spread_bps=1.0, impact_bps=3.0))
    assert isinstance(d, Denial) and d.reason is DenyReason.COST_TOO_HIGH
    # the venue's 0.02 % / 0.04 %: 4 + 4 + 1 = 9 bps = 45 per unit (sizing keeps the config's): 9.765 = 0.3906 R
    rm.set_fees("BTCUSDT", FeeRates.from_rates("0.000200", "0.000400"))
    assert rm.fees("BTCUSDT").source == "venue" and rm.fees("ETHUSDT").source == "config"
    s = assess(rm, intent())
    assert isinstance(s, Sized) and s.cost is not None and s.cost.r == pytest.approx(0.3906)


def test_funding_counts_only_when_the_time_limit_crosses_it_and_the_side_pays() -> None:
    assert funding_cost_bps(1, 3.0, T0 + 45 * S, T0, 60 * S) == 3.0  # long pays a positive rate
    assert funding_cost_bps(-1, 3.0, T0 + 45 * S, T0, 60 * S) == 0.0  # short receives it
    assert funding_cost_bps(-1, -2.0, T0 + 45 * S, T0, 60 * S) == 2.0
    assert funding_cost_bps(1, 3.0, T0 + 90 * S, T0, 60 * S) == 0.0  # after the time limit
    assert funding_cost_bps(1, 3.0, 0, T0, 60 * S) == 0.0  # unknown
    rm = RiskManager(RiskSection(), equity=5_000, now_ns=T0)
    # 11 + 3 = 14 bps = 70 per unit on 0.217: 15.19 = 0.6076 R
    d = assess(rm, intent(), MarketView(book_live=True, spread_bps=1.0, next_funding_ns=T0 + 45 * S,
                                         funding_rate_bps=3.0))
    assert isinstance(d, Denial) and d.reason is DenyReason.COST_TOO_HIGH and "14.00 bps" in d.detail
    s = assess(rm, intent(), MarketView(book_live=True, spread_bps=1.0, next_funding_ns=T0 + 90 * S,
                                         funding_rate_bps=3.0))
    assert isinstance(s, Sized)


def test_check_costs_nan_is_a_denial() -> None:
    g = RiskGate(RiskSection(), equity=5_000, now_ns=T0)
    d = g.check_costs("BTCUSDT", math.nan, 11.0, 1.0)
    assert d is not None and d.reason is DenyReason.COST_TOO_HIGH
    d = g.check_costs("BTCUSDT", 0.1, 11.0, math.nan)
    assert d is not None and d.reason is DenyReason.TARGET_BELOW_COST
    assert g.check_costs("BTCUSDT", 0.5, 11.0, None) is None  # at the limit, no target: passes


def test_breakeven_win_rate() -> None:
    assert breakeven_win_rate(0.5, 1.0) == pytest.approx(2 / 3)
    assert breakeven_win_rate(1.0, 1.0) == pytest.approx(0.5)
    assert breakeven_win_rate(0.0, 1.0) is None


def test_planner_prices_tiers_net_of_costs_and_drops_the_ones_that_do_not_pay() -> None:
    cfg = RiskSection()
    est = estimate_round_trip(cfg, qty=0.217, entry_price=50_000.0, risk_budget=25.0, entry_is_maker=False)
    it = EntryIntent("BTCUSDT", "long", "s", T0, 500_000, 499_400,
                     (TakeProfitTier(500_500, 0.5), TakeProfitTier(501_200, 0.5)), 60.0)
    ex = ExecutionSection(entry_offset_ticks=0)
    terms = entry_terms(it, ex)
    nets = tier_nets([(500_500, 0.5), (501_200, 0.5)], 1, terms.sizing_ticks, BTC, 217, est)
    # 50 × 0.217 - 11.935 = -1.085 (half: -0.5425); 120 × 0.217 - 11.935 = 14.105 (half: 7.0525)
    assert nets == pytest.approx((-0.5425, 7.0525))
    plan = plan_trade("t1", it, BTC, 217, terms, ex, 25.0, 10, costs=est)
    assert plan.tp_tiers == ((501_200, 1.0),)
    assert plan_trade("t1", it, BTC, 217, terms, ex, 25.0, 10).tp_tiers == ((500_500, 0.5), (501_200, 0.5))


def test_the_books_depth_at_the_planned_size_prices_the_slippage() -> None:
    """The pipeline hands the risk manager the symbol's book; the exit's sweep at the sized quantity (217
    lots here) is the slippage when it is worse than the config's 1 bp. Thin bids: 50 @ 499,999, 50 @
    499,990, then 117 @ 499,900 -> VWAP 499,943.55, 55.45 ticks under the touch = 1.109 bps: a long's exit
    sells into them, so 5 + 5 + 1.109 bps. Deep bids: the config's 1 bp stands."""
    from bot.market.book import OrderBook

    rm = RiskManager(RiskSection(), equity=5_000, now_ns=T0)
    thin = OrderBook(BTC, 2_000)
    thin.apply_snapshot_ticks([(499_999, 50), (499_990, 50), (499_900, 1_000)], [(500_000, 1_000)])
    s = assess(rm, intent(), MarketView(book_live=True, spread_bps=1.0, book=thin))
    assert isinstance(s, Sized) and s.cost is not None and s.qty_lots == 217
    assert s.cost.slippage_bps == pytest.approx((499_999 - (50 * 499_999 + 50 * 499_990 + 117 * 499_900) / 217)
                                                / 499_999 * 1e4)
    assert s.cost.slippage_bps > RiskSection().slippage_bps
    # thinner still: everything 60 ticks (12 bps ~ the stop) under the touch -> the round trip is too dear
    thinner = OrderBook(BTC, 2_000)
    thinner.apply_snapshot_ticks([(499_999, 10), (499_400, 1_000)], [(500_000, 1_000)])
    d = assess(rm, intent(), MarketView(book_live=True, spread_bps=1.0, book=thinner))
    assert isinstance(d, Denial) and d.reason is DenyReason.COST_TOO_HIGH
    deep = OrderBook(BTC, 2_000)
    deep.apply_snapshot_ticks([(499_999, 10_000)], [(500_000, 10_000)])
    s = assess(rm, intent(), MarketView(book_live=True, spread_bps=1.0, book=deep))
    assert isinstance(s, Sized) and s.cost is not None and s.cost.slippage_bps == RiskSection().slippage_bps
    # a short's exit buys: the asks are swept, not the bids
    s = assess(rm, intent(498_800, side="short"), MarketView(book_live=True, spread_bps=1.0, book=thin))
    assert isinstance(s, Sized) and s.cost is not None and s.cost.slippage_bps == RiskSection().slippage_bps
