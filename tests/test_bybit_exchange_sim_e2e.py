"""Real processes on Bybit v5: `python -m bot exchange-sim --protocol bybit` and `python -m bot run -c
config/exchange-sim-bybit.toml --no-view` against it. An independent watcher (bot.drill.watcher: only the
exchange's `/_sim/state`, never the bot) checks that positions occur and none is without an exchange-side
stop for more than 1 s; the stop is Bybit's position stop (attached `stopLoss` / trading-stop), which the
simulator holds as a closePosition conditional order in the same engine the Binance protocol uses."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from bot.drill.procs import Bot, Sim, until, webhook
from bot.drill.watcher import Watcher, position_amounts
from tests.support.drills import QUICK_WARMUP

# a livelier generated market (regimes every ~10 s, larger moves): the bot's first entry comes after ~20 s
# instead of ~30-40 s with the defaults (measured, seed 7, two symbols); the bot's shorter indicator warm-up
# (tests.support.drills.QUICK_WARMUP) takes ~5 s more off
LIVELY = """[sim]
gen_vol_normal_bps_sqrt_s = 4.0
gen_vol_calm_bps_sqrt_s = 2.0
gen_trend_bps_per_s = 2.0
gen_regime_mean_s = 10.0
"""


def bybit_env(sim: Sim) -> dict[str, str]:
    ws = f"ws://127.0.0.1:{sim.port}"
    return {"SCALPER__VENUE__WS_PUBLIC_URL": f"{ws}/v5/public/linear",
            "SCALPER__VENUE__WS_PRIVATE_URL": f"{ws}/v5/private",
            "SCALPER__VENUE__WS_MARKET_URL": "",
            "SCALPER__JOURNAL__PATH": "journal-exchange-sim.sqlite"}  # where bot.drill.procs.rows reads


async def test_bot_trades_on_bybit_protocol_and_no_position_is_naked_over_1s(tmp_path: Path) -> None:
    (tmp_path / "lively.toml").write_text(LIVELY)
    sim = Sim(tmp_path, protocol="bybit", args=("--config", str(tmp_path / "lively.toml")))
    bot = None
    try:
        await asyncio.to_thread(sim.wait_ready, 30)
        state = tmp_path / "state"
        state.mkdir()
        async with webhook() as hook:
            bot = Bot(sim, state, hook.url, config="config/exchange-sim-bybit.toml", **bybit_env(sim), **QUICK_WARMUP)
            w = Watcher(sim.base, alive=bot.alive)
            await w.start()
            seen: set[str] = set()

            def positions() -> bool:
                st = w.last_state or {}
                seen.update(s for s, a in position_amounts(st).items() if a)
                return bool(seen)

            t_start = asyncio.get_running_loop().time()
            await until("a position at the exchange", positions, 45, bot, step_s=0.05)
            t0 = asyncio.get_running_loop().time()
            await until("a stop held by the exchange for it", lambda: (w.last_state or {}).get("open_algo_orders"),
                        5, bot, step_s=0.05)
            await asyncio.sleep(max(0.0, 2.0 - (asyncio.get_running_loop().time() - t0)))
            rc = await asyncio.to_thread(bot.term, 20.0)
            tracker = await w.stop()
            async with aiohttp.ClientSession() as http, http.get(f"{sim.base}/_sim/state?history=1") as r:
                hist = await r.json()
        assert rc == 0, f"bot exit {rc}; log {bot.log_path}"
        sym, worst_s = tracker.worst()
        assert tracker.samples > 20 and w.errors == 0
        assert worst_s <= 1.0, f"{sym} had no exchange-side stop for {worst_s:.2f} s; log {bot.log_path}"
        # the stops were Bybit POSITION stops (attached stopLoss / trading-stop), not conditional orders
        stops = [a for a in hist["algo_orders"] if a.get("orderType") == "STOP_MARKET"]
        assert stops and all(a["clientAlgoId"].startswith("bybit-auto-s") and a["closePosition"] for a in stops)
        print(f"first position after {t0 - t_start:.1f} s, worst naked {worst_s:.3f} s ({sym}), "
              f"{len(stops)} position stops, {tracker.samples} polls")
        events = [e.get("event") for e in bot.events()]
        assert "trading_allowed" in events and "reconciled" in events
    finally:
        if bot is not None and bot.alive():
            bot.kill()
        sim.stop()
