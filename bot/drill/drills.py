"""The drills (names are the contract of `scalper drill --only`). Each scenario gets a `Ctx` with the
exchange, the webhook, the watcher and the running bot; it injects its fault at the moment that matters,
records named checks that the fault really took effect, and returns. The runner then stops the bot with
SIGTERM and scores the row (runner.py, score.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import subprocess
import sys
import time
from typing import Any

import orjson

from bot.drill.runner import Ctx, Drill, DrillFailed
from bot.drill.watcher import covered, position_amounts

__all__ = ["DRILLS", "by_name"]

# a hand-made order's size per symbol: above the minimum notional, small against the 10k test wallet
HAND_QTY = {"BTCUSDT": 0.01, "ETHUSDT": 0.1}


async def _ready(ctx: Ctx, timeout_s: float = 60.0) -> None:
    """The bot is connected: its user stream and its depth socket are open at the exchange."""
    async def up() -> bool:
        st = await ctx.state()
        conns = st["connections"]
        return conns[ctx.venue.private_route] >= 1 and conns[ctx.venue.public_route] >= 1

    await ctx.wait("the bot connected to the exchange", up, timeout_s, step_s=0.1)


async def _observe(ctx: Ctx, seconds: float) -> None:
    """Let the bot run while the watcher measures. A bot that exits meanwhile is noted, and the full time
    is still observed: what it left behind at the exchange (a naked position) keeps being measured."""
    end = time.monotonic() + seconds
    noted = False
    while time.monotonic() < end:
        if not noted and ctx.bot is not None and not ctx.bot.alive():
            ctx.notes.append(f"bot exited on its own with {ctx.bot.proc.returncode}")
            noted = True
        await asyncio.sleep(0.1)


# ---------------------------------------------------------------------------- protection under 429
async def stop_429(ctx: Ctx) -> None:
    # the 429 window (Retry-After 10 s) starts at the bot's first stop placement, which it refuses too;
    # ban_after is high: this drill is about the stop during a 429, not about the ban policy. On Bybit the
    # stop is the position's trading-stop and the limit is the per-UID 10006 with its reset time (B2)
    await ctx.fault({"kind": "rate_limit", "on": ctx.venue.stop_path, "retry_after_s": 10,
                     "ban_after": 50, "ban_s": 120, **ctx.venue.rate_limit})

    async def hit() -> bool:
        return not (await ctx.state())["faults"]["rate_limit_armed"]

    await ctx.wait("a stop placement met the 429", hit, 40)
    # POST /fapi/v1/algoOrder carries only conditional orders; the bot's take-profits are LIMIT orders
    fired = [f for f in (await ctx.state())["faults"]["fired"] if f["kind"] == "rate_limit"]
    ctx.check("stop met 429", bool(fired), f"at exchange time {fired[0]['time'] if fired else None}")
    await _observe(ctx, 10 + 5)


async def _health_during(ctx: Ctx, seconds: float) -> list[tuple[float, str, set[str]]]:
    """Sample the bot's /health every 100 ms for `seconds` (also lets the watcher measure):
    [(seconds since start, status, reasons)]."""
    t0 = time.monotonic()
    out = []
    while (now := time.monotonic()) - t0 < seconds:
        h = await ctx.health()
        if h is not None:
            out.append((now - t0, str(h.get("status")), {str(r) for r in h.get("reasons", [])}))
        await asyncio.sleep(0.1)
    return out


def _first_new_doubt(before: set[str], samples: list[tuple[float, str, set[str]]]) -> float | None:
    """When /health first said not-ok for a reason it did not give before the fault (numbers ignored:
    "no message for 800 ms" before and "... 900 ms" after is the same reason)."""
    def norm(reasons: set[str]) -> set[str]:
        return {re.sub(r"\d+(\.\d+)?", "#", r) for r in reasons}

    old = norm(before)
    return next((t for t, status, reasons in samples if status != "ok" and norm(reasons) - old), None)


async def _reasons_now(ctx: Ctx) -> set[str]:
    h = await ctx.health()
    return {str(r) for r in h.get("reasons", [])} if h else set()


async def silent_user_stream(ctx: Ctx) -> None:
    await _ready(ctx)
    if ctx.venue.trade_before_fault:  # the silence must meet entries filling, not the indicators' warm-up
        await ctx.trade_in(("ENTERING", "PROTECTED", "EXITING", "CLOSED"), 60)
    t0_ms = (await ctx.state())["time"]
    mute_ms = 15_000
    before = await _reasons_now(ctx)
    await ctx.fault({"kind": "mute_user_stream", "ms": mute_ms})
    samples = await _health_during(ctx, mute_ms / 1000)
    seen = _first_new_doubt(before, samples)
    ctx.check("health in doubt while silent", seen is not None,
              f"/health not ok {seen:.1f} s into the silence" if seen is not None else
              f"/health stayed {sorted({s for _, s, _ in samples})} over {len(samples)} samples")
    st = await ctx.state(history=True)
    silent = [f for f in st["fills"] if t0_ms <= f["time"] <= t0_ms + mute_ms]
    ctx.check("fills while muted", bool(silent), f"{len(silent)} fills the bot never heard of")
    ctx.notes.append(f"{st['faults']['muted_events']} user-stream events lost")
    await _observe(ctx, 6)


async def late_execution(ctx: Ctx) -> None:
    # The point is a FILL arriving for an entry the bot gave up on. "fill": the late LIMIT entry fills at
    # its own price as it arrives (the market came to it), so the bot cannot cancel it first; should it
    # still not fill, the fault is armed again, a few times at most.
    filled: list[str] = []
    placed: list[str] = []
    for attempt in range(4):
        if ctx.bot is None or not ctx.bot.alive():
            break
        await ctx.fault({"kind": "late_execute", "ms": 3000, "count": 1, "entries_only": True, "fill": True})

        async def executed() -> bool:
            f = (await ctx.state())["faults"]
            return f["late_execute"] == 0 and f["late_pending"] == 0

        await ctx.wait("an entry answered 503 and executed 3 s later", executed, 60)
        st = await ctx.state(history=True)
        t_f = [f["time"] for f in st["faults"]["fired"] if f["kind"] == "late_execute"][-1]
        # the entry the bot sent when the fault fired, which reached the book ~3 s later
        sent = {leg["client_id"] for leg in ctx.rows("SELECT * FROM legs WHERE role='entry'")
                if t_f - 1000 <= leg["created_ns"] // 1_000_000 <= t_f + 100}
        late = [o for o in st["orders"] if o["clientOrderId"] in sent and o["time"] >= t_f + 2900]
        placed += [o["clientOrderId"] for o in late]
        await asyncio.sleep(1.0)  # a resting late entry may still fill
        st = await ctx.state(history=True)
        filled += [o["clientOrderId"] for o in st["orders"] if o["clientOrderId"] in sent
                   and o["time"] >= t_f + 2900 and float(o["executedQty"]) > 0]
        if filled:
            break
        ctx.notes.append(f"attempt {attempt + 1}: late entry {[o['clientOrderId'] for o in late]} did not fill")
    ctx.check("late entry placed", bool(placed), ", ".join(placed))
    ctx.check("late entry filled", bool(filled), ", ".join(filled))
    # while its fate was unknown the symbol took no other entry, either side (bot/execution/quarantine.py):
    # an opposite one would net against the late fill (one-way mode)
    q = ctx.rows("SELECT ts_ns, entity_id, to_state FROM state_changes WHERE entity='quarantine' ORDER BY id")
    spans = [(r["entity_id"], r["ts_ns"], next((e["ts_ns"] for e in q[i + 1:] if e["entity_id"] == r["entity_id"]
                                                and e["to_state"] == "ACTIVE"), 2**63))
             for i, r in enumerate(q) if r["to_state"] == "QUARANTINED"]
    inside = [leg["client_id"] for sym, t0, t1 in spans for leg in ctx.rows(
        "SELECT client_id FROM legs WHERE role='entry' AND symbol=? AND created_ns>=? AND created_ns<?", (sym, t0, t1))]
    ctx.check("no entry while unknown", bool(spans) and not inside,
              f"{len(spans)} quarantine(s), {(spans[0][2] - spans[0][1]) / 1e9:.1f} s; entries inside: {inside}"
              if spans else "no quarantine journaled")
    await _observe(ctx, 8)


async def ambiguous_entry_lookup_fails(ctx: Ctx) -> None:
    # the entry executes but answers 503; every look-up of it then meets a 429 (Retry-After 3 s)
    await ctx.fault({"kind": "error_after_execute", "count": 1, "entries_only": True})
    await ctx.fault({"kind": "rate_limit", "on": ctx.venue.lookup_path, "retry_after_s": 3, "ban_after": 50,
                     **ctx.venue.lookup_limit})

    async def both() -> bool:
        f = (await ctx.state())["faults"]
        return f["error_after_execute"] == 0 and not f["rate_limit_armed"]

    await ctx.wait("an ambiguous entry and a failing look-up", both, 40)
    fired = {f["kind"]: f["time"] for f in (await ctx.state())["faults"]["fired"]}
    gap = fired["rate_limit"] - fired["error_after_execute"]
    # the bot's first look-up follows the 503 at once (venue.ambiguous_lookup_delays_ms starts with 0)
    ctx.check("look-up met 429", 0 <= gap <= 2000, f"429 window began {gap} ms after the ambiguous entry")
    await _observe(ctx, 3 + 7)


# ---------------------------------------------------------------------------- malformed input
# the bad messages themselves are the venue's (bot/drill/venue.py: bad_depth, bad_user_event)
async def malformed_market(ctx: Ctx) -> None:
    await _ready(ctx)
    await ctx.trade_in(("ENTERING", "PROTECTED", "EXITING", "CLOSED"), 60)  # trading, books in use
    delivered = total = 0
    for sym in ("BTCUSDT", "ETHUSDT"):
        for i in range(5):
            if ctx.bot is None or not ctx.bot.alive():
                break
            # each bad message on its own: wait for the market socket (a resync may reconnect it)
            with contextlib.suppress(DrillFailed):
                await ctx.wait("a public socket", _has_socket(ctx, ctx.venue.public_route), 5)
            st = await ctx.state()
            raw = ctx.venue.bad_depth(sym, st)[i]
            got = await ctx.fault({"kind": "inject", "route": ctx.venue.public_route, "raw": raw,
                                   "stream": ctx.venue.depth_stream(sym)})
            total += 1
            delivered += got["sent"] >= 1
            await asyncio.sleep(0.3)
    ctx.check("bad depth delivered", total == 10 and delivered == total,
              f"{delivered} of {total} sent messages reached the bot (of 10)")
    await _observe(ctx, 8)


def _has_socket(ctx: Ctx, route: str) -> Any:
    async def check() -> bool:
        return bool((await ctx.state())["connections"][route])

    return check


async def malformed_user(ctx: Ctx) -> None:
    t = await ctx.trade_in(("PROTECTED",), 60)
    st = await ctx.state()
    now = int(st["time"])
    mine = [o for o in st["open_orders"] if o["clientOrderId"].startswith(t["trade_id"] + "-")]
    o = mine[0] if mine else {"symbol": t["symbol"], "clientOrderId": f"{t['trade_id']}-tp1", "orderId": 1,
                              "origQty": "0.001", "price": "0", "type": "LIMIT"}
    raw = ctx.venue.bad_user_event(o, now)  # the bot's own order, side "HOLD"
    got = await ctx.fault({"kind": "inject", "route": ctx.venue.private_route, "raw": raw})
    ctx.check("bad user event delivered", got["sent"] >= 1, f"on {got['sent']} sockets, order {o['clientOrderId']}")
    await _observe(ctx, 8)


# ---------------------------------------------------------------------------- trading from outside
async def manual_position(ctx: Ctx) -> None:
    await _ready(ctx)
    await asyncio.sleep(1.0)  # start-up reconciliation done
    pos = await ctx.positions()
    sym = next((s for s in HAND_QTY if not pos.get(s)), None)
    if sym is None:
        raise DrillFailed("no flat symbol to trade by hand")
    ctx.expect_alerts.append(f"emergency:{sym}")
    got = await ctx.fault({"kind": "outside_order", "symbol": sym, "side": "BUY", "type": "MARKET",
                           "qty": HAND_QTY[sym]})
    ctx.check("hand order filled", got["status"] == "FILLED", f"{got['client_id']} {got['status']}")
    await _observe(ctx, 12)


async def manual_add(ctx: Ctx) -> None:
    t = await ctx.trade_in(("PROTECTED",), 60)
    sym = t["symbol"]
    amt = (await ctx.positions()).get(sym, 0.0)
    if not amt:
        raise DrillFailed(f"{t['trade_id']} PROTECTED but no {sym} position at the exchange")
    ctx.expect_alerts.append(f"emergency:{sym}")
    got = await ctx.fault({"kind": "outside_order", "symbol": sym, "side": "BUY" if amt > 0 else "SELL",
                           "type": "MARKET", "qty": HAND_QTY[sym]})
    ctx.check("hand order filled", got["status"] == "FILLED", f"{got['client_id']} adds {HAND_QTY[sym]} to {amt}")
    await _observe(ctx, 12)


# ---------------------------------------------------------------------------- stale market
STALE_GRACE_MS = 1000  # a book must count as stale within this of its last message (issue 11: hundreds of ms)
HEALTH_STALE_S = 1.5  # ... and /health say so: the grace plus the 100 ms sampling and a loaded box's latency


async def freeze_5s(ctx: Ctx) -> None:
    await ctx.trade_in(("PROTECTED",), 60)
    t0 = int((await ctx.state())["time"])
    before = await _reasons_now(ctx)
    await ctx.fault({"kind": "freeze_stream", "ms": 5000})
    samples = await _health_during(ctx, 5)
    seen = _first_new_doubt(before, samples)
    ctx.check("stale in health", seen is not None and seen <= HEALTH_STALE_S,
              f"/health not ok {seen:.1f} s into the freeze" if seen is not None else
              f"/health stayed {sorted({s for _, s, _ in samples})} over {len(samples)} samples")
    await _observe(ctx, 4)
    st = await ctx.state(history=True)
    entries = {leg["client_id"] for leg in ctx.rows("SELECT client_id FROM legs WHERE role='entry'")}
    stale = [o["clientOrderId"] for o in st["orders"] if o["clientOrderId"] in entries
             and t0 + STALE_GRACE_MS <= o["time"] <= t0 + 5000]
    ctx.check("no entry on a stale book", not stale, f"entries sent while frozen: {stale}" if stale else "")


# ---------------------------------------------------------------------------- live-money guard
async def prod_url_without_live(ctx: Ctx) -> None:
    from bot.drill.procs import Bot

    audit = ctx.work / "net-audit.jsonl"
    env = {**ctx.venue.bot_env(ctx.sim), "SCALPER__VENUE__REST_URL": ctx.venue.prod_rest_url}
    bot = Bot(ctx.sim, ctx.work, ctx.hook.url, launcher=[sys.executable, "-m", "bot.drill.netwatch", str(audit), "--"],
              config=ctx.venue.config, **env)
    try:
        rc = await asyncio.to_thread(bot.proc.wait, 30)
    except subprocess.TimeoutExpired:  # still running after 30 s: it did not refuse
        rc = await asyncio.to_thread(bot.term)
        ctx.check("refused at start", False, "still running after 30 s")
    else:
        bot.out.close()
    out = [ln for ln in bot.log_path.read_text(errors="replace").splitlines() if ln.strip()]
    attempts = []
    if audit.exists():
        attempts = [orjson.loads(ln) for ln in audit.read_bytes().splitlines() if ln.strip()]
    remote = sorted({a["host"] for a in attempts if not a["local"]})
    ctx.check("exit non-zero", rc not in (0, None), f"exit {rc}")
    ctx.check("one line", len(out) == 1, f"{len(out)} lines: {out[-1][:160] if out else ''}")
    ctx.check("no network attempt", not remote, f"looked up / connected to {remote}" if remote else "")
    ctx.survived = None  # not applicable: this process must refuse to start
    ctx.notes.append(out[-1][:200] if out else "no output")


# ---------------------------------------------------------------------------- crash
async def sigkill_mid_trade(ctx: Ctx) -> None:
    t = await ctx.trade_in(("PROTECTED",), 60)
    tid, sym = t["trade_id"], t["symbol"]

    async def fully_stopped() -> bool:
        # PROTECTED and the exchange's stops cover the whole position: an entry still filling (the stop
        # being resized) is a different moment to crash in, with an uncovered rest while the bot is down
        st = await ctx.state()
        amt = position_amounts(st).get(sym, 0.0)
        return bool(amt) and covered(amt, sym, st["open_algo_orders"])

    await ctx.wait(f"{tid}'s position covered by its stop", fully_stopped, 10, step_s=0.02)
    await ctx.kill_bot()
    st = await ctx.state()
    amt = next((float(p["positionAmt"]) for p in st["positions"] if p["symbol"] == sym), 0.0)
    ctx.notes.append(f"killed with {tid} PROTECTED ({sym} {amt:+g} at the exchange)")
    await asyncio.sleep(1.0)  # down: the watcher keeps measuring the exchange-side stop
    ctx.start_bot(SCALPER__EXECUTION__MAX_HOLD_S="1")
    done = await ctx.wait(f"{tid} CLOSED after the restart", lambda: ctx.rows(
        "SELECT * FROM trades WHERE trade_id=? AND state='CLOSED'", (tid,)), 30)
    ctx.check("adopted and closed", bool(done), str(done[0]["exit_reason"]) if done else "")
    await _observe(ctx, 2)


DRILLS: tuple[Drill, ...] = (
    Drill("stop_429", "429 with Retry-After 10 s exactly when the stop is placed", stop_429, retry_after_s=10),
    Drill("silent_user_stream", "user stream open but silent 15 s while entries fill", silent_user_stream,
          health=True),
    Drill("late_execution", "an entry answers 503, is not found, and executes 3 s later", late_execution,
          timeout_s=120),
    Drill("ambiguous_entry_lookup_fails", "an entry answers 503 (executed) and its look-ups meet a 429 "
          "(Retry-After 3 s)", ambiguous_entry_lookup_fails, retry_after_s=3),
    Drill("malformed_market", "bad depth messages: 'abc', NaN, 1e400, a 3-item level, u as a string",
          malformed_market),
    Drill("malformed_user", 'an ORDER_TRADE_UPDATE with "S": "HOLD"', malformed_user),
    Drill("manual_position", "a position opened by hand on a flat symbol while the bot runs", manual_position),
    Drill("manual_add", "a size added by hand to the bot's protected position", manual_add),
    Drill("freeze_5s", "market data frozen 5 s: no entry on a stale book, /health says so, positions still "
          "protected", freeze_5s, health=True),
    Drill("prod_url_without_live", "SCALPER__VENUE__REST_URL = Binance production without --live: refuse "
          "with one line, no network", prod_url_without_live, runs_bot=False),
    Drill("sigkill_mid_trade", "SIGKILL with a trade PROTECTED (its stop covering it), restart: adopted and "
          "completed",
          sigkill_mid_trade),
)


def by_name(names: list[str] | None) -> list[Drill]:
    if not names:
        return list(DRILLS)
    known = {d.name: d for d in DRILLS}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown drill(s) {', '.join(unknown)}; drills: {', '.join(known)}")
    return [known[n] for n in names]
