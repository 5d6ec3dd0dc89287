"""`research signals` on freqtrade *.feather candles (issue 14, item 4): the bar-fill rule by hand
(milliseconds), bad files refused with one line, and the command on a slice of the real month
(../shared/data/binance_usdm_candles, ~1 s). The full month: docs/research.md, "Month-long bar data"."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.domain.types import EntryIntent, TakeProfitTier

pa = pytest.importorskip("pyarrow", reason="reading *.feather needs pyarrow (the research extra)")
feather = pytest.importorskip("pyarrow.feather", reason="reading *.feather needs pyarrow (the research extra)")

from bot.research.candle_data import Candles, read_candles  # noqa: E402
from bot.research.candles import _trade, boot_ci  # noqa: E402

M = 60_000_000_000
DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "binance_usdm_candles"
BTC = DATA / "typhonun_BTC_USDT_USDT-1m-futures.feather"
FUND = DATA / "typhonun_BTC_USDT_USDT-8h-funding_rate.feather"
need_data = pytest.mark.skipif(not BTC.exists(), reason=f"the candle data is not here ({DATA})")


def _candles(bars: list[tuple[float, float, float, float]], funding: list[tuple[int, float]] | None = None
             ) -> Candles:
    n = len(bars)
    return Candles("x", "X", M, [i * M for i in range(n)], [b[0] for b in bars], [b[1] for b in bars],
                   [b[2] for b in bars], [b[3] for b in bars], [1.0] * n, funding or [])


def _long(stop: float, target: float, limit_s: float = 180.0) -> EntryIntent:
    # signalled at the end of candle 0 (ts = 1 min), entry at its close 100.0; tick 0.1
    return EntryIntent(symbol="X", side="long", setup="demo", ts_ns=M, price_ticks=1000, stop_ticks=round(stop * 10),
                       targets=(TakeProfitTier(round(target * 10), 1.0),), time_limit_s=limit_s)


def test_bar_fills_stop_first_gap_target_and_time_exit() -> None:
    base = (100.0, 100.0, 100.0, 100.0)
    # candle 1 touches both the target (101) and the stop (99): the stop is assumed first (pessimistic)
    assert _trade(_long(99.0, 101.0), _candles([base, (100.0, 101.5, 98.5, 100.5)]), 0.1, 7.0) == (
        "stop", pytest.approx(-100.0 - 7.0), pytest.approx(-1.0))
    # candle 1 opens below the stop: out at its open (98), worse than the stop
    out, net, r = _trade(_long(99.0, 101.0), _candles([base, (98.0, 98.5, 97.0, 98.2)]), 0.1, 7.0)
    assert out == "stop" and net == pytest.approx(-200.0 - 7.0) and r == pytest.approx(-2.0)
    # the target only: out at the target
    out, net, _ = _trade(_long(99.0, 101.0), _candles([base, (100.0, 100.5, 99.5, 100.2), (100.2, 101.2, 100.1, 101)]),
                         0.1, 7.0)
    assert out == "hit" and net == pytest.approx(100.0 - 7.0)
    # neither within 3 minutes: the close of the candle ending at entry + 3 min (candle 3)
    flat = [base, (100.0, 100.4, 99.6, 100.1), (100.1, 100.4, 99.6, 100.2), (100.2, 100.4, 99.6, 100.3),
            (100.3, 105.0, 100.0, 105.0)]
    out, net, _ = _trade(_long(99.0, 101.0), _candles(flat), 0.1, 7.0)
    assert out == "timeout" and net == pytest.approx(30.0 - 7.0)
    # a funding time inside the trade: a long pays a positive rate (0.0001 = 1 bps)
    out, net, _ = _trade(_long(99.0, 101.0), _candles(flat, [(2 * M, 0.0001)]), 0.1, 7.0)
    assert net == pytest.approx(30.0 - 7.0 - 1.0)
    # the data ends before any exit: censored, not scored
    assert _trade(_long(99.0, 101.0), _candles([base]), 0.1, 7.0)[0] == "censored"


def test_boot_ci_brackets_the_mean_and_is_seeded() -> None:
    x = [float(i % 7) for i in range(500)]
    lo, hi = boot_ci(x, seed=1) or (0.0, 0.0)
    assert lo < sum(x) / len(x) < hi and hi - lo < 0.6
    assert boot_ci(x, seed=1) == boot_ci(x, seed=1) and boot_ci([1.0]) is None


def _write(path: Path, rows: int, drop: int | None = None, cols: tuple[str, ...] | None = None) -> Path:
    t = feather.read_table(BTC).slice(0, rows)
    if drop is not None:
        t = pa.concat_tables([t.slice(0, drop), t.slice(drop + 1)])
    if cols is not None:
        t = t.select(list(cols))
    feather.write_feather(t, path)
    return path


@need_data
def test_bad_files_refused_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bot.__main__ import main

    gap = _write(tmp_path / "BTC_USDT_USDT-1m-futures.feather", 500, drop=200)
    assert main(["research", "signals", str(gap)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "gap of 1 missing bar(s)" in err and "row 200" in err
    (tmp_path / "a").mkdir()
    cols = _write(tmp_path / "a" / "BTC_USDT_USDT-1m-futures.feather", 50, cols=("date", "open", "close"))
    assert main(["research", "signals", str(cols)]) == 2
    assert "missing column(s) high, low, volume" in capsys.readouterr().err
    junk = tmp_path / "ETH_USDT_USDT-1m-futures.feather"
    junk.write_bytes(b"not arrow at all")
    assert main(["research", "signals", str(junk)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "unreadable feather file" in err
    assert main(["research", "signals", str(tmp_path / "candles.feather")]) == 2
    assert "not a freqtrade candle file name" in capsys.readouterr().err


@need_data
def test_real_slice_reads_with_funding_and_no_gap() -> None:
    cd = read_candles(str(BTC))
    assert cd.symbol == "BTCUSDT" and cd.interval_ns == M and len(cd) == 43_199
    assert cd.funding_path == str(FUND) and len(cd.funding) == 266
    # Binance funds at 00/08/16 UTC (its fundingTime is sometimes a millisecond late)
    assert all(t % (8 * 3600 * 10**9) < 10**9 for t, _ in cd.funding)


@need_data
def test_cli_json_on_a_candle_slice_has_the_session_keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bot.__main__ import main

    f = _write(tmp_path / "BTC_USDT_USDT-1m-futures.feather", 3000)  # ~2 days; no funding file beside it
    cfg = Path(__file__).resolve().parents[2] / "examples" / "research-candles-1m.toml"
    assert main(["research", "signals", "--json", "-c", str(cfg), str(f)]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["horizons"] == ["1m", "5m", "15m", "30m", "60m"]
    assert res["candles"]["BTCUSDT"]["bars"] == 3000 and res["candles"]["BTCUSDT"]["funding_file"] is None
    assert "stop first" in res["fill_rule"] and res["features"] == []
    assert "momentum" in res["setups"] and "absorption" not in res["setups"]  # order flow only: off on candles
    for s in res["setups"].values():
        for lb in res["horizons"]:
            row = s["horizons"][lb]
            assert {"n", "hit_rate", "mean_bps", "ci_low", "ci_high"} <= set(row)
        t = s["trades"]
        assert t["trades"] == t["hits"] + t["stops"] + t["timeouts"] and t["trades"] > 0
        assert t["hit_rate"] == s["hit_rate"] == s["horizons"]["1m"]["hit_rate"]
        if t["trades"] >= 2:
            assert t["ci_low"] <= t["mean_net_bps"] <= t["ci_high"]
    assert main(["research", "signals", "--horizons", "30s,1m", str(f)]) == 2  # not whole candles
    assert "multiple of the candle" in capsys.readouterr().err


@need_data
def test_sweep_on_a_candle_slice_ships_the_funding_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("optuna", reason="research sweep needs Optuna (the research extra)")
    from bot.__main__ import main
    from bot.research.workers import pack_sessions

    f = _write(tmp_path / "BTC_USDT_USDT-1m-futures.feather", 3000)
    (tmp_path / "BTC_USDT_USDT-8h-funding_rate.feather").write_bytes(FUND.read_bytes())
    assert [n for n, _ in pack_sessions([str(f)])] == ["000_BTC_USDT_USDT-1m-futures.feather",
                                                        "000_BTC_USDT_USDT-8h-funding_rate.feather"]
    space = tmp_path / "space.toml"
    space.write_text('["signals.momentum.cooldown_s"]\nlow = 60\nhigh = 900\n')
    cfg = Path(__file__).resolve().parents[2] / "examples" / "research-candles-1m.toml"
    assert main(["research", "sweep", "-c", str(cfg), "--space", str(space), "--trials", "2", "--workers", "1",
                 "--sampler", "random", "--seed", "3", "--study", str(tmp_path / "s.db"), "--json", str(f)]) == 0
    res = json.loads(capsys.readouterr().out)
    assert len(res["trials"]) == 2
    for t in res["trials"]:
        m = t["metrics"]
        assert m["trades"] > 0 and t["value"] == m["net_expectancy_r"] and 0 <= m["win_rate"] <= 1
