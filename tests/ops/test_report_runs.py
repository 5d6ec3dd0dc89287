"""`scalper report` on constructed journals (bot.journal.Journal, the engine's own API): runs kept apart,
one stop-slippage definition, entry latencies that add up and are never negative, risk-adjusted ratios,
daily breakdown, streaks and best/worst trades. Each test runs in milliseconds."""

from __future__ import annotations

import json
import math
import sqlite3
import statistics
from pathlib import Path

import pytest

from bot.__main__ import main
from bot.journal import Journal
from bot.journal.report import build_report, load_journal

S = 1_763_700_000 * 10**9  # 2025-11-21 04:40:00 UTC
MS = 1_000_000
DAY = 86_400 * 10**9


def _trade(j: Journal, tid: str, t0: int, *, pnl: float, side: str = "long", fill_before_ack: bool = False,
           stops: tuple[tuple[float, int], ...] = ((59950.0, 5),), stop_fill: float | None = None,
           tp_fill: tuple[float, float] | None = None, qty: float = 0.02, budget: float = 5.0) -> None:
    """A BTCUSDT trade (tick 0.10): entry at 60000.0. `stops`: (trigger, ms after t0 it was placed), the
    later ones replacing the earlier; `stop_fill`: the last stop's fill price; `tp_fill`: (price, qty) of a
    take-profit partial before it."""
    buy, sell = ("BUY", "SELL") if side == "long" else ("SELL", "BUY")
    j.open_trade(t0, {"trade_id": tid, "symbol": "BTCUSDT", "setup": "momentum", "side": side, "intent_ts_ns": t0,
                      "intent_price": 60000.0, "planned_qty": qty, "planned_stop_price": stops[0][0],
                      "risk_budget": budget, "signal_ts_ns": t0, "recv_ts_ns": t0, "event_ts_ns": t0 - 2 * MS},
                 [{"client_id": f"{tid}-entry", "trade_id": tid, "role": "entry", "symbol": "BTCUSDT", "side": buy,
                   "kind": "MARKET", "qty": qty, "intended_price": 60000.0, "status": "PENDING_NEW"}], "PLANNED")
    j.add_leg(t0 + MS, {"client_id": f"{tid}-entry", "trade_id": tid, "role": "entry", "symbol": "BTCUSDT",
                        "side": buy, "kind": "MARKET", "qty": qty, "intended_price": 60000.0, "status": "PENDING_NEW"})
    # venue fill time: 2 ms after the send (before any answer reached us); received at +4 ms (entry_ts_ns)
    j.fill(t0 + 3 * MS, tid, f"{tid}-entry", "entry", buy, qty, 60000.0, 0.6, False, "v1", "FILLED", qty, 60000.0)
    if not fill_before_ack:
        j.order_event(t0 + 3 * MS + 500_000, tid, f"{tid}-entry", "NEW")  # REST answer received at +3.5 ms
    else:
        j.order_event(t0 + 9 * MS, tid, f"{tid}-entry", "NEW")  # the REST answer after the user-stream fill
    for i, (trigger, at_ms) in enumerate(stops):
        cid = f"{tid}-sl" if i == 0 else f"{tid}-sl.{i + 1}"
        j.add_leg(t0 + at_ms * MS, {"client_id": cid, "trade_id": tid, "role": "stop", "symbol": "BTCUSDT",
                                    "side": sell, "kind": "STOP_MARKET", "qty": qty, "intended_price": trigger,
                                    "trigger_price": trigger, "reduce_only": True, "status": "NEW"})
    t_exit = t0 + 30 * 10**9
    left = qty
    if tp_fill is not None:
        px, q = tp_fill
        j.add_leg(t0 + 5 * MS, {"client_id": f"{tid}-tp1", "trade_id": tid, "role": "tp", "symbol": "BTCUSDT",
                                "side": sell, "kind": "LIMIT", "qty": q, "intended_price": px, "price": px,
                                "reduce_only": True, "status": "NEW"})
        j.fill(t0 + 10 * 10**9, tid, f"{tid}-tp1", "tp", sell, q, px, 0.2, True, "v2", "FILLED", q, px)
        left -= q
    reason, exit_price = "TIME_LIMIT", 60000.0 + pnl / qty
    if stop_fill is not None:
        last = f"{tid}-sl" if len(stops) == 1 else f"{tid}-sl.{len(stops)}"
        j.fill(t_exit, tid, last, "stop", sell, left, stop_fill, 0.6, False, "v3", "FILLED", left, stop_fill)
        reason = "STOP_LOSS"
        exit_price = ((tp_fill[0] * tp_fill[1]) if tp_fill else 0.0) / qty + stop_fill * left / qty
    else:
        j.add_leg(t_exit - MS, {"client_id": f"{tid}-exit", "trade_id": tid, "role": "exit", "symbol": "BTCUSDT",
                                "side": sell, "kind": "MARKET", "qty": qty, "intended_price": exit_price,
                                "status": "PENDING_NEW"})
        j.fill(t_exit, tid, f"{tid}-exit", "exit", sell, qty, exit_price, 0.6, False, "v3", "FILLED", qty, exit_price)
    j.trade_state(t_exit, tid, "OPEN", "CLOSED", reason, {
        "entry_ts_ns": t0 + 4 * MS, "entry_price": 60000.0, "qty": qty, "stop_price": stops[0][0],
        "stop_confirm_ms": 20.0, "exit_ts_ns": t_exit, "exit_price": exit_price, "exit_reason": reason,
        "pnl": pnl, "fees": 1.2, "r_multiple": pnl / budget, "mae_ticks": 10.0, "mfe_ticks": 20.0,
        "mae_r": 0.2, "mfe_r": 0.4})


def test_runs_are_kept_apart_and_the_latest_is_the_default(tmp_path: Path, capsys) -> None:
    path = tmp_path / "j.sqlite"
    j = Journal(str(path))
    assert j.begin_run(S, "backtest", "day 1") == 1
    j.record_config(S, "h1", json.dumps({"risk": {"taker_fee_bps": 5.0}}))
    _trade(j, "t1", S, pnl=4.0)
    _trade(j, "t2", S + 60 * 10**9, pnl=-2.0)
    j.funding(S + 10 * 10**9, "BTCUSDT", -0.5, "f1")
    assert j.begin_run(S + DAY, "backtest", "day 2") == 2
    j.record_config(S + DAY, "h2", json.dumps({"risk": {"taker_fee_bps": 3.0}}))
    _trade(j, "t3", S + DAY, pnl=-3.0)
    j.close()

    assert main(["report", "--db", str(path), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert [t["trade_id"] for t in rep["trades"]] == ["t3"] and rep["overall"]["trades"] == 1
    assert rep["run"]["run_id"] == 2 and [r["trades"] for r in rep["run"]["runs"]] == [2, 1]
    assert rep["costs"]["fee_config"]["taker_bps"] == 3.0  # the run's own config
    assert rep["funding"]["payments"] == 0  # run 1's funding stays in run 1
    assert main(["report", "--db", str(path), "--json", "--run", "1"]) == 0
    rep1 = json.loads(capsys.readouterr().out)
    assert [t["trade_id"] for t in rep1["trades"]] == ["t1", "t2"] and rep1["funding"]["payments"] == 1
    assert rep1["costs"]["fee_config"]["taker_bps"] == 5.0
    assert main(["report", "--db", str(path), "--json", "--run", "all"]) == 0
    assert json.loads(capsys.readouterr().out)["overall"]["trades"] == 3
    assert main(["report", "--db", str(path), "--run", "9"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no run 9") and "1, 2" in err and err.count("\n") == 1
    assert main(["report", "--db", str(path)]) == 0
    assert "run: 2 (of 2" in capsys.readouterr().out


def test_a_journal_from_before_runs_gains_the_columns_and_reports_whole(tmp_path: Path, capsys) -> None:
    path = tmp_path / "old.sqlite"
    j = Journal(str(path))
    _trade(j, "t1", S, pnl=4.0)
    j.close()
    db = sqlite3.connect(path)  # as a journal written before runs existed: no run_id column, no runs table
    for table in ("trades", "config", "funding"):
        db.execute(f"ALTER TABLE {table} DROP COLUMN run_id")
    db.execute("DROP TABLE runs")
    db.commit()
    db.close()
    j = Journal(str(path))  # the migration adds them back
    cols = {r[1] for r in j._db.execute("PRAGMA table_info(trades)")}
    j.close()
    assert "run_id" in cols
    assert main(["report", "--db", str(path), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["overall"]["trades"] == 1 and rep["run"]["run_id"] == "all"


def test_one_stop_slippage_definition(tmp_path: Path) -> None:
    """A long: take-profit partial at 60030, the stop moved from 59950 to 59990 (break-even-ish), the moved
    stop filled at 59989.7: 3 ticks adverse against ITS trigger. The old "stops" figure compared the first
    stop with the average of all exits (+ the TP) and disagreed with the per-leg one."""
    j = Journal(str(tmp_path / "j.sqlite"))
    _trade(j, "t1", S, pnl=0.1, stops=((59950.0, 5), (59990.0, 12_000)), stop_fill=59989.7,
           tp_fill=(60030.0, 0.01))
    j.close()
    rep = build_report(load_journal(str(tmp_path / "j.sqlite")))
    st, by_role = rep["stops"], rep["slippage"]["by_role"]["stop"]
    assert st["slippage_ticks"]["mean"] == pytest.approx(3.0) == by_role["ticks"]["mean"]
    assert st["slippage_bps"]["mean"] == pytest.approx(3 * 0.1 / 59990 * 1e4, abs=1e-3)
    assert st["slippage_ticks"]["n"] == 1 and "own trigger" in st["slippage_definition"]
    t = rep["trades"][0]
    assert t["stop_slippage"]["ticks"] == pytest.approx(3.0)
    assert [s["price"] for s in t["stop_history"]] == [59950.0, 59990.0]


def test_latencies_add_up_and_are_never_negative(tmp_path: Path) -> None:
    j = Journal(str(tmp_path / "j.sqlite"))
    _trade(j, "t1", S, pnl=1.0)  # ack received at +3.5 ms, fill at +4 ms
    _trade(j, "t2", S + 10**11, pnl=1.0, fill_before_ack=True)  # fill at +4 ms, the REST answer at +9 ms
    j.close()
    rep = build_report(load_journal(str(tmp_path / "j.sqlite")))
    lat = {t["trade_id"]: t["latency_ms"] for t in rep["trades"]}
    assert lat["t1"]["signal_to_order_ms"] == pytest.approx(1.0)
    assert lat["t1"]["order_to_ack_ms"] == pytest.approx(2.5) and lat["t1"]["ack_to_fill_ms"] == pytest.approx(0.5)
    assert lat["t2"]["order_to_ack_ms"] == pytest.approx(3.0) and lat["t2"]["ack_to_fill_ms"] == 0.0
    for t in lat.values():
        steps = [t[k] for k in ("receive_to_signal_ms", "signal_to_order_ms", "order_to_ack_ms", "ack_to_fill_ms",
                                "fill_to_stop_confirmed_ms")]
        assert all(v is not None and v >= 0 for v in steps), t
        assert t["signal_to_fill_ms"] == pytest.approx(t["signal_to_order_ms"] + t["order_to_ack_ms"]
                                                       + t["ack_to_fill_ms"])
        assert t["venue_fill_to_receive_ms"] == pytest.approx(1.0)  # venue +3 ms, received +4 ms
        assert t["exchange_event_to_receive_ms"] == pytest.approx(2.0)
    assert rep["latency"]["ack_to_fill_ms"]["max"] >= 0 and "our clock" in rep["latency"]["clock"]


def test_ratios_daily_streaks_best_worst(tmp_path: Path, capsys) -> None:
    pnls = [(0, 4.0), (0, -2.0), (1, -1.0), (1, -1.5), (1, -0.5), (3, 6.0)]  # (day, net before funding)
    j = Journal(str(tmp_path / "j.sqlite"))
    for i, (day, pnl) in enumerate(pnls):
        _trade(j, f"t{i + 1}", S + day * DAY + i * 10**11, pnl=pnl)
    j.close()
    assert main(["report", "--db", str(tmp_path / "j.sqlite"), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    perf = rep["performance"]
    nets = {t["trade_id"]: t["net_pnl_quote"] for t in rep["trades"]}
    daily = [d["net_pnl_quote"] for d in perf["daily"]]
    assert [d["date"] for d in perf["daily"]] == ["2025-11-21", "2025-11-22", "2025-11-23", "2025-11-24"]
    assert daily[2] == 0 and [d["trades"] for d in perf["daily"]] == [2, 3, 0, 1]
    assert sum(daily) == pytest.approx(sum(nets.values()), abs=1e-5)
    ra = perf["ratios"]
    assert ra["sharpe"] == pytest.approx(statistics.fmean(daily) / statistics.stdev(daily) * math.sqrt(365), rel=1e-3)
    down = math.sqrt(statistics.fmean([min(0.0, d) ** 2 for d in daily]))
    assert ra["sortino"] == pytest.approx(statistics.fmean(daily) / down * math.sqrt(365), rel=1e-3)
    eq = peak = dd = 0.0
    for v in nets.values():
        eq += v
        peak, dd = max(peak, eq), max(dd, peak - eq)
    assert ra["calmar"] == pytest.approx(statistics.fmean(daily) * 365 / dd, rel=1e-3)
    assert "365" in ra["annualisation"] and ra["days"] == 4
    # net = gross - fees: 4.0 and 6.0 stay winners, the others lose: W L L L L W
    assert perf["streaks"] == {"longest_win": 1, "longest_loss": 4, "current": 1}
    assert perf["best"][0]["trade_id"] == "t6" and perf["worst"][0]["trade_id"] == "t2"
    assert len(perf["excursions"]) == 6 and perf["excursions"][0]["mae_r"] == 0.2
    assert main(["report", "--db", str(tmp_path / "j.sqlite")]) == 0
    text = capsys.readouterr().out
    assert "Sharpe" in text and "longest loss 4" in text and "MAE / MFE" in text and "2025-11-24" in text
    assert "per trade costs" in text and "in:taker out:taker" in text  # each fill's liquidity


def test_negative_net_expectancy_is_the_first_line_everywhere(tmp_path: Path, capsys) -> None:
    j = Journal(str(tmp_path / "j.sqlite"))
    for i in range(3):
        _trade(j, f"t{i + 1}", S + i * 10**11, pnl=-1.0 - i)
    j.close()
    html_out = tmp_path / "r.html"
    assert main(["report", "--db", str(tmp_path / "j.sqlite"), "--html", str(html_out)]) == 0
    assert capsys.readouterr().out.startswith("NET EXPECTANCY IS NEGATIVE")
    assert main(["report", "--db", str(tmp_path / "j.sqlite"), "--json"]) == 0
    out = capsys.readouterr().out
    assert next(iter(json.loads(out))) == "verdict" and json.loads(out)["verdict"].startswith("NET EXPECTANCY IS")
    page = html_out.read_text()
    assert page[page.index("<body>"):].startswith('<body><p id="verdict"><strong>NET EXPECTANCY IS NEGATIVE')
