"""Issue 13: costs on every recorded session (`scalper backtest --json` fields, the cost gate's bound, no
take-profit that loses money) and the report's cost lines. ~3 s per session."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import orjson
import pytest

from bot.journal.costs import expectancy, mean_ci95, verdict
from bot.settings import load_settings
from tests.conftest import SESSIONS, needs_data

TRADE_KEYS = ("cost_r", "cost_bps", "gross_pnl_quote", "fees_quote", "net_pnl_quote", "r_net", "fills")
FILL_KEYS = {"ts_ns", "kind", "price", "qty", "liquidity", "fee_quote"}


@needs_data
@pytest.mark.parametrize("session", sorted(SESSIONS))
async def test_recorded_session_costs(session: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bot.cli.backtest import run_backtest
    from bot.cli.report import add_arguments
    from bot.cli.report import run as report_run

    settings = load_settings()
    path = str(tmp_path / "bt.sqlite")
    with capsys.disabled():  # run_backtest binds the log to sys.stderr: never to this test's capture
        res = await run_backtest([str(p) for p in SESSIONS[session]], settings, path)
    trades, summary = res["trades"], res["summary"]
    risk = settings.risk
    assert summary["max_cost_r"] == risk.max_cost_r and summary["risk_budget_per_trade"] > 0
    for t in trades:
        assert all(k in t for k in TRADE_KEYS), t.keys()
        # no trade entered with a round trip above the configured maximum
        assert t["cost_r"] <= risk.max_cost_r + 1e-9, (t["trade_id"], t["cost_r"])
        if t["exit_reason"] == "TAKE_PROFIT":
            assert t["net_pnl_quote"] >= 0, (t["trade_id"], t["net_pnl_quote"])
        fills = t["fills"]
        assert fills and all(set(f) == FILL_KEYS for f in fills)
        assert {f["kind"] for f in fills} == {"entry", "exit"}
        assert all(f["liquidity"] in ("maker", "taker") for f in fills)
        entered = sum(f["qty"] for f in fills if f["kind"] == "entry")
        left = sum(f["qty"] for f in fills if f["kind"] == "exit")
        assert entered == pytest.approx(left) and entered == pytest.approx(t["qty"])
        assert t["fees_quote"] == pytest.approx(sum(f["fee_quote"] for f in fills), abs=1e-6)
        assert t["fees_quote"] == pytest.approx(t["fees"], abs=1e-6)
        # gross is the price PnL of the fills; net = gross - fees + funding
        gross = sum((1 if (f["kind"] == "exit") == (t["side"] == "long") else -1) * f["price"] * f["qty"]
                    for f in fills)
        assert t["gross_pnl_quote"] == pytest.approx(gross, abs=1e-4)
        assert t["net_pnl_quote"] == pytest.approx(t["gross_pnl_quote"] - t["fees_quote"] + t["funding_quote"],
                                                   abs=1e-5)
        assert t["r_net"] == pytest.approx(t["net_pnl_quote"] / t["risk_budget"], abs=1e-5)
        # the cost at entry in bps and in R agree with the entry fill
        assert t["cost_r"] == pytest.approx(t["cost_bps"] * t["qty"] * t["entry_price"] / 1e4 / t["risk_budget"],
                                            abs=1e-5)
    for name, e in summary["by_setup"].items():
        assert e["trades"] == sum(1 for t in trades if t["setup"] == name)
        for k in ("gross_expectancy_r", "net_expectancy_r"):
            assert e[k]["method"] == "t" and len(e[k]["ci95"]) == 2
    net = summary["expectancy"]["net_expectancy_r"]["mean"]
    assert net == pytest.approx(sum(t["r_net"] for t in trades) / len(trades), abs=1e-5)
    assert summary["verdict"].startswith("NET EXPECTANCY IS NEGATIVE") == (net < 0)

    # the journal report says the same, in its first line (text, JSON, HTML)
    p = argparse.ArgumentParser()
    add_arguments(p)
    html_path = tmp_path / "r.html"
    assert report_run(p.parse_args(["--db", path, "--html", str(html_path)])) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first == summary["verdict"], (first, summary["verdict"])
    assert report_run(p.parse_args(["--db", path, "--json"])) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[1].startswith('  "verdict": ')
    rep = orjson.loads(out)
    assert rep["verdict"] == summary["verdict"]
    assert rep["costs"]["overall"]["net_expectancy_r"]["mean"] == pytest.approx(net, abs=1e-5)
    by_id = {t["trade_id"]: t for t in trades}
    for rt in rep["trades"]:  # per trade: cost at entry, gross/net, fees, each fill's liquidity and fee
        bt = by_id[rt["trade_id"]]
        for k in ("cost_bps", "cost_r", "gross_pnl_quote", "fees_quote", "net_pnl_quote", "r_net"):
            assert rt[k] == pytest.approx(bt[k], abs=1e-6), k
        assert [(f["liquidity"], f["fee_quote"]) for f in rt["fills"]] == \
            [(f["liquidity"], f["fee_quote"]) for f in bt["fills"]]
    assert rep["costs"]["fee_config"] == {"maker_bps": risk.maker_fee_bps, "taker_bps": risk.taker_fee_bps,
                                          "slippage_bps": risk.slippage_bps}
    body = html_path.read_text()
    assert body.index('id="verdict"') < body.index("<h1>") and summary["verdict"].split(":")[0] in body


def test_mean_ci95_student_t_by_hand() -> None:
    e = mean_ci95([1.0, 2.0, 3.0])  # mean 2, s 1, t(0.975, 2) 4.303: 2 ± 4.303 / sqrt(3) = 2 ± 2.4844
    assert e["mean"] == 2.0 and e["ci95"] == pytest.approx([2 - 4.303 / math.sqrt(3), 2 + 4.303 / math.sqrt(3)])
    assert mean_ci95([1.0])["ci95"] == [None, None] and mean_ci95([])["mean"] is None


def test_breakeven_and_verdict_by_hand() -> None:
    # gross +1.0 R and -0.5 R winners/losers, 0.25 R costs each: p = (0.5 + 0.25) / (1.0 + 0.5) = 0.5
    trades = [{"setup": "s", "r_gross": 1.0, "r_net": 0.75, "cost_r": 0.25, "cost_bps": 11.0,
               "gross_pnl_quote": 50.0, "net_pnl_quote": 37.5},
              {"setup": "s", "r_gross": -0.5, "r_net": -0.75, "cost_r": 0.25, "cost_bps": 11.0,
               "gross_pnl_quote": -25.0, "net_pnl_quote": -37.5},
              {"setup": "s", "r_gross": -0.5, "r_net": -0.75, "cost_r": 0.25, "cost_bps": 11.0,
               "gross_pnl_quote": -25.0, "net_pnl_quote": -37.5}]
    e = expectancy(trades)
    assert e["breakeven_win_rate"] == pytest.approx(0.5) and e["win_rate_net"] == pytest.approx(1 / 3, abs=1e-4)
    assert e["gross_expectancy_r"]["mean"] == 0.0 and e["net_expectancy_r"]["mean"] == -0.25
    assert verdict(e).startswith("NET EXPECTANCY IS NEGATIVE: -0.250 R")
    assert verdict(expectancy(trades[:1])).startswith("Net expectancy is positive")
