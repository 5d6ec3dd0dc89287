"""End to end: THE BOT (`python -m bot run`, a subprocess) against `python -m bot exchange-sim` (another
subprocess) through the real venue code: ccxt over aiohttp for REST, raw websockets for the market and the
user stream. Nothing in process, nothing faked: the two processes only share a loopback port.

The shipped exchange-sim config trades with production-like signal settings (no trade within 25 s on the
generated market), so the test writes its own config: the exchange-sim venue on the simulator's port and a
momentum setup on 1 s bars loosened so that the generated market triggers it within seconds (measured on
seeds 1-4 of the generator: first intent after 4-8 s, then one every ~2 s over two symbols). Risk limits are
widened so a losing streak does not stop the test from seeing several trades; everything else (execution,
stop deadline, venue code) is the shipped default.

Three runs: trades opened, protected and closed (shutdown flatten; the exchange's wallet agrees with the
journal); the stop-rejected fault drill (flatten + halt); shutdown keep_protected (the exchange keeps the
position and its stop). Each test stops the bot with SIGTERM as soon as the journal shows what it waits
for (bounded by a hard deadline and `--for`), so the runtime follows the market, not a fixed sleep.
"""

from __future__ import annotations

import os
import selectors
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.support.lively import lively_sections

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
STOP_CONFIRM_TIMEOUT_MS = 500  # execution.stop_confirm_timeout_ms default (the config below does not change it)


def _env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCALPER__")}
    env.update(PYTHONPATH=str(ROOT), SCALPER__VENUE__API_KEY="sim-key", SCALPER__VENUE__API_SECRET="sim-secret",
               SCALPER__APP__STATE_DIR=str(tmp / "state"), PYTHONUNBUFFERED="1")
    return env


def _config(tmp: Path, port: int, symbols: list[str], on_shutdown: str, *, time_limit_s: float = 3.0,
            min_stop_bps: float = 2.0, max_stop_bps: float = 50.0) -> Path:
    base = f"127.0.0.1:{port}"
    sym = ", ".join(f'"{s}"' for s in symbols)
    text = f"""
[app]
mode = "exchange-sim"
name = "e2e"
on_shutdown = "{on_shutdown}"
[log]
level = "INFO"
format = "json"
[venue]
name = "binance-usdm"
environment = "exchange-sim"
symbols = [{sym}]
rest_url = "http://{base}"
ws_public_url = "ws://{base}/public"
ws_market_url = "ws://{base}/market"
ws_private_url = "ws://{base}/private"
{lively_sections(time_limit_s=time_limit_s, min_stop_bps=min_stop_bps, max_stop_bps=max_stop_bps)}
"""
    path = tmp / "e2e.toml"
    path.write_text(text)
    return path


def _read_line(proc: subprocess.Popen[bytes], want: bytes, timeout_s: float) -> bytes:
    """The first stdout line containing `want`, within timeout_s (the process must not have exited)."""
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout_s
    seen: list[bytes] = []
    try:
        while time.monotonic() < deadline:
            if not sel.select(timeout=max(0.0, deadline - time.monotonic())):
                break
            line = proc.stdout.readline()
            if not line:
                break
            seen.append(line)
            if want in line:
                return line
    finally:
        sel.close()
    raise AssertionError(f"no {want!r} within {timeout_s} s; got {b''.join(seen[-20:]).decode(errors='replace')}")


class SimProcess:
    """`python -m bot exchange-sim --port 0`: the port is read from its ready line."""

    def __init__(self, tmp: Path, symbols: list[str], seed: int) -> None:
        self.proc = subprocess.Popen([PY, "-m", "bot", "exchange-sim", "--port", "0", "--seed", str(seed),
                                      "--symbols", ",".join(symbols)], cwd=ROOT, env=_env(tmp),
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        line = _read_line(self.proc, b"exchange-sim ready on", 20).decode()
        self.base = line.split("ready on ")[1].split()[0]
        self.port = int(self.base.rsplit(":", 1)[1])

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        req = urllib.request.Request(self.base + path, data=orjson.dumps(body), method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=5) as r:
            return orjson.loads(r.read())

    def state(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.base + "/_sim/state", timeout=5) as r:
            return orjson.loads(r.read())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def _rows(db_path: Path, sql: str, args: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    if not db_path.exists():
        return []
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
    db.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in db.execute(sql, args)]
    except sqlite3.OperationalError:  # the bot has not created the tables yet
        return []
    finally:
        db.close()


def _run_bot_until(tmp: Path, cfg: Path, done: Any, max_s: float) -> tuple[int, list[dict[str, Any]]]:
    """Run the bot until done(journal_path) holds (then SIGTERM: the graceful shutdown) or max_s passes
    (then `--for` stops it). Returns the exit code and its JSON log lines."""
    journal = tmp / "state" / "journal.sqlite"
    proc = subprocess.Popen([PY, "-m", "bot", "run", "-c", str(cfg), "--no-view", "--for", str(max_s)],
                            cwd=ROOT, env=_env(tmp), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + max_s
        while time.monotonic() < deadline and proc.poll() is None:
            if done(journal):
                proc.send_signal(signal.SIGTERM)
                break
            time.sleep(0.25)
        out, _ = proc.communicate(timeout=40)  # the shutdown flattens and waits up to 10 s for flat
    except BaseException:
        proc.kill()
        proc.communicate(timeout=10)
        raise
    logs = []
    for line in out.splitlines():
        try:
            logs.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            logs.append({"event": "<raw>", "line": line.decode(errors="replace")})
    return proc.returncode, logs


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    (tmp_path / "state").mkdir()
    return tmp_path


def test_bot_opens_protects_and_closes_trades_against_the_exchange_sim(tmp: Path) -> None:
    symbols = ["BTCUSDT", "ETHUSDT"]
    sim = SimProcess(tmp, symbols, seed=2)
    try:
        start = sim.state()
        start_wallet = float(start["account"]["balance"])
        cfg = _config(tmp, sim.port, symbols, on_shutdown="flatten")

        def done(journal: Path) -> bool:  # two trades went all the way through: entered and closed
            return len(_rows(journal, "select 1 from trades where state = 'CLOSED' and entry_ts_ns is not null")) >= 2

        t0 = time.monotonic()
        rc, logs = _run_bot_until(tmp, cfg, done, max_s=35)
        elapsed = time.monotonic() - t0
        end = sim.state()
    finally:
        sim.stop()
    journal = tmp / "state" / "journal.sqlite"
    errors = [r for r in logs if r.get("level") in ("error", "critical") or r.get("event") == "<raw>"]
    assert rc == 0, logs[-20:]
    assert not errors, errors
    trades = _rows(journal, "select * from trades")
    entered = [t for t in trades if t["entry_ts_ns"] is not None]
    assert len(entered) >= 2, f"{len(trades)} trades, {len(entered)} entered in {elapsed:.1f} s"
    for t in entered:
        # protected: a stop confirmed by the exchange (its ack), within the deadline, for every filled entry
        assert t["stop_confirm_ms"] is not None and 0 < t["stop_confirm_ms"] <= STOP_CONFIRM_TIMEOUT_MS, t
        acked = _rows(journal, "select l.client_id from legs l join order_events e on e.client_id = l.client_id "
                               "where l.trade_id = ? and l.role = 'stop' and e.status = 'NEW'", (t["trade_id"],))
        assert acked, f"{t['trade_id']}: no stop acknowledged by the exchange"
        # closed, with its result: the shutdown flattened whatever was still open
        assert t["state"] == "CLOSED" and t["exit_reason"] and t["exit_price"] > 0, t
        assert t["fees"] > 0 and t["pnl"] is not None, t
    # never an unprotected moment the venue refused
    assert not _rows(journal, "select * from rejections")
    # the exchange agrees: nothing open, no resting order or stop left behind ...
    assert all(float(p["positionAmt"]) == 0 for p in end["positions"]), end["positions"]
    assert end["open_orders"] == [] and end["open_algo_orders"] == [], (end["open_orders"], end["open_algo_orders"])
    # ... and its wallet moved by exactly the journal's net PnL (fees included; no funding in a minute)
    wallet_delta = float(end["account"]["balance"]) - start_wallet
    journal_pnl = sum(t["pnl"] for t in entered)
    assert abs(wallet_delta - journal_pnl) < 0.01 + 1e-6 * abs(journal_pnl), (wallet_delta, journal_pnl)
    # the exchange saw every fill the journal holds
    fills = _rows(journal, "select count(*) n, sum(fee) f from fills")[0]
    assert fills["n"] >= 2 * len(entered) and abs(fills["f"] - sum(t["fees"] for t in entered)) < 1e-6
    # the report of this run (one run, the latest): the entry path's steps on our clock are never negative
    # and add up (the venue stamps a taker fill before its ack reaches us: ack -> fill was negative before)
    from bot.journal.report import build_report, load_journal

    rep = build_report(load_journal(str(journal)), run="latest")
    assert rep["run"]["run_id"] == 1 and rep["overall"]["trades"] == len(entered)
    for t in rep["trades"]:
        lat = t["latency_ms"]
        for k in ("signal_to_order_ms", "order_to_ack_ms", "ack_to_fill_ms", "fill_to_stop_confirmed_ms"):
            assert lat[k] is not None and lat[k] >= 0, (t["trade_id"], k, lat)
        assert abs(lat["signal_to_fill_ms"] - lat["signal_to_order_ms"] - lat["order_to_ack_ms"]
                   - lat["ack_to_fill_ms"]) < 1e-6, lat


REFUSALS = 50


def test_rejected_stop_flattens_the_position_and_halts_the_symbol(tmp: Path) -> None:
    """Fault drill: the exchange refuses the protective stop (-4045, a plain rejection, not the -2021
    "would trigger" case the machine handles as a stop-out) -> the bot closes the position at market,
    halts the symbol (no new entry on it) and journals why; the exchange ends flat."""
    symbols = ["BTCUSDT"]
    sim = SimProcess(tmp, symbols, seed=1)
    try:
        # every stop refused, not just the first: a market entry often fills in several parts, and a stop
        # re-sized for the second part (accepted) would rightly protect the position despite the first
        # refusal; the drill is about a venue that will not take the stop at all
        assert sim.post("/_sim/fault", {"kind": "reject_next_stop", "count": REFUSALS, "code": -4045,
                                        "msg": "Reach max stop order limit."}) == {"ok": True}
        cfg = _config(tmp, sim.port, symbols, on_shutdown="keep_protected")

        def done(journal: Path) -> bool:
            return bool(_rows(journal, "select 1 from state_changes where entity = 'symbol' and to_state = 'HALTED'")) \
                and bool(_rows(journal, "select 1 from trades where exit_reason is not null"))

        rc, logs = _run_bot_until(tmp, cfg, done, max_s=30)
        # the bot stopped with keep_protected: whatever the exchange holds now is what the bot left
        end = sim.state()
        assert end["faults"]["reject_next_stop"] < REFUSALS  # consumed by the bot's stops
    finally:
        sim.stop()
    journal = tmp / "state" / "journal.sqlite"
    assert rc == 0, logs[-20:]
    rej = _rows(journal, "select * from rejections order by id")
    stops = [r for r in rej if "-sl" in r["client_id"]]
    # the first stop and any re-sized one ("-sl.2" for a second partial fill, answers in either order)
    assert any(r["client_id"].endswith("-sl") for r in stops), rej
    assert {(r["code"], r["trade_id"]) for r in stops} == {("-4045", stops[0]["trade_id"])}, rej  # one trade's
    assert REFUSALS - end["faults"]["reject_next_stop"] == len(stops)  # every refusal journaled
    # anything else refused is a reduce-only take-profit that met the flattened position (-2022)
    assert all(r["code"] == "-2022" and "-tp" in r["client_id"] for r in rej if r not in stops), rej
    tid = stops[0]["trade_id"]
    trade = _rows(journal, "select * from trades where trade_id = ?", (tid,))[0]
    assert trade["entry_ts_ns"] is not None and trade["qty"] > 0, trade
    assert trade["state"] == "CLOSED" and trade["exit_reason"] == "RISK_HALT", trade
    assert trade["stop_confirm_ms"] is None  # no stop ever confirmed ...
    # ... so the unprotected position lived no longer than the stop deadline: closed at market at once
    unprotected_ms = (trade["exit_ts_ns"] - trade["entry_ts_ns"]) / 1e6
    assert 0 < unprotected_ms <= STOP_CONFIRM_TIMEOUT_MS, unprotected_ms
    halts = _rows(journal, "select * from state_changes where entity = 'symbol' and to_state = 'HALTED'")
    assert [h["entity_id"] for h in halts] == ["BTCUSDT"] and "-4045" in halts[0]["reason"], halts
    assert any(r.get("event") == "symbol_halted" and r.get("symbol") == "BTCUSDT" for r in logs)
    # halted: no entry on the symbol after the halt
    later = _rows(journal, "select trade_id from trades where intent_ts_ns > ?", (halts[0]["ts_ns"],))
    assert later == [], later
    # the exchange is flat and holds nothing of ours
    assert all(float(p["positionAmt"]) == 0 for p in end["positions"]), end["positions"]
    assert end["open_orders"] == [] and end["open_algo_orders"] == []


def test_shutdown_keep_protected_leaves_the_position_with_its_stop_at_the_exchange(tmp: Path) -> None:
    """on_shutdown = keep_protected: the bot stops with a trade open; the exchange still holds the position
    AND its protective stop (reduce-only, the journal's stop price), nothing else of ours is assumed."""
    symbols = ["BTCUSDT"]
    sim = SimProcess(tmp, symbols, seed=3)
    try:
        # a stop >= 30 bps away and a 60 s time limit: the trade is still open when the bot is stopped
        cfg = _config(tmp, sim.port, symbols, on_shutdown="keep_protected", time_limit_s=60.0, min_stop_bps=30.0,
                      max_stop_bps=80.0)

        def done(journal: Path) -> bool:
            return bool(_rows(journal, "select 1 from trades where state = 'PROTECTED'"))

        rc, logs = _run_bot_until(tmp, cfg, done, max_s=30)
        end = sim.state()
    finally:
        sim.stop()
    assert rc == 0, logs[-20:]
    assert any(r.get("event") == "shutdown" and r.get("flatten") is False for r in logs), logs[-10:]
    journal = tmp / "state" / "journal.sqlite"
    # an entry that ended unfilled (ABORTED: an IOC that expired) never held a position
    open_trades = _rows(journal, "select * from trades where state not in ('CLOSED', 'ABORTED')")
    assert len(open_trades) == 1 and open_trades[0]["state"] == "PROTECTED", open_trades
    t = open_trades[0]
    assert 0 < t["stop_confirm_ms"] <= STOP_CONFIRM_TIMEOUT_MS
    pos = [p for p in end["positions"] if float(p["positionAmt"])]
    assert len(pos) == 1 and pos[0]["symbol"] == "BTCUSDT", end["positions"]
    amt = float(pos[0]["positionAmt"])
    filled = _rows(journal, "select sum(qty) q from fills where trade_id = ? and role in ('entry', 'add')",
                   (t["trade_id"],))[0]["q"]
    assert abs(abs(amt) - filled) < 1e-9 and (amt > 0) == (t["side"] == "long"), (amt, filled, t)
    stops = [a for a in end["open_algo_orders"] if a["orderType"] == "STOP_MARKET"]
    assert len(stops) == 1, end["open_algo_orders"]
    stop = stops[0]
    assert stop["side"] == ("SELL" if amt > 0 else "BUY") and stop["reduceOnly"] is True
    assert abs(float(stop["quantity"]) - abs(amt)) < 1e-9 and float(stop["triggerPrice"]) == t["stop_price"], stop
