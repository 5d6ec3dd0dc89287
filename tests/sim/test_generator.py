"""The generated market: valid Binance messages that sync with 0 gaps, deterministic, and lively."""

from __future__ import annotations

import orjson
import pytest

from bot.domain.types import OrderKind, Side, TriggerPrice
from bot.replay.check import SessionChecker
from bot.replay.reader import Record
from bot.venues.binance_usdm.instruments import KNOWN
from bot.venues.ports import OrderRequest
from bot.venues.sim.exchange import SimExchange
from bot.venues.sim.generator import MarketGenerator

S = 1_000_000_000
INSTS = [KNOWN["BTCUSDT"], KNOWN["ETHUSDT"]]


def test_generated_messages_parse_and_sync_with_zero_gaps_and_match_their_book_tickers() -> None:
    g = MarketGenerator(INSTS, seed=3)
    msgs = g.take(g.t_ns + 60 * S)
    chk = SessionChecker()
    for i, m in enumerate(msgs):
        chk.feed(Record("generated", i + 1, m.ts_ns, m.raw))
    res = chk.result()
    assert res["errors"] == 0
    for sym in ("BTCUSDT", "ETHUSDT"):
        r = res["symbols"][sym]
        assert r["depth_events"] >= 590  # one diff per 100 ms
        assert (r["gaps"], r["resyncs"], r["crossed"], r["snapshots"]) == (0, 0, 0, 1)
        assert r["status"] == "LIVE"
        assert r["trades"] > 100
        # bookTicker at an id equal to a diff's final id states the same top of book
        assert r["bbo_checked"] > 50 and r["bbo_mismatched"] == 0


def test_prices_and_sizes_use_the_venue_grid_and_decimals() -> None:
    g = MarketGenerator(INSTS, seed=5)
    seen = 0
    for m in g.take(g.t_ns + 5 * S):
        if m.kind != "depth":
            continue
        d = orjson.loads(m.data)
        inst = KNOWN[d["s"]]
        for p, q in d["b"] + d["a"]:
            assert len(p.split(".")[1]) == len(inst.tick_size.split(".")[1])  # "60000.10" for tick "0.10"
            assert len(q.split(".")[1]) == 3
            assert float(p) / inst.tick == pytest.approx(round(float(p) / inst.tick), abs=1e-6)
            seen += 1
    assert seen > 1000


def test_same_seed_same_bytes_other_seed_other_market() -> None:
    a = MarketGenerator(INSTS, seed=11)
    b = MarketGenerator(INSTS, seed=11)
    c = MarketGenerator(INSTS, seed=12)
    ma, mb, mc = (x.take(x.t_ns + 10 * S) for x in (a, b, c))
    assert [m.raw for m in ma] == [m.raw for m in mb]
    assert [m.raw for m in ma] != [m.raw for m in mc]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_scalper_bracket_resolves_within_two_minutes(seed: int) -> None:
    """A long entered at market with a stop and a target 15 bps away: one of them fires in 2 min."""
    g = MarketGenerator([KNOWN["BTCUSDT"]], seed=seed)
    ex = SimExchange({"BTCUSDT": KNOWN["BTCUSDT"]}, balance=10_000.0)
    it = g.messages()
    start = g.t_ns
    for m in it:  # warm up: 2 s
        ex.on_message(m.raw, m.ts_ns)
        if m.ts_ns - start >= 2 * S:
            break
    assert ex.markets["BTCUSDT"].sync.health.is_live
    ex.place(OrderRequest("e", "BTCUSDT", Side.BUY, OrderKind.MARKET, 20))
    entry = ex.account.positions["BTCUSDT"].entry_ticks
    d = int(entry * 0.0015)
    ex.place(OrderRequest("sl", "BTCUSDT", Side.SELL, OrderKind.STOP_MARKET, 0, trigger_ticks=int(entry) - d,
                          working_type=TriggerPrice.MARK, close_position=True))
    ex.place(OrderRequest("tp", "BTCUSDT", Side.SELL, OrderKind.TAKE_PROFIT_MARKET, 0,
                          trigger_ticks=int(entry) + d, working_type=TriggerPrice.LAST, close_position=True))
    end = ex.now_ns + 120 * S
    for m in it:
        ex.on_message(m.raw, m.ts_ns)
        if ex.position_lots("BTCUSDT") == 0 or m.ts_ns > end:
            break
    assert ex.position_lots("BTCUSDT") == 0, "neither the stop nor the target fired within 2 minutes"
    fired = {a.client_algo_id for a in ex.algos.values() if a.status == "FINISHED"}
    assert len(fired) == 1
