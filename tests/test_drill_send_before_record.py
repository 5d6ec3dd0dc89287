"""SIGKILL between an entry's send and its journal record (issue 12, "What it must show"): the engine hands an
entry to the transport first and commits its record right after, in the same synchronous step
(bot/execution/engine.py on_intent). A crash in that window leaves an order, and a position, that the journal
does not know. Real processes: `python -m bot exchange-sim` and `python -m bot run`; the test-only hook
SCALPER_DRILL_KILL_AFTER_SEND=1 widens the window until the venue has answered the entry, then the bot kills
itself with SIGKILL (no shutdown code runs), its record never written.

After the restart (no hook): the position is found and gets a reduce-only stop for all of it, with an
emergency alert, entries on that symbol halted; and the crashed session's trade id is never reused (the
engine reserved it in the journal before the send), so the lost order's client id stays unique at the
exchange and no later trade claims its fill.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.drill.procs import Bot, Sim, rows, until, webhook
from bot.drill.score import Ledger, duplicates
from bot.execution.engine import _ID_BLOCK
from tests.support.drills import QUICK_WARMUP

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[Sim]:
    s = Sim(tmp_path, seed=11)
    s.wait_ready()
    yield s
    s.stop()


async def _state(sim: Sim) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.get(f"{sim.base}/_sim/state?history=1") as r:
        assert r.status == 200
        return dict(await r.json())


def _amount(state: dict[str, Any], symbol: str) -> float:
    return sum(float(p["positionAmt"]) for p in state["positions"] if p["symbol"] == symbol)


async def _stop_for(sim: Sim, symbol: str, amount: float) -> dict[str, Any] | None:
    st = await _state(sim)
    return next((a for a in st["open_algo_orders"] if a["symbol"] == symbol and a["orderType"] == "STOP_MARKET"
                 and a["reduceOnly"] and a["side"] == ("SELL" if amount > 0 else "BUY")
                 and float(a["quantity"]) == pytest.approx(abs(amount))), None)


async def test_sigkill_between_send_and_record_then_restart_protects_the_position(sim: Sim, tmp_path: Path) -> None:
    t0 = time.monotonic()
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    async with webhook() as hook:
        # market entries: the entry fills for sure, so there is a position to protect. A symbol's first entry
        # sets its leverage first and is recorded before it is sent; the next one on it takes the hot path
        # (sent, then recorded): that one is killed. Short holds and cooldowns make it come soon.
        bot = Bot(sim, state_dir, hook.url, SCALPER_DRILL_KILL_AFTER_SEND="1",
                  SCALPER__EXECUTION__ENTRY_ORDER="market", SCALPER__EXECUTION__MAX_HOLD_S="2", **QUICK_WARMUP,
                  **{f"SCALPER__SIGNALS__{s}__COOLDOWN_S": "2" for s in ("MOMENTUM", "RSI_SNAPBACK",
                                                                          "BREAKOUT_FADE", "ABSORPTION")})
        try:
            await until("the bot killed itself after a hot-path entry's answer",
                        lambda: bot.proc.poll() is not None, 120)
        finally:
            if bot.alive():
                bot.kill()
        assert bot.proc.returncode == -9, f"log {bot.log_path}"
        bot.out.close()
        # the journal never got the killed trade (the one after the last it holds); its id was reserved first
        known = rows(state_dir, "SELECT * FROM trades")
        n = max((int(t["trade_id"][1:]) for t in known), default=0) + 1
        reserved = rows(state_dir, "SELECT upto FROM reserved_ids WHERE name='trade'")[0]["upto"]
        assert reserved >= n
        assert not rows(state_dir, "SELECT * FROM legs WHERE client_id LIKE ?", (f"t{n}-%",))
        st = await _state(sim)
        sent = [o for o in st["orders"] if o["clientOrderId"].startswith(f"t{n}-")]
        assert [o["clientOrderId"] for o in sent] == [f"t{n}-entry"], (n, st["orders"])
        entry = sent[0]
        assert entry["status"] == "FILLED" and not entry["reduceOnly"], entry
        sym = entry["symbol"]
        lost = float(entry["executedQty"]) * (1 if entry["side"] == "BUY" else -1)
        # the exchange holds the lost entry's size beside whatever the journal's open trades hold there
        mine = sum((1 if f["side"] == "BUY" else -1) * f["qty"] for f in rows(
            state_dir, "SELECT f.* FROM fills f JOIN trades t ON t.trade_id=f.trade_id WHERE t.symbol=? AND "
                       "t.state NOT IN ('CLOSED', 'ABORTED')", (sym,)))
        assert _amount(st, sym) == pytest.approx(mine + lost)
        assert await _stop_for(sim, sym, lost) is None, "nothing protects the lost size while the bot is down"

        bot2 = Bot(sim, state_dir, hook.url)
        try:
            stop = await until("a stop on the unrecorded position", lambda: _stop_for(sim, sym, lost), 60, bot2)
            assert stop["clientAlgoId"].startswith("recon-sl-")
            await until("the emergency alert", lambda: [x for x in hook.texts("emergency")
                                                        if sym in x and ("no known trade" in x or "more than" in x)],
                        10, bot2)
            # entries on the symbol stay halted while a size nobody owns is held there
            halted = await until("the symbol halted", lambda: rows(
                state_dir, "SELECT * FROM state_changes WHERE entity='symbol' AND entity_id=? AND to_state='HALTED'",
                (sym,)), 10, bot2)
            assert halted
            # the crashed session's ids are never handed out again: the restarted engine reserved after them
            upto = rows(state_dir, "SELECT upto FROM reserved_ids WHERE name='trade'")[0]["upto"]
            assert upto >= reserved + _ID_BLOCK
            assert all(int(t["trade_id"][1:]) < n or int(t["trade_id"][1:]) > reserved
                       for t in rows(state_dir, "SELECT trade_id FROM trades"))
        finally:
            assert bot2.term() == 0
        st = await _state(sim)
        ledger = Ledger(rows(state_dir, "SELECT * FROM trades"), rows(state_dir, "SELECT * FROM legs"),
                        rows(state_dir, "SELECT * FROM fills"))
        assert duplicates(st, ledger) == []
        # on_shutdown = keep_protected: the lost size is still there, with its stop
        assert await _stop_for(sim, sym, lost) is not None
    assert time.monotonic() - t0 < 150
