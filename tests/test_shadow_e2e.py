"""End to end: shadow mode (`python -m bot run`, app.mode = "shadow") against TWO loopback exchanges
(`python -m bot exchange-sim`, separate processes, the same generator seed so their markets are close but not
identical): "mainnet" serves the public data that drive the bot; "demo" is the account its orders go to. The
bot's own matching engine paper-fills the same orders on the mainnet stream alongside.

What it shows (issue 16 item 4):
- trades happen on the demo exchange: its fills are the journal's, and every position the demo exchange shows
  (sampled all along by this test, an independent watcher on its state endpoint) carries a STOP_MARKET of the
  bot within 1 s;
- the mainnet exchange never sees an order, a fill, a position, a listen key, a private socket or a signed
  request from the bot: its request counters hold public GETs only;
- `scalper report --shadow --json` gives, per trade, both sides (demo and paper entry prices, the entry
  difference in bps, latencies, fees, PnL) and the summary; the report of the real trades is unchanged (the
  paper fills are in their own table, never in `fills`).

Config: the exchange-sim e2e one (momentum on 1 s bars, loosened) with market entries (the demo's book is not
the mainnet's: an IOC limit priced off mainnet would often miss on the demo, which the report would show, but
this test wants demo trades) and stops of at least 8 bps (a 2 bps stop placed from mainnet's price can be on
the wrong side of the demo's mark).
"""

from __future__ import annotations

import signal
import subprocess
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
import pytest

from bot.__main__ import main as scalper
from tests.support.lively import lively_sections
from tests.test_exchange_sim_e2e import PY, ROOT, SimProcess, _env, _rows

SEED = 2
SYMBOLS = ["BTCUSDT", "ETHUSDT"]
NAKED_MAX_S = 1.0  # a demo position without the bot's stop, at most this long (issue 16 "none without a stop")


def _config(tmp: Path, demo: int, data: int) -> Path:
    d, m = f"127.0.0.1:{demo}", f"127.0.0.1:{data}"
    sym = ", ".join(f'"{s}"' for s in SYMBOLS)
    text = f"""
[app]
mode = "shadow"
name = "shadow-e2e"
on_shutdown = "flatten"
[log]
level = "INFO"
format = "json"
[venue]
name = "binance-usdm"
environment = "exchange-sim"
symbols = [{sym}]
rest_url = "http://{d}"
ws_public_url = "ws://{d}/public"
ws_market_url = "ws://{d}/market"
ws_private_url = "ws://{d}/private"
[shadow]
data_environment = "exchange-sim"
data_rest_url = "http://{m}"
data_ws_public_url = "ws://{m}/public"
data_ws_market_url = "ws://{m}/market"
[execution]
entry_order = "market"
{lively_sections(time_limit_s=2.0, min_stop_bps=8.0, max_stop_bps=60.0, atr_bars=3)}
"""
    path = tmp / "shadow.toml"
    path.write_text(text)
    return path


def _history(sim: SimProcess) -> dict[str, Any]:
    with urllib.request.urlopen(sim.base + "/_sim/state?history=1", timeout=5) as r:
        return orjson.loads(r.read())


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    (tmp_path / "state").mkdir()
    return tmp_path


def test_shadow_mode_trades_on_demo_paper_fills_alongside_and_mainnet_sees_no_order(
        tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with ThreadPoolExecutor(2) as pool:  # both start at once (each waits ~2 s for its ready line)
        started = [pool.submit(SimProcess, tmp, SYMBOLS, SEED) for _ in range(2)]
    errs = [f.exception() for f in started]
    if any(errs):
        for f in started:
            if f.exception() is None:
                f.result().stop()
        raise next(e for e in errs if e is not None)
    mainnet, demo = (f.result() for f in started)
    journal = tmp / "state" / "journal.sqlite"
    max_s = 60.0  # ends as soon as two trades entered and one closed (~12-20 s here); generous under load
    naked_since: dict[str, float] = {}
    naked_max = 0.0
    positions_seen = 0
    try:
        before_mainnet = mainnet.state()
        cfg = _config(tmp, demo.port, mainnet.port)
        proc = subprocess.Popen([PY, "-m", "bot", "run", "-c", str(cfg), "--no-view", "--for", str(max_s)],
                                cwd=ROOT, env=_env(tmp), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + max_s
            while time.monotonic() < deadline and proc.poll() is None:
                st = demo.state()  # the independent watcher: a position without a stop of the bot, how long
                now = time.monotonic()
                stops = {a["symbol"] for a in st["open_algo_orders"] if a["orderType"] == "STOP_MARKET"}
                held = {p["symbol"] for p in st["positions"] if float(p["positionAmt"]) != 0}
                positions_seen += len(held)
                for sym in held - stops:
                    naked_max = max(naked_max, now - naked_since.setdefault(sym, now))
                for sym in list(naked_since):
                    if sym not in held - stops:
                        del naked_since[sym]
                entered = _rows(journal, "select state from trades where entry_ts_ns is not null")
                # two trades on the demo account, one closed by the bot: enough (the shutdown flattens the rest)
                if len(entered) >= 2 and any(t["state"] == "CLOSED" for t in entered):
                    proc.send_signal(signal.SIGTERM)
                    break
                time.sleep(0.1)
            out, _ = proc.communicate(timeout=40)
        except BaseException:
            proc.kill()
            proc.communicate(timeout=10)
            raise
        demo_end = _history(demo)
        mainnet_end = _history(mainnet)
    finally:
        demo.stop()
        mainnet.stop()
    logs = [orjson.loads(x) for x in out.splitlines() if x.startswith(b"{")]
    errors = [r for r in logs if r.get("level") in ("error", "critical")]
    assert proc.returncode == 0, out[-3000:]
    assert not errors, errors

    # --- the demo exchange: the bot's trades, each position under its stop
    trades = _rows(journal, "select * from trades where entry_ts_ns is not null")
    assert len(trades) >= 2, f"{len(trades)} entered trades"
    assert positions_seen, "the watcher never saw a position on the demo exchange"
    assert naked_max <= NAKED_MAX_S, f"a demo position went {naked_max:.2f} s without a stop"
    demo_cids = {o["clientOrderId"] for o in demo_end["orders"]} | {a["clientAlgoId"] for a in demo_end["algo_orders"]}
    for t in trades:
        tid = t["trade_id"]
        assert f"{tid}-entry" in demo_cids, (tid, sorted(demo_cids))
        assert any(c.startswith(f"{tid}-sl") for c in demo_cids), f"{tid}: no stop on the demo exchange"
    demo_fill_qty = sum(f["qty"] for f in demo_end["fills"] if f["clientOrderId"].startswith("t"))
    journal_fill_qty = sum(f["qty"] for f in _rows(journal, "select qty from fills"))
    assert demo_fill_qty > 0 and abs(demo_fill_qty - journal_fill_qty) < 1e-6, (demo_fill_qty, journal_fill_qty)
    assert [p for p in demo_end["positions"] if float(p["positionAmt"]) != 0] == []  # flattened at shutdown

    # --- the mainnet exchange: public data only, never an order of any kind
    assert mainnet_end["orders"] == [] and mainnet_end["algo_orders"] == [] and mainnet_end["fills"] == []
    assert [p for p in mainnet_end["positions"] if float(p["positionAmt"]) != 0] == []
    assert mainnet_end["listen_keys"] == 0 and mainnet_end["connections"]["private"] == 0
    assert mainnet_end["account"]["balance"] == before_mainnet["account"]["balance"]
    reqs = mainnet_end["requests"]
    assert reqs and all(k.startswith("GET ") for k in reqs), reqs
    assert "GET /fapi/v1/depth" in reqs and not [k for k in reqs if "order" in k.lower() or "account" in k.lower()]
    assert mainnet_end["messages"] > 0

    # --- the paper side: own table, never mixed into the real trades' fills
    paper = _rows(journal, "select * from shadow_fills")
    assert paper, "no paper fill journaled"
    assert {f["trade_id"] for f in paper} <= {t["trade_id"] for t in _rows(journal, "select trade_id from trades")}
    sent = _rows(journal, "select * from shadow_orders")
    assert {o["client_id"] for o in sent} >= {f"{t['trade_id']}-entry" for t in trades}

    # --- the divergence report, both sides per trade (the CLI in process: the bot has exited)
    capsys.readouterr()
    assert scalper(["report", "--db", str(journal), "--shadow", "--json"]) == 0
    rep = orjson.loads(capsys.readouterr().out)
    by_id = {t["trade_id"]: t for t in rep["trades"]}
    both = 0
    for t in trades:
        r = by_id[t["trade_id"]]
        d, p = r["demo"], r["paper"]
        assert d["entry_qty"] == pytest.approx(t["qty"]) and d["entry_price"] == pytest.approx(t["entry_price"])
        assert d["entry_latency_ms"] is not None and d["entry_latency_ms"] >= 0, d
        assert d["fees_quote"] == pytest.approx(t["fees"]), (d, t["fees"])
        if p["entry_qty"] > 0:
            both += 1
            expect = (d["entry_price"] - p["entry_price"]) / p["entry_price"] * 1e4 * (1 if t["side"] == "long" else -1)
            assert r["entry_diff_bps"] == pytest.approx(expect, abs=1e-3)
            assert p["entry_latency_ms"] is not None and p["entry_latency_ms"] > 0  # [sim] order latency
            assert p["fees_quote"] > 0
            assert p["open_qty"] == pytest.approx(0.0, abs=1e-9), p  # the paper account ends flat too
            assert r["pnl_diff_quote"] == pytest.approx(d["net_pnl_quote"] - p["net_pnl_quote"], abs=1e-6)
        else:
            assert r["entry_missed"] == "demo_only"
    assert both >= 1, rep["trades"]
    s = rep["summary"]
    assert s["trades"] >= len(trades) and s["entered_both"] == both
    assert s["entry_diff_bps"]["n"] == both and s["entry_diff_bps"]["median"] is not None
    assert s["entry_latency_ms"]["paper"]["n"] == both

    # the text form names every trade
    capsys.readouterr()
    assert scalper(["report", "--db", str(journal), "--shadow"]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"shadow divergence, run {rep['run'][0]}: {s['trades']} trades"), text
    assert all(f"  {t['trade_id']} " in text for t in trades), text

    # the report of the real trades: the usual keys, and the shadow section beside them
    assert scalper(["report", "--db", str(journal), "--json"]) == 0
    body = orjson.loads(capsys.readouterr().out)
    assert body["shadow"]["summary"] == s
    page = tmp / "report.html"
    assert scalper(["report", "--db", str(journal), "--html", str(page)]) == 0
    capsys.readouterr()
    assert '<h2 id="shadow">' in page.read_text() and all(f"<td>{t['trade_id']}</td>" in page.read_text()
                                                          for t in trades)
    assert {t["trade_id"] for t in body["trades"]} == {t["trade_id"] for t in trades if t["state"] == "CLOSED"}
