"""TradeLimiter decisions (sans-I/O, explicit now_s): which 429 blocks what (issue 11: a stop refused
locally for 10 s while the exchange would have taken it). Binance: order placement weighs 0 IP weight and
counts on ORDERS (exchange-facts A2, REST rate limits)."""

from __future__ import annotations

import pytest

from bot.venues.binance_usdm.limiter import TradeLimiter

NOW = 1_700_000_005.0  # mid 10 s window


def _retry(s: float) -> dict[str, str]:
    return {"Retry-After": str(s)}


def test_ip_weight_429_blocks_weighted_requests_but_not_order_placement() -> None:
    lim = TradeLimiter()
    lim.on_response(429, _retry(10), NOW, order=False, code=-1003)  # a look-up got the weight 429
    # stops, exits and entries (0 IP weight) still go: nothing refused locally
    assert lim.delay_s(order=True, weight=0, now_s=NOW + 0.01, protective=True) == 0.0
    assert lim.delay_s(order=True, weight=0, now_s=NOW + 0.01, protective=False) == 0.0
    # a request that weighs waits exactly what is left of the Retry-After
    assert lim.delay_s(order=False, weight=1, now_s=NOW + 2.0, protective=True) == pytest.approx(8.0)
    assert lim.blocked_for_s(NOW + 2.0, order=True, weight=0) == 0.0
    assert lim.blocked_for_s(NOW + 2.0) == pytest.approx(8.0)  # the longest block, for messages
    assert lim.delay_s(order=False, weight=1, now_s=NOW + 10.0) == 0.0
    assert not lim.banned


def test_orders_429_blocks_placement_only_for_retry_after() -> None:
    lim = TradeLimiter()
    lim.on_response(429, _retry(3), NOW, order=True, code=-1015)  # too many new orders
    assert lim.delay_s(order=True, weight=0, now_s=NOW + 1.0, protective=True) == pytest.approx(2.0)
    assert lim.delay_s(order=False, weight=1, now_s=NOW + 1.0) == 0.0  # look-ups and cancels still go
    assert lim.delay_s(order=True, weight=0, now_s=NOW + 3.0, protective=True) == 0.0


def test_429_answering_an_order_for_the_ip_limit_blocks_everything_for_retry_after() -> None:
    # the venue refused the order itself for the IP limit: sending anything again only counts to a ban
    lim = TradeLimiter()
    lim.on_response(429, _retry(10), NOW, order=True, code=-1003)
    assert lim.delay_s(order=True, weight=0, now_s=NOW + 4.0, protective=True) == pytest.approx(6.0)
    assert lim.delay_s(order=False, weight=1, now_s=NOW + 4.0, protective=True) == pytest.approx(6.0)
    assert lim.delay_s(order=True, weight=0, now_s=NOW + 10.0, protective=True) == 0.0


def test_418_ban_blocks_everything_and_is_remembered() -> None:
    lim = TradeLimiter()
    lim.on_response(418, _retry(120), NOW, order=False, code=-1003)
    assert lim.banned
    for order, weight in ((True, 0), (False, 1), (False, 5)):
        assert lim.delay_s(order=order, weight=weight, now_s=NOW + 20.0, protective=True) == pytest.approx(100.0)
    assert lim.delay_s(order=True, weight=0, now_s=NOW + 120.0, protective=True) == 0.0
    lim.on_response(200, {}, NOW + 121.0)
    assert not lim.banned


def test_429_without_retry_after_waits_out_the_minute_and_without_code_is_weight() -> None:
    lim = TradeLimiter()
    lim.on_response(429, {}, 1_700_000_060.0)  # no Retry-After, no code: the weight limit, to the minute's end
    assert lim.delay_s(order=False, weight=1, now_s=1_700_000_060.0) == pytest.approx(40.0)
    assert lim.delay_s(order=True, weight=0, now_s=1_700_000_060.0, protective=True) == 0.0


def test_protective_orders_use_the_headroom_entries_may_not() -> None:
    lim = TradeLimiter(orders_per_10s=10, budget_frac=0.8)
    lim.on_response(200, {"X-MBX-ORDER-COUNT-10S": "8"}, NOW)
    assert lim.delay_s(order=True, weight=0, now_s=NOW) > 0  # entries stop at 80 %
    assert lim.delay_s(order=True, weight=0, now_s=NOW, protective=True) == 0.0
    lim.on_response(200, {"X-MBX-ORDER-COUNT-10S": "10"}, NOW)
    assert lim.delay_s(order=True, weight=0, now_s=NOW, protective=True) == pytest.approx(5.0)  # the venue's limit


def test_take_order_is_delay_then_spend_in_one_call() -> None:
    """The entry path's one call (gateway.submit) decides and counts exactly as delay_s + spend would, across
    budgets, Retry-After blocks, bans and window rolls; a refused one counts nothing."""
    import random

    rnd = random.Random(7)
    for _ in range(300):
        a = TradeLimiter(budget_frac=rnd.choice([0.5, 0.8, 1.0]))
        a.orders_per_10s, a.orders_per_min = rnd.randint(1, 6), rnd.randint(2, 12)
        b = TradeLimiter(budget_frac=a.budget_frac)
        b.orders_per_10s, b.orders_per_min = a.orders_per_10s, a.orders_per_min
        t = 1_000.0
        if rnd.random() < 0.2:
            a._orders_blocked_until_s = b._orders_blocked_until_s = t + rnd.uniform(0, 30)
        if rnd.random() < 0.1:
            a._ban_until_s = b._ban_until_s = t + rnd.uniform(0, 30)
        for _ in range(15):
            t += rnd.choice([0.0, 0.3, 2.0, 9.0, 61.0])
            protective = rnd.random() < 0.3
            want = b.delay_s(order=True, weight=0, now_s=t, protective=protective)
            if want == 0.0:
                b.spend(order=True, weight=0, now_s=t)
            assert a.take_order(t, protective) == pytest.approx(want)
            assert a.used == b.used
