"""Trade flow: signed volume, CVD, rolling windows, imbalance, rate and large-trade bursts."""

from __future__ import annotations

import pytest

from bot.signals.rolling import RollingSum
from bot.signals.trade_flow import TradeFlow

S = 1_000_000_000


def test_cvd_windows_imbalance_rate() -> None:
    f = TradeFlow(windows_ns=(1 * S, 10 * S))
    f.on_trade(0, 100, 5, True)
    f.on_trade(400_000_000, 100, 2, False)
    f.on_trade(1_500_000_000, 99, 3, False)
    assert f.cvd_lots == 5 - 2 - 3
    w1 = f.window(0)
    # 1 s window at 1.5 s: (0.5, 1.5] -> only the 3-lot sell
    assert (w1.buy_lots, w1.sell_lots, w1.trades) == (0, 3, 1)
    assert w1.imbalance == -1.0
    w10 = f.window(1)
    assert (w10.buy_lots, w10.sell_lots, w10.trades) == (5, 5, 3)
    assert w10.imbalance == 0.0
    assert w10.rate_per_s() == pytest.approx(0.3)
    assert f.window(0, now_ns=3 * S).trades == 0


def test_large_trade_sums_one_taker_burst() -> None:
    f = TradeFlow(large_lots=10)
    assert f.on_trade(7, 100, 4, True) is None
    assert f.on_trade(7, 101, 4, True) is None
    big = f.on_trade(7, 102, 4, True)  # same T, same side: 12 lots in one taker order
    assert big is not None and big.buy and big.lots == 12 and big.price_ticks == 102
    f.on_trade(7, 103, 1, True)
    assert big.lots == 13 and f.large_count == 1  # the burst grows, counted once
    assert f.on_trade(8, 100, 9, False) is None  # new burst, below the threshold
    assert f.on_trade(8, 100, 9, True) is None  # side changed: a new burst again
    assert f.large_count == 1


def test_rolling_sum_exact_ints() -> None:
    r = RollingSum(10)
    for t in range(100):
        r.add(t, t)
    assert r.total == sum(range(90, 100)) and r.count == 10
