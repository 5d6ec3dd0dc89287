"""PositionStops (bot/venues/bybit/stops.py): which stop leg owns the position's one stop when two
trading-stop requests are in flight and their answers come back out of order (seen in the Bybit e2e run:
t2-sl and its resize t2-sl.2 after a second entry fill; t2-sl's late answer took the stop back, the
machine's live leg t2-sl.2 was then reported superseded and the reconciliation placed a third stop)."""

from __future__ import annotations

from bot.venues.bybit.stops import PositionStops


def test_an_older_legs_late_answer_never_takes_the_stop_from_the_newer_leg() -> None:
    s = PositionStops()
    s.begin("ETHUSDT", "t2-sl")
    s.begin("ETHUSDT", "t2-sl.2")
    assert s.confirm("ETHUSDT", "t2-sl.2", 100) == ("", [])
    assert s.confirm("ETHUSDT", "t2-sl", 100) == ("", [])  # late: superseded, not the owner
    assert s.owner("ETHUSDT") == "t2-sl.2" and s.ticks("ETHUSDT") == 100
    assert "t2-sl" in s.superseded and "t2-sl.2" not in s.superseded


def test_in_order_answers_move_the_stop_to_the_newer_leg() -> None:
    s = PositionStops()
    s.begin("ETHUSDT", "t2-sl")
    s.confirm("ETHUSDT", "t2-sl", 100)
    s.begin("ETHUSDT", "t2-sl.2")
    assert s.confirm("ETHUSDT", "t2-sl.2", 101) == ("t2-sl", [])
    assert (s.owner("ETHUSDT"), s.ticks("ETHUSDT"), s.superseded) == ("t2-sl.2", 101, {"t2-sl"})
    # a leg sent after an adopted owner (restart: adopted legs were never begun here) takes the stop
    s.adopt("BTCUSDT", "t1-sl.3", 50)
    s.begin("BTCUSDT", "t1-sl.4")
    assert s.confirm("BTCUSDT", "t1-sl.4", 51) == ("t1-sl.3", [])
