"""What the operator sees is fed by the running bot (issue 15 items 1, 2): THE BOT (`python -m bot run`, a
subprocess) against `python -m bot exchange-sim` (another subprocess), read only through what an operator
reads — `/metrics`, `/status`, `/health`, the JSON log — and the exchange's own request counter.

One run (seed 2 of the generator trades within seconds): after trades, the order counters, the order-ack
histogram and the uptime are non-zero; `/status` shows the user stream connected, the account's equity, and
while a trade is open its position with the stop price and the stop/targets resting at the exchange; after
the exchange drops the private websocket `/health` names the lost user stream until it is back; the account
is fetched by REST at the slow rate (after each close, each reconciliation pass), not twice a second; each
trade has one `trade_entry` line per entry fill and exactly one `trade_close`, with the same fields on every
line, no `cancel_failed` warning; the shutdown line lists what it left open.
"""

from __future__ import annotations

import re
import signal
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import pytest

from bot.execution.warm import WARM_CLIENT_ID
from bot.ops.live import TRADE_FIELDS
from tests.test_exchange_sim_e2e import PY, ROOT, SimProcess, _config, _env, _rows

ACCOUNT = "GET /fapi/v2/account"


class _BotProc:
    """The bot with its stdout (JSON log lines) read by a thread, so the test can poll HTTP meanwhile."""

    def __init__(self, tmp: Path, cfg: Path, max_s: float) -> None:
        self.proc = subprocess.Popen([PY, "-m", "bot", "run", "-c", str(cfg), "--no-view", "--for", str(max_s)],
                                     cwd=ROOT, env=_env(tmp), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.logs: list[dict[str, Any]] = []
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                ev = orjson.loads(line)
            except orjson.JSONDecodeError:
                ev = {"event": "<raw>", "line": line.decode(errors="replace")}
            self.logs.append(ev if isinstance(ev, dict) else {"event": "<raw>", "line": str(ev)})

    def find(self, event: str) -> list[dict[str, Any]]:
        return [e for e in list(self.logs) if e.get("event") == event]

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(40)  # the shutdown flattens and waits a bounded time for flat
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait(10)
        self._t.join(5)
        return rc


TOKEN: list[str] = []  # the bot's ops token (<state_dir>/ops.token, created at its start)


def _get(url: str) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKEN[0]}"} if TOKEN else {})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:  # /health answers 503 when not ok
        return e.code, e.read()


def _json(url: str) -> dict[str, Any]:
    return orjson.loads(_get(url)[1])


def _sample(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        m = re.match(rf"^{name}(?:{{(.*)}})? (\S+)$", line)
        if not m:
            continue
        have = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            total += float(m.group(2))
    return total


def _until(what: str, fn: Any, timeout_s: float, bot: _BotProc) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = fn()
        if got:
            return got
        assert bot.proc.poll() is None, f"the bot exited waiting for {what}: {bot.logs[-10:]}"
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout_s} s: {what}; last log lines {bot.logs[-8:]}")


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    (tmp_path / "state").mkdir()
    return tmp_path


def test_what_the_operator_sees_is_fed_by_the_running_bot(tmp: Path) -> None:
    symbols = ["BTCUSDT", "ETHUSDT"]
    sim = SimProcess(tmp, symbols, seed=2)
    bot: _BotProc | None = None
    try:
        cfg = _config(tmp, sim.port, symbols, on_shutdown="flatten", time_limit_s=4.0)
        t_start = time.monotonic()
        bot = _BotProc(tmp, cfg, max_s=120)
        b = bot
        url = _until("ops_listening", lambda: b.find("ops_listening"), 60, bot)[0]["url"]
        journal = tmp / "state" / "journal.sqlite"
        TOKEN[:] = [(tmp / "state" / "ops.token").read_text().strip()]

        # the user stream as the venue layer reports it
        st = _until("user stream connected", lambda: (s := _json(url + "/status"))["user_stream"] and
                    s["user_stream"]["ok"] and s, 30, bot)
        assert st["user_stream"]["reason"] == "connected"
        assert st["uptime_s"] > 0 and st["account"]["equity"] > 0
        equity0 = st["account"]["equity"]
        acct0, t0 = sim.state()["requests"].get(ACCOUNT, 0), time.monotonic()
        runs0 = _json(url + "/status")["reconcile"]["runs"]

        # an open trade: its position with the stop price, its stop resting at the exchange
        sources: set[str] = set()  # where /status had the account from: REST, the user stream (ACCOUNT_UPDATE)

        def protected() -> dict[str, Any] | None:
            s = _json(url + "/status")
            sources.add(s["account"]["source"])
            for p in s["positions"]:
                stops = [o for o in s["open_orders"] if o["symbol"] == p["symbol"] and o["role"] == "stop"]
                if p["stop_confirmed"] and stops:
                    return {"position": p, "stops": stops}
            return None

        t_conn = time.monotonic()
        seen = _until("a position with a confirmed stop in /status", protected, 40, bot)
        t_pos = time.monotonic()
        pos = seen["position"]
        assert pos["stop_price"] and pos["qty"] > 0 and pos["entry_price"] > 0 and pos["trade_ids"], pos
        assert seen["stops"][0]["price"] == pos["stop_price"], seen
        # the same stop is at the exchange
        algos = sim.state()["open_algo_orders"]
        assert any(a["clientAlgoId"] == seen["stops"][0]["client_id"] for a in algos) or \
            not _json(url + "/status")["positions"], (algos, seen)

        # a lost user stream is on /health until it is back
        sim.post("/_sim/fault", {"kind": "drop_ws", "route": "private", "refuse_ms": 1500})
        lost = _until("/health names the lost user stream",
                      lambda: [r for r in _json(url + "/health")["reasons"] if "user stream" in r], 10, bot)
        assert lost
        _until("the user stream back", lambda: not [r for r in _json(url + "/health")["reasons"]
                                                     if "user stream" in r], 15, bot)
        _until("two closed trades", lambda: len(_rows(journal, "select 1 from trades where state = 'CLOSED' "
                                                               "and entry_ts_ns is not null")) >= 2, 20, bot)
        window_s = time.monotonic() - t0
        t_end = time.monotonic()
        acct_calls = sim.state()["requests"].get(ACCOUNT, 0) - acct0
        _, metrics = _get(url + "/metrics")
        text = metrics.decode()
        st = _json(url + "/status")
        passes = st["reconcile"]["runs"] - runs0
        history = _json(sim.base + "/_sim/state?history=1")
    finally:
        rc = bot.stop() if bot is not None else -1
        sim.stop()
    elapsed = time.monotonic() - t_start
    assert rc == 0, bot.logs[-20:]

    # the entry path kept warm (bot/execution/warm.py) by the running bot, and never a warm-up on the wire: every
    # order the exchange ever saw belongs to one of the journal's trades, none carries the warm-up's id
    assert st["entry_warm"]["on"] is True and st["entry_warm"]["warm_ups"] > 100, st["entry_warm"]
    ids = [o["clientOrderId"] for o in history["orders"]] + [a["clientAlgoId"] for a in history["algo_orders"]]
    trades = {r["trade_id"] for r in _rows(journal, "select trade_id from trades")}
    assert ids and not [c for c in ids if c.startswith(WARM_CLIENT_ID.split("-")[0])], ids
    assert {c.split("-")[0] for c in ids} <= trades | {"recon"}, (ids, trades)  # recon-: reconciliation's own
    # metrics fed by the running bot
    assert _sample(text, "scalper_orders_total", kind="entry", result="sent") >= 2
    assert _sample(text, "scalper_orders_total", kind="stop", result="ack") >= 2
    # two trades closed after an entry fill: each entry FILLED, or partly filled then expired (an IOC the
    # generated book could fill only in part); the counters agree with the journal's entry legs
    legs = _rows(journal, "select status, filled_qty from legs where role = 'entry' and filled_qty > 0")
    whole = sum(r["status"] == "FILLED" for r in legs)
    assert len(legs) >= 2 and _sample(text, "scalper_orders_total", kind="entry", result="filled") == whole, legs
    assert _sample(text, "scalper_orders_total", kind="entry", result="partially_filled") >= len(legs) - whole
    assert _sample(text, "scalper_order_ack_seconds_count") >= 4
    assert _sample(text, "scalper_uptime_seconds") > 5
    assert _sample(text, "scalper_trades_closed_total") >= 2
    assert _sample(text, "scalper_equity_quote") > 0

    # the account: REST only with what needs it anyway (each reconciliation pass — the 5 s timer, a reconnect,
    # a position to compare — each close, the reconnect's catch-up), where the former housekeeping fetched it
    # twice a second on top; equity still follows the fills
    closed = _rows(tmp / "state" / "journal.sqlite", "select * from trades where state = 'CLOSED'")
    bound = passes + len(closed) + 2  # 2: the reconnect's catch-up, a pass under way at either end
    assert acct_calls <= bound, (acct_calls, passes, window_s, len(closed))
    # (the former refresh alone made 2 * window_s calls on top: every call here is accounted for above)
    assert st["account"]["equity"] != equity0  # fees and PnL of the closed trades
    assert sources == {"rest", "user stream"}, sources  # the wallet of each fill, pushed by the stream

    # one canonical line per trade event, the same fields on every line
    lines = [e for e in bot.logs if str(e.get("event", "")).startswith("trade_")
             and e["event"] in ("trade_entry", "trade_exit", "trade_close")]
    for e in lines:
        assert set(TRADE_FIELDS) <= e.keys(), e
    by_trade: dict[str, list[str]] = {}
    for e in lines:
        by_trade.setdefault(e["trade_id"], []).append(e["event"])
    for t in closed:
        if t["entry_ts_ns"] is None:
            continue
        evs = by_trade.get(t["trade_id"], [])
        assert evs.count("trade_close") == 1 and "trade_entry" in evs and "trade_exit" in evs, (t["trade_id"], evs)
        assert evs.index("trade_entry") < evs.index("trade_close"), evs
    assert not [e for e in bot.logs if e.get("event") in ("trade_closed", "cancel_failed")]
    done = bot.find("shutdown_complete")
    assert len(done) == 1 and done[0]["left_open"] == [] and done[0]["exit_code"] == 0, done
    assert not [e for e in bot.logs if e.get("event") == "ops_failed"]
    print(f"ops e2e: {elapsed:.1f} s, account REST calls {acct_calls} in {window_s:.1f} s, "
          f"{passes} reconciliation passes, {len(closed)} closed trades; start-up {t_conn - t_start:.1f} s, first "
          f"protected position {t_pos - t_conn:.1f} s, drop + 2 closes {t_end - t_pos:.1f} s")
