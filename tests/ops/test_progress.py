"""bot.progress: a bar with ETA on a terminal, nothing anywhere else (--json, pipes, CI logs)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.progress import Progress, count_lines, format_duration, tracked
from tests.conftest import SESSIONS, needs_data


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bar_eta_and_redraw_throttle() -> None:
    now = [100.0]
    out = _Tty()
    bar = Progress(1000, "replay", stream=out, min_interval_s=0.5, check_every=1, clock=lambda: now[0])
    assert bar.enabled
    now[0] = 110.0  # 10 s for the first 250: 30 s left
    bar.update(250)
    assert bar.eta_s() == pytest.approx(30.0)
    assert out.getvalue().startswith("\rreplay [#######") and " 25.0% " in out.getvalue()
    assert "ETA 0:30" in out.getvalue() and "0:10 elapsed" in out.getvalue()
    n = out.getvalue().count("\r")
    bar.advance()  # 0 s later: not redrawn (at most one redraw per min_interval_s)
    assert out.getvalue().count("\r") == n
    now[0] = 111.0
    bar.advance()
    assert out.getvalue().count("\r") == n + 1
    bar.close()
    assert out.getvalue().endswith("\n") and "100.0%" in out.getvalue().splitlines()[-1]
    assert format_duration(3725) == "1:02:05"


def test_nothing_when_the_stream_is_not_a_terminal() -> None:
    out = io.StringIO()
    with Progress(10, "x", stream=out, check_every=1) as bar:
        for _ in range(10):
            bar.advance()
    assert not bar.enabled and out.getvalue() == ""


def test_tracked_iterates_everything_and_ends_the_line() -> None:
    out = _Tty()
    assert list(tracked(range(5000), 5000, "sweep", stream=out)) == list(range(5000))
    assert out.getvalue().endswith("\n") and "sweep [" in out.getvalue() and "100.0%" in out.getvalue()
    quiet = io.StringIO()
    assert sum(tracked(range(10), 10, "x", stream=quiet)) == 45 and quiet.getvalue() == ""


@needs_data
def test_count_lines_of_a_recorded_session() -> None:
    import gzip

    path = SESSIONS["btcusdt_20240808"][0]
    with gzip.open(path, "rb") as fh:
        expected = sum(1 for _ in fh)
    assert count_lines([str(path)]) == expected > 1000


@needs_data
def test_backtest_shows_the_bar_on_a_terminal_only(tmp_path: Path) -> None:
    """`scalper backtest` under a pseudo-terminal draws the bar on stderr; piped (--json) nothing but JSON."""
    import gzip

    # the session's first 20,000 lines: the bar does not need the whole day (the test stays ~2 s)
    short = tmp_path / "short.gz"
    with gzip.open(SESSIONS["btcusdt_20240808"][0], "rb") as src, gzip.open(short, "wb") as dst:
        for _, line in zip(range(20_000), src):
            dst.write(line)
    files = [str(short)]
    cmd = [sys.executable, "-m", "bot", "backtest", *files]
    piped = subprocess.run([*cmd, "--json"], capture_output=True, text=True, timeout=120)
    assert piped.returncode == 0, piped.stderr[-500:]
    assert "ETA" not in piped.stderr and piped.stdout.lstrip().startswith("{")
    out = json.loads(piped.stdout)
    assert next(iter(out)) == "verdict" and out["verdict"] == out["summary"].get("verdict", out["verdict"])
    pid, fd = pty.fork()
    if pid == 0:  # child: stdin/stdout/stderr are the pty
        os.execv(sys.executable, cmd)
    out = b""
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            r, _, _ = select.select([fd], [], [], 1.0)
            if r:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 9)
        os.waitpid(pid, 0)
        os.close(fd)
    text = out.decode(errors="replace")
    assert "backtest [" in text and "ETA" in text and "100.0%" in text, text[-800:]


@needs_data
def test_replays_draw_the_bar_when_asked_and_on_a_terminal_only() -> None:
    """check-data, signals and features drive their replays through bot.progress.replay_progress: a bar on a
    terminal (here a stream that says it is one), nothing on a pipe, and library callers (the research sweep,
    with a bar of its own) get the records untouched unless they ask."""
    from bot.progress import replay_progress
    from bot.replay.check import check_files

    files = SESSIONS["btcusdt_20240808"]
    recs = list(range(5))
    assert replay_progress(recs, files, "x") is recs and replay_progress(recs, files, "x", None, io.StringIO()) is recs
    tty = _Tty()
    assert list(replay_progress(recs, files, "check-data", None, tty)) == recs
    assert "check-data [" in tty.getvalue() and "100.0%" in tty.getvalue() and tty.getvalue().endswith("\n")
    # the real command path: the bar goes to stderr when asked, the result is the same as without it
    err = _Tty()
    with contextlib.redirect_stderr(err):
        shown = check_files(files, progress=True)
    assert "check-data [" in err.getvalue() and "ETA" in err.getvalue()
    assert shown == check_files(files)
