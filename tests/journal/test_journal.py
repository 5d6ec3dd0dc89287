"""Journal: WAL mode, every change a row, one transaction per change, survives a crash between writes."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bot.journal import TRADE_FIELDS, Journal

ROOT = Path(__file__).resolve().parents[2]


def _trade(tid: str = "t1") -> dict[str, object]:
    return {
        "trade_id": tid,
        "symbol": "BTCUSDT",
        "setup": "sweep",
        "side": "long",
        "intent_ts_ns": 1,
        "intent_price": 50_000.0,
        "planned_qty": 0.5,
        "planned_stop_price": 49_950.0,
        "risk_budget": 25.0,
    }


def _leg(cid: str, role: str, kind: str, price: float, tid: str = "t1") -> dict[str, object]:
    return {
        "client_id": cid,
        "trade_id": tid,
        "role": role,
        "symbol": "BTCUSDT",
        "side": "BUY",
        "kind": kind,
        "qty": 0.5,
        "intended_price": price,
        "status": "PENDING_NEW",
    }


def test_wal_mode_and_round_trip(tmp_path: Path) -> None:
    path = str(tmp_path / "j.sqlite")
    j = Journal(path)
    j.record_config(0, "abc", "{}")
    j.open_trade(10, _trade(), [_leg("t1-entry", "entry", "LIMIT", 50_000.0)], "PLANNED", "intent")
    j.order_event(11, "t1", "t1-entry", "NEW", venue_order_id="v1")
    j.fill(12, "t1", "t1-entry", "entry", "BUY", 0.2, 50_000.0, 2.0, False, "x1", "PARTIALLY_FILLED", 0.2, 50_000.0)
    j.add_leg(13, {**_leg("t1-sl", "stop", "STOP_MARKET", 49_950.0), "side": "SELL", "reduce_only": 1})
    j.trade_state(14, "t1", "PLANNED", "PROTECTING", "first fill", {"entry_ts_ns": 12, "entry_price": 50_000.0})
    j.denial(15, "ETHUSDT", "sweep", "short", "SPREAD_TOO_WIDE", "6 bps")
    j.rejection(16, "t1", "t1-tp1", "-2022", "ReduceOnly Order is rejected")
    j.state_change(17, "gate", "risk", "ACTIVE", "HALTED", "DAILY_LOSS_LIMIT")
    j.close()

    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()
    j = Journal(path)  # reopens the same file; the schema is idempotent
    legs = {r["client_id"]: r for r in j.rows("legs")}
    assert legs["t1-entry"]["status"] == "PARTIALLY_FILLED" and legs["t1-entry"]["venue_order_id"] == "v1"
    assert legs["t1-entry"]["intended_price"] == 50_000.0 and legs["t1-sl"]["intended_price"] == 49_950.0
    assert [e["status"] for e in j.rows("order_events", "client_id=?", ("t1-entry",))] == [
        "PENDING_NEW",
        "NEW",
        "PARTIALLY_FILLED",
    ]
    assert [(f["qty"], f["price"], f["fee"]) for f in j.rows("fills")] == [(0.2, 50_000.0, 2.0)]
    assert [(s["entity"], s["to_state"]) for s in j.rows("state_changes")] == [
        ("trade", "PLANNED"),
        ("trade", "PROTECTING"),
        ("gate", "HALTED"),
    ]
    assert j.rows("denials")[0]["reason"] == "SPREAD_TOO_WIDE"
    assert j.rows("rejections")[0]["code"] == "-2022"
    t = j.trades()[0]
    assert list(t)[: len(TRADE_FIELDS)] == list(TRADE_FIELDS)
    assert (t["entry_price"], t["state"]) == (50_000.0, "PROTECTING")
    j.close()


def test_a_failed_change_leaves_nothing_behind(tmp_path: Path) -> None:
    j = Journal(str(tmp_path / "j.sqlite"))
    j.open_trade(1, _trade(), [], "PLANNED")
    with pytest.raises(sqlite3.IntegrityError):  # the second leg names no trade: the whole change aborts
        j.open_trade(
            2,
            _trade("t2"),
            [_leg("x", "entry", "LIMIT", 1.0, "t2"), _leg("y", "stop", "STOP_MARKET", 1.0, "t9")],
            "PLANNED",
        )
    assert [t["trade_id"] for t in j.trades()] == ["t1"]
    assert j.rows("legs") == [] and len(j.rows("state_changes")) == 1
    with pytest.raises(KeyError):
        j.update_trade(3, "t1", {"no_such_column": 1})
    # a planned leg written again when sent (real size) is an update of its row plus an order event
    j.add_leg(4, _leg("t1-sl", "stop", "STOP_MARKET", 49_950.0) | {"status": "PLANNED"})
    j.add_leg(5, _leg("t1-sl", "stop", "STOP_MARKET", 49_960.0) | {"qty": 0.2})
    (leg,) = j.rows("legs")
    assert (leg["qty"], leg["intended_price"], leg["status"]) == (0.2, 49_960.0, "PENDING_NEW")
    assert [e["status"] for e in j.rows("order_events")] == ["PLANNED", "PENDING_NEW"]


_CRASHER = textwrap.dedent("""
    import os, sys
    sys.path.insert(0, {root!r})
    from bot.journal import Journal
    j = Journal({path!r})
    j.open_trade(1, {trade!r}, [], "PLANNED")
    for i in range(50):
        j.order_event(10 + i, "t1", "t1-entry", "NEW", reason=f"event {{i}}")
    # a change in flight: its transaction is open, half its rows written, then the process dies
    db = j._db
    db.execute("BEGIN IMMEDIATE")
    db.execute("INSERT INTO fills(ts_ns, trade_id, client_id, role, side, qty, price, fee, is_maker) "
               "VALUES (99, 't1', 't1-entry', 'entry', 'BUY', 1, 1, 0, 0)")
    print("ready", flush=True)
    os._exit(9)  # no commit, no close, no atexit: a crash
""")


def test_survives_a_crash_between_writes(tmp_path: Path) -> None:
    path = str(tmp_path / "crash.sqlite")
    code = _CRASHER.format(root=str(ROOT), path=path, trade=_trade())
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 9 and "ready" in out.stdout, out.stderr
    assert Path(path + "-wal").exists()  # the committed changes are in the WAL, not yet checkpointed
    j = Journal(path)
    assert j._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert [t["trade_id"] for t in j.trades()] == ["t1"]
    events = j.rows("order_events")
    assert len(events) == 50 and events[-1]["reason"] == "event 49"  # every committed change is there
    assert j.rows("fills") == []  # and nothing of the one in flight
    j.close()
