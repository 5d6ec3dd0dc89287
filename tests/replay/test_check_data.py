"""check-data on the real recorded sessions, and on damaged files."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson
import pytest

from bot.__main__ import main
from bot.replay.check import check_files
from bot.replay.reader import LineError, read_session
from tests.conftest import BINANCE, BYBIT, SESSIONS, needs_data

# bookTickers checked per session, as PROVENANCE.md states them (independently computed upstream)
EXPECTED_BBO = {"btcusdt_20240718": 625, "ethusdt_20240718": 834, "btcusdt_20240808": 629, "ethusdt_20240808": 551}


@needs_data
@pytest.mark.parametrize("session", sorted(SESSIONS))
def test_real_session_has_no_gap_no_cross_and_matches_every_book_ticker(session: str) -> None:
    res = check_files([str(p) for p in SESSIONS[session]])
    assert res["errors"] == 0
    (sym, r), = res["symbols"].items()
    assert sym == session.split("_")[0].upper()
    assert r["gaps"] == 0 and r["resyncs"] == 0 and r["crossed"] == 0
    assert r["bbo_mismatched"] == 0
    assert r["bbo_checked"] == EXPECTED_BBO[session]
    assert r["applied"] >= r["depth_events"] - 10  # only the few pre-snapshot events are dropped
    assert r["status"] == "LIVE"


@needs_data
def test_cryptofeed_capture_with_rest_sibling_syncs_four_symbols() -> None:
    res = check_files([str(BINANCE / "cryptofeed_BINANCE_FUTURES.ws.1.0")])
    assert sorted(res["symbols"]) == ["AKROUSDT", "CTKUSDT", "KEEPUSDT", "SUSHIUSDT"]
    for r in res["symbols"].values():
        assert r["gaps"] == 0 and r["crossed"] == 0 and r["bbo_mismatched"] == 0 and r["bbo_checked"] > 0


@needs_data
def test_bybit_sample_syncs_with_contiguous_u() -> None:
    res = check_files([str(BYBIT / "nautilus_xrpusdt-ob500.data.zip")])
    r = res["symbols"]["XRPUSDT"]
    assert r["snapshots"] == 1 and r["applied"] == 49 and r["gaps"] == 0 and r["status"] == "LIVE"


def _write_gz(path: Path, lines: list[bytes]) -> None:
    with gzip.open(path, "wb") as fh:
        fh.write(b"".join(lines))


@needs_data
def test_corrupt_lines_are_reported_with_line_numbers_and_the_rest_is_checked(tmp_path: Path, capsys) -> None:
    src = SESSIONS["btcusdt_20240808"][0]
    with gzip.open(src, "rb") as fh:
        lines = [next(fh) for _ in range(3000)]
    lines[1500] = b"1723161255999999999 {\"stream\":\"btcusdt@bookTicker\",\"data\":{\"e\":\n"  # cut JSON
    lines[1600] = b"notatime {}\n"
    bad = tmp_path / "bad.gz"
    _write_gz(bad, lines)
    res = check_files([str(bad)])
    assert res["errors"] == 2
    assert any(":1501:" in e and "invalid JSON" in e for e in res["error_lines"])
    assert any(":1601:" in e and "receive time" in e for e in res["error_lines"])
    r = res["symbols"]["BTCUSDT"]
    assert r["gaps"] == 0 and r["bbo_checked"] > 0 and r["bbo_mismatched"] == 0
    # the CLI says so too, and exits non-zero
    assert main(["check-data", str(bad), "--json"]) == 1
    out = orjson.loads(capsys.readouterr().out)
    assert out["symbols"]["BTCUSDT"]["applied"] == r["applied"]


@needs_data
def test_truncated_gzip_is_reported_and_what_was_read_is_kept(tmp_path: Path) -> None:
    data = SESSIONS["ethusdt_20240808"][0].read_bytes()
    cut = tmp_path / "cut.gz"
    cut.write_bytes(data[: len(data) // 3])
    items = list(read_session([str(cut)]))
    errs = [i for i in items if isinstance(i, LineError)]
    assert len(errs) == 1 and "truncated" in errs[0].message
    assert len(items) > 1000
    res = check_files([str(cut)])
    assert res["errors"] == 1 and res["symbols"]["ETHUSDT"]["applied"] > 100


@needs_data
def test_dropped_depth_message_is_a_gap_in_check_data(tmp_path: Path) -> None:
    src = SESSIONS["btcusdt_20240808"][0]
    with gzip.open(src, "rb") as fh:
        lines = list(fh)[:5000]
    depth_idx = [i for i, ln in enumerate(lines) if b"@depth" in ln]
    del lines[depth_idx[200]]  # lose one depth message after the book is live
    p = tmp_path / "gap.gz"
    _write_gz(p, lines)
    r = check_files([str(p)])["symbols"]["BTCUSDT"]
    assert r["gaps"] == 1 and r["resyncs"] == 1
    assert r["status"] == "SYNCING"  # no new snapshot in the file: the book stays out of use
