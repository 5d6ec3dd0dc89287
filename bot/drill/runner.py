"""Run one drill: a fresh loopback exchange, the alert webhook, the watcher, the bot; the drill's
scenario; SIGTERM; then the row: naked seconds, duplicates, orphans, journal vs exchange, lost rows,
survived, alerts, passed.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from bot.drill import procs
from bot.drill.procs import Bot, Hook, Sim
from bot.drill.score import Ledger, duplicates, journal_vs_exchange, orphans
from bot.drill.venue import BINANCE, Venue
from bot.drill.watcher import Watcher

__all__ = ["DRILL_OVERRIDES", "Ctx", "Drill", "error_row", "run_drill", "skipped_row"]

STOP_CONFIRM_TIMEOUT_MS = 1000
# The generated market gives an entry within ~5 s and one every few seconds with these (the same
# loosened momentum setup as tests/test_exchange_sim_e2e.py); risk limits wide so a losing streak does not
# stop the trading a drill needs. Deadlines short: stop confirm 1 s (the naked limit), max hold 3 s.
DRILL_OVERRIDES = {
    "SCALPER__SIGNALS__EMA_FAST_BARS": "2", "SCALPER__SIGNALS__EMA_SLOW_BARS": "4",
    "SCALPER__SIGNALS__MOMENTUM__COOLDOWN_S": "2", "SCALPER__SIGNALS__MOMENTUM__SWING_BARS": "2",
    "SCALPER__SIGNALS__MOMENTUM__PULLBACK_BARS": "2", "SCALPER__SIGNALS__MOMENTUM__PULLBACK_TOLERANCE_BPS": "20",
    "SCALPER__SIGNALS__MOMENTUM__MIN_FLOW_IMBALANCE": "-1", "SCALPER__SIGNALS__MOMENTUM__TIME_LIMIT_S": "3",
    "SCALPER__RISK__LOSS_STREAK_COOLDOWN_S": "0", "SCALPER__RISK__DAILY_LOSS_LIMIT_PCT": "50",
    "SCALPER__RISK__MAX_DRAWDOWN_PCT": "50",
    "SCALPER__EXECUTION__STOP_CONFIRM_TIMEOUT_MS": str(STOP_CONFIRM_TIMEOUT_MS),
}


class DrillFailed(Exception):
    """The scenario could not do what it needed (e.g. no trade came): the row fails with this reason."""


@dataclass
class Drill:
    name: str
    summary: str
    scenario: Callable[[Ctx], Awaitable[None]]
    retry_after_s: float = 0.0  # the drill's Retry-After: part of the naked limit
    overrides: dict[str, str] = field(default_factory=dict)
    expect_alerts: tuple[str, ...] = ()  # "kind:text" each matched by some alert (see _alert_matches)
    runs_bot: bool = True  # False: the scenario runs its own process (prod_url_without_live)
    health: bool = False  # serve the bot's ops endpoint on a free port (ctx.health())
    timeout_s: float = 60.0
    skip: dict[str, str] = field(default_factory=dict)  # venue name -> why the drill does not apply there


@dataclass
class Ctx:
    drill: Drill
    work: Path
    sim: Sim
    hook: Hook
    watcher: Watcher
    http: aiohttp.ClientSession
    bot: Bot | None = None
    bots: list[Bot] = field(default_factory=list)
    checks: dict[str, tuple[bool, str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    foreign_cids: set[str] = field(default_factory=set)
    expect_alerts: list[str] = field(default_factory=list)
    survived: bool | None = None  # set by scenarios that run their own process
    ops_base: str = ""
    t0_s: float = field(default_factory=time.monotonic)
    venue: Venue = BINANCE

    # ------------------------------------------------------------------ processes
    def start_bot(self, **over: str) -> Bot:
        env = {**DRILL_OVERRIDES, **self.drill.overrides, **over}
        if self.drill.health:
            port = procs.free_port()
            self.ops_base = f"http://127.0.0.1:{port}"
            env.update(SCALPER__OPS__ENABLED="true", SCALPER__OPS__HOST="127.0.0.1", SCALPER__OPS__PORT=str(port))
        self.bot = Bot(self.sim, self.work, self.hook.url, None, config=self.venue.config,
                       **{**self.venue.bot_env(self.sim), **env})
        self.bots.append(self.bot)
        return self.bot

    async def kill_bot(self) -> None:
        assert self.bot is not None
        await asyncio.to_thread(self.bot.kill)

    # ------------------------------------------------------------------ exchange
    async def fault(self, body: dict[str, Any]) -> dict[str, Any]:
        async with self.http.post(f"{self.sim.base}/_sim/fault", data=orjson.dumps(body)) as r:
            got: dict[str, Any] = await r.json()
            if r.status != 200:
                raise DrillFailed(f"fault {body.get('kind')} refused: {got}")
        if body.get("kind") == "outside_order" and got.get("client_id"):
            self.foreign_cids.add(got["client_id"])
        return got

    async def state(self, history: bool = False) -> dict[str, Any]:
        async with self.http.get(f"{self.sim.base}/_sim/state" + ("?history=1" if history else "")) as r:
            return self.venue.normalize(await r.json())

    async def positions(self) -> dict[str, float]:
        from bot.drill.watcher import position_amounts

        return position_amounts(await self.state())

    async def health(self) -> dict[str, Any] | None:
        """The bot's GET /health ({"status", "reasons"}), None when it does not answer."""
        try:
            async with self.http.get(f"{self.ops_base}/health", timeout=aiohttp.ClientTimeout(total=1)) as r:
                return await r.json()  # type: ignore[no-any-return]
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return None

    # ------------------------------------------------------------------ journal
    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        return procs.rows(self.work, sql, params)

    async def wait(self, what: str, fn: Callable[[], Any], timeout_s: float, step_s: float = 0.05) -> Any:
        """Poll `fn` until truthy; DrillFailed on timeout or when the bot exits meanwhile."""
        try:
            return await procs.until(what, fn, timeout_s, self.bot, step_s)
        except AssertionError as e:
            raise DrillFailed(str(e)) from None

    async def trade_in(self, states: tuple[str, ...], timeout_s: float = 60.0,
                       exclude: set[str] | None = None) -> dict[str, Any]:
        """The first journal trade in one of `states` (not in `exclude`)."""
        marks = ",".join("?" * len(states))

        def find() -> dict[str, Any] | None:
            got = self.rows(f"SELECT * FROM trades WHERE state IN ({marks}) ORDER BY created_ns", states)
            return next((t for t in got if not exclude or t["trade_id"] not in exclude), None)

        return await self.wait(f"a trade {'/'.join(states)}", find, timeout_s)  # type: ignore[no-any-return]

    def check(self, name: str, ok: bool, detail: str = "") -> None:
        self.checks[name] = (bool(ok), detail)


async def run_drill(drill: Drill, work: Path, seed: int = 7, venue: Venue = BINANCE) -> dict[str, Any]:
    """Run `drill` in `work` (created) against the loopback exchange speaking `venue`'s protocol; returns
    its row."""
    await asyncio.to_thread(work.mkdir, parents=True, exist_ok=True)
    t0 = time.monotonic()
    sim = Sim(work, seed=seed, protocol=venue.protocol, args=venue.sim_args(work))
    error = ""
    rc: int | None = None
    alive_at_end: bool | None = None
    try:
        await asyncio.to_thread(sim.wait_ready)
        async with procs.webhook() as hook, aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            ctx = Ctx(drill, work, sim, hook, Watcher(sim.base), http, expect_alerts=list(drill.expect_alerts),
                      venue=venue)
            ctx.watcher.alive = lambda: ctx.bot is not None and ctx.bot.alive()
            watcher = ctx.watcher
            await watcher.start()
            try:
                if drill.runs_bot:
                    ctx.start_bot()
                await asyncio.wait_for(drill.scenario(ctx), drill.timeout_s)
            except DrillFailed as e:
                error = str(e)
            except TimeoutError:
                error = f"scenario not done within {drill.timeout_s} s"
            finally:
                end_ms = int((await ctx.state())["time"])
                if ctx.bot is not None:
                    alive_at_end = ctx.bot.alive()
                    rc = await asyncio.to_thread(ctx.bot.term)
                await asyncio.sleep(0.3)  # the watcher sees the exchange as the bot left it
                tracker = await watcher.stop()
                # fills after the bot stopped listening (SIGTERM sent, or it died) are for its next start's
                # reconciliation, not lost rows of this run
                if watcher.dead_since_ms is not None:
                    end_ms = min(end_ms, watcher.dead_since_ms)
            final = await ctx.state(history=True)
            alerts = list(hook.bodies)
    finally:
        await asyncio.to_thread(sim.stop)
    return _row(ctx, tracker, final, alerts, error, alive_at_end, rc, time.monotonic() - t0, end_ms)


def _row(ctx: Ctx, tracker: Any, final: dict[str, Any], alerts: list[dict[str, Any]], error: str,
         alive_at_end: bool | None, rc: int | None, wall_s: float, end_ms: int) -> dict[str, Any]:
    drill = ctx.drill
    ledger = Ledger(ctx.rows("SELECT * FROM trades"), ctx.rows("SELECT * FROM legs"), ctx.rows("SELECT * FROM fills"))
    dups = duplicates(final, ledger)
    jv = journal_vs_exchange(final, ledger, ctx.foreign_cids, after_ms=end_ms)
    if jv.after_end:
        ctx.notes.append(f"{jv.after_end} fills after the bot stopped on {sorted(jv.after_symbols)} (not "
                         "journaled, their exits not counted as orphans: for its next start)")
    orph = orphans(final, jv.after_symbols)
    sym, naked = tracker.worst()
    limit = STOP_CONFIRM_TIMEOUT_MS / 1000 + drill.retry_after_s
    if drill.runs_bot:
        survived: bool | None = bool(alive_at_end) and rc == 0
    else:
        survived = ctx.survived
    missing = [want for want in ctx.expect_alerts if not any(_alert_matches(want, a) for a in alerts)]
    failed = [f"{k}: {d}" if d else k for k, (ok, d) in ctx.checks.items() if not ok]
    reasons = []
    if error:
        reasons.append(error)
    if naked > limit:
        reasons.append(f"{sym} without a stop for {naked:.2f} s > {limit:.2f} s")
    reasons += dups + orph + jv.problems[:5] + failed
    if survived is False:
        reasons.append(f"bot did not survive (running at the end: {alive_at_end}, exit {rc})")
    if missing:
        reasons.append(f"alerts missing: {missing}")
    passed = not reasons
    return {
        "name": drill.name,
        "venue": ctx.venue.name,
        "max_naked_s": round(naked, 3),
        "naked_symbol": sym,
        "naked_limit_s": round(limit, 3),
        "duplicates": len(dups),
        "orphans": len(orph),
        "journal_vs_exchange": jv.ok,
        "lost_rows": jv.lost_rows,
        "survived": survived,
        "exit_code": rc,
        "alerts": {"count": len(alerts), "kinds": dict(Counter(str(a.get("kind", "")) for a in alerts)),
                   "expected": list(ctx.expect_alerts), "missing": missing},
        "checks": {k: {"ok": ok, "detail": d} for k, (ok, d) in ctx.checks.items()},
        "trades": len(ledger.trades),
        # the longest naked intervals: symbol, start (s since the drill began), length (s)
        "naked_intervals": [[sym_, round(a - ctx.t0_s, 2), round(b - a, 3)] for sym_, a, b in
                            sorted(tracker.intervals, key=lambda i: i[1] - i[2])[:3]],
        "poll_samples": tracker.samples,
        "max_poll_gap_s": round(tracker.max_poll_gap_s, 3),
        "wall_s": round(wall_s, 1),
        "notes": ctx.notes,
        "reasons": reasons,
        "passed": passed,
        "work_dir": str(ctx.work),
    }




def error_row(drill: Drill, work: Path, error: str, venue: Venue = BINANCE) -> dict[str, Any]:
    """The row of a drill whose harness failed before it could measure anything."""
    return {"name": drill.name, "venue": venue.name, "max_naked_s": 0.0, "naked_symbol": "",
            "naked_limit_s": round(STOP_CONFIRM_TIMEOUT_MS / 1000 + drill.retry_after_s, 3), "duplicates": 0,
            "orphans": 0, "journal_vs_exchange": False, "lost_rows": 0, "survived": False, "exit_code": None,
            "alerts": {"count": 0, "kinds": {}, "expected": list(drill.expect_alerts), "missing": []},
            "checks": {}, "trades": 0, "naked_intervals": [], "poll_samples": 0, "max_poll_gap_s": 0.0,
            "wall_s": 0.0, "notes": [],
            "reasons": [error], "passed": False, "work_dir": str(work)}


def skipped_row(drill: Drill, venue: Venue) -> dict[str, Any]:
    """The row of a drill that does not apply on `venue` (drill.skip says why): nothing measured, neither
    passed nor failed (`passed` None, `skipped` the reason)."""
    return {"name": drill.name, "venue": venue.name, "skipped": drill.skip[venue.name], "max_naked_s": 0.0,
            "naked_symbol": "", "naked_limit_s": round(STOP_CONFIRM_TIMEOUT_MS / 1000 + drill.retry_after_s, 3),
            "duplicates": 0, "orphans": 0, "journal_vs_exchange": None, "lost_rows": 0, "survived": None,
            "exit_code": None, "alerts": {"count": 0, "kinds": {}, "expected": [], "missing": []}, "checks": {},
            "trades": 0, "naked_intervals": [], "poll_samples": 0, "max_poll_gap_s": 0.0, "wall_s": 0.0,
            "notes": [], "reasons": [], "passed": None, "work_dir": ""}


def _alert_matches(want: str, alert: dict[str, Any]) -> bool:
    """`want` is "kind:text": an alert of that kind whose text contains `text` ("" kind: any kind)."""
    kind, _, text = want.partition(":")
    return (not kind or alert.get("kind") == kind) and text in str(alert.get("text", ""))
