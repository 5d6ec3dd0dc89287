"""The risk gate: trading state and every gate denial reason, with an explicit clock."""

from __future__ import annotations

import pytest

from bot.domain.types import CloseReason, EntryIntent
from bot.risk import Denial, DenyReason, MarketView, RiskGate, RiskManager, Sized, TradingState
from bot.risk.gate import DAY_NS
from bot.settings.risk import RiskSection
from bot.venues.binance_usdm.instruments import KNOWN

S = 1_000_000_000
T0 = 1_721_347_200 * S + 3_600 * S  # 2024-07-19 01:00 UTC
LIVE = MarketView(book_live=True, spread_bps=1.0)


def gate(**kw: object) -> RiskGate:
    return RiskGate(RiskSection(**kw), equity=10_000, now_ns=T0)


def reason(d: Denial | None) -> DenyReason | None:
    return None if d is None else d.reason


def test_active_gate_allows_and_counts_nothing() -> None:
    g = gate()
    assert g.check_entry("BTCUSDT", "s", LIVE, T0) is None
    assert g.state is TradingState.ACTIVE and not g.denials


def test_daily_loss_limit_halts_until_next_utc_day() -> None:
    g = gate(daily_loss_limit_pct=2.0, max_drawdown_pct=50)
    g.on_equity(9_850, T0)  # -1.5 %: 75 % of the limit -> REDUCING
    assert g.state is TradingState.REDUCING
    assert reason(g.check_entry("BTCUSDT", "s", LIVE, T0)) is DenyReason.REDUCING
    g.on_equity(9_790, T0 + S)  # -2.1 % -> HALTED
    assert g.state is TradingState.HALTED and "DAILY_LOSS_LIMIT" in g.state_reason
    assert reason(g.check_entry("BTCUSDT", "s", LIVE, T0 + S)) is DenyReason.DAILY_LOSS_LIMIT
    g.on_equity(10_100, T0 + 2 * S)  # a recovery does not lift a halt the same day
    assert g.state is TradingState.HALTED
    next_day = (T0 // DAY_NS + 1) * DAY_NS
    assert reason(g.check_entry("BTCUSDT", "s", LIVE, next_day - 1)) is DenyReason.DAILY_LOSS_LIMIT
    assert g.check_entry("BTCUSDT", "s", LIVE, next_day) is None
    assert g.state is TradingState.ACTIVE and g.day_start_equity == 10_100
    assert [c[4] for c in g.drain_state_changes()] == ["REDUCING", "HALTED", "ACTIVE"]


def test_drawdown_from_the_days_peak_halts() -> None:
    g = gate(daily_loss_limit_pct=10, max_drawdown_pct=3.0)
    g.on_equity(11_000, T0)  # +10 % on the day
    g.on_equity(10_660, T0 + S)  # -3.09 % from the peak, still up on the day
    assert g.state is TradingState.HALTED and "MAX_DRAWDOWN" in g.state_reason
    assert reason(g.check_entry("BTCUSDT", "s", LIVE, T0 + 2 * S)) is DenyReason.MAX_DRAWDOWN


def test_operator_reset_and_manual_halt() -> None:
    g = gate()
    g.halt("operator", T0)
    assert reason(g.check_entry("BTCUSDT", "s", LIVE, T0 + 2 * DAY_NS)) is DenyReason.HALTED  # no expiry
    g.reset(T0 + 2 * DAY_NS)
    assert g.check_entry("BTCUSDT", "s", LIVE, T0 + 2 * DAY_NS) is None


def test_symbol_halt_and_open_position_and_max_positions() -> None:
    g = gate(max_open_positions=2)
    g.halt_symbol("ETHUSDT", "stop not confirmed", T0)
    assert reason(g.check_entry("ETHUSDT", "s", LIVE, T0)) is DenyReason.SYMBOL_HALTED
    g.on_position("BTCUSDT", 20_000)
    assert reason(g.check_entry("BTCUSDT", "s", LIVE, T0)) is DenyReason.POSITION_OPEN
    g.on_position("SOLUSDT", 5_000)
    assert reason(g.check_entry("XRPUSDT", "s", LIVE, T0)) is DenyReason.MAX_OPEN_POSITIONS
    g.on_position("SOLUSDT", 0)
    assert g.check_entry("XRPUSDT", "s", LIVE, T0) is None


def test_notional_limits() -> None:
    g = gate(max_notional_per_symbol_usd=50_000, max_total_notional_usd=60_000)
    assert reason(g.check_notional("BTCUSDT", 50_001)) is DenyReason.MAX_SYMBOL_NOTIONAL
    g.on_position("ETHUSDT", 30_000)
    assert reason(g.check_notional("BTCUSDT", 30_001)) is DenyReason.MAX_TOTAL_NOTIONAL
    assert g.check_notional("BTCUSDT", 30_000) is None


def test_order_rate_limits_deny_entries_never_protective_orders() -> None:
    g = gate(max_orders_per_s=3, max_orders_per_min=5)
    for i in range(3):
        assert g.check_order(T0 + i, reduces=False) is None
    assert reason(g.check_order(T0 + 10, reduces=False)) is DenyReason.RATE_PER_SECOND
    assert g.check_order(T0 + 11, reduces=True) is None  # a stop always goes
    assert g.check_order(T0 + S + 20, reduces=False) is None  # the 1 s window has moved on (5th order)
    assert reason(g.check_order(T0 + 2 * S, reduces=False)) is DenyReason.RATE_PER_MINUTE
    assert g.check_order(T0 + 61 * S, reduces=False) is None
    g.halt_symbol("BTCUSDT", "unowned size", T0 + 61 * S)
    assert reason(g.check_order(T0 + 61 * S + 1, reduces=False, symbol="BTCUSDT")) is DenyReason.SYMBOL_HALTED
    assert g.check_order(T0 + 61 * S + 2, reduces=True, symbol="BTCUSDT") is None  # its stop and exits go
    assert g.check_order(T0 + 61 * S + 3, reduces=False, symbol="ETHUSDT") is None
    g.halt("x", T0 + 62 * S)
    assert reason(g.check_order(T0 + 62 * S, reduces=False)) is DenyReason.HALTED
    assert g.check_order(T0 + 62 * S, reduces=True) is None


def test_loss_streak_cooldown_and_setup_cooldown() -> None:
    g = gate(max_consecutive_losses=2, loss_streak_cooldown_s=300, setup_cooldown_s=60)
    g.on_trade_closed("BTCUSDT", "sweep", -10, CloseReason.STOP_LOSS, T0)
    assert reason(g.check_entry("BTCUSDT", "sweep", LIVE, T0 + 10 * S)) is DenyReason.SETUP_COOLDOWN
    assert g.check_entry("BTCUSDT", "absorb", LIVE, T0 + 10 * S) is None  # another setup is free
    assert g.check_entry("BTCUSDT", "sweep", LIVE, T0 + 60 * S) is None
    g.on_trade_closed("BTCUSDT", "absorb", -5, CloseReason.NO_PROGRESS, T0 + 61 * S)
    assert reason(g.check_entry("ETHUSDT", "x", LIVE, T0 + 62 * S)) is DenyReason.LOSS_STREAK_COOLDOWN
    assert g.check_entry("ETHUSDT", "x", LIVE, T0 + 361 * S) is None
    # a win resets the streak
    g.on_trade_closed("BTCUSDT", "a", -5, CloseReason.TIME_LIMIT, T0 + 400 * S)
    g.on_trade_closed("BTCUSDT", "a", 5, CloseReason.TAKE_PROFIT, T0 + 401 * S)
    g.on_trade_closed("BTCUSDT", "a", -5, CloseReason.TIME_LIMIT, T0 + 402 * S)
    assert g.check_entry("ETHUSDT", "x", LIVE, T0 + 403 * S) is None


def test_market_conditions() -> None:
    g = gate(max_spread_bps=5.0, funding_window_s=30)
    assert reason(g.check_entry("BTCUSDT", "s", MarketView(book_live=False), T0)) is DenyReason.BOOK_NOT_LIVE
    assert reason(g.check_entry("BTCUSDT", "s", MarketView(spread_bps=5.5), T0)) is DenyReason.SPREAD_TOO_WIDE
    near = MarketView(next_funding_ns=T0 + 20 * S)
    assert reason(g.check_entry("BTCUSDT", "s", near, T0)) is DenyReason.FUNDING_WINDOW
    assert g.check_entry("BTCUSDT", "s", MarketView(next_funding_ns=T0 + 31 * S), T0) is None
    assert g.denials == {"BOOK_NOT_LIVE": 1, "SPREAD_TOO_WIDE": 1, "FUNDING_WINDOW": 1}


def test_manager_gate_then_size_then_notional_and_counts() -> None:
    cfg = RiskSection(maker_fee_bps=0, taker_fee_bps=0, slippage_bps=0, max_notional_per_symbol_usd=20_000)
    rm = RiskManager(cfg, equity=5_000, now_ns=T0)
    intent = EntryIntent("BTCUSDT", "long", "s", T0, 500_000, 499_500, (), 60.0)
    d = rm.assess(intent, KNOWN["BTCUSDT"], LIVE, equity=5_000, free_margin=5_000, now_ns=T0)
    assert isinstance(d, Denial) and d.reason is DenyReason.MAX_SYMBOL_NOTIONAL  # 25,000 > 20,000
    tight = EntryIntent("BTCUSDT", "long", "s", T0, 500_000, 499_750, (), 60.0)
    d2 = rm.assess(tight, KNOWN["BTCUSDT"], LIVE, equity=5_000, free_margin=5_000, now_ns=T0)
    assert isinstance(d2, Denial) and d2.reason is DenyReason.LEVERAGE_ABOVE_CONFIG
    assert rm.gate.denials == {"MAX_SYMBOL_NOTIONAL": 1, "LEVERAGE_ABOVE_CONFIG": 1}
    rm2 = RiskManager(RiskSection(maker_fee_bps=0, taker_fee_bps=0, slippage_bps=0), equity=5_000, now_ns=T0)
    s = rm2.assess(intent, KNOWN["BTCUSDT"], LIVE, equity=5_000, free_margin=5_000, now_ns=T0)
    assert isinstance(s, Sized) and (s.notional, s.margin) == (25_000.0, 1_250.0)


@pytest.mark.parametrize("reason_", list(DenyReason))
def test_every_reason_has_a_test_above(reason_: DenyReason) -> None:
    import pathlib

    here = pathlib.Path(__file__).parent
    text = "".join(p.read_text() for p in here.glob("test_*.py") if p.name != "test_gate.py")
    text += pathlib.Path(__file__).read_text().split("def test_every_reason_has_a_test_above")[0]
    assert f"DenyReason.{reason_.name}" in text, f"no test asserts {reason_.name}"
