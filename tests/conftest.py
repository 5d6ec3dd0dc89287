"""Shared test fixtures. Recorded real data is read by path from ../shared/data (never copied)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
BINANCE = DATA / "binance_usdm"
BYBIT = DATA / "bybit_v5"

# Sessions: a day pair is one session, read in order.
SESSIONS = {
    "btcusdt_20240718": [BINANCE / "hftbacktest_usdm_btcusdt_20240718.gz",
                         BINANCE / "hftbacktest_usdm_btcusdt_20240719.gz"],
    "ethusdt_20240718": [BINANCE / "hftbacktest_usdm_ethusdt_20240718.gz",
                         BINANCE / "hftbacktest_usdm_ethusdt_20240719.gz"],
    "btcusdt_20240808": [BINANCE / "hftbacktest_usdm_btcusdt_20240808.gz"],
    "ethusdt_20240808": [BINANCE / "hftbacktest_usdm_ethusdt_20240808.gz"],
}

needs_data = pytest.mark.skipif(
    not BINANCE.is_dir(), reason="../shared/data/binance_usdm is absent (recorded sessions live beside the repo)"
)


@pytest.fixture
def shared_data() -> Path:
    if not DATA.is_dir():
        pytest.skip("../shared/data is absent (recorded sessions live beside the repo)")
    return DATA
