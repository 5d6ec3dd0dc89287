"""RiskGate.quarantine: an entry given up as "not found" after an ambiguous outcome may still execute; its
symbol takes no entry (either side) until the engine releases it (the order executed, or the final look-up
after the quarantine said not found). Pure, explicit clock; milliseconds."""

from __future__ import annotations

from bot.risk import DenyReason, MarketView, RiskGate, TradingState
from bot.settings.risk import RiskSection

S = 1_000_000_000
T0 = 1_721_347_200 * S
LIVE = MarketView(book_live=True, spread_bps=1.0)


def gate() -> RiskGate:
    return RiskGate(RiskSection(), equity=10_000, now_ns=T0)


def test_a_quarantined_symbol_denies_entries_with_the_reason_until_released() -> None:
    g = gate()
    g.quarantine("BTCUSDT", "t1-entry", T0 + 10 * S, T0)
    d = g.check_entry("BTCUSDT", "s", LIVE, T0 + 2 * S)
    assert d is not None and d.reason is DenyReason.ENTRY_OUTCOME_UNKNOWN
    assert "t1-entry" in d.detail and "final look-up in 8.0 s" in d.detail
    assert g.denials["ENTRY_OUTCOME_UNKNOWN"] == 1 and g.last_denial == d
    # time alone does not end it: only the order's fate does (the engine's final look-up)
    d = g.check_entry("BTCUSDT", "s", LIVE, T0 + 60 * S)
    assert d is not None and d.reason is DenyReason.ENTRY_OUTCOME_UNKNOWN and "pending" in d.detail
    assert g.check_entry("ETHUSDT", "s", LIVE, T0 + 2 * S) is None  # other symbols trade on
    assert g.release("BTCUSDT", "t1-entry", "final look-up: not found", T0 + 11 * S)
    assert g.check_entry("BTCUSDT", "s", LIVE, T0 + 11 * S) is None
    assert not g.release("BTCUSDT", "t1-entry", "again", T0 + 12 * S)  # a second release is a no-op


def test_exits_and_stops_pass_a_quarantine_and_an_operator_reset_does_not_lift_it() -> None:
    g = gate()
    g.quarantine("BTCUSDT", "t1-entry", T0 + 10 * S, T0)
    assert g.check_order(T0 + S, reduces=True, symbol="BTCUSDT") is None  # a stop or exit of another trade
    g.reset(T0 + S)
    assert g.state is TradingState.ACTIVE
    d = g.check_entry("BTCUSDT", "s", LIVE, T0 + 2 * S)
    assert d is not None and d.reason is DenyReason.ENTRY_OUTCOME_UNKNOWN


def test_two_unknown_entries_hold_the_symbol_until_both_are_released_and_each_change_is_journaled() -> None:
    g = gate()
    g.quarantine("BTCUSDT", "t1-entry", T0 + 10 * S, T0)
    g.quarantine("BTCUSDT", "t3-entry", T0 + 12 * S, T0 + 2 * S)
    g.release("BTCUSDT", "t1-entry", "executed late: trade reopened", T0 + 3 * S)
    d = g.check_entry("BTCUSDT", "s", LIVE, T0 + 4 * S)
    assert d is not None and "t3-entry" in d.detail
    g.release("BTCUSDT", "t3-entry", "final look-up: not found", T0 + 13 * S)
    assert g.check_entry("BTCUSDT", "s", LIVE, T0 + 13 * S) is None
    rows = [(e, eid, old, new) for _, e, eid, old, new, _ in g.drain_state_changes()]
    assert rows == [("quarantine", "BTCUSDT", "ACTIVE", "QUARANTINED"),
                    ("quarantine", "BTCUSDT", "QUARANTINED", "QUARANTINED"),
                    ("quarantine", "BTCUSDT", "QUARANTINED", "QUARANTINED"),
                    ("quarantine", "BTCUSDT", "QUARANTINED", "ACTIVE")]
