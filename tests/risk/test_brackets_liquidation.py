"""Leverage brackets (Binance leverageBracket shape) and liquidation prices, isolated and cross."""

from __future__ import annotations

import itertools

import pytest

from bot.risk import EMBEDDED, liquidation_price_cross, liquidation_price_isolated, parse_leverage_brackets
from bot.risk.brackets import DEFAULT_BRACKETS


@pytest.mark.parametrize("table", [*EMBEDDED.values(), DEFAULT_BRACKETS], ids=lambda t: t.symbol)
def test_tables_are_contiguous_and_cum_makes_maintenance_continuous(table) -> None:
    bs = table.brackets
    assert bs[0].notional_floor == 0
    for prev, b in itertools.pairwise(bs):
        assert b.notional_floor == prev.notional_cap
        assert b.initial_leverage < prev.initial_leverage
        assert b.maint_margin_ratio > prev.maint_margin_ratio
        # maintenance margin has no jump at the boundary: cum_n = cum_(n-1) + floor × (mmr_n - mmr_(n-1))
        edge = b.notional_floor
        assert prev.maint_margin(edge) == pytest.approx(b.maint_margin(edge), abs=1e-6)


def test_bracket_lookup_by_notional() -> None:
    btc = EMBEDDED["BTCUSDT"]
    assert btc.max_leverage(25_000) == 125
    assert btc.max_leverage(50_000) == 100  # the cap is exclusive: 50,000 is bracket 2
    assert btc.max_leverage(20_000_000) == 25
    assert btc.max_leverage(5_000_000_000) == 0  # above every cap: nothing allows it
    assert btc.maint_margin(1_000_000) == pytest.approx(1_000_000 * 0.0065 - 950)


def test_parse_leverage_bracket_response() -> None:
    payload = [{"symbol": "ETHUSDT", "notionalCoef": 1.0, "brackets": [
        {"bracket": 2, "initialLeverage": 100, "notionalCap": 600000, "notionalFloor": 50000,
         "maintMarginRatio": 0.005, "cum": 50.0},
        {"bracket": 1, "initialLeverage": 125, "notionalCap": 50000, "notionalFloor": 0,
         "maintMarginRatio": 0.004, "cum": 0.0},
    ]}]
    t = parse_leverage_brackets(payload)["ETHUSDT"]
    assert [b.bracket for b in t.brackets] == [1, 2]
    assert t.max_leverage(60_000) == 100 and t.brackets[1].cum == 50.0


def test_isolated_long_and_short() -> None:
    btc = EMBEDDED["BTCUSDT"]
    # long 0.5 BTC at 50,000 with 1,250 isolated margin (20x): LP = (1,250 - 25,000) / (0.5*0.004 - 0.5)
    lp = liquidation_price_isolated(1, 0.5, 50_000, 1_250, btc)
    assert lp == pytest.approx((1_250 - 25_000) / (0.002 - 0.5))
    # at LP the margin left equals the maintenance margin: the definition of liquidation
    assert 1_250 + 0.5 * (lp - 50_000) == pytest.approx(0.5 * lp * 0.004)
    sp = liquidation_price_isolated(-1, 0.5, 50_000, 1_250, btc)
    assert sp == pytest.approx((1_250 + 25_000) / (0.002 + 0.5))
    assert 1_250 - 0.5 * (sp - 50_000) == pytest.approx(0.5 * sp * 0.004)
    assert lp < 50_000 < sp


def test_isolated_over_collateralised_long_has_no_liquidation_price() -> None:
    assert liquidation_price_isolated(1, 0.5, 50_000, 30_000, EMBEDDED["BTCUSDT"]) == 0.0


def test_liquidation_changes_bracket() -> None:
    btc = EMBEDDED["BTCUSDT"]
    # long 12.5 BTC at 50,000 = 625,000 (bracket 3) at 2x: LP is near 25,000 -> 312,500 (bracket 2).
    qty, ep, wb = 12.5, 50_000.0, 312_500.0
    lp = liquidation_price_isolated(1, qty, ep, wb, btc)
    assert btc.for_notional(qty * lp).bracket == 2  # type: ignore[union-attr]
    b3 = btc.brackets[2]
    naive = (wb + b3.cum - qty * ep) / (qty * b3.maint_margin_ratio - qty)
    assert lp != pytest.approx(naive, rel=1e-6)
    assert wb + qty * (lp - ep) == pytest.approx(btc.maint_margin(qty * lp), rel=1e-9)


def test_cross_includes_other_positions() -> None:
    btc = EMBEDDED["BTCUSDT"]
    alone = liquidation_price_cross(1, 0.5, 50_000, 5_000, btc)
    assert alone == pytest.approx((5_000 - 25_000) / (0.002 - 0.5))
    # another position's maintenance margin (TMM1) and a loss on it (UPNL1 < 0) bring the LP closer
    crowded = liquidation_price_cross(1, 0.5, 50_000, 5_000, btc, other_maint_margin=100,
                                      other_unrealized_pnl=-400)
    assert crowded == pytest.approx((5_000 - 100 - 400 - 25_000) / (0.002 - 0.5))
    assert crowded > alone
