"""Each start-up error a new user meets is one line on stderr, a non-zero exit and no traceback, and `scalper run`
reports it before it connects to anything (issue 15, "Errors"). Real processes, each a second or two."""

from __future__ import annotations

import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
import tomllib
from pathlib import Path

import pytest

from bot.errors import ConfigError
from bot.journal.lock import lock_journal

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT_S = 60


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(("SCALPER__", "SCALPER_OPS"))}
    env.update(SCALPER__APP__STATE_DIR=str(tmp_path / "state"), SCALPER__OPS__PORT="0", PYTHONPATH=str(ROOT))
    env.update(extra)
    return env


def _scalper(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=TIMEOUT_S)


def _one_line(r: subprocess.CompletedProcess[str], code: int = 2) -> str:
    """The error line; asserts the exit code, exactly one stderr line and no traceback."""
    assert r.returncode == code, (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr and "Warning:" not in r.stderr, r.stderr[-2000:]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr[-2000:]
    assert lines[0].startswith("error: ")
    return lines[0]


class _Listener:
    """A TCP port that counts the connections made to it (the 'exchange' the bot must not reach)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]

    def connections(self) -> int:
        n = 0
        while True:
            try:
                c, _ = self.sock.accept()
            except BlockingIOError:
                return n
            c.close()
            n += 1

    def close(self) -> None:
        self.sock.close()


def test_busy_ops_port_is_one_line_before_the_exchange_is_contacted(tmp_path: Path) -> None:
    exchange, ops = _Listener(), _Listener()  # ops: something already listens on the bot's ops port
    try:
        url = f"127.0.0.1:{exchange.port}"
        env = _env(tmp_path, SCALPER__OPS__PORT=str(ops.port), SCALPER__VENUE__REST_URL=f"http://{url}",
                   SCALPER__VENUE__WS_PUBLIC_URL=f"ws://{url}/public", SCALPER__VENUE__WS_MARKET_URL=f"ws://{url}/market",
                   SCALPER__VENUE__WS_PRIVATE_URL=f"ws://{url}/private")
        line = _one_line(_scalper(["run", "-c", "config/exchange-sim.toml", "--no-view", "--for", "5"], env))
        assert f"ops port 127.0.0.1:{ops.port} is not free" in line and "SCALPER__OPS__PORT" in line
        assert exchange.connections() == 0  # checked before any connection
        assert ops.connections() == 0
        # control: with a free ops port the same bot does reach this 'exchange' (so the 0 above means something)
        env["SCALPER__OPS__PORT"] = "0"
        bot = subprocess.Popen([sys.executable, "-m", "bot", "run", "-c", "config/exchange-sim.toml", "--no-view",
                                "--for", "30"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + TIMEOUT_S
            while exchange.connections() == 0:
                assert bot.poll() is None and time.monotonic() < deadline, "the bot never contacted the exchange"
                time.sleep(0.05)
        finally:
            bot.kill()
            bot.wait(10)
    finally:
        exchange.close()
        ops.close()


def test_two_bots_cannot_share_one_journal(tmp_path: Path) -> None:
    env = _env(tmp_path)
    lock_file = tmp_path / "state" / "journal.sqlite.lock"
    first = subprocess.Popen([sys.executable, "-m", "bot", "run", "--no-view", "--for", "30"], cwd=ROOT, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while not (lock_file.exists() and lock_file.read_text().strip() == str(first.pid)):
            assert first.poll() is None and time.monotonic() < deadline, "the first bot did not take the lock"
            time.sleep(0.05)
        line = _one_line(_scalper(["run", "--no-view", "--for", "5"], env))
        assert f"journal {tmp_path / 'state' / 'journal.sqlite'} is in use by another scalper (pid {first.pid})" \
            in line
    finally:
        first.terminate()
        try:
            first.wait(TIMEOUT_S)
        except subprocess.TimeoutExpired:
            first.kill()
            first.wait(10)
    # once it is gone (however it ended), the journal is free again
    lock = lock_journal(str(tmp_path / "state" / "journal.sqlite"))
    assert lock is not None
    lock.release()


def test_journal_lock_is_freed_by_a_killed_holder(tmp_path: Path) -> None:
    path = str(tmp_path / "j.sqlite")
    holder = subprocess.Popen([sys.executable, "-c", "import sys; from bot.journal.lock import lock_journal; "
                               f"l = lock_journal({path!r}); print('held', flush=True); sys.stdin.read()"],
                              cwd=ROOT, env=_env(tmp_path), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(ConfigError, match=f"pid {holder.pid}"):
            lock_journal(path)
    finally:
        holder.kill()
        holder.wait(10)
    lock = lock_journal(path)  # kill -9 left no stale lock
    assert lock is not None
    lock.release()


def test_bad_environment_override_names_the_variable_not_the_file(tmp_path: Path) -> None:
    env = _env(tmp_path, SCALPER__RISK__RISK_PER_TRADE_PCT="lots")
    for cmd in (["check-config", "-c", "config/default.toml"], ["run", "-c", "config/default.toml", "--no-view"]):
        line = _one_line(_scalper(cmd, env))
        assert line.startswith("error: invalid configuration in the environment: SCALPER__RISK__RISK_PER_TRADE_PCT:")
        assert "'lots'" in line and "default.toml" not in line


def test_unknown_environment_section_or_key_is_an_error_naming_the_variable(tmp_path: Path) -> None:
    line = _one_line(_scalper(["check-config", "-c", "config/default.toml"], _env(tmp_path, SCALPER__RSIK__X="1")))
    assert "SCALPER__RSIK__X" in line and "unknown config section 'rsik'" in line
    assert "did you mean SCALPER__RISK__X?" in line
    line = _one_line(_scalper(["check-config", "-c", "config/default.toml"],
                              _env(tmp_path, SCALPER__RISK__MAX_LEVERAGEE="1")))
    assert "SCALPER__RISK__MAX_LEVERAGEE" in line and "did you mean risk.max_leverage?" in line


@pytest.mark.parametrize(("section", "key", "var"), [
    ("ops", "token", "SCALPER__OPS__TOKEN"),
    ("ops.alerts", "webhook_url", "SCALPER__OPS__ALERTS__WEBHOOK_URL"),
    ("ops.alerts", "bot_token", "SCALPER__OPS__ALERTS__BOT_TOKEN"),
    ("venue", "api_secret", "SCALPER__VENUE__API_SECRET"),
])
def test_secret_in_a_config_file_gets_the_hint_for_its_own_key(tmp_path: Path, section: str, key: str,
                                                                var: str) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[{section}]\n{key} = "SEKRET-42-canary"\n')
    line = _one_line(_scalper(["check-config", "-c", str(cfg)], _env(tmp_path)))
    assert f"{section}.{key} must not be in a config file" in line
    assert f"set {var} in the environment or put {key} under [{section}] in venue.secrets_file" in line
    assert "SEKRET-42" not in line
    if section != "venue":
        assert "SCALPER__VENUE__API" not in line  # not the venue key's hint


def test_group_readable_secrets_file_is_one_warning_line(tmp_path: Path) -> None:
    sec = tmp_path / "secrets.toml"
    sec.write_text('[venue]\napi_key = "k-1234"\n')
    sec.chmod(0o640)
    r = _scalper(["check-config", "-c", "config/default.toml"], _env(tmp_path, SCALPER__VENUE__SECRETS_FILE=str(sec)))
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip().splitlines() == [f"warning: secrets file {sec} is readable by group/others; chmod 600 it"]


def test_check_config_judges_symbols_exactly_as_run_does(tmp_path: Path) -> None:
    """Both call the run path's own instrument check: whatever `run` says about a symbol, check-config says first."""
    for mode in ("sim", "paper"):
        cfg = tmp_path / f"{mode}.toml"
        cfg.write_text(f'[app]\nmode = "{mode}"\n[venue]\nsymbols = ["FOOUSDT"]\n')
        check = _scalper(["check-config", "-c", str(cfg)], _env(tmp_path))
        run = _scalper(["run", "-c", str(cfg), "--no-view", "--for", "1"], _env(tmp_path))
        if check.returncode != 0:
            assert _one_line(check) == _one_line(run)  # the same line, and run stops before connecting
            assert "FOOUSDT" in _one_line(check)
        else:  # the venue accepts the symbol (derived instrument rules): run must not fail on it either
            assert "venue.symbols" not in run.stderr, run.stderr[-2000:]


def test_version(tmp_path: Path) -> None:
    r = _scalper(["--version"], _env(tmp_path))
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert r.returncode == 0 and r.stdout.strip() == f"scalper {version}", (r.stdout, r.stderr)


def test_status_follows_the_bots_ops_port_override(tmp_path: Path) -> None:
    seen: list[tuple[str, str]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append((self.path, self.headers.get("Authorization", "")))
            body = json.dumps({"health": {"status": "ok", "reasons": []}, "trading": {"state": "ACTIVE"}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    dead = _Listener()
    dead.close()  # a port nobody answers on: where $SCALPER_OPS_URL points
    try:
        env = _env(tmp_path, SCALPER__OPS__PORT=str(server.server_port), SCALPER__OPS__TOKEN="tok-123456",
                   SCALPER_OPS_URL=f"http://127.0.0.1:{dead.port}")
        r = _scalper(["status", "--json", "--timeout-s", "10"], env)
        assert seen and seen[0] == ("/status", "Bearer tok-123456"), (seen, r.stderr)
        assert r.returncode in (0, 1) and json.loads(r.stdout)["health"]["status"] == "ok"
        # without the port override, $SCALPER_OPS_URL still counts
        env.pop("SCALPER__OPS__PORT")
        env["SCALPER_OPS_URL"] = f"http://127.0.0.1:{server.server_port}"
        r = _scalper(["status", "--json", "--timeout-s", "10"], env)
        assert len(seen) == 2 and r.returncode in (0, 1)
    finally:
        server.shutdown()
        server.server_close()


async def test_ops_server_on_a_busy_port_raises_one_line_config_error() -> None:
    from bot.ops.server import OpsServer
    from bot.ops.state import RuntimeState
    from bot.settings.ops import OpsSection

    busy = _Listener()
    try:
        server = OpsServer(RuntimeState(now_ns=1), OpsSection(port=busy.port))
        with pytest.raises(ConfigError) as e:
            await server.start()
        assert f"ops port 127.0.0.1:{busy.port} is not free" in str(e.value) and "\n" not in str(e.value)
        await server.stop()  # nothing left to clean up, and no error for it
    finally:
        busy.close()
