"""The divergence report (bot/journal/shadow_report.py) on hand-made fills, every number worked by hand.

Trade t1, a long of 2 BTC, entry intended at 100.0 (market), stop at 99.0, target 101.0:
  demo:  entry 1 @ 100.02 + 1 @ 100.04 (vwap 100.03), sent at 1_000 ms, first fill at 1_012 ms; exit by the
         take-profit 2 @ 100.98; fees 0.05 + 0.05 + 0.10
  paper: entry 2 @ 100.01, first fill at 1_005 ms; exit by the take-profit 2 @ 101.00; fees 0.10 + 0.10
Trade t2, a short of 1 ETH: the demo's entry filled (1 @ 50.0, stop at 50.5 later filled @ 50.6), the paper's
  entry missed (its IOC expired), so t2 is "demo_only": no price differences, its PnL difference is the
  demo's whole PnL.
"""

from __future__ import annotations

from typing import Any

import pytest

from bot.journal.shadow_report import divergence, side_summary

MS = 1_000_000


def _order(cid: str, role: str, ts_ms: int, *, symbol: str = "BTCUSDT", side: str = "BUY", kind: str = "MARKET",
           price: float | None = None, trigger: float | None = None, run_id: int = 3) -> dict[str, Any]:
    return {"run_id": run_id, "ts_ns": ts_ms * MS, "trade_id": cid.split("-")[0], "client_id": cid, "role": role,
            "symbol": symbol, "side": side, "kind": kind, "qty": 2.0, "price": price, "trigger_price": trigger,
            "reduce_only": int(role != "entry"), "demo_outcome": "accepted", "paper_outcome": "accepted"}


def _fill(cid: str, role: str, side: str, qty: float, price: float, fee: float, ts_ms: int,
          run_id: int | None = 3) -> dict[str, Any]:
    return {"run_id": run_id, "ts_ns": ts_ms * MS, "trade_id": cid.split("-")[0], "client_id": cid, "role": role,
            "side": side, "qty": qty, "price": price, "fee": fee, "is_maker": 0}


def _data() -> dict[str, list[dict[str, Any]]]:
    return {
        "trades": [{"trade_id": "t1", "symbol": "BTCUSDT", "side": "long", "setup": "momentum", "state": "CLOSED",
                    "exit_reason": "TAKE_PROFIT"},
                   {"trade_id": "t2", "symbol": "ETHUSDT", "side": "short", "setup": "momentum", "state": "CLOSED",
                    "exit_reason": "STOP_LOSS"}],
        "legs": [{"client_id": "t1-entry", "intended_price": 100.0}, {"client_id": "t1-tp1", "intended_price": 101.0},
                 {"client_id": "t2-entry", "intended_price": 50.0}, {"client_id": "t2-sl", "intended_price": 50.5}],
        "shadow_orders": [
            _order("t1-entry", "entry", 1_000), _order("t1-sl", "stop", 1_020, side="SELL", kind="STOP_MARKET",
                                                       trigger=99.0),
            _order("t1-tp1", "tp", 1_020, side="SELL", kind="LIMIT", price=101.0),
            _order("t2-entry", "entry", 5_000, symbol="ETHUSDT", side="SELL"),
            _order("t2-sl", "stop", 5_020, symbol="ETHUSDT", kind="STOP_MARKET", trigger=50.5),
            _order("t0-entry", "entry", 10, run_id=2),  # an earlier run: not in "latest"
        ],
        "fills": [  # the demo account: the journal's own fills table
            _fill("t1-entry", "entry", "BUY", 1.0, 100.02, 0.05, 1_012, None),
            _fill("t1-entry", "entry", "BUY", 1.0, 100.04, 0.05, 1_013, None),
            _fill("t1-tp1", "tp", "SELL", 2.0, 100.98, 0.10, 4_000, None),
            _fill("t2-entry", "entry", "SELL", 1.0, 50.0, 0.02, 5_010, None),
            _fill("t2-sl", "stop", "BUY", 1.0, 50.6, 0.02, 7_000, None),
        ],
        "shadow_fills": [  # the paper account
            _fill("t1-entry", "entry", "BUY", 2.0, 100.01, 0.10, 1_005),
            _fill("t1-tp1", "tp", "SELL", 2.0, 101.00, 0.10, 3_900),
            _fill("t0-entry", "entry", "BUY", 2.0, 1.0, 0.0, 11, run_id=2),
        ],
        "runs": [],
    }


def test_one_trade_both_sides_worked_by_hand() -> None:
    rep = divergence(_data())
    assert rep["run"] == [3]
    t1 = {t["trade_id"]: t for t in rep["trades"]}["t1"]
    d, p = t1["demo"], t1["paper"]
    assert d["entry_qty"] == 2.0 and d["entry_price"] == pytest.approx(100.03)
    assert p["entry_qty"] == 2.0 and p["entry_price"] == pytest.approx(100.01)
    # the demo paid 0.02 more on a buy: (100.03 - 100.01) / 100.01 * 1e4 = 1.99980002 bps worse
    assert t1["entry_diff_bps"] == pytest.approx(1.9998, abs=1e-4)
    # it sold 0.02 lower: (101.00 - 100.98) / 101.00 * 1e4 = 1.98019802 bps worse
    assert t1["exit_diff_bps"] == pytest.approx(1.9802, abs=1e-4)
    # slippage vs intended: entry 100.0 (buy, adverse +), exit at the target 101.0 (sell: below is adverse)
    assert d["entry_slippage_bps"] == pytest.approx(3.0, abs=1e-4)
    assert p["entry_slippage_bps"] == pytest.approx(1.0, abs=1e-4)
    assert d["exit_slippage_bps"] == pytest.approx(0.02 / 101.0 * 1e4, abs=1e-4)
    assert p["exit_slippage_bps"] == pytest.approx(0.0, abs=1e-9)
    assert d["entry_latency_ms"] == 12.0 and p["entry_latency_ms"] == 5.0
    assert d["fees_quote"] == pytest.approx(0.20) and p["fees_quote"] == pytest.approx(0.20)
    # net = sells - buys - fees: demo 201.96 - 200.06 - 0.20 = 1.70; paper 202.00 - 200.02 - 0.20 = 1.78
    assert d["net_pnl_quote"] == pytest.approx(1.70) and p["net_pnl_quote"] == pytest.approx(1.78)
    assert t1["pnl_diff_quote"] == pytest.approx(-0.08)
    assert t1["entry_missed"] is None and t1["missed"] == []
    assert [(leg["client_id"], leg["filled"]) for leg in t1["legs"]] == [
        ("t1-entry", "both"), ("t1-sl", "neither"), ("t1-tp1", "both")]


def test_an_entry_filled_on_one_side_only_is_a_missed_fill_without_differences() -> None:
    rep = divergence(_data())
    t2 = {t["trade_id"]: t for t in rep["trades"]}["t2"]
    assert t2["entry_missed"] == "demo_only"
    assert t2["missed"] == [{"client_id": "t2-entry", "role": "entry", "filled": "demo_only"},
                            {"client_id": "t2-sl", "role": "stop", "filled": "demo_only"}]
    assert t2["entry_diff_bps"] is None and t2["exit_diff_bps"] is None
    # the PnL difference counts what the miss cost: the paper account did nothing (0), the demo lost 0.64
    assert t2["pnl_diff_quote"] == pytest.approx(-0.64)
    # the short's demo side on its own: 50.0 - 50.6 - 0.04 = -0.64; the stop slipped 0.1 above 50.5 on a buy
    assert t2["demo"]["net_pnl_quote"] == pytest.approx(-0.64)
    assert t2["demo"]["exit_slippage_bps"] == pytest.approx(0.1 / 50.5 * 1e4, abs=1e-4)
    assert t2["paper"]["fills"] == 0 and t2["paper"]["net_pnl_quote"] == pytest.approx(0.0)


def test_summary_counts_and_quantiles() -> None:
    s = divergence(_data())["summary"]
    assert s["trades"] == 2 and s["entered_demo"] == 2 and s["entered_paper"] == 1 and s["entered_both"] == 1
    assert s["entry_missed"] == {"demo_only": 1, "paper_only": 0}
    assert s["legs_missed"] == {"demo_only": 2, "paper_only": 0}
    assert s["entry_diff_bps"]["n"] == 1 and s["entry_diff_bps"]["median"] == pytest.approx(1.9998, abs=1e-4)
    assert s["entry_latency_ms"]["demo"]["n"] == 2 and s["entry_latency_ms"]["demo"]["median"] == 11.0  # 12, 10
    assert s["entry_latency_ms"]["paper"]["n"] == 1
    assert s["fees_quote"] == {"demo": pytest.approx(0.24), "paper": pytest.approx(0.20)}


def test_run_selection() -> None:
    data = _data()
    assert [t["trade_id"] for t in divergence(data, run=2)["trades"]] == ["t0"]
    assert [t["trade_id"] for t in divergence(data, run="all")["trades"]] == ["t0", "t1", "t2"]
    assert divergence({"shadow_orders": [], "shadow_fills": [], "fills": []})["trades"] == []


def test_a_side_still_open_has_no_pnl() -> None:
    fills = [_fill("t9-entry", "entry", "BUY", 1.0, 10.0, 0.01, 1)]
    s = side_summary(fills, {"t9-entry": 0}, {"t9-entry": 10.0})
    assert s["open_qty"] == 1.0 and s["net_pnl_quote"] is None and s["entry_latency_ms"] == pytest.approx(1.0)


def test_the_html_section_shows_both_sides_per_trade() -> None:
    from bot.journal.report_html import _table
    from bot.journal.report_html_shadow import shadow_html

    page = shadow_html(divergence(_data()), _table)
    assert page.startswith('<h2 id="shadow">')
    assert "2 trades, entered demo 2 / paper 1 / both 1" in page
    assert "<td>t1</td>" in page and "<td>t2</td>" in page and "entry: demo_only" in page
