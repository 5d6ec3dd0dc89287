"""Any list of symbols on the simulators: derived instruments, and `scalper exchange-sim --symbols 20`
serving exchangeInfo, depth snapshots and streams for every one of them."""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from decimal import Decimal

import aiohttp
import orjson
import pytest
import websockets

from bot.domain.events import DepthDiff
from bot.market.book import OrderBook
from bot.market.sync import BinanceBookSync
from bot.venues.binance_usdm.instruments import KNOWN, parse_exchange_info
from bot.venues.binance_usdm.parse import parse_message, parse_snapshot
from bot.venues.sim.generator import MarketGenerator
from bot.venues.sim.symbols import TOP_PRICES, derive_instrument, parse_symbols, reference_price, sim_instruments
from tests.conftest import ROOT


def _on_125_grid(x: Decimal) -> bool:
    m = x.normalize().as_tuple()
    return m.digits in ((1,), (2,), (5,))


@pytest.mark.parametrize("price", [0.0123, 0.6, 1.5, 9.0, 150.0, 600.0, 4321.0, 60_000.0])
def test_derived_rules_follow_the_price(price: float) -> None:
    inst = derive_instrument("XYZUSDT", price)
    tick, step = Decimal(inst.tick_size), Decimal(inst.step_size)
    # tick: the 1/2/5 grid step at or just below 1 bps of the price
    assert _on_125_grid(tick) and float(tick) <= price * 1e-4 < float(tick) * 2.5
    # lot: a power of ten worth 0.5..5 USDT, min notional 5 USDT (Binance's alt default)
    assert step.normalize().as_tuple().digits == (1,) and 0.5 < float(step) * price <= 5.0
    assert inst.min_qty == inst.step_size and inst.min_notional == "5"
    assert 5e6 < float(inst.max_qty) * price <= 1e7 and 1e6 < float(inst.market_max_qty) * price <= 2e6
    assert (inst.base_asset, inst.quote_asset) == ("XYZ", "USDT")


def test_symbols_keep_embedded_rules_and_derive_the_rest_deterministically() -> None:
    insts = sim_instruments(("BTCUSDT", "SOLUSDT", "NOSUCHUSDT"))
    assert insts["BTCUSDT"] is KNOWN["BTCUSDT"]
    assert insts["SOLUSDT"].tick_size == "0.01" and insts["SOLUSDT"].step_size == "0.01"
    p = reference_price("NOSUCHUSDT")
    assert 0.01 <= p <= 1000 and p == reference_price("NOSUCHUSDT") != reference_price("NOSUCH2USDT")
    assert reference_price("NOSUCHUSDT", {"NOSUCHUSDT": 7.0}) == 7.0  # [sim] gen_start_prices wins
    assert parse_symbols("3") == tuple(TOP_PRICES)[:3] and parse_symbols(" sol , xrpusdt") == ("SOL", "XRPUSDT")
    for bad in ("0", "99", "BTC-USDT", "A,A"):
        with pytest.raises(ValueError):
            parse_symbols(bad)


def test_the_generator_prices_every_symbol_near_its_reference_on_its_grid() -> None:
    syms = parse_symbols("20")
    insts = sim_instruments(syms)
    gen = MarketGenerator(list(insts.values()), seed=5, start_ns=1_700_000_000_000_000_000)
    msgs = gen.take(gen.t_ns + 3_000_000_000)
    seen = {m.symbol for m in msgs if m.kind == "depth"}
    assert seen == set(syms)
    for s in syms:
        snap = gen.snapshot(s, 5)
        bid = Decimal(snap["bids"][0][0])  # type: ignore[index]
        assert abs(float(bid) / reference_price(s) - 1) < 0.01, (s, bid)
        assert bid % Decimal(insts[s].tick_size) == 0


def test_a_bad_symbol_list_is_a_one_line_error() -> None:
    from bot.cli.exchange_sim import run

    args = argparse.Namespace(port=0, source=["generated"], api_key="k", api_secret="s", seed=1, speed=1.0,
                              symbols="BTC/USDT", fault=[], config=None, unlimited=False)
    assert run(args) == 2


async def _serve_all(port: int, syms: tuple[str, ...]) -> None:
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/fapi/v1/exchangeInfo") as r:
            info = await r.json()
        listed = parse_exchange_info(info)
        assert tuple(listed) == syms
        for s in syms:  # the bot's own exchangeInfo parser reads back exactly the derived rules
            assert listed[s] == sim_instruments(syms)[s], s
            f = {x["filterType"] for x in next(e for e in info["symbols"] if e["symbol"] == s)["filters"]}
            assert {"PRICE_FILTER", "LOT_SIZE", "MARKET_LOT_SIZE", "MIN_NOTIONAL"} <= f
        streams = "/".join(f"{s.lower()}@depth@100ms" for s in syms)
        books = {s: OrderBook(listed[s]) for s in syms}
        syncs = {s: BinanceBookSync(books[s]) for s in syms}
        async with websockets.connect(f"{base.replace('http', 'ws')}/public/stream?streams={streams}",
                                      max_size=None) as ws:
            pending: list[bytes] = []
            t_end = time.monotonic() + 0.5
            while time.monotonic() < t_end:  # buffer first, then the snapshots (the official algorithm)
                pending.append(await asyncio.wait_for(ws.recv(), 5))  # type: ignore[arg-type]
            for s in syms:
                async with http.get(f"{base}/fapi/v1/depth?symbol={s}&limit=1000") as r:
                    assert r.status == 200, s
                    snap = parse_snapshot(await r.json(), s, 0)
                for raw in [p for p in pending if orjson.loads(p)["data"]["s"] == s]:
                    ev = parse_message(raw, 0)
                    assert isinstance(ev, DepthDiff)
                    syncs[s].on_diff(ev, 0)
                syncs[s].on_snapshot(snap, 0)
            t_end = time.monotonic() + 3.0
            while time.monotonic() < t_end and not all(x.health.is_live for x in syncs.values()):
                ev = parse_message(await asyncio.wait_for(ws.recv(), 5), 0)  # type: ignore[arg-type]
                assert isinstance(ev, DepthDiff)
                syncs[ev.symbol].on_diff(ev, 0)
        for s in syms:
            assert syncs[s].health.is_live, s
            assert (syncs[s].stats.gaps, syncs[s].stats.crossed) == (0, 0), s
            mid = books[s].mid_ticks() * listed[s].tick  # type: ignore[operator]
            assert abs(mid / reference_price(s) - 1) < 0.02, (s, mid)


def test_exchange_sim_serves_twenty_symbols() -> None:
    """`scalper exchange-sim --symbols 20` (a real process): exchangeInfo with Binance's filters, a depth
    snapshot and a gap-free depth stream for each of the 20 symbols; ~5 s."""
    syms = parse_symbols("20")
    p = subprocess.Popen([sys.executable, "-m", "bot", "exchange-sim", "--port", "0", "--seed", "1",
                          "--symbols", "20"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout is not None
        line = p.stdout.readline()
        assert "ready on http://127.0.0.1:" in line, line + (p.stderr.read() if p.stderr else "")
        port = int(line.split("127.0.0.1:")[1].split()[0])
        asyncio.run(asyncio.wait_for(_serve_all(port, syms), 25))
    finally:
        p.terminate()
        p.wait(5)
