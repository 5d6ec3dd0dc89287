"""`research signals`: intents scored on a hand-made mid path, features on hand-made rows (milliseconds),
and the command on the session slices (--json keys)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.domain.types import EntryIntent, TakeProfitTier
from bot.research.signal_study import feature_table, score_intents

S = 1_000_000_000


def _intent(side: str, ts: int, price: int, stop: int, target: int, limit_s: float = 30.0) -> EntryIntent:
    return EntryIntent(symbol="X", side=side, setup="demo", ts_ns=ts, price_ticks=price, stop_ticks=stop,
                       targets=(TakeProfitTier(target, 1.0),), time_limit_s=limit_s)


def test_forward_returns_hits_and_censoring_by_hand() -> None:
    # mid in ticks, one update a second: 10000 at 0 s, rising 10 ticks a second to 10100 at 10 s
    times = [i * S for i in range(11)]
    mids = {"X": (times, [10000.0 + 10 * i for i in range(11)])}
    intents = [_intent("long", 0, 10000, 9950, 10030),      # target reached at 3 s: hit
               _intent("short", 2 * S, 10020, 10045, 9990),  # the mid reaches the stop 10045 at 5 s (10050): stop
               _intent("long", 5 * S, 10050, 9900, 10500)]   # neither before the data ends: timeout
    res = score_intents(intents, mids, [S, 5 * S], ["1s", "5s"], cost_bps=7.0)
    d = res["demo"]
    assert (d["intents"], d["hits"], d["stops"], d["timeouts"], d["hit_rate"]) == (3, 1, 1, 1, 0.5)
    one = d["horizons"]["1s"]
    # +10/10000 = +10 bps (long at 0 s), -10/10020 bps (short at 2 s), +10/10050 bps (long at 5 s)
    want = [10 / 10000 * 1e4, -10 / 10020 * 1e4, 10 / 10050 * 1e4]
    assert one["n"] == 3 and one["mean_bps"] == pytest.approx(sum(want) / 3, abs=1e-4)
    assert one["net_mean_bps"] == pytest.approx(sum(want) / 3 - 7.0, abs=1e-4)
    assert one["ci_low"] <= one["mean_bps"] <= one["ci_high"]
    # 5 s: the intent at 5 s reaches 10 s exactly (kept); none is censored here, all three are in
    assert d["horizons"]["5s"]["n"] == 3
    res = score_intents([*intents, _intent("long", 8 * S, 10080, 9000, 11000)], mids, [5 * S], ["5s"], 7.0)
    assert res["demo"]["horizons"]["5s"]["n"] == 3  # 8 s + 5 s is past the data: censored, not zero


def test_feature_table_next_vs_same_window() -> None:
    # base rows of 1 s; the OFI of second i equals the mid change over second i+1 (predictive by design)
    ofi = [1.0, -2.0, 3.0, -1.0, 2.0, -3.0, 1.0, 2.0]
    mid = [100.0]
    for o in ofi[:-1]:
        mid.append(mid[-1] + o)
    rows = [{"mid": m, "microprice": m, "imbalance": 0.0, "ofi": o, "buy_volume": 0.0, "sell_volume": 0.0}
            for m, o in zip(mid, ofi)]
    t = {(r["horizon"], r["feature"]): r for r in feature_table({"X": rows}, S, [S], ["1s"])}
    r = t[("1s", "ofi")]
    assert r["n"] == 7 and r["sign_hit_rate"] == 1.0 and r["sign_n"] == 7
    # the change in bps is nearly proportional to the OFI (the mid moves ~1 %): R² next close to 1
    assert r["r2_next"] > 0.99 and r["r2_same"] < r["r2_next"]
    assert t[("1s", "imbalance")]["r2_next"] is None  # a constant feature explains nothing


def test_cli_json(session_slice: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bot.__main__ import main

    out_html = tmp_path / "s.html"
    assert main(["research", "signals", "--horizons", "1s,10s", "--json", "--html", str(out_html),
                 *session_slice]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["horizons"] == ["1s", "10s"] and res["setups"]
    for s in res["setups"].values():
        for lb in ("1s", "10s"):
            assert {"n", "hit_rate", "mean_bps", "ci_low", "ci_high"} <= set(s["horizons"][lb])
    feats = {(f["symbol"], f["horizon"], f["feature"]) for f in res["features"]}
    assert ("BTCUSDT", "10s", "ofi") in feats and ("ETHUSDT", "1s", "microprice_minus_mid_bps") in feats
    assert "<table>" in out_html.read_text()
    assert main(["research", "signals", "--horizons", "1s,1500ms", *session_slice]) == 2  # not a multiple


def test_feature_table_skips_the_gap_between_sessions() -> None:
    # two active stretches with an idle bridge (no depth events, last values carried) between them
    act = [{"mid": 100.0 + i, "microprice": 100.0 + i, "imbalance": 0.0, "ofi": 1.0, "buy_volume": 0.0,
            "sell_volume": 0.0, "depth_events": 3} for i in range(4)]
    idle = [{**act[-1], "ofi": 0.0, "depth_events": 0} for _ in range(50)]
    later = [{**r, "mid": 500.0 + i, "microprice": 500.0 + i} for i, r in enumerate(act)]
    t = {(r["horizon"], r["feature"]): r for r in feature_table({"X": act + idle + later}, S, [S], ["1s"])}
    assert t[("1s", "ofi")]["n"] == 6  # 3 pairs in each stretch; none across or inside the bridge
