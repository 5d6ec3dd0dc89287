"""Sizing: the worked example exactly, real exchange filters, and every sizing denial."""

from __future__ import annotations

import orjson
import pytest

from bot.domain.instrument import Instrument
from bot.risk import EMBEDDED, Denial, DenyReason, Sized, size_entry
from bot.risk.brackets import LeverageBrackets, _table
from bot.settings.risk import RiskSection
from bot.venues.binance_usdm.instruments import KNOWN, load_exchange_info, parse_exchange_info
from tests.conftest import BINANCE, needs_data

BTC = KNOWN["BTCUSDT"]  # tick 0.10, step 0.001, minNotional 100
ZERO_COSTS = {"maker_fee_bps": 0.0, "taker_fee_bps": 0.0, "slippage_bps": 0.0}


def cfg(**kw: object) -> RiskSection:
    return RiskSection(**{**ZERO_COSTS, **kw})


def sized(res: Sized | Denial) -> Sized:
    assert isinstance(res, Sized), res
    return res


def denied(res: Sized | Denial) -> DenyReason:
    assert isinstance(res, Denial), res
    return res.reason


def test_worked_example_exactly() -> None:
    # equity 5,000, risk 0.5 %, stop 0.1 % away (50,000 -> 49,950), no fees/slippage.
    s = sized(size_entry(BTC, EMBEDDED["BTCUSDT"], cfg(), equity=5_000, free_margin=5_000, side=1,
                         entry_ticks=500_000, stop_ticks=499_500))
    assert s.qty_lots == 500 and s.qty == 0.5
    assert s.notional == 25_000.0
    assert s.leverage == 20  # the least leverage within the 25 % (1,250) margin budget
    assert s.margin == 1_250.0
    assert s.risk_budget == 25.0 and s.loss_at_stop == 25.0


def test_worked_example_short_and_eth() -> None:
    eth = KNOWN["ETHUSDT"]
    s = sized(size_entry(eth, EMBEDDED["ETHUSDT"], cfg(), equity=5_000, free_margin=5_000, side=-1,
                         entry_ticks=250_000, stop_ticks=250_250))  # 2,500.00 stopped at 2,502.50
    assert (s.qty, s.notional, s.leverage, s.margin) == (10.0, 25_000.0, 20, 1_250.0)


def test_fees_and_slippage_shrink_the_size_and_keep_loss_within_budget() -> None:
    c = RiskSection(maker_fee_bps=2.0, taker_fee_bps=5.0, slippage_bps=1.0)
    s = sized(size_entry(BTC, EMBEDDED["BTCUSDT"], c, equity=5_000, free_margin=5_000, side=1,
                         entry_ticks=500_000, stop_ticks=499_500))
    per_unit = 50.0 + 50_000 * (5 + 5 + 1) / 1e4  # taker entry + taker stop + slippage = 105 per BTC
    assert s.per_unit_loss == pytest.approx(per_unit)
    assert s.qty_lots == int(25.0 / per_unit / 0.001)  # 0.238095 -> 238 lots, rounded down
    assert s.loss_at_stop <= 25.0
    maker = sized(size_entry(BTC, EMBEDDED["BTCUSDT"], c, equity=5_000, free_margin=5_000, side=1,
                             entry_ticks=500_000, stop_ticks=499_500, entry_is_maker=True))
    assert maker.qty_lots > s.qty_lots  # a maker entry costs less, so it may be bigger


def test_rounds_down_to_the_step_never_up() -> None:
    # 25 / 30 = 0.8333.. BTC -> 0.833
    s = sized(size_entry(BTC, EMBEDDED["BTCUSDT"], cfg(max_leverage=50), equity=5_000, free_margin=5_000,
                         side=1, entry_ticks=500_000, stop_ticks=499_700))
    assert s.qty_lots == 833
    assert s.loss_at_stop <= 25.0


def _real_table() -> dict[str, Instrument]:
    path = str(BINANCE / "cryptofeed_BINANCE_FUTURES.0")
    try:
        return load_exchange_info(path)
    except orjson.JSONDecodeError:
        # The capture has a second `configuration:` line after the exchangeInfo body; read the first.
        with open(path, "rb") as fh:
            raw = fh.readline()
        return parse_exchange_info(orjson.loads(raw[raw.index(b": {") + 2 :]))


@needs_data
def test_real_filters_from_exchange_info() -> None:
    table = _real_table()
    btc, sushi = table["BTCUSDT"], table["SUSHIUSDT"]
    assert (btc.tick_size, btc.step_size, btc.min_notional) == ("0.01", "0.001", "5")
    assert (sushi.tick_size, sushi.step_size, sushi.min_notional) == ("0.0010", "1", "5")
    # SUSHI at 6.500, stop 6.480 (0.020 away): 25 / 0.02 = 1,250 contracts, whole units (step 1).
    s = sized(size_entry(sushi, _small(), cfg(), equity=5_000, free_margin=5_000,
                         side=1, entry_ticks=6_500, stop_ticks=6_480))
    assert s.qty_lots == 1_250 and s.qty == 1_250.0 and s.notional == pytest.approx(8_125.0)
    # 0.012 USDT of risk over 0.020 = 0.6 contracts -> 0 lots (step 1): below the minimum quantity.
    d = size_entry(sushi, _small(), cfg(), equity=5_000, free_margin=5_000, side=1, entry_ticks=6_500,
                   stop_ticks=6_480, budget=0.012)
    assert denied(d) is DenyReason.BELOW_MIN_QTY
    d = size_entry(sushi, _small(), cfg(), equity=5_000, free_margin=5_000, side=1, entry_ticks=6_500,
                   stop_ticks=6_480, budget=0.02)  # 1 contract = 6.5 USDT >= 5: allowed
    assert sized(d).notional == pytest.approx(6.5)
    # BTC on the real grid: tick 0.01 -> 50,000.00 is 5,000,000 ticks.
    s = sized(size_entry(btc, EMBEDDED["BTCUSDT"], cfg(), equity=5_000, free_margin=5_000, side=1,
                         entry_ticks=5_000_000, stop_ticks=4_995_000))
    assert (s.qty, s.notional, s.leverage, s.margin) == (0.5, 25_000.0, 20, 1_250.0)


def _small() -> LeverageBrackets:
    return _table("SMALL", [(50, 0, 50_000, 0.01, 0), (20, 50_000, 250_000, 0.025, 750)])


# -- every sizing denial ----------------------------------------------------------------------------------

def test_invalid_stop() -> None:
    d = size_entry(BTC, EMBEDDED["BTCUSDT"], cfg(), equity=5_000, free_margin=5_000, side=1,
                   entry_ticks=500_000, stop_ticks=500_100)
    assert denied(d) is DenyReason.INVALID_STOP


def test_below_min_qty() -> None:
    # 0.04 USDT over a 50 USDT stop = 0.0008 BTC -> 0 lots after rounding down (step 0.001).
    d = size_entry(BTC, EMBEDDED["BTCUSDT"], cfg(), equity=5_000, free_margin=5_000, side=1,
                   entry_ticks=500_000, stop_ticks=499_500, budget=0.04)
    assert denied(d) is DenyReason.BELOW_MIN_QTY


def test_below_min_notional() -> None:
    # 5 USDT over a 5,000 stop = 0.001 BTC = 50 USDT at 50,000 < minNotional 100 (KNOWN BTCUSDT).
    d = size_entry(BTC, EMBEDDED["BTCUSDT"], cfg(), equity=10_000, free_margin=10_000, side=1,
                   entry_ticks=500_000, stop_ticks=450_000, budget=5.0)
    assert denied(d) is DenyReason.BELOW_MIN_NOTIONAL


def test_above_max_qty_limit_and_market() -> None:
    tiny_max = Instrument("t", "XUSDT", "0.01", "1", "1", "1000", "100", "5")
    big = cfg(max_leverage=125, max_margin_per_trade_pct=100)
    # 25 / 0.01 = 2,500 > LOT_SIZE.maxQty 1,000
    d = size_entry(tiny_max, _small(), big, equity=5_000, free_margin=5_000, side=1, entry_ticks=100,
                   stop_ticks=99)
    assert denied(d) is DenyReason.ABOVE_MAX_QTY
    # 500 contracts fit LOT_SIZE but not MARKET_LOT_SIZE (100) when the entry is a market order.
    ok = size_entry(tiny_max, _small(), big, equity=5_000, free_margin=5_000, side=1, entry_ticks=100,
                    stop_ticks=99, budget=5.0)
    assert sized(ok).qty_lots == 500
    d = size_entry(tiny_max, _small(), big, equity=5_000, free_margin=5_000, side=1, entry_ticks=100,
                   stop_ticks=99, budget=5.0, market_entry=True)
    assert denied(d) is DenyReason.ABOVE_MAX_QTY


def test_leverage_above_config() -> None:
    # 0.05 % stop -> notional 50,000 -> needs 40x on a 1,250 budget; configured max 20x.
    d = size_entry(BTC, EMBEDDED["BTCUSDT"], cfg(), equity=5_000, free_margin=5_000, side=1,
                   entry_ticks=500_000, stop_ticks=499_750)
    assert denied(d) is DenyReason.LEVERAGE_ABOVE_CONFIG


def test_leverage_above_bracket() -> None:
    # equity 1,000,000, 1 % risk (10,000) over a 25 stop -> 400 BTC = 20,000,000 notional: bracket 5
    # (12M-70M) allows 25x; the 500,000 margin budget needs 40x, within the configured 125x.
    d = size_entry(BTC, EMBEDDED["BTCUSDT"], cfg(max_leverage=125, max_margin_per_trade_pct=50,
                                                  risk_per_trade_pct=1.0),
                   equity=1_000_000, free_margin=1_000_000, side=1, entry_ticks=500_000, stop_ticks=499_750)
    assert denied(d) is DenyReason.LEVERAGE_ABOVE_BRACKET
    assert "needs 40x; bracket allows 25x" in d.detail  # type: ignore[union-attr]


def test_insufficient_margin() -> None:
    d = size_entry(BTC, EMBEDDED["BTCUSDT"], cfg(), equity=5_000, free_margin=1_000, side=1,
                   entry_ticks=500_000, stop_ticks=499_500)
    assert denied(d) is DenyReason.INSUFFICIENT_MARGIN


def test_liquidation_too_close() -> None:
    # 20x isolated long at 50,000: liq ~47,690 (2,310 away). A 1,000 stop (2 %) with k=3 needs 3,000.
    c = cfg(risk_per_trade_pct=5.0)  # 250 / 1,000 = 0.25 BTC = 12,500 notional -> 10x on 1,250
    ok = sized(size_entry(BTC, EMBEDDED["BTCUSDT"], c, equity=5_000, free_margin=5_000, side=1,
                          entry_ticks=500_000, stop_ticks=490_000))
    assert ok.leverage == 10
    tight = cfg(risk_per_trade_pct=5.0, max_margin_per_trade_pct=12.5)  # 625 budget -> 20x
    d = size_entry(BTC, EMBEDDED["BTCUSDT"], tight, equity=5_000, free_margin=5_000, side=1,
                   entry_ticks=500_000, stop_ticks=490_000)
    assert denied(d) is DenyReason.LIQUIDATION_TOO_CLOSE


def test_cross_margin_uses_the_wallet() -> None:
    c = cfg(margin_mode="cross", risk_per_trade_pct=5.0, max_margin_per_trade_pct=12.5)
    s = sized(size_entry(BTC, EMBEDDED["BTCUSDT"], c, equity=5_000, free_margin=5_000, side=1,
                         entry_ticks=500_000, stop_ticks=490_000))
    # the whole 5,000 wallet backs 0.25 BTC: LP = (5,000 - 12,500) / (0.25*0.004 - 0.25)
    assert s.liq_price == pytest.approx((5_000 - 12_500) / (0.25 * 0.004 - 0.25))
