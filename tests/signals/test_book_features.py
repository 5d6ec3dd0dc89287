"""Top of book, imbalance and the Cont-Kukanov-Stoikov OFI against hand-computed values."""

from __future__ import annotations

import pytest

from bot.domain.instrument import Instrument
from bot.market.book import OrderBook
from bot.signals.book_features import BookFeatures, cks_event, weighted_imbalance

INST = Instrument("binance-usdm", "TESTUSDT", "0.10", "0.001")
S = 1_000_000_000


def book(bids: list[tuple[int, int]], asks: list[tuple[int, int]]) -> OrderBook:
    b = OrderBook(INST, depth_ticks=100)
    b.apply_snapshot_ticks(bids, asks)
    return b


def test_top_of_book_spread_mid_microprice() -> None:
    b = book([(1000, 3), (999, 5)], [(1002, 1), (1004, 7)])
    f = BookFeatures(imbalance_levels=2)
    f.update(b, 0)
    assert f.spread_ticks == 2
    assert f.mid_ticks == 1001.0
    # (q_b P_a + q_a P_b) / (q_b + q_a) = (3*1002 + 1*1000) / 4 = 1001.5: leans to the ask (bid heavier)
    assert f.microprice_ticks == pytest.approx(1001.5)
    # top-2: bids 3+5=8, asks 1+7=8 -> 0
    assert f.imbalance == pytest.approx(0.0)


def test_imbalance_top_n_and_weighted() -> None:
    b = book([(1000, 3), (999, 5), (990, 100)], [(1001, 1), (1004, 7), (1010, 100)])
    assert BookFeatures(imbalance_levels=1).imbalance == 0.0  # nothing read before update
    f1 = BookFeatures(imbalance_levels=1)
    f1.update(b, 0)
    assert f1.imbalance == pytest.approx((3 - 1) / 4)
    # decay 0.5: bids 3 + 0.5*5 = 5.5, asks 1 + 0.5*7 = 4.5 -> 1/10
    assert weighted_imbalance(b, 2, 0.5) == pytest.approx(0.1)
    f2 = BookFeatures(imbalance_levels=2, imbalance_decay=0.5)
    f2.update(b, 0)
    assert f2.imbalance == pytest.approx(0.1)


# ---- the CKS e_n definition, term by term (bid side with the ask unchanged, then the mirror)
@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        # bid price up: + q^b_n (new best bid size), the old bid term drops out
        ((100, 5, 102, 4), (101, 2, 102, 4), 2 - 4 + 4),
        # bid same price, size up 5 -> 8: + 8 - 5 = +3 (ask unchanged: -4 + 4)
        ((100, 5, 102, 4), (100, 8, 102, 4), 3),
        # bid same price, size down 5 -> 1: -4
        ((100, 5, 102, 4), (100, 1, 102, 4), -4),
        # bid price down: - q^b_{n-1} = -5
        ((100, 5, 102, 4), (99, 9, 102, 4), -5),
        # ask price down: - q^a_n = -3 (ask same-price terms drop out)
        ((100, 5, 102, 4), (100, 5, 101, 3), -3),
        # ask same price, size up 4 -> 6: -6 + 4 = -2
        ((100, 5, 102, 4), (100, 5, 102, 6), -2),
        # ask same price, size down 4 -> 1: -1 + 4 = +3
        ((100, 5, 102, 4), (100, 5, 102, 1), 3),
        # ask price up: + q^a_{n-1} = +4
        ((100, 5, 102, 4), (100, 5, 103, 9), 4),
        # nothing changed: 0
        ((100, 5, 102, 4), (100, 5, 102, 4), 0),
    ],
)
def test_cks_event_cases(before: tuple[int, int, int, int], after: tuple[int, int, int, int],
                         expected: int) -> None:
    assert cks_event(*before, *after) == expected


def test_cks_event_case_values_are_what_the_paper_says() -> None:
    # bid up: the whole new best bid counts as arriving demand
    assert cks_event(100, 5, 102, 4, 101, 2, 102, 4) == 2
    # both sides move: bid down (-5) and ask down (-3) -> -8
    assert cks_event(100, 5, 102, 4, 99, 1, 101, 3) == -8


def test_ofi_rolling_windows_by_event_time() -> None:
    b = book([(100, 5)], [(102, 4)])
    f = BookFeatures(ofi_windows_ns=(1 * S, 10 * S))
    f.update(b, 0)  # first state: no e_n yet
    assert f.ofi(0) == 0 and f.ofi_cum == 0
    b.set_bid(100, 8)  # +3
    f.update(b, 500_000_000)
    assert f.last_e == 3
    b.set_ask(101, 3)  # ask down: -3
    f.update(b, 1_200_000_000)
    assert f.last_e == -3
    b.set_bid(99, 9)
    b.set_bid(100, 0)  # bid down: -8 (old best size)
    f.update(b, 2_000_000_000)
    assert f.last_e == -8
    assert f.ofi_cum == 3 - 3 - 8
    # 1 s window at t=2.0 s holds events in (1.0, 2.0]: -3 and -8
    assert f.ofi(0) == -11
    assert f.ofi(1) == -8
    # expiry with no new event
    assert f.ofi(0, now_ns=2_500_000_000) == -8
    assert f.ofi(0, now_ns=3_000_000_000) == 0


def test_empty_side_breaks_the_pairing() -> None:
    b = book([(100, 5)], [(102, 4)])
    f = BookFeatures()
    f.update(b, 0)
    b.set_ask(102, 0)
    f.update(b, 1)
    assert not f.valid
    b.set_ask(103, 2)
    f.update(b, 2)  # fresh start: no e_n against the pre-gap state
    assert f.valid and f.ofi_cum == 0
