"""The user-stream health judgement (bot.venues.stream_health), pure, with an explicit clock."""

from __future__ import annotations

from bot.venues.stream_health import StreamHealth, Transition

S = 1_000_000_000


def connected(probation_s: int = 0) -> StreamHealth:
    h = StreamHealth(probation_ns=probation_s * S)
    h.on_connected(1 * S)
    assert h.transition() is None  # healthy from the first connect: nothing to report
    return h


def test_nothing_reported_before_the_first_connect():
    h = StreamHealth()
    assert not h.entries_ok() and "not connected yet" in h.reason()
    assert h.transition() is None  # the start-up halt covers this time


def test_silence_alone_is_not_doubt():
    h = connected()
    h.on_message(2 * S)
    # hours without a message (a Binance user stream while nothing happens)
    assert h.entries_ok() and h.reason() == ""
    assert h.silent_since(3 * S) and not h.silent_since(2 * S)


def test_a_lost_connection_refuses_entries_and_reports_once():
    h = connected()
    h.on_lost("ConnectionClosed", 5 * S)
    assert h.reason() == "user stream down: ConnectionClosed"
    assert h.transition() == Transition(False, "user stream down: ConnectionClosed")
    assert h.transition() is None
    h.on_connected(6 * S)
    assert h.transition() == Transition(True, "")


def test_a_missed_fill_is_doubt_until_reconnect_catch_up_and_a_clean_probation():
    h = connected(probation_s=10)
    h.on_missed("t1-entry filled, never delivered", 10 * S)
    assert h.reason() == "user stream in doubt: t1-entry filled, never delivered"
    assert h.transition() == Transition(False, h.reason())
    h.on_clean_pass(11 * S)
    assert not h.entries_ok()  # no renewal yet: a clean pass proves nothing
    h.on_lost("reconnecting: requested", 12 * S)
    h.on_connected(12 * S)
    h.on_caught_up(13 * S)
    h.on_clean_pass(14 * S)
    assert not h.entries_ok()  # still in probation
    h.on_clean_pass(23 * S)
    assert h.entries_ok() and h.transition() == Transition(True, "")
    assert h.doubts_total == 1


def test_a_new_miss_during_probation_starts_over():
    h = connected(probation_s=10)
    h.on_missed("a", 10 * S)
    h.on_caught_up(11 * S)
    h.on_missed("b", 15 * S)  # the renewed stream misses again
    h.on_clean_pass(30 * S)
    assert not h.entries_ok() and "b" in h.reason()
    h.on_caught_up(31 * S)
    h.on_clean_pass(41 * S)
    assert h.entries_ok()


def test_a_failed_probe_is_doubt_until_the_next_answer():
    h = connected()
    h.on_probe(False, "listenKey keep-alive failed: VenueUnavailable", 5 * S)
    assert h.reason() == "user stream in doubt: listenKey keep-alive failed: VenueUnavailable"
    h.on_probe(True, "", 10 * S)
    assert h.entries_ok() and h.last_msg_ns == 10 * S
