"""`scalper drill --venue bybit` (issue 16: every drill that applies runs on Bybit with real processes): a fast
subset through the runner against `exchange-sim --protocol bybit` with the bot on config/exchange-sim-bybit.toml
and the independent watcher reading the position's stop from the exchange's state; plus the CLI's venue plumbing
and the per-protocol pieces (pure, ms). The whole Bybit set is `scalper drill --venue bybit` (the report's table).

Times: the two drills side by side, 32-37 s measured on the shared 2-core box at load average 6-7 (manual_position
itself observes 12 s after the bot is up; prod_url_without_live ~4 s beside it).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from bot.cli.drill import summary, table
from bot.drill.drills import DRILLS, by_name
from bot.drill.runner import Drill, run_drill, skipped_row
from bot.drill.venue import BINANCE, BYBIT, venues_of
from bot.drill.watcher import covered

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def test_a_hand_position_on_bybit_gets_a_stop_and_the_prod_host_is_refused(tmp_path: Path) -> None:
    async def both() -> list[dict]:  # side by side: each has its own exchange, port and state dir
        return list(await asyncio.gather(*(run_drill(d, tmp_path / d.name, venue=BYBIT)
                                           for d in by_name(["prod_url_without_live", "manual_position"]))))

    prod, manual = asyncio.run(both())
    assert prod["venue"] == manual["venue"] == "bybit"
    # the live-money guard on Bybit's production host: one line, no network, non-zero exit
    assert prod["passed"], prod["reasons"]
    assert "api.bybit.com" in prod["notes"][-1] and prod["checks"]["no network attempt"]["ok"]
    # a position opened by hand on the Bybit account while the bot runs: the watcher saw it (naked at first:
    # nothing protects a hand order) and it got an exchange-side stop within the limit; the emergency alert
    # names the symbol; journal equals exchange with the hand fills set aside
    assert manual["passed"], manual["reasons"]
    assert manual["checks"]["hand order filled"]["ok"] and manual["poll_samples"] > 50
    assert 0 < manual["max_naked_s"] <= manual["naked_limit_s"] == 1.0
    assert manual["alerts"]["missing"] == [] and manual["alerts"]["kinds"].get("emergency")
    assert manual["survived"] and manual["journal_vs_exchange"] and manual["orphans"] == 0


def test_watcher_reads_a_bybit_position_stop_as_cover() -> None:
    # /_sim/state on --protocol bybit: the position's stopLoss is a closePosition STOP_MARKET on the closing side
    algo = {"symbol": "BTCUSDT", "side": "SELL", "orderType": "STOP_MARKET", "algoStatus": "NEW",
            "closePosition": True, "reduceOnly": True, "quantity": "0", "clientAlgoId": "bybit-auto-s3"}
    tp = {**algo, "orderType": "TAKE_PROFIT_MARKET", "clientAlgoId": "bybit-auto-t4"}
    assert covered(0.02, "BTCUSDT", [algo]) and not covered(0.02, "BTCUSDT", [tp])
    assert not covered(-0.02, "BTCUSDT", [algo])  # a short needs a BUY stop


def test_bybit_state_ids_are_the_journals() -> None:
    st = {"orders": [{"clientOrderId": "t5-tp1_2", "parentClientAlgoId": ""}, {"clientOrderId": "web_manual_1"}],
          "fills": [{"clientOrderId": "t5-sl_3"}], "open_algo_orders": [{"clientAlgoId": "bybit-auto-s1"}]}
    out = BYBIT.normalize(st)
    assert [o["clientOrderId"] for o in out["orders"]] == ["t5-tp1.2", "web_manual_1"]
    assert out["fills"][0]["clientOrderId"] == "t5-sl.3"
    assert out["open_algo_orders"][0]["clientAlgoId"] == "bybit-auto-s1"
    assert BINANCE.normalize({"orders": [{"clientOrderId": "a_2"}]}) == {"orders": [{"clientOrderId": "a_2"}]}


def test_bad_messages_are_bad_in_one_way_each() -> None:
    st = {"time": 1, "books": {"ETHUSDT": {"last_update_id": 9}}, "bybit_book_u": {"orderbook.200.ETHUSDT": 41}}
    deltas = [orjson.loads(m) for m in BYBIT.bad_depth("ETHUSDT", st)]
    assert {d["topic"] for d in deltas} == {"orderbook.200.ETHUSDT"} and [d["data"]["u"] for d in deltas] == [
        42, 42, 42, 42, "42"]
    assert [d["data"]["b"] or d["data"]["a"] for d in deltas[:4]] == [
        [["abc", "1"]], [["NaN", "1"]], [["1e400", "1"]], [["50000.0", "1", "2"]]]
    ev = orjson.loads(BYBIT.bad_user_event({"symbol": "ETHUSDT", "clientOrderId": "t3-tp1.2", "orderId": 7,
                                            "origQty": "0.1", "price": "2000", "type": "LIMIT"}, 5))
    assert ev["topic"] == "order" and ev["data"][0]["side"] == "HOLD" and ev["data"][0]["orderLinkId"] == "t3-tp1_2"


def test_skipped_rows_neither_pass_nor_fail_and_the_cli_takes_the_venue(tmp_path: Path) -> None:
    d = Drill("some_drill", "what it does", DRILLS[0].scenario, skip={"bybit": "test: not on this venue"})
    row = skipped_row(d, BYBIT)
    s = summary([row])
    assert row["passed"] is None and s["drills"] == 0 and s["failed"] == [] and s["skipped"] == {
        d.name: "test: not on this venue"}
    assert "SKIP" in table([row]) and "not on this venue" in table([row])
    assert [v.name for v in venues_of("both")] == ["binance", "bybit"]
    bad = subprocess.run([sys.executable, "-m", "bot", "drill", "--venue", "kraken"], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode == 2 and "--venue" in bad.stderr
