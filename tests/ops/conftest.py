"""Shared helpers for the ops tests: a RuntimeState driven like the app does, and a running OpsServer."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.domain.events import DepthDiff, DepthSnapshot
from bot.market.book import OrderBook
from bot.market.sync import BinanceBookSync
from bot.ops.server import OpsServer
from bot.ops.state import RuntimeState
from bot.settings.ops import OpsSection
from bot.venues.binance_usdm.instruments import KNOWN

T0 = 1_700_000_000_000_000_000
TOKEN = "ops-test-token"  # /status and /control/* always need a bearer token (bot/ops/token.py)
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def live_sync(symbol: str = "BTCUSDT", now_ns: int = T0) -> BinanceBookSync:
    """A BinanceBookSync brought LIVE through the official splice: snapshot 100, then a diff U<=100<=u."""
    sync = BinanceBookSync(OrderBook(KNOWN[symbol], depth_ticks=2000), now_ns)
    sync.on_diff(DepthDiff(symbol, 95, 101, 94, [["60000.0", "1.0"]], [["60000.5", "2.0"]], now_ns, now_ns),
                 now_ns)
    sync.on_snapshot(DepthSnapshot(symbol, 100, [["59999.9", "1.5"]], [["60000.6", "1.0"]], now_ns, now_ns),
                     now_ns)
    assert sync.health.is_live, sync.health
    return sync


@pytest.fixture
def clock() -> list[int]:
    return [T0]


@pytest.fixture
def state(clock: list[int]) -> RuntimeState:
    return RuntimeState(now_ns=clock[0], user_stream_stale_after_ns=10_000_000_000)


@pytest.fixture(autouse=True)
def _ops_token_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI (`scalper status|halt|...`) takes the token from $SCALPER__OPS__TOKEN."""
    monkeypatch.setenv("SCALPER__OPS__TOKEN", TOKEN)


@pytest.fixture
async def server(state: RuntimeState, clock: list[int]) -> AsyncIterator[OpsServer]:
    srv = OpsServer(state, OpsSection(port=0), clock=lambda: clock[0], token=TOKEN)
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()
