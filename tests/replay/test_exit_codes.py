"""Honest exit codes (issue 13 item 4): every command that reads sessions exits non-zero with one clear
line naming the file when a file is missing, unreadable, garbage, or a book never went LIVE; partial
damage is one warning with file and line and the rest is still used. Synthetic files, in process:
~20-100 ms a case."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson
import pytest

from bot.__main__ import main

COMMANDS = [["check-data"], ["backtest"], ["signals"], ["features", "--csv", "-"]]
_T0 = 1_723_161_255_000_000_000
_MS = 1_000_000


def _diff(u: int, t_ms: int, bid: str = "100.0", ask: str = "100.1") -> bytes:
    return orjson.dumps({"stream": "btcusdt@depth@0ms", "data": {
        "e": "depthUpdate", "E": t_ms, "T": t_ms, "s": "BTCUSDT", "U": u, "u": u, "pu": u - 1,
        "b": [[bid, "1.000"]], "a": [[ask, "1.000"]]}})


def _trade(tid: int, t_ms: int) -> bytes:
    return orjson.dumps({"stream": "btcusdt@trade", "data": {
        "e": "trade", "E": t_ms, "T": t_ms, "s": "BTCUSDT", "t": tid, "p": "100.0", "q": "0.010", "X": "MARKET",
        "m": False}})


def _session(snapshot: bool = True, seconds: int = 5) -> list[bytes]:
    """A small live BTCUSDT session: a REST snapshot, diffs every 100 ms chained from it, a trade a second."""
    lines = []
    t = _T0
    if snapshot:
        snap = {"lastUpdateId": 1001, "E": t // _MS, "T": t // _MS,
                "bids": [["100.0", "5.000"], ["99.9", "5.000"]], "asks": [["100.1", "5.000"], ["100.2", "5.000"]]}
        lines.append(b"%d %s\n" % (t, orjson.dumps(snap)))
    for i in range(seconds * 10):
        t += 100 * _MS
        lines.append(b"%d %s\n" % (t, _diff(1001 + i, t // _MS)))
        if i % 10 == 5:
            lines.append(b"%d %s\n" % (t + 1, _trade(i, t // _MS)))
    return lines


def _write(path: Path, lines: list[bytes]) -> str:
    with gzip.open(path, "wb") as fh:
        fh.write(b"".join(lines))
    return str(path)


def _run(cmd: list[str], f: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    rc = main([cmd[0], f, *cmd[1:]])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return rc, [ln for ln in err.splitlines() if ln.startswith(("error:", "warning:"))]


def _make(case: str, tmp_path: Path) -> str:
    if case == "missing":
        return str(tmp_path / "nope.gz")
    if case == "directory":
        (tmp_path / "adir.gz").mkdir()
        return str(tmp_path / "adir.gz")
    if case == "garbage":
        p = tmp_path / "junk.gz"
        p.write_bytes(bytes(range(256)) * 40)  # not gzip at all
        return str(p)
    if case == "garbage_lines":
        return _write(tmp_path / "lines.gz", [b"hello world\n", b"12 {not json\n", b"\x00\x01\x02\n"])
    if case == "empty":
        p = tmp_path / "empty.gz"
        p.write_bytes(b"")
        return str(p)
    if case == "never_live":
        return _write(tmp_path / "nosnap.gz", _session(snapshot=False))
    raise AssertionError(case)


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: c[0])
@pytest.mark.parametrize(("case", "rc_want", "says"), [
    ("missing", 2, "no such file"),
    ("directory", 2, "is a directory"),
    ("garbage", 1, "no market message could be read"),
    ("garbage_lines", 1, "no market message could be read"),
    ("empty", 1, "no market message could be read"),
    ("never_live", 1, "BTCUSDT: the book never went LIVE in "),
])
def test_a_file_that_cannot_be_used_is_one_line_naming_it(cmd: list[str], case: str, rc_want: int, says: str,
                                                          tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = _make(case, tmp_path)
    rc, lines = _run(cmd, f, capsys)
    assert rc == rc_want, (rc, lines)
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ") and f in lines[0] and says in lines[0], lines


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: c[0])
def test_a_book_that_goes_live_is_no_error(cmd: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # the control of the cases above: the same synthetic session with its snapshot is clean
    rc, lines = _run(cmd, _write(tmp_path / "ok.gz", _session()), capsys)
    assert rc == 0 and lines == [], lines


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: c[0])
@pytest.mark.parametrize("damage", ["bad_lines", "truncated"])
def test_partial_damage_names_file_and_line_and_the_rest_is_used(cmd: list[str], damage: str, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    lines = _session(seconds=8)
    if damage == "bad_lines":
        lines[20:20] = [b"garbage line\n", b"%d {\"stream\":\"btcusdt@depth\n" % (_T0 + 1)]
        f = _write(tmp_path / "damaged.gz", lines)
        where = f"{f}:21: "
    else:
        full = gzip.compress(b"".join(lines))
        p = tmp_path / "cut.gz"
        p.write_bytes(full[: len(full) * 2 // 3])  # a recording cut off mid-write
        f = str(p)
        where = f"{f}:"
    rc, out = _run(cmd, f, capsys)
    if cmd[0] == "check-data":  # the data checker lists every bad line, and fails
        assert rc == 1 and out and all(ln.startswith(f"error: {f}:") for ln in out), out
        assert any(where in ln for ln in out), out
    else:  # the others warn once, with file and first line, and use the rest
        assert rc == 0, out
        assert len(out) == 1 and out[0].startswith(f"warning: {f}: ") and "the rest used" in out[0], out
        assert where in out[0], out
    # the rest was used: the book went LIVE (no never-LIVE line) from the lines before and after the damage
    assert not any("never went LIVE" in ln for ln in out)
