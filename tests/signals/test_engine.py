"""SignalEngine: each setup fires on a constructed scenario, and the gates silence it."""

from __future__ import annotations

from bot.domain.events import FundingInfo
from bot.market.health import BookStatus
from bot.settings.signals import SignalsSection
from bot.signals.engine import SignalEngine
from tests.signals.helpers import INST, Feed, S

OFF = {"enabled": False}


# The scenarios were built for the stops and tiers before issue 13 (the defaults now sit in the method's
# 0.10-0.15 % range): they test the setups' logic, so they keep those.
PRE_COSTS = {"min_stop_bps": 2.0, "max_stop_bps": 25.0, "tp_r_multiples": (1.0, 2.0)}


def engine(**kw: object) -> SignalEngine:
    base: dict[str, object] = {"momentum": OFF, "breakout_fade": OFF, "absorption": OFF, "rsi_snapback": OFF}
    base.update({k: {**PRE_COSTS, **v} if isinstance(v, dict) and v.get("enabled", True) else v
                 for k, v in kw.items()})
    return SignalEngine(SignalsSection(**base), {INST.symbol: INST})  # type: ignore[arg-type]


# ---------------------------------------------------------------- absorption
ABSORB = {"min_absorbed_quote": 100_000.0, "min_absorption_ratio": 1.0, "min_hold_ms": 1000, "min_imbalance": 0.1}


def absorption_scenario(feed: Feed) -> None:
    # bid 10,000.0 x 8 (deep side heavier: imbalance > 0), sellers hit it for 12 lots, it refills and holds
    feed.set_touch(100_000, 8, 100_001, 2, ts=0, depth_lots=10, ask_depth_lots=5)
    feed.trade(500_000_000, 100_000, 6, buy=False)
    feed.book.set_bid(100_000, 8)  # refilled
    feed.depth(600_000_000)
    feed.trade(1_100_000_000, 100_000, 6, buy=False)
    feed.book.set_bid(100_000, 7)
    feed.depth(1_200_000_000)


def test_absorption_fires_long_with_stop_beyond_the_level() -> None:
    feed = Feed(engine(absorption=ABSORB))
    absorption_scenario(feed)
    assert len(feed.intents) == 1
    it = feed.intents[0]
    assert (it.setup, it.side, it.symbol) == ("absorption", "long", "TESTUSDT")
    assert it.price_ticks == 100_001  # the ask a taker lifts
    # level 100,000 - 0.5 bps (5 ticks) buffer; min stop 2 bps = 20 ticks from the entry wins
    assert it.stop_ticks == 100_001 - 20
    assert [t.price_ticks for t in it.targets] == [100_021, 100_041]  # 1 R and 2 R
    assert [t.fraction for t in it.targets] == [0.5, 0.5]
    # 12 lots absorbed vs a peak display of 10 lots (the feed's opening book)
    assert it.features["absorbed_lots"] == 12 and it.features["absorption_ratio"] == 1.2
    assert it.features["refills"] == 2 and it.time_limit_s == 30.0


def test_absorption_needs_the_hold_time() -> None:
    feed = Feed(engine(absorption={**ABSORB, "min_hold_ms": 5000}))
    absorption_scenario(feed)
    assert feed.intents == []


def test_not_live_book_gives_no_intent() -> None:
    feed = Feed(engine(absorption=ABSORB), status=BookStatus.SYNCING)
    absorption_scenario(feed)
    assert feed.intents == []
    feed2 = Feed(engine(absorption=ABSORB), status=BookStatus.STALE)
    absorption_scenario(feed2)
    assert feed2.intents == []


def test_wide_spread_gives_no_intent() -> None:
    eng = engine(absorption=ABSORB, max_spread_ticks=5)
    feed = Feed(eng)
    feed.set_touch(100_000, 8, 100_010, 2, ts=0, ask_depth_lots=5)  # spread 10 ticks
    feed.trade(500_000_000, 100_000, 12, buy=False)
    feed.book.set_bid(100_000, 8)
    feed.depth(1_200_000_000)
    assert feed.intents == [] and eng.stats.vetoes["spread"] == 1


def test_funding_window_gives_no_intent() -> None:
    eng = engine(absorption=ABSORB, no_entry_before_funding_s=60.0)
    feed = Feed(eng)
    eng.on_funding(FundingInfo(INST.symbol, 10_000.5, 10_000.0, 0.0001, 30 * S, 0, 0), 0)
    absorption_scenario(feed)
    assert feed.intents == [] and eng.stats.vetoes["funding"] >= 1
    # the same scenario with funding far away fires
    eng2 = engine(absorption=ABSORB, no_entry_before_funding_s=60.0)
    eng2.on_funding(FundingInfo(INST.symbol, 10_000.5, 10_000.0, 0.0001, 3600 * S, 0, 0), 0)
    feed2 = Feed(eng2)
    absorption_scenario(feed2)
    assert len(feed2.intents) == 1


def test_cooldown() -> None:
    eng = engine(absorption={**ABSORB, "cooldown_s": 10.0})
    feed = Feed(eng)
    absorption_scenario(feed)
    feed.trade(1_300_000_000, 100_000, 5, buy=False)
    feed.depth(1_400_000_000)  # still absorbing: a candidate, but in cooldown
    assert len(feed.intents) == 1 and eng.stats.vetoes["cooldown"] >= 1
    assert eng.stats.candidates["absorption"] >= 2


# ---------------------------------------------------------------- momentum
MOMENTUM = {"bar_ms": 1000, "swing_bars": 2, "pullback_bars": 1, "pullback_tolerance_bps": 0.5,
            "min_flow_imbalance": 0.1}


def momentum_scenario(feed: Feed, buy: bool) -> None:
    bars = [  # rising 1 s bars, then a pullback to the fast EMA that holds and turns up
        (100_000, 100_012, 99_998, 100_010), (100_010, 100_022, 100_008, 100_020),
        (100_020, 100_032, 100_018, 100_030), (100_030, 100_042, 100_028, 100_040),
        (100_040, 100_052, 100_038, 100_050), (100_050, 100_062, 100_048, 100_060),
        (100_060, 100_070, 100_045, 100_065),
    ]
    for i, (o, h, lo, c) in enumerate(bars):
        feed.set_touch(c - 1, 10 + i, c, 10, ts=i * S + 950_000_000)  # bid size grows: OFI > 0
        feed.bar(i, o, h, lo, c, buy=buy)
    assert feed.intents == []  # the last bar is still open
    feed.set_touch(100_064, 30, 100_065, 5, ts=7 * S + 100_000_000)  # closes bar 6 -> evaluation


def test_momentum_long_after_a_held_pullback() -> None:
    eng = engine(momentum=MOMENTUM, bar_intervals_ms=(1000,), ema_fast_bars=2, ema_slow_bars=3)
    feed = Feed(eng)
    momentum_scenario(feed, buy=True)
    assert [i.setup for i in feed.intents] == ["momentum"]
    it = feed.intents[0]
    assert it.side == "long" and it.price_ticks == 100_065
    assert it.stop_ticks == 100_045 - 5  # the pullback low minus the 0.5 bps buffer
    # R = 25 ticks: 1 R = 100,090 (the prior high 100,070 is nearer than 0.5 R, so R tiers)
    assert [t.price_ticks for t in it.targets] == [100_090, 100_115]
    assert it.features["ofi_1s_lots"] > 0


def test_momentum_silent_without_flow() -> None:
    eng = engine(momentum=MOMENTUM, bar_intervals_ms=(1000,), ema_fast_bars=2, ema_slow_bars=3)
    feed = Feed(eng)
    momentum_scenario(feed, buy=False)  # the same bars and OFI, but every print an aggressive sell
    assert feed.intents == []
    assert eng.features(INST.symbol).book.ofi(0) > 0


# ---------------------------------------------------------------- breakout fade
FADE = {"bar_ms": 1000, "range_bars": 10, "break_bars": 3, "range_max_bps": 8.0, "break_min_bps": 1.0,
        "break_volume_mult": 2.0, "wick_min_frac": 0.4}


def test_breakout_fade_short_after_a_stalled_upside_break() -> None:
    eng = engine(breakout_fade=FADE, bar_intervals_ms=(1000,))
    feed = Feed(eng)
    for i in range(10):  # tight range 100,000-100,020 (2 bps), 1 lot per print
        feed.bar(i, 100_010, 100_020, 100_000, 100_010)
    feed.bar(10, 100_015, 100_040, 100_015, 100_040, lots=10)  # break +20 ticks (2 bps) on 10x volume
    feed.bar(11, 100_040, 100_060, 100_040, 100_055, lots=10)
    # the last break bar spikes to 100,070 and closes back at 100,045: a 25-tick wick on a 30-tick bar
    feed.bar(12, 100_045, 100_070, 100_040, 100_045, lots=10)
    assert feed.intents == []
    feed.set_touch(100_050, 10, 100_051, 10, ts=11 * S + 900_000_000)
    feed.set_touch(100_044, 3, 100_045, 10, ts=13 * S + 50_000_000)  # bid and ask down: OFI -20 < 0
    assert [i.setup for i in feed.intents] == ["breakout_fade"]  # bar 12 closed by this depth event
    it = feed.intents[0]
    assert it.side == "short" and it.price_ticks == 100_044
    assert it.features["ofi_1s_lots"] == -20
    assert it.stop_ticks == 100_070 + 5  # beyond the break extreme
    assert it.targets[0].price_ticks == 100_010  # back to the middle of the range
    assert it.features["range_high_ticks"] == 100_020


def test_breakout_fade_silent_when_the_range_is_wide() -> None:
    eng = engine(breakout_fade={**FADE, "range_max_bps": 1.0}, bar_intervals_ms=(1000,))
    feed = Feed(eng)
    for i in range(10):
        feed.bar(i, 100_010, 100_020, 100_000, 100_010)
    feed.bar(10, 100_015, 100_040, 100_015, 100_040, lots=10)
    feed.bar(11, 100_040, 100_060, 100_040, 100_055, lots=10)
    feed.bar(12, 100_055, 100_060, 100_040, 100_045, lots=10)
    feed.set_touch(100_044, 3, 100_045, 10, ts=13 * S + 50_000_000)
    feed.trade(13 * S + 100_000_000, 100_045, 1, False)
    assert feed.intents == []


# ---------------------------------------------------------------- RSI snap-back
RSI = {"bar_ms": 1000, "oversold": 30.0, "overbought": 70.0, "level_tolerance_bps": 3.0, "swing_bars": 6}


def test_rsi_snapback_long_at_a_high_volume_node() -> None:
    eng = engine(rsi_snapback=RSI, bar_intervals_ms=(1000,), rsi_bars=3)
    feed = Feed(eng, bid=100_199)
    for i in range(10):  # value: 20 lots a bar at 10,020.0 -> the POC
        feed.bar(i, 100_200, 100_200, 100_200, 100_200, lots=5)
    for k, c in enumerate((100_180, 100_160, 100_140, 100_120)):  # sell-off, 1-lot prints
        feed.bar(10 + k, c + 20, c + 20, c, c, lots=1)
    feed.bar(14, 100_100, 100_100, 100_100, 100_100, lots=30)  # 120 lots change hands at 10,010.0: a node
    feed.set_touch(100_119, 10, 100_120, 10, ts=15 * S + 100_000_000)
    feed.bar(15, 100_100, 100_120, 100_100, 100_120, lots=1)  # snaps back +20
    feed.set_touch(100_119, 10, 100_120, 10, ts=16 * S + 50_000_000)
    feed.trade(16 * S + 100_000_000, 100_120, 1, True)  # closes bar 15: RSI 0 -> 36.5 crosses 30
    assert [i.setup for i in feed.intents] == ["rsi_snapback"]
    it = feed.intents[0]
    assert it.side == "long" and it.price_ticks == 100_120
    assert it.features["rsi_prev"] < 30 <= it.features["rsi"]
    assert it.features["poc_ticks"] == 100_202  # centre of the 5-tick bucket at 10,020.0
    assert it.stop_ticks == 100_100 - 5  # the swing low minus the buffer
    # R = 25: tiers 1 R and 2 R, the POC (82 ticks up) replaces the 1 R tier; nearest first
    assert [t.price_ticks for t in it.targets] == [100_170, 100_202]


def test_rsi_snapback_silent_away_from_profile_levels() -> None:
    eng = engine(rsi_snapback={**RSI, "level_tolerance_bps": 0.1}, bar_intervals_ms=(1000,), rsi_bars=3)
    feed = Feed(eng, bid=100_199)
    for i in range(10):
        feed.bar(i, 100_200, 100_200, 100_200, 100_200, lots=5)
    for k, c in enumerate((100_180, 100_160, 100_140, 100_120)):
        feed.bar(10 + k, c + 20, c + 20, c, c, lots=1)
    feed.bar(14, 100_100, 100_100, 100_100, 100_100, lots=30)
    feed.bar(15, 100_100, 100_120, 100_100, 100_120, lots=1)
    feed.trade(16 * S + 100_000_000, 100_120, 1, True)
    assert feed.intents == []
