"""ShadowMirror in process (bot/venues/shadow/mirror.py): two simulated exchanges on the same generated market,
one behind the "demo" gateway, one behind the "paper" gateway, zero latency so every answer is immediate.

- every order sent to the demo gateway reaches the paper exchange too, and its row (both outcomes) is
  journaled in shadow_orders; the paper's fills go to shadow_fills and never to the demo's update stream;
- a paper refusal is recorded as such and does not touch the demo's answer;
- a trade that ended in the engine leaves no paper order, and its paper position is closed (residual).
"""

from __future__ import annotations

import asyncio
from typing import Any

from bot.domain.orders import OrderRequest
from bot.domain.types import OrderKind, Side
from bot.journal import Journal
from bot.journal.shadow import ShadowStore, load_shadow
from bot.market.instruments import KNOWN
from bot.settings.sim import SimSection
from bot.venues.shadow import mirror as mirror_mod
from bot.venues.shadow.mirror import ShadowMirror, role_of, trade_of
from bot.venues.sim.exchange import SimExchange
from bot.venues.sim.gateway import SimGateway, exchange_from_settings
from bot.venues.sim.generator import MarketGenerator

SYM = "BTCUSDT"


def _market(n_s: float = 1.0) -> tuple[SimExchange, SimExchange]:
    cfg = SimSection()
    insts = {SYM: KNOWN[SYM]}
    demo, paper = (exchange_from_settings(cfg, insts, zero_latency=True) for _ in range(2))
    gen = MarketGenerator([KNOWN[SYM]], cfg)
    start = gen.t_ns
    for m in gen.messages():
        demo.on_message(m.raw, m.ts_ns)
        paper.on_message(m.raw, m.ts_ns)
        if m.ts_ns - start >= n_s * 1e9:
            break
    return demo, paper


def test_client_id_vocabulary() -> None:
    assert [trade_of(c) for c in ("t12-sl.2", "t3-entry", "recon-flat-abc", "exit-flat-1", "t-x")] == [
        "t12", "t3", "", "", ""]
    assert [role_of(c) for c in ("t1-entry", "t1-sl", "t1-sl.3", "t1-tp2", "t1-add1", "t1-exit", "t1-shx")] == [
        "entry", "stop", "stop", "tp", "add", "exit", "residual"]


async def test_orders_mirrored_fills_apart_and_a_finished_trade_cleaned_up(tmp_path: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr(mirror_mod, "_HOUSEKEEPING_S", 0.01)
    monkeypatch.setattr(mirror_mod, "_SETTLE_NS", 0)
    demo_ex, paper_ex = _market()
    demo, paper = SimGateway(demo_ex), SimGateway(paper_ex)
    path = str(tmp_path / "j.sqlite")
    journal = Journal(path)
    journal.begin_run(1, "shadow")
    open_trades: dict[str, str] = {"t1": SYM}
    m = ShadowMirror(demo, paper, ShadowStore(journal), lambda: dict(open_trades))
    m.install()
    runner = asyncio.create_task(m.run())
    demo_updates = demo.updates()
    try:
        ack = await demo.submit(OrderRequest("t1-entry", SYM, Side.BUY, OrderKind.MARKET, 5))
        assert ack.client_id == "t1-entry"
        await asyncio.sleep(0.05)  # the paper task ran
        assert demo_ex.position_lots(SYM) == 5 and paper_ex.position_lots(SYM) == 5
        # a stop on both sides; the paper's is cancelled with the demo's
        await demo.submit(OrderRequest("t1-sl", SYM, Side.SELL, OrderKind.STOP_MARKET, 5,
                                       trigger_ticks=demo.instrument(SYM).price_to_ticks(1000.0), reduce_only=True))
        await asyncio.sleep(0.05)
        assert [a.client_algo_id for a in paper_ex.open_algo_orders(SYM)] == ["t1-sl"]
        await demo.cancel(SYM, "t1-sl", True)
        await asyncio.sleep(0.05)
        assert paper_ex.open_algo_orders(SYM) == [] and demo_ex.open_algo_orders(SYM) == []
        # the paper account refuses a reduce-only it cannot honour: recorded, the demo's answer unchanged
        # (same market: only the paper position is removed, by hand)
        await paper.submit(OrderRequest("hand-1", SYM, Side.SELL, OrderKind.MARKET, 5, reduce_only=True))
        await demo.submit(OrderRequest("t1-exit", SYM, Side.SELL, OrderKind.MARKET, 2, reduce_only=True))
        await asyncio.sleep(0.05)
        assert demo_ex.position_lots(SYM) == 3 and paper_ex.position_lots(SYM) == 0
        # the paper account gets a position of the trade again, then the trade ends in the engine
        await demo.submit(OrderRequest("t1-add1", SYM, Side.BUY, OrderKind.MARKET, 2))
        await asyncio.sleep(0.05)
        assert paper_ex.position_lots(SYM) == 2
        open_trades.clear()
        for _ in range(100):
            await asyncio.sleep(0.01)
            if paper_ex.position_lots(SYM) == 0 and m.stats["residual_closes"]:
                break
        assert paper_ex.position_lots(SYM) == 0 and m.stats["residual_closes"] == 1
        assert demo_ex.position_lots(SYM) == 5  # the demo account is the engine's business, never the mirror's
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
    journal.close()

    rows = load_shadow(path)
    orders = {o["client_id"]: o for o in rows["shadow_orders"]}
    assert set(orders) == {"t1-entry", "t1-sl", "t1-exit", "t1-add1", "t1-shx"}
    assert orders["t1-entry"]["demo_outcome"] == "accepted" and orders["t1-entry"]["paper_outcome"] == "accepted"
    assert orders["t1-exit"]["demo_outcome"] == "accepted"
    assert orders["t1-exit"]["paper_outcome"].startswith("refused: OrderRejected"), orders["t1-exit"]
    assert orders["t1-shx"]["role"] == "residual" and orders["t1-shx"]["paper_outcome"] == "accepted"
    assert orders["t1-shx"]["demo_outcome"] == "not sent (paper only)"
    assert all(o["run_id"] == 1 and o["qty"] > 0 for o in orders.values())
    fills = rows["shadow_fills"]
    # every fill of the paper account, the hand order's too (of no trade: the report leaves it out)
    assert [(f["client_id"], f["trade_id"], f["role"], f["side"]) for f in fills] == [
        ("t1-entry", "t1", "entry", "BUY"), ("hand-1", "", "exit", "SELL"), ("t1-add1", "t1", "add", "BUY"),
        ("t1-shx", "t1", "residual", "SELL")]
    assert fills[0]["qty"] == KNOWN[SYM].lots_to_qty(5) and all(f["price"] > 0 and f["fee"] > 0 for f in fills)
    assert rows["fills"] == []  # nothing in the real trades' table: the engine journals those, not the mirror
    # the demo's own update stream carries the demo's fills only (client ids of its own orders)
    seen = []
    while True:
        try:
            u = await asyncio.wait_for(demo_updates.__anext__(), 0.05)
        except TimeoutError:
            break
        seen.append(u.client_id)
    assert "hand-1" not in seen and "t1-shx" not in seen and "t1-entry" in seen
