"""Canary values in every secret field (environment and secrets file) never appear in any output: the
config-error paths of `scalper check-config` and `scalper run`, and a running bot's logs, journal, /status,
/metrics, /health and alert bodies. Real processes."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

ROOT = Path(__file__).resolve().parent.parent
CANARY = {
    "venue.api_key": "CANARY-VENUE-KEY-a1b2",
    "venue.api_secret": "CANARY-VENUE-SECRET-c3d4",
    "ops.token": "CANARY-OPS-TOKEN-e5f6",
    "ops.alerts.bot_token": "CANARY-BOT-TOKEN-g7h8",
    "ops.alerts.webhook_url": "CANARY-WEBHOOK-i9j0",  # the path part of the webhook URL
    "misspelled": "CANARY-MISSPELLED-k1l2",
}


def _canaries_in(text: str) -> list[str]:
    return [k for k, v in CANARY.items() if v in text]


def _env(tmp_path: Path, secrets_toml: str, **extra: str) -> dict[str, str]:
    sec = tmp_path / "secrets.toml"
    sec.write_text(secrets_toml)
    sec.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCALPER__")}
    env.update({"PYTHONPATH": str(ROOT), "SCALPER__VENUE__SECRETS_FILE": str(sec),
                "SCALPER__APP__STATE_DIR": str(tmp_path / "state"),
                "SCALPER__VENUE__API_KEY": CANARY["venue.api_key"],
                "SCALPER__OPS__TOKEN": CANARY["ops.token"]})
    env.update(extra)
    return {k: v for k, v in env.items() if v != "<unset>"}


GOOD_SECRETS = f"""[venue]
api_secret = "{CANARY['venue.api_secret']}"
[ops.alerts]
bot_token = "{CANARY['ops.alerts.bot_token']}"
webhook_url = "http://127.0.0.1:9/{CANARY['ops.alerts.webhook_url']}"
"""

# name -> (secrets file, extra environment, config file text)
SIM_CFG = (ROOT / "config" / "exchange-sim.toml").read_text()
CASES: dict[str, tuple[str, dict[str, str], str]] = {
    "misplaced secrets-file section": (GOOD_SECRETS.replace("[ops.alerts]", "[alerts]"), {}, SIM_CFG),
    "section validator (ops beyond loopback, no token)": (
        GOOD_SECRETS, {"SCALPER__OPS__HOST": "0.0.0.0", "SCALPER__OPS__TOKEN": "<unset>"}, SIM_CFG),
    "misspelled secret key in the environment": (
        GOOD_SECRETS, {"SCALPER__OPS__TOKNE": CANARY["misspelled"]}, SIM_CFG),
    "misspelled secret key in the secrets file": (
        GOOD_SECRETS + f'[venue.x]\napi_secrte = "{CANARY["misspelled"]}"\n', {}, SIM_CFG),
    "misspelled key with an innocent name": (
        GOOD_SECRETS + f'[ops]\nhots = "{CANARY["misspelled"]}"\n', {}, SIM_CFG),
    "secrets file not valid TOML": (GOOD_SECRETS.replace('c3d4"', "c3d4"), {}, SIM_CFG),
    "environment section not valid JSON": (
        GOOD_SECRETS, {"SCALPER__OPS": '{"token": "' + CANARY["misspelled"]}, SIM_CFG),
    "environment section with a bad value": (
        GOOD_SECRETS, {"SCALPER__OPS__ALERTS": json.dumps({"webhook_url": CANARY["misspelled"], "kinds": ["x"]})},
        SIM_CFG),
    "a secret pasted into a non-secret key": (
        GOOD_SECRETS, {"SCALPER__OPS__ALERTS__TELEGRAM_API_URL": CANARY["ops.alerts.bot_token"]}, SIM_CFG),
    "a secret of the wrong type": (
        GOOD_SECRETS + f'[ops]\ntoken = ["{CANARY["misspelled"]}"]\n', {"SCALPER__OPS__TOKEN": "<unset>"}, SIM_CFG),
    "secret in the config file": (GOOD_SECRETS, {}, SIM_CFG.replace(
        '[venue]\n', f'[venue]\napi_key = "{CANARY["misspelled"]}"\n', 1)),
    "production URL refused by the guard": (
        GOOD_SECRETS, {"SCALPER__VENUE__REST_URL": "https://fapi.binance.com"}, SIM_CFG),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("command", ["check-config", "run"])
def test_config_errors_never_show_a_secret(tmp_path: Path, case: str, command: str) -> None:
    secrets_toml, extra, cfg_text = CASES[case]
    cfg = tmp_path / "c.toml"
    cfg.write_text(cfg_text)
    argv = [sys.executable, "-m", "bot", command, "-c", str(cfg)] + (["--no-view", "--for", "5"]
                                                                       if command == "run" else [])
    r = subprocess.run(argv, env=_env(tmp_path, secrets_toml, **extra), capture_output=True, text=True,
                       timeout=60, cwd=tmp_path)
    assert r.returncode == 2, (r.returncode, r.stdout[-500:], r.stderr[-2000:])
    assert r.stderr.startswith("error: ") and "Traceback" not in r.stderr, r.stderr
    assert _canaries_in(r.stdout + r.stderr) == [], r.stderr
    assert not (tmp_path / "state").exists()  # refused before anything was written


def test_check_config_output_and_json_redact_every_secret(tmp_path: Path) -> None:
    for extra in ([], ["--json"]):
        r = subprocess.run([sys.executable, "-m", "bot", "check-config", "-c", str(ROOT / "config" / "default.toml"),
                            *extra], env=_env(tmp_path, GOOD_SECRETS), capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert _canaries_in(r.stdout + r.stderr) == []
        assert r.stdout.count("***") >= 5  # api key, api secret, ops token, bot token, webhook URL


# ---- a running bot ----------------------------------------------------------------------------------------
class _Sink(BaseHTTPRequestHandler):
    got: ClassVar[list[tuple[str, bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        _Sink.got.append((self.path, body))
        out = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args: object) -> None:
        pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _http(url: str, method: str = "GET", token: str = "", body: bytes | None = None) -> tuple[int, str]:
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_a_running_bot_never_shows_a_secret(tmp_path: Path) -> None:
    _Sink.got = []
    sink = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    sink_url = f"http://127.0.0.1:{sink.server_address[1]}"
    ops_port = _free_port()
    secrets_toml = GOOD_SECRETS.replace("http://127.0.0.1:9", sink_url)
    cfg = tmp_path / "c.toml"
    cfg.write_text((ROOT / "config" / "default.toml").read_text())
    env = _env(tmp_path, secrets_toml, SCALPER__OPS__PORT=str(ops_port), SCALPER__LOG__FORMAT="json",
               SCALPER__LOG__LEVEL="DEBUG", SCALPER__OPS__ALERTS__TELEGRAM_API_URL=sink_url,
               SCALPER__OPS__ALERTS__TELEGRAM_CHAT_ID="42")
    proc = subprocess.Popen([sys.executable, "-m", "bot", "run", "-c", str(cfg), "--no-view", "--for", "30"],
                            env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen: list[str] = []
    try:
        base = f"http://127.0.0.1:{ops_port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # bounded: the ops endpoint comes up within a few seconds
            try:
                if _http(base + "/health")[0] in (200, 503):
                    break
            except OSError:
                time.sleep(0.1)
        token = CANARY["ops.token"]
        status = _http(base + "/status", token=token)
        assert status[0] == 200, status
        seen += [status[1], _http(base + "/metrics")[1], _http(base + "/health")[1]]
        halt = _http(base + "/control/halt", "POST", token, b'{"reason": "canary halt"}')
        assert halt[0] == 200, halt
        seen.append(halt[1])
        for _ in range(100):  # bounded: the alert drainer posts within milliseconds
            if len(_Sink.got) >= 2:
                break
            time.sleep(0.05)
        # a SIGHUP reload of a config that now carries a misspelled secret: refused, logged
        cfg.write_text(cfg.read_text() + f'\n[execution.x]\ntokne = "{CANARY["misspelled"]}"\n')
        proc.send_signal(signal.SIGHUP)
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        sink.shutdown()
    assert proc.returncode == 0, err[-2000:]
    assert "reload_refused" in out + err  # the reload path ran and logged its error
    bodies = [b.decode() for _p, b in _Sink.got]
    assert any("canary halt" in b for b in bodies), bodies  # the alert went out, to both sinks
    assert {p for p, _b in _Sink.got} == {f"/{CANARY['ops.alerts.webhook_url']}",
                                          f"/bot{CANARY['ops.alerts.bot_token']}/sendMessage"}
    journal = tmp_path / "state" / "journal.sqlite"
    db = sqlite3.connect(journal)
    rows = [repr(r) for t in ("config", "trades", "legs", "order_events", "fills", "state_changes", "denials",
                              "rejections") for r in db.execute(f"SELECT * FROM {t}")]
    db.close()
    assert any("***" in r for r in rows)  # the config row is there, redacted
    files = [p.read_text(errors="replace") for p in (tmp_path / "state").iterdir()
             if p.is_file() and p.suffix in (".log", ".json", ".txt")]
    everything = {"stdout": out, "stderr": err, "status/metrics/health/control": "\n".join(seen),
                  "alert bodies": "\n".join(bodies), "journal": "\n".join(rows), "state files": "\n".join(files)}
    leaks = {where: _canaries_in(text) for where, text in everything.items() if _canaries_in(text)}
    assert leaks == {}
    assert out.strip() or err.strip()  # the bot did log (JSON lines), so the check above means something
