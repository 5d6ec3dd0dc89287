"""Paper mode, in process: the gateway cannot reach a venue (no key, no network client), orders meet the book
as it is when their latency has passed on the wall clock, funding follows the stream's mark price, a Bybit
feed drives the matching book with Bybit's sequencing, and the guard / settings let paper run on mainnet
public data with no key and no --live."""

from __future__ import annotations

import ast
import asyncio
import contextlib
import inspect
import itertools
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import pytest

from bot.app import check_live_guard
from bot.domain.events import DepthDiff, DepthSnapshot, FundingInfo, Trade
from bot.domain.instrument import Instrument
from bot.domain.types import OrderKind, OrderStatus, Side, TimeInForce
from bot.errors import ConfigError
from bot.guard import endpoints
from bot.settings import Settings, load_settings
from bot.venues.binance_usdm.instruments import KNOWN
from bot.venues.paper.gateway import PaperGateway
from bot.venues.paper.venue import PaperFeed, paper_exchange, paper_venue
from bot.venues.ports import ExecutionGateway, FundingSource, OrderRequest
from tests.conftest import BYBIT
from tests.support import until

ROOT = Path(__file__).resolve().parent.parent
MS = 1_000_000
T0 = 1_800_000_000_000 * MS
# Nothing that can open a connection to a venue or sign a request.
NETWORK_MODULES = ("ccxt", "aiohttp", "websockets", "httpx", "requests", "urllib3", "http.client",
                   "urllib.request", "bot.venues.ws", "bot.venues.binance_usdm.gateway",
                   "bot.venues.binance_usdm.rest", "bot.venues.binance_usdm.signer",
                   "bot.venues.binance_usdm.userstream", "bot.venues.bybit.gateway", "bot.venues.bybit.exchange",
                   "bot.venues.bybit.userstream")


def _settings(venue: str = "binance-usdm", **sim: Any) -> Settings:
    return load_settings(overrides={"app": {"mode": "paper"},
                                    "venue": {"name": venue, "environment": "mainnet", "symbols": ["BTCUSDT"]},
                                    "sim": {"latency_kind": "constant", "order_latency_ms": 4.0,
                                            "order_latency_jitter_ms": 0.0, **sim}})


# ---------------------------------------------------------------------- no way out, by construction
def test_gateway_module_imports_no_network_client() -> None:
    """A fresh interpreter that imports the paper gateway has loaded no HTTP/websocket client and none of
    the real venues' order, signing or user-stream code."""
    code = ("import sys, bot.venues.paper.gateway\n"
            f"bad = [m for m in {NETWORK_MODULES!r} if m in sys.modules]\n"
            "print(repr(bad))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout
    # and the module's own imports, read from its source: the simulator and the standard library only
    tree = ast.parse((ROOT / "bot" / "venues" / "paper" / "gateway.py").read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | {
        a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert imported <= {"__future__", "asyncio", "contextlib", "time", "collections.abc", "typing",
                        "bot.venues.sim.exchange", "bot.venues.sim.gateway"}, imported


def test_gateway_takes_no_key_and_the_paper_feed_gets_none(monkeypatch: pytest.MonkeyPatch) -> None:
    assert list(inspect.signature(PaperGateway.__init__).parameters) == ["self", "exchange", "clock"]
    monkeypatch.setenv("SCALPER__VENUE__API_KEY", "real-key-123")
    monkeypatch.setenv("SCALPER__VENUE__API_SECRET", "real-secret-456")
    s = _settings()
    assert s.venue.api_key.get_secret_value() == "real-key-123"  # the environment does carry one
    gw, factory = paper_venue(s)
    assert isinstance(gw, ExecutionGateway) and isinstance(gw, FundingSource)
    assert gw.name == "paper" and gw.user_stream is None
    held = [type(v).__name__ for v in (*vars(gw).values(), *vars(gw.ex).values())]
    assert not [t for t in held if t in ("SecretStr", "ClientSession", "WsStream")], held
    feed = factory(s.venue, s.market, {"BTCUSDT": gw.instrument("BTCUSDT")}, lambda ev: None)
    assert isinstance(feed, PaperFeed)
    v = feed.inner.venue  # what the public feed was given
    assert (v.api_key.get_secret_value(), v.api_secret.get_secret_value(), v.ws_private_url) == ("", "", "")
    assert feed.inner.public_url.startswith("wss://fstream.binance.com/public/")  # mainnet public data


def test_paper_refuses_a_venue_without_public_data_and_unknown_symbols() -> None:
    with pytest.raises(ConfigError, match=r"venue\.name must be one of binance-usdm, bybit"):
        paper_venue(load_settings(overrides={"app": {"mode": "paper"}}))
    with pytest.raises(ConfigError, match="DOGEUSDT"):
        paper_venue(load_settings(overrides={"app": {"mode": "paper"},
                                             "venue": {"name": "binance-usdm", "symbols": ["DOGEUSDT"]}}))


# ---------------------------------------------------------------------- guard and settings
@pytest.mark.parametrize("name", ["paper-binance.toml", "paper-bybit.toml"])
def test_paper_configs_need_no_key_and_no_live_flag_on_mainnet(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("SCALPER__VENUE__API_KEY", "SCALPER__VENUE__API_SECRET", "SCALPER__VENUE__SECRETS_FILE"):
        monkeypatch.delenv(var, raising=False)
    s = load_settings(str(ROOT / "config" / name))
    assert (s.app.mode, s.venue.environment) == ("paper", "mainnet")
    assert s.venue.api_key.get_secret_value() == ""
    check_live_guard(s, live_flag=False)  # mainnet public data is not live trading
    with pytest.raises(ConfigError, match="--live given"):
        check_live_guard(s, live_flag=True)
    gw, _ = paper_venue(s)
    assert set(s.venue.symbols) <= set(gw.ex.markets)


def test_guard_still_refuses_mainnet_for_every_other_non_live_mode() -> None:
    for mode in ("sim", "exchange-sim", "demo", "testnet"):
        s = load_settings(overrides={"app": {"mode": mode}, "venue": {"name": "bybit", "environment": "mainnet"}})
        with pytest.raises(ConfigError, match="mainnet is live trading"):
            check_live_guard(s, live_flag=False)


@pytest.mark.parametrize(("venue", "env"), list(itertools.product(("binance-usdm", "bybit"),
                                                                    ("mainnet", "demo", "testnet"))))
def test_the_guard_judges_exactly_the_public_endpoints_paper_connects_to(venue: str, env: str) -> None:
    s = load_settings(overrides={"app": {"mode": "paper"},
                                 "venue": {"name": venue, "environment": env, "symbols": ["BTCUSDT"]}})
    eps = endpoints(s)
    got = {e.role: e.url for e in eps}
    assert not [e for e in eps if e.keys]
    assert set(got) == ({"rest_public", "ws_public", "ws_market"} if venue == "binance-usdm" else {"ws_public"})
    check_live_guard(s, live_flag=False)  # production public hosts included
    _gw, factory = paper_venue(s)
    feed = factory(s.venue, s.market, {"BTCUSDT": KNOWN["BTCUSDT"]}, lambda ev: None).inner
    if venue == "binance-usdm":
        assert feed.public_url.startswith(got["ws_public"] + "/stream?")
        assert feed.market_url.startswith(got["ws_market"] + "/stream?")
        assert urlsplit(feed.rest_url).hostname == urlsplit(got["rest_public"]).hostname
    else:
        assert feed.url == got["ws_public"]


# ---------------------------------------------------------------------- matching on the wall clock
class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now


def _book(gw: PaperGateway, clock: Clock) -> None:
    """A Binance book: REST snapshot, then its bridging diff (exchange-facts A1)."""
    gw.on_market_event(DepthSnapshot("BTCUSDT", 100, [["60000.0", "1.000"], ["59999.9", "2.000"]],
                                     [["60000.1", "0.500"], ["60000.2", "3.000"]], clock.now, clock.now))
    gw.on_market_event(DepthDiff("BTCUSDT", 100, 101, 99, [], [], clock.now, clock.now))


async def test_an_order_meets_the_book_as_it_is_when_its_latency_has_passed() -> None:
    s = _settings()
    clock = Clock()
    gw = PaperGateway(paper_exchange(s, {"BTCUSDT": KNOWN["BTCUSDT"]}), clock)
    _book(gw, clock)
    runner = asyncio.create_task(gw.run_clock())
    try:
        req = OrderRequest("t1-entry", "BTCUSDT", Side.BUY, OrderKind.MARKET, 100)  # 0.1 BTC
        sub = asyncio.create_task(gw.submit(req))
        await asyncio.sleep(0.02)  # 20 ms of real time, but the exchange clock has not moved: still in flight
        assert not sub.done() and gw.ex.pending_requests == 1
        clock.now += 1 * MS  # 1 ms later the 0.5 at 60000.1 is gone; 60000.3 appears
        gw.on_market_event(DepthDiff("BTCUSDT", 102, 102, 101, [], [["60000.1", "0"], ["60000.3", "1.000"]],
                                     clock.now, clock.now))
        assert not sub.done() and gw.ex.pending_requests == 1  # due at +4 ms
        clock.now += 4 * MS  # no market event: run_clock brings it in
        ack = await asyncio.wait_for(sub, 5)
        assert ack.status is OrderStatus.FILLED
        fill = await asyncio.wait_for(_next_fill(gw), 5)
        assert fill.last_fill_price == pytest.approx(60000.2)  # the book on arrival, not at sending
        assert fill.fee == pytest.approx(0.1 * 60000.2 * s.sim.taker_fee_bps / 10_000)
        assert gw.ex.now_ns == clock.now
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner


async def _next_fill(gw: PaperGateway) -> Any:
    async for u in gw.updates():
        if u.last_fill_lots:
            return u
    return None


async def test_a_resting_order_waits_its_turn_behind_the_displayed_size() -> None:
    """Queue position on the tape the feed delivers: a bid joins behind the 1.000 shown at its price; the
    prints at that price eat the queue first, then fill us, as maker."""
    s = _settings(order_latency_ms=0.0)
    clock = Clock()
    gw = PaperGateway(paper_exchange(s, {"BTCUSDT": KNOWN["BTCUSDT"]}), clock)
    _book(gw, clock)
    px = KNOWN["BTCUSDT"].price_to_ticks("60000.0")
    ack = await gw.submit(OrderRequest("t1-entry", "BTCUSDT", Side.BUY, OrderKind.LIMIT, 200, px,
                                       time_in_force=TimeInForce.GTC))
    assert ack.status is OrderStatus.NEW
    _drain(gw)
    gw.on_market_event(Trade("BTCUSDT", 1, "60000.0", "0.600", True, clock.now, clock.now))  # a seller hits 0.6
    assert not [u for u in _drain(gw) if u.last_fill_lots]  # 0.4 still ahead of us
    gw.on_market_event(Trade("BTCUSDT", 2, "60000.0", "0.500", True, clock.now, clock.now))
    fills = [u for u in _drain(gw) if u.last_fill_lots]
    assert [(f.last_fill_lots, f.last_fill_price, f.is_maker) for f in fills] == [(100, pytest.approx(60000.0), True)]
    assert fills[0].fee == pytest.approx(0.1 * 60000.0 * s.sim.maker_fee_bps / 10_000)


async def test_funding_follows_the_streams_mark_price_and_rate() -> None:
    s = _settings(order_latency_ms=0.0)
    clock = Clock()
    gw = PaperGateway(paper_exchange(s, {"BTCUSDT": KNOWN["BTCUSDT"]}), clock)
    _book(gw, clock)
    await gw.submit(OrderRequest("t1-entry", "BTCUSDT", Side.BUY, OrderKind.MARKET, 100))
    funding_at = T0 + 60_000 * MS
    gw.on_market_event(FundingInfo("BTCUSDT", 61_000.0, 61_000.0, 0.0003, funding_at, clock.now, clock.now))
    clock.now = funding_at + MS
    gw.on_market_event(FundingInfo("BTCUSDT", 61_000.0, 61_000.0, 0.0003, funding_at + 8 * 3600 * 1000 * MS,
                                   clock.now, clock.now))
    pay = await asyncio.wait_for(anext(aiter(gw.funding_updates())), 5)
    assert pay.symbol == "BTCUSDT" and pay.amount_quote == pytest.approx(-0.1 * 61_000.0 * 0.0003)


# ---------------------------------------------------------------------- a Bybit feed into the engine
SAMPLE = BYBIT / "nautilus_xrpusdt-ob500.data.zip"
XRP = Instrument("bybit", "XRPUSDT", "0.0001", "1")


@pytest.mark.skipif(not SAMPLE.is_file(), reason="../shared/data/bybit_v5 sample is absent")
async def test_bybit_public_feed_drives_the_paper_matching_book() -> None:
    from bot.venues.bybit.feed import BybitMarketFeed
    from tests.support.replay_server import BybitReplayServer

    with zipfile.ZipFile(SAMPLE) as zf:
        lines = [x for x in zf.read(zf.namelist()[0]).splitlines() if x.strip()]
    async with BybitReplayServer(lines, interval_s=0.002) as srv:
        s = load_settings(overrides={"app": {"mode": "paper"},
                                     "venue": {"name": "bybit", "environment": "exchange-sim",
                                               "symbols": ["XRPUSDT"], **srv.urls()},
                                     "sim": {"order_latency_ms": 0.0, "order_latency_jitter_ms": 0.0}})
        gw = PaperGateway(paper_exchange(s, {"XRPUSDT": XRP}))
        seen: list[Any] = []
        feed = PaperFeed(BybitMarketFeed, gw, s.venue, s.market, {"XRPUSDT": XRP}, seen.append)
        task = asyncio.create_task(feed.run())
        try:
            await until(lambda: srv.done.is_set() and feed.syncs["XRPUSDT"].last_update_id == srv.last_u, 20)
            m = gw.ex.markets["XRPUSDT"]
            book = feed.inner.books["XRPUSDT"]
            assert type(m.sync).__name__ == "BybitBookSync" and m.sync.last_update_id == srv.last_u
            assert m.book.bids(50) == book.bids(50) and m.book.asks(50) == book.asks(50)  # one stream, two books
            assert gw.market_events == len(seen) == len(lines)
            asks = book.asks(3)
            lots = asks[0][1] + asks[1][1] // 2  # through the first level into the second
            await gw.submit(OrderRequest("t1-entry", "XRPUSDT", Side.BUY, OrderKind.MARKET, lots))
            fills = [u for u in _drain(gw) if u.last_fill_lots]
            assert [(round(f.last_fill_price / XRP.tick), f.last_fill_lots) for f in fills] == \
                [(asks[0][0], asks[0][1]), (asks[1][0], asks[1][1] // 2)]
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, 5)
    assert orjson.loads(lines[-1])["data"]["u"] == srv.last_u


def _drain(gw: PaperGateway) -> list[Any]:
    out = []
    while not gw._queue.empty():
        out.append(gw._queue.get_nowait())
    return out
