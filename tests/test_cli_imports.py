"""The CLI imports only what a sub-command needs: no ccxt to print help, check data or record."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.__main__ import COMMANDS
from tests.conftest import ROOT, SESSIONS, needs_data


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run([sys.executable, "-X", "importtime", "-m", "bot", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def _imported(stderr: str) -> set[str]:
    # -X importtime lines: "import time: <self us> | <cumulative us> | <indented module name>"
    return {line.rsplit("|", 1)[1].strip() for line in stderr.splitlines() if line.startswith("import time:")}


def _assert_no_ccxt(mods: set[str]) -> None:
    assert mods, "no -X importtime output: the check would be vacuous"
    assert not {m for m in mods if m == "ccxt" or m.startswith("ccxt.")}


def test_help_does_not_import_ccxt_and_lists_every_command() -> None:
    p = _run("--help")
    assert p.returncode == 0, p.stderr[-2000:]
    _assert_no_ccxt(_imported(p.stderr))
    for name in COMMANDS:
        assert name in p.stdout, f"{name} missing from --help"


@needs_data
def test_check_data_does_not_import_ccxt(tmp_path: Path) -> None:
    small = tmp_path / "small.gz"
    with gzip.open(SESSIONS["btcusdt_20240808"][0], "rb") as src, gzip.open(small, "wb") as dst:
        for _ in range(400):
            dst.write(src.readline())
    p = _run("check-data", str(small))
    assert "BTCUSDT" in p.stdout, p.stderr[-2000:]
    mods = _imported(p.stderr)
    _assert_no_ccxt(mods)
    assert "bot.replay.check" in mods  # it did run the checker


@pytest.mark.parametrize("command", ["record", "check-config"])
def test_data_and_config_commands_do_not_import_ccxt(command: str) -> None:
    p = _run(command, "--help")
    assert p.returncode == 0, p.stderr[-2000:]
    _assert_no_ccxt(_imported(p.stderr))


def test_console_script_help_lists_every_command() -> None:
    script = Path(sys.executable).parent / "scalper"
    if not script.exists():
        pytest.skip("console script not installed in this environment")
    p = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert p.returncode == 0
    assert all(name in p.stdout for name in COMMANDS)


def test_the_benches_live_outside_the_bot_package_and_a_build_without_them_says_so(monkeypatch, capsys) -> None:
    """Issue 12: bench/ is out of the package the bot runs from (the Docker image copies bot/ only);
    `scalper bench` loads a benchmark by name and, in a build without the benches, says so in one line."""
    import argparse
    import importlib
    from pathlib import Path

    import bot
    from bot.cli import bench as bench_cli

    assert not (Path(bot.__file__).parent / "bench").exists()
    real = importlib.import_module

    def no_benches(name: str, *a: object, **kw: object) -> object:
        if name.startswith("bench"):
            raise ModuleNotFoundError(f"No module named {name.split('.')[0]!r}", name="bench")
        return real(name, *a, **kw)

    monkeypatch.setattr(bench_cli.importlib, "import_module", no_benches)
    assert bench_cli.run(argparse.Namespace(name="book", rest=[])) == 2
    assert capsys.readouterr().err.strip() == "error: benchmark 'book' is not available in this build"
