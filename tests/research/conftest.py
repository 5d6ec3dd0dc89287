"""Tiny slices of the recorded sessions (the first 30 000 lines of each 2024-08-08 file: ~0.5 s a backtest,
a trade or two each) so sweep tests stay fast."""

from __future__ import annotations

import gzip
import itertools
from pathlib import Path

import pytest

from tests.conftest import SESSIONS

SLICE_LINES = 30_000


@pytest.fixture(scope="session")
def session_slice(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    srcs = SESSIONS["btcusdt_20240808"] + SESSIONS["ethusdt_20240808"]
    if not all(p.is_file() for p in srcs):
        pytest.skip("../shared/data/binance_usdm is absent (recorded sessions live beside the repo)")
    d = tmp_path_factory.mktemp("slices")
    out = []
    for src in srcs:
        dst = d / src.name
        with gzip.open(src, "rb") as f, gzip.open(dst, "wb", compresslevel=1) as g:
            g.writelines(itertools.islice(f, SLICE_LINES))
        out.append(str(dst))
    return out


SPACE_TOML = """
["signals.momentum.time_limit_s"]
low = 20
high = 90

["signals.momentum.min_stop_bps"]
low = 6.0
high = 14.0
"""


@pytest.fixture
def space_file(tmp_path: Path) -> str:
    p = tmp_path / "space.toml"
    p.write_text(SPACE_TOML)
    return str(p)
