"""`scalper drill` (issue 11 item 9): the listing, every drill run with the real processes through the
runner, and proof that the independent watcher's naked-position measure can fail (a stop cancelled by
hand while the bot is down makes max_naked_s grow past the limit).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import aiohttp
import orjson
import pytest

from bot.drill.drills import DRILLS
from bot.drill.runner import Ctx, Drill, run_drill
from bot.drill.score import Ledger, duplicates, journal_vs_exchange, orphans
from bot.drill.watcher import NakedTracker, covered
from tests.sim.server_helpers import call

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

NAMES = ["stop_429", "silent_user_stream", "late_execution", "ambiguous_entry_lookup_fails", "malformed_market",
         "malformed_user", "manual_position", "manual_add", "freeze_5s", "prod_url_without_live",
         "sigkill_mid_trade"]

# Drills that fail on the `drill` branch alone because another helper's fix (issue 11) is not merged yet.
# The lead removes an entry once that fix is in main; a drill not listed here must pass.
PENDING_FIX: dict[str, str] = {
    # empty: protect, reconcile, inputs and secrets are all in main (merged here) and every drill passes.
    # Measured before the merges, each helper's branch alone onto main + drill: protect fixed stop_429,
    # late_execution, ambiguous_entry_lookup_fails; reconcile silent_user_stream, manual_position,
    # manual_add; inputs malformed_market, malformed_user, freeze_5s; secrets prod_url_without_live.
}


def test_list_names_every_drill() -> None:
    out = subprocess.run([sys.executable, "-m", "bot", "drill", "--list"], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert [ln.split()[0] for ln in out.stdout.splitlines()] == NAMES
    assert [d.name for d in DRILLS] == NAMES
    bad = subprocess.run([sys.executable, "-m", "bot", "drill", "--only", "nope"], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode == 2 and "unknown drill" in bad.stderr


# Each scenario runs once in the suite. These have a test of their own with the same fault and stricter
# checks (the trade's states, the journal's rows, the alerts), so the runner does not repeat them here;
# `scalper drill` still runs all eleven (the operator's command, and the note's table).
COVERED_ELSEWHERE = {
    "stop_429": "tests/test_drills_protect.py::test_drill_429_while_the_stop_is_placed",
    "ambiguous_entry_lookup_fails": "tests/test_drills_protect.py::test_drill_ambiguous_entry_while_lookups_fail",
    "late_execution": "tests/test_drills_protect.py::test_drill_late_execution_after_not_found",
    "silent_user_stream": "tests/test_drills_reconcile.py::test_drill_silent_user_stream_while_entries_fill",
    "manual_position": "tests/test_drills_reconcile.py::test_drill_manual_position_and_manual_add_while_running",
    "manual_add": "tests/test_drills_reconcile.py::test_drill_manual_position_and_manual_add_while_running",
    "sigkill_mid_trade": "tests/test_restart_drills.py::test_drill_a_sigkill_mid_trade_then_adopted_and_completed",
}
RUN_HERE = [n for n in NAMES if n not in COVERED_ELSEWHERE]


def test_every_drill_is_run_by_the_suite() -> None:
    """The split above loses no scenario: each drill runs here or has its named test, and that test exists."""
    assert set(RUN_HERE) | set(COVERED_ELSEWHERE) == set(NAMES) and RUN_HERE
    for where in set(COVERED_ELSEWHERE.values()):
        path, name = where.split("::")
        assert f"def {name}(" in (ROOT / path).read_text(), where


@pytest.mark.parametrize("name", RUN_HERE)
def test_drill(name: str, tmp_path: Path) -> None:
    drill = next(d for d in DRILLS if d.name == name)
    row = asyncio.run(run_drill(drill, tmp_path / name))
    assert row["name"] == name and row["naked_limit_s"] >= 1.0
    if drill.runs_bot:
        assert row["poll_samples"] > 20  # the watcher really watched
    if not row["passed"] and name in PENDING_FIX:
        pytest.xfail(f"{name} waits for {PENDING_FIX[name]}; now: {'; '.join(row['reasons'])[:600]}")
    assert row["passed"], row["reasons"]
    assert row["max_naked_s"] <= row["naked_limit_s"] and row["duplicates"] == 0 and row["orphans"] == 0
    assert row["journal_vs_exchange"] and row["lost_rows"] == 0 and row["survived"] is not False


# ------------------------------------------------------------------ the check can fail
async def _stop_cancelled_while_down(ctx: Ctx) -> None:
    t = await ctx.trade_in(("PROTECTED",), 30)
    await ctx.kill_bot()
    async with aiohttp.ClientSession() as http:
        st, algos, _ = await call(http, ctx.sim.base, "GET", "/fapi/v1/openAlgoOrders", {"symbol": t["symbol"]})
        assert st == 200 and algos
        for a in algos:
            st, _, _ = await call(http, ctx.sim.base, "DELETE", "/fapi/v1/algoOrder",
                                  {"symbol": t["symbol"], "clientAlgoId": a["clientAlgoId"]})
            assert st == 200
    ctx.notes.append(f"{t['symbol']} stop cancelled by hand with the bot down")
    ctx.bot = None  # nobody restarts it: the position stays naked
    await asyncio.sleep(3.0)


def test_watcher_detects_a_naked_position(tmp_path: Path) -> None:
    drill = Drill("naked_by_hand", "stop cancelled by hand while the bot is down", _stop_cancelled_while_down)
    row = asyncio.run(run_drill(drill, tmp_path / "naked"))
    assert row["max_naked_s"] >= 2.5, row
    assert row["max_naked_s"] > row["naked_limit_s"] and not row["passed"]
    assert any("without a stop" in r for r in row["reasons"]), row["reasons"]


def test_covered_needs_the_closing_side_and_the_whole_size() -> None:
    stop = {"symbol": "BTCUSDT", "side": "SELL", "orderType": "STOP_MARKET", "algoStatus": "NEW",
            "reduceOnly": True, "closePosition": False, "quantity": "0.010"}
    assert covered(0.01, "BTCUSDT", [stop])
    assert not covered(0.02, "BTCUSDT", [stop])  # a size added by hand is uncovered
    assert covered(0.02, "BTCUSDT", [stop, {**stop, "quantity": "0.010"}])  # two stops together
    assert not covered(-0.01, "BTCUSDT", [stop])  # wrong side
    assert not covered(0.01, "ETHUSDT", [stop])
    assert not covered(0.01, "BTCUSDT", [{**stop, "orderType": "TAKE_PROFIT_MARKET"}])
    assert not covered(0.01, "BTCUSDT", [{**stop, "algoStatus": "TRIGGERED"}])
    assert covered(5.0, "BTCUSDT", [{**stop, "reduceOnly": False, "closePosition": True, "quantity": "0"}])
    assert covered(0.0, "BTCUSDT", [])


def test_tracker_measures_from_first_naked_poll_to_first_covered_poll() -> None:
    tr = NakedTracker()
    pos = {"positions": [{"symbol": "BTCUSDT", "positionAmt": "0.01"}], "open_algo_orders": []}
    stop = {"symbol": "BTCUSDT", "side": "SELL", "orderType": "STOP_MARKET", "algoStatus": "NEW",
            "reduceOnly": True, "quantity": "0.01"}
    tr.observe({"positions": [], "open_algo_orders": []}, 0.0)
    tr.observe(pos, 1.0)
    tr.observe(pos, 1.05)
    tr.observe({**pos, "open_algo_orders": [stop]}, 1.3)
    tr.observe(pos, 2.0)  # the stop gone again
    tr.finish(2.5)
    assert tr.max_naked_s == {"BTCUSDT": pytest.approx(0.5)}
    assert [(s, round(b - a, 3)) for s, a, b in tr.intervals] == [("BTCUSDT", 0.3), ("BTCUSDT", 0.5)]
    assert tr.max_poll_gap_s == pytest.approx(1.0)


def test_scores_find_duplicates_orphans_lost_and_netted_rows() -> None:
    orders = [
        {"symbol": "BTCUSDT", "clientOrderId": "t1-entry", "orderId": 1, "executedQty": "0.01"},
        {"symbol": "BTCUSDT", "clientOrderId": "t1-entry.2", "orderId": 2, "executedQty": "0.01"},
        {"symbol": "BTCUSDT", "clientOrderId": "t2-entry", "orderId": 3, "executedQty": "0"},
        {"symbol": "BTCUSDT", "clientOrderId": "t2-entry", "orderId": 4, "executedQty": "0"},
        {"symbol": "BTCUSDT", "clientOrderId": "web_manual_1", "orderId": 5, "executedQty": "0.01"},
    ]
    fills = [{"id": 10, "orderId": 1, "clientOrderId": "t1-entry", "symbol": "BTCUSDT", "side": "BUY", "qty": 0.01},
             {"id": 11, "orderId": 2, "clientOrderId": "t1-entry.2", "symbol": "BTCUSDT", "side": "BUY",
              "qty": 0.01},
             {"id": 12, "orderId": 5, "clientOrderId": "web_manual_1", "symbol": "BTCUSDT", "side": "BUY",
              "qty": 0.01}]
    state = {"orders": orders, "algo_orders": [], "fills": fills,
             "positions": [{"symbol": "BTCUSDT", "positionAmt": "0.03"}, {"symbol": "ETHUSDT", "positionAmt": "0"}],
             "open_orders": [{"symbol": "BTCUSDT", "clientOrderId": "t2-entry", "reduceOnly": False}],
             "open_algo_orders": [{"symbol": "ETHUSDT", "clientAlgoId": "t3-sl", "orderType": "STOP_MARKET"}]}
    ledger = Ledger(
        trades=[{"trade_id": "t1", "symbol": "BTCUSDT", "state": "PROTECTED"}],
        legs=[{"client_id": "t1-entry", "trade_id": "t1", "role": "entry"},
              {"client_id": "t1-entry.2", "trade_id": "t1", "role": "entry"}],
        fills=[{"trade_id": "t1", "client_id": "t1-entry", "side": "BUY", "qty": 0.01, "venue_trade_id": "10"}])
    dups = duplicates(state, ledger)
    assert any("t2-entry" in d for d in dups) and any("entry executed by 2 orders" in d for d in dups)
    assert len(orphans(state)) == 2  # the resting entry and the stop on flat ETH
    jv = journal_vs_exchange(state, ledger, {"web_manual_1"})
    assert jv.lost_rows == 1 and not jv.ok  # fill 11 is not journaled; the hand fill is foreign
    assert any("BTCUSDT" in p and "by hand or after the bot stopped +0.01" in p for p in jv.problems)
    ledger.fills.append({"trade_id": "t1", "client_id": "t1-entry.2", "side": "BUY", "qty": 0.01,
                         "venue_trade_id": "11"})
    assert journal_vs_exchange(state, ledger, {"web_manual_1"}).ok
    assert not journal_vs_exchange(state, ledger, set()).ok  # the hand fill counted as the bot's: netted


def test_fills_after_the_bot_stopped_are_set_aside_not_lost() -> None:
    fills = [{"id": 1, "orderId": 1, "clientOrderId": "t1-entry", "symbol": "BTCUSDT", "side": "BUY", "qty": 0.02,
              "time": 1000},
             {"id": 2, "orderId": 2, "clientOrderId": "t1-tp1", "symbol": "BTCUSDT", "side": "SELL", "qty": 0.01,
              "time": 5000}]
    state = {"orders": [], "algo_orders": [], "fills": fills, "open_orders": [], "open_algo_orders": [],
             "positions": [{"symbol": "BTCUSDT", "positionAmt": "0.01"}]}
    ledger = Ledger([{"trade_id": "t1", "symbol": "BTCUSDT", "state": "PROTECTED"}], [],
                    [{"trade_id": "t1", "client_id": "t1-entry", "side": "BUY", "qty": 0.02, "venue_trade_id": "1"}])
    late = journal_vs_exchange(state, ledger, set(), after_ms=4000)
    assert late.ok and late.lost_rows == 0 and late.after_end == 1
    during = journal_vs_exchange(state, ledger, set(), after_ms=6000)  # the bot was still there: lost
    assert not during.ok and during.lost_rows == 1


def test_cli_json_rows_summary_and_exit_status(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "bot", "drill", "--only", "prod_url_without_live", "--json",
                          "--work", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    body = orjson.loads(out.stdout)
    (row,) = body["drills"]
    assert row["name"] == "prod_url_without_live" and row["survived"] is None
    assert set(row) >= {"max_naked_s", "naked_limit_s", "duplicates", "orphans", "journal_vs_exchange", "lost_rows",
                        "survived", "alerts", "passed"}
    assert body["summary"]["drills"] == 1 and body["summary"]["passed"] == int(row["passed"])
    assert out.returncode == (0 if row["passed"] else 1)
    assert (tmp_path / "prod_url_without_live" / "net-audit.jsonl").exists()  # it ran under the audit hook


def test_health_doubt_is_a_new_not_ok_reason() -> None:
    from bot.drill.drills import _first_new_doubt

    before = {"symbol halted: ETHUSDT"}
    assert _first_new_doubt(before, [(0.1, "degraded", {"symbol halted: ETHUSDT"})]) is None  # not new
    assert _first_new_doubt({"user stream stale: no message for 800 ms"},
                            [(0.1, "degraded", {"user stream stale: no message for 900 ms"})]) is None
    assert _first_new_doubt(before, [(0.1, "ok", set()), (0.3, "degraded", before | {"book BTCUSDT STALE"})]) == 0.3


def test_exits_left_by_a_fill_after_the_bot_stopped_are_not_orphans() -> None:
    state = {"positions": [{"symbol": "BTCUSDT", "positionAmt": "0"}], "open_orders": [],
             "open_algo_orders": [{"symbol": "BTCUSDT", "clientAlgoId": "t3-sl.4", "orderType": "STOP_MARKET"}]}
    assert len(orphans(state)) == 1
    assert orphans(state, {"BTCUSDT"}) == []  # a kept take-profit filled after shutdown: the next start's
    assert len(orphans(state, {"ETHUSDT"})) == 1
