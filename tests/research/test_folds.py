"""Time folds, purging and the validation table on synthetic trades (milliseconds)."""

from __future__ import annotations

import pytest

from bot.research.folds import Timeline, cpcv_splits, split_trades, walk_forward
from bot.research.validate import validate_trials

S = 1_000_000_000


def test_timeline_skips_the_gaps_between_sessions() -> None:
    # two overlapping files (BTC and ETH of one session) and a later session
    tl = Timeline.of([(0, 80), (20, 100), (1000, 1100)])
    assert tl.spans == ((0, 100), (1000, 1100)) and tl.length_ns == 200
    # [start, end) in wall-clock time; a gap belongs to the block after it
    assert tl.blocks(4) == [(0, 50), (50, 100), (100, 1050), (1050, 1100)]
    assert [tl.block_of(t, 4) for t in (0, 49, 50, 100, 500, 1000, 1060, 1100)] == [0, 0, 1, 2, 2, 2, 3, 3]


def test_walk_forward_and_cpcv_splits() -> None:
    assert [f["is_blocks"] for f in walk_forward(Timeline.of([(0, 1)]), 4)] == [[0], [0, 1], [0, 1, 2]]
    assert [f["is_blocks"] for f in walk_forward(Timeline.of([(0, 1)]), 4, "rolling", 1)] == [[0], [1], [2]]
    splits = cpcv_splits(6, 2)
    assert len(splits) == 15 and all(len(s["oos_blocks"]) == 2 and len(s["is_blocks"]) == 4 for s in splits)
    with pytest.raises(ValueError):
        cpcv_splits(4, 4)


def test_purge_and_embargo() -> None:
    tl = Timeline.of([(0, 400 * S)])  # 4 blocks of 100 s
    trades = [(10 * S, 20 * S, 1.0),     # block 0, clean
              (90 * S, 110 * S, 2.0),    # block 0, exits inside block 1: purged when block 1 is tested
              (150 * S, 160 * S, 3.0),   # block 1
              (205 * S, 215 * S, 4.0),   # block 2, enters 5 s after block 1 ends: embargoed (10 s)
              (250 * S, 260 * S, 5.0)]   # block 2, clean
    is_, oos = split_trades(trades, tl, 4, {"is_blocks": [0, 2, 3], "oos_blocks": [1]}, embargo_ns=10 * S)
    assert [t[2] for t in oos] == [3.0]
    assert [t[2] for t in is_] == [1.0, 5.0]
    is_, _ = split_trades(trades, tl, 4, {"is_blocks": [0, 2, 3], "oos_blocks": [1]}, embargo_ns=0)
    assert [t[2] for t in is_] == [1.0, 4.0, 5.0]


def test_validate_selects_in_sample_and_scores_out_of_sample() -> None:
    tl = Timeline.of([(0, 400 * S)])
    # trial 0 earns +1 R in every 10 s; trial 1 earns +3 in the first half and -2 after (an overfit winner)
    t0 = [(i * 10 * S, i * 10 * S + S, 1.0) for i in range(40)]
    t1 = [(i * 10 * S, i * 10 * S + S, 3.0 if i < 20 else -2.0) for i in range(40)]
    res = validate_trials({0: t0, 1: t1}, chosen=1, tl=tl, folds=4, groups=4, test_groups=1, pbo_blocks=4)
    wf = [r for r in res["folds"] if r["kind"] == "walk_forward"]
    assert [r["selected"] for r in wf] == [1, 1, 1]  # trial 1 leads in-sample in every anchored fold
    assert [r["oos"]["mean_r"] for r in wf] == [3.0, -2.0, -2.0]
    # fold 2: IS = blocks 0-2, 20 trades at +3 and 10 at -2
    assert wf[2]["chosen_is"] == {"trades": 30, "mean_r": round(40 / 30, 6), "sum_r": 40.0}
    assert res["summary"]["walk_forward"]["oos_positive_share"] == pytest.approx(1 / 3, abs=1e-4)
    assert len([r for r in res["folds"] if r["kind"] == "cpcv"]) == 4
    assert res["dsr"]["n_trials"] == 2 and res["dsr"]["n_obs"] == 40 and 0 <= res["dsr"]["dsr"] <= 1
    assert res["pbo"]["combinations"] == 6 and res["pbo"]["trials"] == 2
