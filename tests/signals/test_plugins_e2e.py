"""Strategy plug-ins end to end: the built-ins' intents unchanged on recorded sessions (golden files made
by `scalper signals --json` before the plug-in protocol, commit d74dc76), a plug-in written from
docs/strategies.md trading in `scalper backtest` and in `scalper run` (the embedded simulator, a real
process), and one that raises disabled, logged and alerted (webhook) while the bot goes on."""

from __future__ import annotations

import http.server
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import ClassVar

import pytest

from bot.__main__ import main
from tests.conftest import BINANCE, needs_data

HERE = Path(__file__).resolve().parent
FILES = HERE / "plugin_files"
GOLDEN = HERE / "golden"
ROOT = HERE.parent.parent
BTC_0808 = BINANCE / "hftbacktest_usdm_btcusdt_20240808.gz"
ETH_0718 = BINANCE / "hftbacktest_usdm_ethusdt_20240718.gz"
OFF = "\n".join(f"[signals.{s}]\nenabled = false" for s in ("momentum", "breakout_fade", "absorption",
                                                             "rsi_snapback"))
DOC = f'[signals.plugins.doc]\npath = "{FILES / "doc_strategy.py"}"\nobject = "DocStrategy"\n'


def _signals(capsys: pytest.CaptureFixture[str], cfg: Path | None, *files: Path) -> dict:
    args = ["signals", "--json", *map(str, files)] + (["-c", str(cfg)] if cfg else [])
    assert main(args) == 0
    return json.loads(capsys.readouterr().out)


@needs_data
@pytest.mark.parametrize(("cfg", "data", "golden", "setups"), [
    ("builtins_loose.toml", BTC_0808, "builtins_loose_btcusdt_20240808.json", 4),  # all four fire here
    ("builtins_loose.toml", ETH_0718, "builtins_loose_ethusdt_20240718.json", 2),
    (None, BTC_0808, "builtins_default_btcusdt_20240808.json", 3),
])
def test_builtin_setups_give_identical_intents(capsys: pytest.CaptureFixture[str], cfg: str | None, data: Path,
                                               golden: str, setups: int, tmp_path: Path) -> None:
    want = json.loads((GOLDEN / golden).read_text())
    text = (GOLDEN / cfg).read_text() if cfg else "".join(
        f"[signals.{n}]\n" for n in ("momentum", "breakout_fade", "absorption", "rsi_snapback"))
    pre = tmp_path / "pre.toml"
    pre.write_text(_pre_costs(text))
    got = _signals(capsys, pre, data)
    assert got.pop("problems") == []  # (a key added after the golden files were made: none on these sessions)
    assert got == want  # every intent (prices, stops, targets, features) and every counter
    assert len({i["setup"] for i in want["intents"]}) == setups


@needs_data
def test_a_plugin_beside_the_builtins_leaves_their_intents_alone(capsys: pytest.CaptureFixture[str],
                                                                  tmp_path: Path) -> None:
    cfg = tmp_path / "both.toml"
    cfg.write_text(_pre_costs((GOLDEN / "builtins_loose.toml").read_text()) + "\n" + DOC)
    want = json.loads((GOLDEN / "builtins_loose_btcusdt_20240808.json").read_text())
    got = _signals(capsys, cfg, BTC_0808)
    mine = [i for i in got["intents"] if i["setup"] == "doc"]
    assert mine and all(i["tag"] in ("doc_long", "doc_short") for i in mine)
    assert [i for i in got["intents"] if i["setup"] != "doc"] == want["intents"]


# The golden intents were recorded with the built-ins' stops and tiers before issue 13 moved their defaults
# to the method's ranges: the comparison keeps those.
_PRE_COSTS = 'min_stop_bps = 2.0\nmax_stop_bps = 25.0\ntp_r_multiples = [1.0, 2.0]\n'


def _pre_costs(toml: str) -> str:
    for name in ("momentum", "breakout_fade", "absorption", "rsi_snapback"):
        toml = toml.replace(f"[signals.{name}]\n", f"[signals.{name}]\n{_PRE_COSTS}")
    return toml


# These tests are about plug-ins trading like any setup; the doc plug-in's 2 bps stops cannot pay a taker
# round trip (issue 13), so the cost gate is opened for them.
NO_COST_GATE = {"SCALPER__RISK__MAX_COST_R": "1.0", "SCALPER__RISK__MIN_TARGET_NET_R": "-1.0"}


@needs_data
def test_doc_plugin_trades_in_backtest(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in NO_COST_GATE.items():
        monkeypatch.setenv(k, v)
    cfg = tmp_path / "doc.toml"
    cfg.write_text(OFF + "\n" + DOC)
    assert main(["backtest", "--json", "-c", str(cfg), str(BTC_0808)]) == 0
    out = json.loads(capsys.readouterr().out)
    trades = [t for t in out["trades"] if t["entry_ts_ns"]]
    assert trades, out["summary"]
    assert {t["setup"] for t in out["trades"]} == {"doc"}
    for t in trades:  # each was protected and closed like any trade
        assert t["stop_price"] and t["exit_reason"] and t["fees"] > 0
    assert out["summary"]["intents"] >= len(trades)


class _Hook(http.server.BaseHTTPRequestHandler):
    got: ClassVar[list[dict]] = []

    def do_POST(self) -> None:  # http.server calls it by this name
        n = int(self.headers.get("Content-Length", "0"))
        _Hook.got.append(json.loads(self.rfile.read(n)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *a: object) -> None:
        return


def _doc_run_done(lines: list[str], journal: Path) -> bool:
    """What the test below asserts has happened: the raising plug-in disabled and alerted, and the doc
    plug-in traded after it, every filled entry with its confirmed stop."""
    disabled = [r for r in (json.loads(ln) for ln in lines if ln.startswith("{"))
                if r.get("event") == "strategy_disabled"]
    if not disabled or not [a for a in _Hook.got if a.get("kind") == "error" and "boom" in a.get("text", "")]:
        return False
    if not journal.exists():
        return False
    db = sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=2)
    try:
        doc = db.execute("select entry_ts_ns, stop_confirm_ms from trades where setup = 'doc' and "
                         "entry_ts_ns is not null").fetchall()
    except sqlite3.OperationalError:
        return False
    finally:
        db.close()
    return bool(doc) and all(r[1] is not None for r in doc) and (
        max(r[0] for r in doc) > disabled[0]["ts_event_ns"] or len(doc) > 1)


def test_doc_plugin_trades_in_run_and_a_raising_one_is_disabled_and_alerted(tmp_path: Path) -> None:
    srv = http.server.HTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    _Hook.got = []
    cfg = tmp_path / "run.toml"
    base = (ROOT / "config" / "default.toml").read_text()
    for name in ("momentum", "rsi_snapback", "breakout_fade", "absorption"):  # the symbols to the plug-ins alone:
        base = base.replace(f"[signals.{name}]\n", f"[signals.{name}]\nenabled = false\n")  # 30 s must show a doc trade
    assert base.count("enabled = false") == 4
    cfg.write_text(base.replace('state_dir = "var"', f'state_dir = "{tmp_path}"').replace("port = 9310", "port = 0")
                   + f'\n[signals.plugins.boom]\npath = "{FILES / "faulty.py"}"\nobject = "RaiseOnCall"\nn = 50\n'
                   + DOC)
    env = {**os.environ, **NO_COST_GATE, "SCALPER__OPS__ALERTS__WEBHOOK_URL": f"http://127.0.0.1:{srv.server_port}/hook",
           "SCALPER__LOG__FORMAT": "json"}
    proc = subprocess.Popen([sys.executable, "-m", "bot", "run", "-c", str(cfg), "--for", "30", "--no-view"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    try:
        # SIGTERM (the graceful shutdown) once the run showed all it must; `--for 30` stays the upper bound
        deadline = time.monotonic() + 150
        while proc.poll() is None and time.monotonic() < deadline:
            if _doc_run_done(list(lines), tmp_path / "journal.sqlite"):
                proc.send_signal(signal.SIGTERM)
                break
            time.sleep(0.25)
        proc.wait(max(1.0, deadline - time.monotonic()))
        reader.join(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        srv.shutdown()
    out = "".join(lines)
    assert proc.returncode == 0, out[-3000:]
    logs = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    disabled = [r for r in logs if r.get("event") == "strategy_disabled"]
    assert len(disabled) == 1 and disabled[0]["strategy"] == "boom", out[-3000:]
    assert disabled[0]["error"] == "RuntimeError: boom on call 50"
    alerts = [a for a in _Hook.got if a["kind"] == "error" and "boom" in a["text"]]
    assert len(alerts) == 1 and "disabled for this run" in alerts[0]["text"], _Hook.got
    db = sqlite3.connect(tmp_path / "journal.sqlite")
    rows = db.execute("select setup, entry_ts_ns, stop_confirm_ms, exit_reason from trades").fetchall()
    doc = [r for r in rows if r[0] == "doc" and r[1]]
    assert doc, (rows, out[-2000:])
    assert all(r[2] is not None for r in doc)  # every filled entry got its protective stop
    # the bot went on after the failure: the doc plug-in traded after it
    assert max(r[1] for r in doc) > disabled[0]["ts_event_ns"] or len(doc) > 1


EXAMPLES = ROOT / "examples" / "strategies"


@pytest.mark.parametrize("name", ["ofi_scalper", "ema_rsi"])
def test_example_configs_load_and_list_their_plugin(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "-c", str(EXAMPLES / f"{name}.toml")]) == 0
    out = capsys.readouterr().out
    assert f"  {name}: {EXAMPLES / name}.py:" in out


@pytest.mark.slow
@needs_data
@pytest.mark.parametrize("name", ["ofi_scalper", "ema_rsi"])
def test_examples_trade_on_a_recorded_session(name: str, capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in NO_COST_GATE.items():
        monkeypatch.setenv(k, v)
    assert main(["backtest", "--json", "-c", str(EXAMPLES / f"{name}.toml"), str(BTC_0808)]) == 0
    out = json.loads(capsys.readouterr().out)
    entered = [t for t in out["trades"] if t["entry_ts_ns"]]
    assert entered and {t["setup"] for t in out["trades"]} == {name}, out["summary"]
