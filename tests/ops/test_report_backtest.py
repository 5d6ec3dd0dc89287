"""`scalper report --json` on a backtest journal: the simulator's funding settlements attributed to the
trades that held the position, and every trade's latency trail (exchange event -> receive -> signal ->
order sent -> ack -> fill) present and in order."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from bot.__main__ import main
from bot.journal import Journal
from bot.settings import load_settings
from tests.conftest import SESSIONS, needs_data

_ACKED = ("NEW", "PARTIALLY_FILLED", "FILLED", "TRIGGERED")


@pytest.fixture(scope="module")
def backtest(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    from bot.cli.backtest import run_backtest

    # funding every minute (the smallest interval the settings allow) so the session's trades hold through
    # some settlements; 3 bps so the amounts are far from rounding
    settings = load_settings(overrides={"sim": {"funding_source": "assumed", "funding_interval_s": 60,
                                                "funding_rate_bps": 3.0}})
    path = tmp_path_factory.mktemp("bt") / "bt.sqlite"
    res = asyncio.run(run_backtest([str(p) for p in SESSIONS["btcusdt_20240808"]], settings, str(path)))
    return path, res


@needs_data
def test_sim_funding_appears_in_the_report(backtest, capsys) -> None:
    path, res = backtest
    assert main(["report", "--db", str(path), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    fu = rep["funding"]
    assert fu["payments"] >= 1, "no funding settled while a trade was open"
    j = Journal(str(path))
    try:
        rows = j.rows("funding")
        trades = {t["trade_id"]: t for t in j.rows("trades")}
    finally:
        j.close()
    assert len(rows) == fu["payments"] and all(r["symbol"] == "BTCUSDT" for r in rows)
    # each settlement went to the trade whose position was open at that (simulated exchange) time
    for r in rows:
        assert r["trade_id"] is not None, r
        t = trades[r["trade_id"]]
        assert t["entry_ts_ns"] - 1_000_000_000 <= r["ts_ns"] <= t["exit_ts_ns"], (r, t)
        # funding at a positive rate: longs pay (negative), shorts receive
        assert (r["amount_quote"] < 0) == (t["side"] == "long"), (r, t["side"])
    assert fu["total_quote"] == pytest.approx(sum(r["amount_quote"] for r in rows))
    assert fu["attributed_quote"] == pytest.approx(fu["total_quote"]) and fu["unattributed_quote"] == 0
    assert res["summary"]["funding"] == pytest.approx(fu["total_quote"], abs=1e-6)
    # per trade, per group and overall: funding and PnL net of it
    by_trade = {t["trade_id"]: t for t in rep["trades"]}
    for tid, t in by_trade.items():
        expected = sum(r["amount_quote"] for r in rows if r["trade_id"] == tid)
        assert t["funding_quote"] == pytest.approx(expected)
        assert t["net_pnl"] == pytest.approx(t["pnl"] + expected)
    o = rep["overall"]
    assert o["funding_quote"] == pytest.approx(fu["total_quote"])
    assert o["net_pnl_quote"] == pytest.approx(o["total_pnl_quote"] + o["funding_quote"])
    for group in ("by_setup", "by_symbol", "by_hour"):
        assert sum(g["funding_quote"] for g in rep[group].values()) == pytest.approx(o["funding_quote"]), group
        for g in rep[group].values():
            assert g["net_pnl_quote"] == pytest.approx(g["total_pnl_quote"] + g["funding_quote"])


@needs_data
def test_backtest_journal_latency_trail_is_complete_and_ordered(backtest, capsys) -> None:
    path, _ = backtest
    settings = load_settings()
    j = Journal(str(path))
    try:
        trades = [t for t in j.rows("trades") if t["entry_ts_ns"] is not None]
        assert trades
        for t in trades:
            events = j.rows("order_events", "client_id = ?", (f"{t['trade_id']}-entry",))
            ack = next(e["ts_ns"] for e in events if e["status"] in _ACKED)
            sent = max(e["ts_ns"] for e in events if e["status"] == "PENDING_NEW" and e["ts_ns"] <= ack)
            ev, recv, sig = t["event_ts_ns"], t["recv_ts_ns"], t["signal_ts_ns"]
            assert None not in (ev, recv, sig), t
            assert ev <= recv <= sig <= sent <= ack, (t["trade_id"], ev, recv, sig, sent, ack)
            # simulated clock: event -> receive is the simulated market-data delay (base + jitter >= base)
            assert recv - ev >= int(settings.sim.market_data_latency_ms * 1_000_000)
    finally:
        j.close()
    assert main(["report", "--db", str(path), "--json"]) == 0
    lat = json.loads(capsys.readouterr().out)["latency"]
    assert "not_journaled" not in lat
    for k in ("exchange_event_to_receive_ms", "receive_to_signal_ms", "signal_to_order_ms", "order_to_ack_ms",
              "ack_to_fill_ms"):
        assert lat[k]["n"] == len(trades), k
    assert lat["exchange_event_to_receive_ms"]["median"] > 0 and lat["order_to_ack_ms"]["median"] > 0


@needs_data
def test_a_second_backtest_into_the_same_journal_is_a_run_of_its_own(backtest, tmp_path: Path, capsys) -> None:
    """Before: the second backtest's summary and `scalper report` counted both runs' trades (with the end
    equity of one). Now each backtest is a run: its summary holds its own trades, the report shows the
    latest run by default and both with --run all."""
    import shutil

    from bot.cli.backtest import run_backtest

    first_path, first = backtest
    path = tmp_path / "two.sqlite"
    shutil.copy(first_path, path)
    settings = load_settings(overrides={"sim": {"funding_interval_s": 60, "funding_rate_bps": 3.0}})
    with capsys.disabled():  # run_backtest binds the log to sys.stderr: never to this test's capture
        second = asyncio.run(run_backtest([str(p) for p in SESSIONS["btcusdt_20240808"]], settings, str(path)))
    n1, n2 = first["summary"]["trades"], second["summary"]["trades"]
    assert n1 > 0 and n2 == n1  # the same session, the same trades: none of the first run's counted again
    assert (first["summary"]["run_id"], second["summary"]["run_id"]) == (1, 2)
    assert not {t["trade_id"] for t in first["trades"]} & {t["trade_id"] for t in second["trades"]}
    assert second["summary"]["pnl"] == pytest.approx(first["summary"]["pnl"])
    assert main(["report", "--db", str(path), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["run"]["run_id"] == 2 and rep["overall"]["trades"] == n2
    assert {t["trade_id"] for t in rep["trades"]} == {t["trade_id"] for t in second["trades"]}
    assert rep["funding"]["total_quote"] == pytest.approx(second["summary"]["funding"], abs=1e-6)
    assert rep["costs"]["overall"]["net_expectancy_r"]["mean"] == pytest.approx(
        second["summary"]["expectancy"]["net_expectancy_r"]["mean"], abs=1e-6)
    assert main(["report", "--db", str(path), "--json", "--run", "all"]) == 0
    assert json.loads(capsys.readouterr().out)["overall"]["trades"] == n1 + n2


@needs_data
def test_backtest_journal_latencies_are_never_negative(backtest, capsys) -> None:
    path, _ = backtest
    assert main(["report", "--db", str(path), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["trades"]
    for t in rep["trades"]:
        lat = t["latency_ms"]
        for k in ("receive_to_signal_ms", "signal_to_order_ms", "order_to_ack_ms", "ack_to_fill_ms",
                  "fill_to_stop_confirmed_ms", "signal_to_fill_ms"):
            assert lat[k] is not None and lat[k] >= 0, (t["trade_id"], k, lat)
        assert lat["signal_to_fill_ms"] == pytest.approx(lat["signal_to_order_ms"] + lat["order_to_ack_ms"]
                                                         + lat["ack_to_fill_ms"])


@needs_data
def test_the_journal_holds_the_price_around_each_trade_and_the_html_draws_it(backtest, tmp_path: Path) -> None:
    """The engine's marks (bot.execution.marks: one a second, from a minute before a trade to a minute after)
    are in the journal, at least one a second across each trade's life, and the HTML report draws them as
    each trade's grey price path."""
    from bot.journal.report import build_report, load_journal

    path, _ = backtest
    data = load_journal(str(path))
    assert data["marks"], "no marks journaled"
    rep = build_report(data, run="all")
    # each reported trade carries its path: a minute before its signal to a minute after its exit
    assert rep["trades"] and all(len(t["price_path"]) >= 30 for t in rep["trades"])
    for t in rep["trades"]:
        assert t["price_path"][0][0] < t["entry_ts_ns"] < t["exit_ts_ns"] <= t["price_path"][-1][0] + 1e9

    trades = [t for t in data["trades"] if t["exit_ts_ns"]]
    assert trades
    for t in trades:
        mine = sorted(m["ts_ns"] for m in data["marks"] if m["symbol"] == t["symbol"]
                      and t["entry_ts_ns"] <= m["ts_ns"] <= t["exit_ts_ns"])
        held_s = (t["exit_ts_ns"] - t["entry_ts_ns"]) / 1e9
        assert len(mine) >= int(held_s) - 2, (t["trade_id"], held_s, len(mine))
        before = [m for m in data["marks"] if m["symbol"] == t["symbol"]
                  and t["entry_ts_ns"] - 60e9 <= m["ts_ns"] < t["entry_ts_ns"]]
        assert before, f"{t['trade_id']}: no price before the entry"
    out = tmp_path / "r.html"
    assert main(["report", "--db", str(path), "--run", "all", "--html", str(out)]) == 0
    page = out.read_text()
    assert page.count('<path class="price"') >= min(len(trades), 1) and "marks</title>" in page
