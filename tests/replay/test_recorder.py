"""Recorder: every line written exactly, rotation, clean shutdown on SIGTERM of `scalper record`."""

from __future__ import annotations

import asyncio
import gzip
import os
import signal
import sys
import threading
import time
from pathlib import Path

import orjson

from bot.replay.check import check_files
from bot.replay.reader import LineError, Record, read_session
from bot.replay.recorder import Recorder, part_path
from tests.conftest import ROOT, SESSIONS, needs_data
from tests.support import until
from tests.support.replay_server import BinanceReplayServer, load_binance_items


def _read_back(paths: list[str]) -> list[tuple[int, bytes]]:
    out = []
    for r in read_session(paths):
        assert isinstance(r, Record), r
        out.append((r.ts_recv_ns, r.raw))
    return out


def test_part_names() -> None:
    assert part_path("/x/rec.gz", 1) == "/x/rec-0001.gz"
    assert part_path("rec.jsonl.gz", 12) == "rec-0012.jsonl.gz"


def test_every_line_is_written_exactly_from_several_threads(tmp_path: Path) -> None:
    out = str(tmp_path / "rec.gz")
    rec = Recorder(out)
    sent: dict[int, bytes] = {}

    def producer(k: int) -> None:
        for i in range(5000):
            ts = k * 10**9 + i
            raw = orjson.dumps({"k": k, "i": i, "s": "x" * (i % 50)})
            sent[ts] = raw
            rec.write(raw, ts)

    threads = [threading.Thread(target=producer, args=(k,)) for k in (1, 2, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rec.write(b'{"a":\n1}', 7)  # a raw newline (whitespace) must not split the message
    rec.close()
    got = _read_back([out])
    assert len(got) == 15001 and rec.lines == 15001
    assert {ts: raw for ts, raw in got if ts != 7} == sent  # byte-exact, none lost, none extra
    assert dict(got)[7] == b'{"a": 1}' and orjson.loads(dict(got)[7]) == {"a": 1}
    with gzip.open(out, "rb") as fh:  # a complete gzip member (trailer written)
        assert fh.read().count(b"\n") == 15001


def test_rotation_by_size_and_by_time(tmp_path: Path) -> None:
    out = str(tmp_path / "rot.gz")
    rec = Recorder(out, rotate_bytes=20_000, compresslevel=1)
    for i in range(2000):
        rec.write(b'{"h":"' + os.urandom(300).hex().encode() + b'"}', i)  # incompressible
        if i % 100 == 0:
            time.sleep(0.002)  # let the writer see several batches
    rec.close()
    assert len(rec.paths) > 2 and rec.paths[0].endswith("rot-0001.gz") and rec.paths[1].endswith("rot-0002.gz")
    assert [ts for ts, _ in _read_back(rec.paths)] == list(range(2000))  # in order, none lost

    now = [0.0]
    rec = Recorder(str(tmp_path / "t.gz"), rotate_s=60, clock_s=lambda: now[0])
    for i in range(5):
        rec.write(b"{}", i)
    for _ in range(400):
        if rec.lines == 5:
            break
        time.sleep(0.005)
    now[0] = 61.0  # a minute later: the next line starts part 2
    for i in range(5, 10):
        rec.write(b"{}", i)
    rec.close()
    assert [os.path.basename(p) for p in rec.paths] == ["t-0001.gz", "t-0002.gz"]
    assert [ts for ts, _ in _read_back(rec.paths[:1])] == list(range(5))
    assert [ts for ts, _ in _read_back(rec.paths[1:])] == list(range(5, 10))


@needs_data
async def test_record_cli_sigterm_keeps_every_line_and_the_file_checks_clean(tmp_path: Path) -> None:
    items = load_binance_items([SESSIONS["btcusdt_20240808"], SESSIONS["ethusdt_20240808"]], 4000)
    async with BinanceReplayServer(items, speed=10) as srv:
        urls = srv.urls()
        cfg = tmp_path / "rec.toml"
        cfg.write_text(
            '[venue]\nenvironment = "exchange-sim"\n'
            + "".join(f'{k} = "{v}"\n' for k, v in urls.items())
            + '[market]\nbinance_trade_stream = "trade"\n[log]\nlevel = "WARNING"\n')
        out = tmp_path / "session.gz"
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "record", "--venue", "binance-usdm", "--symbols", "BTCUSDT,ETHUSDT",
            "--out", str(out), "-c", str(cfg), cwd=str(ROOT),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            await until(lambda: srv.done.is_set() and sum(srv.depth_requests.values()) >= 2, 30)
            await asyncio.sleep(0.5)  # let the last messages cross the loopback
            proc.send_signal(signal.SIGTERM)
            _, err = await asyncio.wait_for(proc.communicate(), timeout=20)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert proc.returncode == 0, err.decode()[-2000:]
        assert b"SIGTERM received" in err
        recorded = list(read_session([str(out)]))
        assert not [r for r in recorded if isinstance(r, LineError)]
        n_snapshots = sum(b"@depthSnapshot" in r.raw for r in recorded)
        assert n_snapshots == sum(srv.depth_requests.values()) == 2
        assert len(recorded) == srv.delivered + n_snapshots  # every message received is in the file
        assert f"recorded {len(recorded)} messages".encode() in err
    # The recording replays through check-data like the reference sessions: in sequence, BBO exact.
    res = check_files([str(out)])
    for sym in ("BTCUSDT", "ETHUSDT"):
        r = res["symbols"][sym]
        assert r["gaps"] == 0 and r["crossed"] == 0 and r["bbo_mismatched"] == 0 and r["bbo_checked"] > 5, r
    assert res["errors"] == 0
