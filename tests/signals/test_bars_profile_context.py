"""Bars, EMA/RSI/ATR, volume profile and market context against hand-computed values."""

from __future__ import annotations

import math

import pytest

from bot.signals.bars import ATR, EMA, RSI, BarSeries, TickBars, TimeBars, VolumeBars
from bot.signals.context import BtcLink, FundingState
from bot.signals.profile import VolumeProfile

S = 1_000_000_000


def test_time_bars_aligned_with_flat_fill() -> None:
    tb = TimeBars(S, BarSeries(ema_fast=2, ema_slow=3, rsi=2, atr=2))
    assert tb.on_trade(1_200_000_000, 100, 1, True) == 0  # opens bar [1 s, 2 s)
    tb.on_trade(1_500_000_000, 103, 2, False)
    tb.on_trade(1_900_000_000, 101, 1, True)
    closed = tb.on_trade(4_100_000_000, 99, 5, False)  # closes [1,2), flat [2,3) and [3,4)
    assert closed == 3
    bars = list(tb.series.bars)
    assert [b.t_start_ns for b in bars] == [S, 2 * S, 3 * S]
    b0 = bars[0]
    assert (b0.open, b0.high, b0.low, b0.close) == (100, 103, 100, 101)
    assert (b0.buy_lots, b0.sell_lots, b0.trades) == (2, 2, 3)
    assert all((b.open, b.close, b.volume) == (101, 101, 0) for b in bars[1:])
    assert tb.current is not None and tb.current.t_start_ns == 4 * S
    assert tb.advance(4_999_999_999) == 0
    assert tb.advance(6 * S) == 2  # [4,5) with its print, then flat [5,6)
    assert tb.series.bars[-2].close == 99 and tb.series.bars[-1].volume == 0


def test_time_bars_gap_cap() -> None:
    tb = TimeBars(S, max_fill=5)
    tb.on_trade(0, 100, 1, True)
    assert tb.on_trade(1000 * S, 101, 1, True) == 1 + 5
    assert tb.series.bars[-1].t_start_ns == 999 * S
    assert tb.current is not None and tb.current.t_start_ns == 1000 * S


def test_tick_and_volume_bars() -> None:
    tk = TickBars(3)
    closed = [tk.on_trade(i, 100 + i, 1, True) for i in range(7)]
    assert closed == [0, 0, 1, 0, 0, 1, 0]
    assert [(b.open, b.close) for b in tk.series.bars] == [(100, 102), (103, 105)]
    vb = VolumeBars(10)
    out = [vb.on_trade(i, 100, q, i % 2 == 0) for i, q in enumerate((4, 5, 3, 10, 1))]
    assert out == [0, 0, 1, 1, 0]
    assert [b.volume for b in vb.series.bars] == [12, 10]


def test_ema() -> None:
    e = EMA(3)  # alpha 0.5
    assert [e.update(x) for x in (10, 12, 11)] == [10, 11, 11]


def test_rsi_wilder() -> None:
    r = RSI(3)
    vals = [r.update(x) for x in (10, 11, 12, 11, 13)]
    assert vals[:3] == [None, None, None]
    # first 3 changes +1 +1 -1: avg gain 2/3, avg loss 1/3 -> RS 2 -> 66.67
    assert vals[3] == pytest.approx(100 - 100 / 3)
    # then +2: gain (2/3*2 + 2)/3 = 10/9, loss (1/3*2)/3 = 2/9 -> RS 5 -> 83.33
    assert vals[4] == pytest.approx(100 - 100 / 6)
    up = RSI(2)
    for x in (1, 2, 3):
        up.update(x)
    assert up.value == 100.0


def test_atr_wilder() -> None:
    a = ATR(2)
    assert a.update(10, 8, 9) is None  # TR 2
    assert a.update(12, 9, 11) == pytest.approx(2.5)  # TR max(3, 3, 0) = 3 -> mean 2.5
    assert a.update(11, 10, 10.5) == pytest.approx((2.5 + 1) / 2)  # TR max(1, 0, 1) = 1


def test_volume_profile_poc_value_area_hvn() -> None:
    vp = VolumeProfile(window_ns=100, bucket_ticks=1, value_area_frac=0.7, hvn_mult=1.5)
    for price, lots in ((100, 5), (101, 10), (102, 30), (103, 20), (104, 5), (105, 5), (106, 25)):
        vp.add(1, price, lots)
    lv = vp.levels()
    assert lv is not None
    assert lv.poc_ticks == 102 and lv.total_lots == 100
    # from 102 (30): up 103 (20) -> 50, up 104 (5) vs dn 101 (10): dn -> 60,
    # up 104 (5) vs dn 100 (5): up -> 65,
    # 105 (5) vs 100 (5): up -> 70 >= 70 -> [101, 105]
    assert (lv.val_ticks, lv.vah_ticks) == (101, 105)
    # mean 100/7 = 14.3; >= 21.4 and local maxima: 102 (30), 106 (25)
    assert lv.hvn_ticks == (102, 106)
    vp.add(200, 104, 1)  # everything at t=1 expired (window 100): only the new print
    lv2 = vp.levels()
    assert lv2 is not None and lv2.poc_ticks == 104 and lv2.total_lots == 1


def test_volume_profile_buckets() -> None:
    vp = VolumeProfile(window_ns=10, bucket_ticks=10)
    vp.add(0, 105, 3)
    vp.add(0, 119, 4)
    lv = vp.levels()
    # POC bucket 11 holds 4 of 7 lots < 70 %: the area takes bucket 10 too -> [100, 119]
    assert lv is not None and lv.poc_ticks == 115 and (lv.val_ticks, lv.vah_ticks) == (100, 119)


def test_funding_and_basis() -> None:
    f = FundingState()
    assert f.seconds_to_funding(0) is None and f.basis_bps(100.0) is None
    f.update(100.1, 100.0, 0.0001, 60 * S, ts_ns=0)
    assert f.seconds_to_funding(30 * S) == 30.0
    assert f.basis_bps(100.0) == pytest.approx(10.0)
    f.update(None, None, None, None, ts_ns=1)
    assert f.funding_rate == 0.0001  # a partial update keeps the known values


def test_btc_beta_corr_and_move() -> None:
    link = BtcLink(sample_ns=S, n=50, veto_window_ns=10 * S)
    btc, alt = 60_000.0, 3_000.0
    for i in range(60):
        rb = 0.001 * (1 if i % 3 else -1.5)
        btc *= math.exp(rb)
        alt *= math.exp(2 * rb)  # alt returns are exactly twice BTC's
        link.sample(i * S, alt, btc)
    assert link.beta == pytest.approx(2.0, rel=1e-6)
    assert link.corr == pytest.approx(1.0, abs=1e-9)
    link.sample(60 * S + 1, alt, None)  # no BTC price: no sample
    move = link.btc_move_bps()
    assert move is not None
    hist = list(link.btc_hist)
    assert hist[0][0] >= 49 * S
    assert move == pytest.approx((hist[-1][1] / hist[0][1] - 1) * 1e4)


def test_longer_bars_merged_from_short_bars_equal_bars_from_prints() -> None:
    import random

    rng = random.Random(7)
    direct = TimeBars(5 * S)
    base = TimeBars(S)
    merged = TimeBars(5 * S)
    base.series.children.append(merged)
    ts, price = 0, 1000
    for _ in range(3000):
        ts += rng.choice((1_000_000, 50_000_000, 400_000_000, 3 * S, 12 * S))  # with silent gaps
        price += rng.randint(-3, 3)
        lots, buy = rng.randint(1, 9), rng.random() < 0.5
        direct.on_trade(ts, price, lots, buy)
        base.on_trade(ts, price, lots, buy)
    end = ts + 20 * S
    base.advance(end)  # the engine advances the shortest bars first: they feed the merged ones
    merged.advance(end)
    direct.advance(end)

    def rows(tb: TimeBars) -> list[tuple[int, ...]]:
        return [(b.t_start_ns, b.open, b.high, b.low, b.close, b.buy_lots, b.sell_lots, b.trades)
                for b in tb.series.bars]

    key, got = rows(direct), rows(merged)
    assert len(key) > 100 and got == key
    assert merged.series.rsi.value == direct.series.rsi.value
