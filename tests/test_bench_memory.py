"""`scalper bench memory FILE` replays a session many times over (the books restart between loops): it ran
only its first loop before (the restart asked a per-symbol record for a `sync` it no longer had; found by
mypy, issue 12 item 6)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.__main__ import main


def test_bench_memory_replays_a_session_several_times(shared_data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = shared_data / "binance_usdm" / "cryptofeed_BINANCE_FUTURES.ws.1.0"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    assert main(["bench", "memory", str(path), "--hours", "0.1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["loops"] > 1  # the books were restarted between loops and the replay went on
    assert out["messages"] > out["loops"]  # every loop fed its records
    assert out["gaps"] == 0 and out["bbo_mismatched"] == 0
