"""Deployment files: the Dockerfile's install steps in a clean venv, the systemd unit, the dashboard."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from bot.ops.metrics import build_registry
from bot.ops.state import RuntimeState

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def _docker_run_lines() -> list[str]:
    """The RUN commands of the build stage, continuation lines joined."""
    text = re.sub(r"\s*\\\n\s*", " ", DOCKERFILE)
    build = text.split("AS runtime")[0]
    return [ln[4:].strip() for ln in build.splitlines() if ln.startswith("RUN ")]


def _sh(cmd: list[str], cwd: Path, timeout_s: float) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SCALPER__", "VIRTUAL_ENV", "PYTHON"))}
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout_s)
    assert r.returncode == 0, f"{' '.join(cmd)} -> {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


@pytest.mark.slow
def test_dockerfile_install_steps_in_a_clean_venv(tmp_path: Path):
    runs = _docker_run_lines()
    # The commands replayed below are exactly these Dockerfile steps (keep the two in sync).
    assert runs[0] == "python -m venv /opt/scalper"
    assert runs[1] == "/opt/scalper/bin/pip install --require-hashes -r requirements.lock"
    assert runs[2].startswith("/opt/scalper/bin/pip install --no-deps . && /opt/scalper/bin/python -c "
                              '"import uvloop, orjson, bot"')
    assert 'ENTRYPOINT ["scalper"]' in DOCKERFILE and 'CMD ["run", "-c", "/config/default.toml"]' in DOCKERFILE
    # COPY steps of the build stage: the lock, then pyproject.toml + README.md, then bot/.
    src = tmp_path / "src"
    src.mkdir()
    for name in ("requirements.lock", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "bot", src / "bot", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    venv = tmp_path / "opt-scalper"
    py = venv / "bin" / "python"

    def dockerfile_cmd(line: str) -> list[str]:
        return [str(venv / "bin" / p[len("/opt/scalper/bin/"):]) if p.startswith("/opt/scalper/bin/") else p
                for p in line.split()]

    _sh([sys.executable, "-m", "venv", str(venv)], src, 60)
    _sh([*dockerfile_cmd(runs[1]), "-q"], src, 150)
    install, check, compile_ = runs[2].split(" && ")
    assert check == '/opt/scalper/bin/python -c "import uvloop, orjson, bot"'
    _sh([*dockerfile_cmd(install), "-q"], src, 120)
    _sh([str(py), "-c", "import uvloop, orjson, bot"], src, 30)
    _sh(dockerfile_cmd(compile_.replace("/opt/scalper/lib", str(venv / "lib"))), src, 120)
    # The image's entrypoint is the venv's console script, run by the venv's interpreter.
    scalper = venv / "bin" / "scalper"
    assert scalper.read_text().splitlines()[0].startswith(f"#!{py}")  # python or python3.11
    out = _sh([str(scalper), "--help"], tmp_path, 30).stdout
    assert "check-config" in out and "status" in out
    out = _sh([str(scalper), "check-config", "-c", str(ROOT / "config" / "default.toml")], tmp_path, 30).stdout
    assert "default.toml: OK" in out
    # The runtime set only: none of the test/lint tools is in the image's venv.
    for tool in ("pytest", "mypy", "ruff", "hypothesis", "importlinter"):
        r = subprocess.run([str(py), "-c", f"import {tool}"], capture_output=True, text=True, timeout=30)
        assert r.returncode != 0 and "ModuleNotFoundError" in r.stderr, f"{tool} is installed in the image"
    # Installed as a package, not from the source tree.
    where = _sh([str(py), "-c", "import bot; print(bot.__file__)"], tmp_path, 30).stdout
    assert str(venv) in where


def test_systemd_unit_verifies(tmp_path: Path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed on this machine")
    unit = (ROOT / "deploy" / "scalper.service").read_text()
    for directive in ("NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
                      "ReadWritePaths=/var/lib/scalper", "EnvironmentFile=/etc/scalper/secrets.env",
                      "Restart=on-failure"):
        assert directive in unit, directive
    # verify insists that ExecStart binaries exist: point them at this machine's scalper.
    here = shutil.which("scalper", path=str(Path(sys.executable).parent)) or sys.executable
    path = tmp_path / "scalper.service"
    path.write_text(unit.replace("/opt/scalper/bin/scalper", here))
    r = subprocess.run([analyze, "verify", str(path)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "scalper.service" not in r.stderr, r.stderr  # no warnings about our unit either


def test_dashboard_and_prometheus_use_metrics_the_bot_exports():
    state = RuntimeState(now_ns=1)  # every family with at least one sample
    state.set_info(name="x")
    state.set_book_status("BTCUSDT", "LIVE", "ok", 1)
    state.on_message("BTCUSDT", "depth", 1)
    state.set_user_stream(True, "ok", 1)
    state.on_order("LIMIT", "ack")
    state.on_denial("spread")
    state.on_error("venue", "timeout", 1)
    state.on_trade_closed("STOP_LOSS", -1.0)
    state.set_position("BTCUSDT", side="long", qty=0.01, entry_price=1.0)

    class _Alerts:
        def __init__(self) -> None:
            self.stats = {"sent": 1}

    exposed = {s.name for f in text_string_to_metric_families(
        generate_latest(build_registry(state, lambda: 2, _Alerts())).decode()) for s in f.samples}
    dash = json.loads((ROOT / "deploy" / "grafana" / "dashboards" / "scalper.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    used = set(re.findall(r"scalper_[a-z_]+", " ".join(exprs)))
    assert used and used <= exposed, used - exposed
    # operators see single-symbol halts and restart reconciliation, not only the global trading state
    assert {"scalper_symbol_halted", "scalper_reconcile_state", "scalper_reconcile_actions_total"} <= used
    prom = (ROOT / "deploy" / "prometheus.yml").read_text()
    assert "scalper:9310" in prom and "metrics_path: /metrics" in prom
    compose = (ROOT / "deploy" / "docker-compose.yml").read_text()
    for service in ("scalper:", "prometheus:", "grafana:"):
        assert f"\n  {service}" in compose, service
