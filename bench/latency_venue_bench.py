"""The measuring run of `bench latency --venue exchange-sim` (bench/latency_venue.py describes the
method and the steps). Composition as in `App._run_binance`; the hooks below are wrappers installed on
this process's instances only (and two module attributes, restored at the end), never edits of the
venue code.

Per entry a record travels with the work: the feed callback stamps it, the synchronous pipeline call sets
it in a ContextVar for its duration (asyncio copies the context into every task started meanwhile, so the
engine's order task and ccxt inside it see the same record), and the hooks write their timestamps into it.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import gc
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from typing import Any

from bench.latency_ccxt import EAGER, send_entry
from bench.latency_reference import Reference
from bot.execution.eager import spawn_eager

__all__ = ["bench"]

_CUR: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("bench_entry", default=None)
_LIFT = 10**9
_SIM = {"gen_depth_interval_ms": 20, "gen_step_ms": 10}  # 50 depth messages/s per generated symbol
_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _sim_config(tmp: str) -> str:
    path = os.path.join(tmp, "sim.toml")
    with open(path, "w") as fh:
        fh.write("[sim]\n" + "".join(f"{k} = {v}\n" for k, v in _SIM.items()))
    return path


class _TapSession:
    """The aiohttp session ccxt is given, with one hook: the moment a request is handed to aiohttp."""

    def __init__(self, session: Any, on_post: Any) -> None:
        self._s = session
        self._on_post = on_post

    def post(self, url: Any, **kw: Any) -> Any:
        self._on_post(str(url))
        return self._s.post(url, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._s, name)


@contextlib.asynccontextmanager
async def _exchange(where: str, sources: list[str], symbols: tuple[str, ...], speed: float) -> AsyncIterator[str]:
    """The loopback exchange, in this process or as `python -m bot exchange-sim --unlimited`; yields
    host:port."""
    if where == "inprocess":
        from bot.settings import load_settings
        from bot.venues.sim.server import build_server

        server = build_server(sources, cfg=load_settings(overrides={"sim": _SIM}).sim, symbols=symbols, port=0,
                              speed=speed)
        lim = server.limits
        lim.WEIGHT_1M = lim.ORDERS_10S = lim.ORDERS_1M = _LIFT
        port = await server.start()
        try:
            yield f"127.0.0.1:{port}"
        finally:
            await server.stop()
        return
    root = _ROOT
    with tempfile.TemporaryDirectory() as tmp:
        cfg = _sim_config(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SCALPER__")}
        env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "exchange-sim", "--port", "0", "--unlimited", "--config", cfg,
            "--symbols", ",".join(symbols), "--speed", str(speed), "--source", *sources, cwd=root, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            assert proc.stdout is not None
            line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
            if "ready on http://" not in line:
                raise RuntimeError(f"exchange-sim did not start: {line.strip()}")
            yield line.split("http://", 1)[1].split()[0]
        finally:
            if proc.returncode is None:
                proc.terminate()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(proc.wait(), 10)
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()


async def bench(*, entries: int, journal_path: str, sources: list[str], symbols: tuple[str, ...], speed: float,
                every: int, timeout_s: float, gc_freeze: bool = True, exchange: str = "inprocess",
                modes: tuple[str, ...] = ("fastpath",), dispatch_ab: bool = False, reference: bool = True,
                warm_ab: bool = False, warm_ms: float | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Returns the raw records of the measured entries (each tagged with its ccxt `mode`, taken in turn:
    interleaved rounds) and run facts. Stops when every mode has `entries` bare records, or after timeout_s."""
    async with _exchange(exchange, sources, symbols, speed) as base:
        return await _run(base, entries, journal_path, every, timeout_s, gc_freeze, modes, dispatch_ab, reference,
                          warm_ab, warm_ms)


async def _run(base: str, entries: int, journal_path: str, every: int, timeout_s: float, gc_freeze: bool,
               modes: tuple[str, ...], dispatch_ab: bool = False, reference: bool = True, warm_ab: bool = False,
               warm_ms: float | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    import aiohttp

    from bot.domain.events import DepthDiff
    from bot.domain.types import EntryIntent
    from bot.execution.engine import ExecutionEngine
    from bot.journal import Journal
    from bot.market.health import BookStatus
    from bot.ops.state import RuntimeState
    from bot.pipeline import Pipeline
    from bot.risk import RiskManager
    from bot.settings import load_settings
    from bot.signals import SignalEngine
    from bot.signals import features as feat_mod
    from bot.venues.binance_usdm import feed as feed_mod
    from bot.venues.binance_usdm.feed import BinanceMarketFeed
    from bot.venues.binance_usdm.gateway import BinanceGateway

    pc = time.perf_counter_ns
    s = load_settings(overrides={
        "venue": {"name": "binance-usdm", "environment": "exchange-sim", "symbols": ["BTCUSDT"],
                  "rest_url": f"http://{base}", "ws_public_url": f"ws://{base}/public",
                  "ws_market_url": f"ws://{base}/market", "ws_private_url": f"ws://{base}/private",
                  "api_key": "sim-key", "api_secret": "sim-secret"},
        "risk": {"risk_per_trade_pct": 0.05, "max_orders_per_s": _LIFT, "max_orders_per_min": _LIFT,
                 "max_open_positions": 50, "max_notional_per_symbol_usd": 1e12, "max_total_notional_usd": 1e12,
                 "max_spread_bps": 1000.0, "funding_window_s": 0.0,
                 # a real setup that fills is flattened at once, usually at a loss: never a reason to stop measuring
                 "loss_streak_cooldown_s": 0.0, "setup_cooldown_s": 0.0,
                 # the bench's own 20-tick stops cannot pay a round trip: costs are not what it measures
                 "max_cost_r": 1.0, "min_target_net_r": -1.0},
        **({"execution": {"warm_interval_ms": warm_ms}} if warm_ms is not None else {})})
    records: list[dict[str, Any]] = []
    st: dict[str, Any] = {"ready": False, "n_live": 0, "triggers": 0, "denied": 0, "flattened": 0, "errors": [],
                          "warm": {}, "bare": False, "stalls": 0, "ref_turn": False, "ref_seeded": False,
                          "ref_errors": []}
    ref_rows: list[dict[str, int]] = []
    counts = dict.fromkeys(modes, 0)
    done = asyncio.Event()
    feed_rec: dict[str, int] = {}

    def on_post(url: str) -> None:
        rec = _CUR.get()
        if rec is not None and ("c0" in rec or (rec.get("bare") and "s1" in rec)) and "h0" not in rec and \
                url.split("?", 1)[0].endswith("/fapi/v1/order"):
            rec["h0"] = pc()
            rec["h0_wall"] = time.time_ns()

    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=32, enable_cleanup_closed=True))
    venue = s.venue
    gw: BinanceGateway | None = None
    journal = Journal(journal_path, s.journal.synchronous, s.journal.busy_timeout_ms)
    feed: BinanceMarketFeed | None = None
    tasks: list[asyncio.Task[Any]] = []
    orig_parse, orig_feat = feed_mod.parse_message, feat_mod.SymbolFeatures.on_depth
    t0 = time.monotonic()
    try:
        probe = BinanceGateway(venue, session=session)  # which symbols does this exchange list?
        try:
            await probe.start(autorun=False)
            assert probe.ex is not None
            listed = tuple(m["id"] for m in probe.ex.markets.values() if m.get("linear"))
        finally:
            await probe.close()
        venue = venue.model_copy(update={"symbols": listed or ("BTCUSDT",)})
        gw = BinanceGateway(venue, session=_TapSession(session, on_post),  # type: ignore[arg-type]
                            order_transport="ws" if "ws" in modes else "rest")
        await gw.start()
        ws_api = gw.ws_api
        if ws_api is not None and not await ws_api.socket.wait_up(10.0):
            raise RuntimeError(f"the order socket {ws_api.socket.url} did not come up")
        lim = gw.limiter  # lifted like the exchange's; its bookkeeping still runs on every order
        lim.weight_per_min = lim.orders_per_10s = lim.orders_per_min = _LIFT
        ex = gw.ex
        assert ex is not None
        signer = gw._signer
        assert signer is not None
        orig_post, orig_body, orig_sign, orig_submit = signer.post, signer.body, ex.sign, gw.submit
        orig_place = gw._place
        ccxt_symbols = {m["id"]: m["symbol"] for m in ex.markets.values()}
        instruments = {sym: gw.instrument(sym) for sym in venue.symbols}
        acct = await gw.account()
        ref = Reference(ex, instruments, venue.api_secret.get_secret_value(), venue.api_key.get_secret_value()) \
            if reference else None
        risk = RiskManager(s.risk, acct.equity, time.time_ns())
        engine = ExecutionEngine(gw, risk, journal, s.execution, s.risk)
        signals = SignalEngine(s.signals, instruments)
        pipeline = Pipeline(instruments, signals, engine, RuntimeState(), depth_bps=s.market.depth_bps,
                            clock=time.time_ns)
        orig_signals = signals.on_depth
        orig_assess = risk.assess

        def timed_parse(raw: bytes, ts: int) -> Any:
            t = pc()
            try:
                return orig_parse(raw, ts)
            finally:
                feed_rec["parse"] = pc() - t

        def timed_features(self: Any, *a: Any, **kw: Any) -> Any:
            t = pc()
            try:
                return orig_feat(self, *a, **kw)
            finally:
                rec = _CUR.get()
                if rec is not None:
                    rec["features"] = rec.get("features", 0) + pc() - t

        def timed_signals(symbol: str, book: Any, status: Any, ts_event_ns: int, now_ns: int) -> Any:
            rec = _CUR.get()
            t = pc()
            out = orig_signals(symbol, book, status, ts_event_ns, now_ns)
            t1 = pc()
            if rec is None:
                return out
            rec["signals"] = t1 - t
            if status is BookStatus.LIVE:
                st["last_depth"] = time.monotonic()
            if status is not BookStatus.LIVE:
                return out
            if not st["ready"]:  # the count runs from the end of the previous entry: entries are apart in time
                st["n_live"] = 0
                return out
            st["n_live"] += 1
            if st["n_live"] % every and not out:
                return out
            st["ready"] = False
            st["last_trigger"] = rec
            rec["trigger"] = True
            rec["mode"] = modes[st["triggers"] % len(modes)]  # interleaved rounds
            rec["cold"] = not pipeline.warming
            rec["bare"] = st["bare"]
            st["triggers"] += 1
            if warm_ab:  # --warm-ab: every other round of triggers, the entry path is not kept warm before it
                # bit 0 of the round: bare / timed; bit 1: --dispatch-ab; the next bit: warm or cold
                pipeline.warming = not (st["triggers"] // len(modes) // (4 if dispatch_ab else 2)) % 2
            if not out:  # the bench's own intent: 20 ticks under the bid, an IOC that cannot fill
                bid = book.best_bid_ticks
                out = [EntryIntent(symbol, "long", "bench", now_ns, bid - 20, bid - 40, (), 60.0)]
            rec["inject"] = pc() - t1
            return out

        def timed(name: str, fn: Any, after_send: str = "") -> Any:
            def wrapper(*a: Any, **kw: Any) -> Any:
                t = pc()
                try:
                    return fn(*a, **kw)
                finally:
                    rec = _CUR.get()
                    if rec is not None:
                        # a write after the entry's hand-off (the engine records an entry after its send)
                        # is not part of tick-to-order: counted apart
                        key = after_send if after_send and "h0" in rec else name
                        rec[key] = rec.get(key, 0) + pc() - t
            return wrapper

        caps = {flag: dataclasses.replace(gw.capabilities, eager_submit=flag) for flag in (True, False)}

        def on_entry_sent(cid: str, ns: int) -> None:
            rec = _CUR.get()
            # only an entry sent from the pipeline task itself (not after a leverage round trip)
            if rec is not None and rec.get("trigger") and "p1" not in rec and "s1" not in rec:
                rec["s1"], rec["cid"] = ns, cid
                # read by the engine next (this instance's declaration; the class keeps its own); made once per
                # kind, assigned only when it changes: a dataclasses.replace here cost ~10 us cold inside the
                # measured window (order_task) on every entry
                eager = EAGER.get(rec["mode"], True)
                if gw.capabilities.eager_submit is not eager:
                    gw.capabilities = caps[eager]

        async def timed_submit(req: Any) -> Any:
            rec = _CUR.get()
            mine = rec is not None and rec.get("cid") == req.client_id
            if mine:
                rec["g0"] = pc()  # type: ignore[index]
                rec["req"] = req  # type: ignore[index]
            try:
                ack = await orig_submit(req)
                if mine:
                    rec["ack"] = ack.status.value  # type: ignore[index]
                return ack
            finally:
                if mine:
                    rec["a1"] = pc()  # type: ignore[index]
                    tasks.append(asyncio.get_running_loop().create_task(settle(rec)))  # type: ignore[arg-type]

        def on_sign(a: int, b: int) -> None:
            rec = _CUR.get()
            if rec is not None and "c0" in rec and "h0" not in rec:
                rec["sign0"], rec["sign1"] = a, b

        async def timed_post(path: str, params: dict[str, Any]) -> Any:
            rec = _CUR.get()
            if rec is None or "g0" not in rec or "c0" in rec or path != "order":
                return await orig_post(path, params)
            rec["c0"] = pc()
            req = rec["req"]
            return await send_entry(ex, rec["mode"], orig_post, path, params, req, instruments[req.symbol],
                                    ccxt_symbols[req.symbol])

        async def timed_place(path: str, params: dict[str, Any]) -> Any:
            """--transport: a `ws` entry takes the gateway's own path (the socket is up); a REST one the REST
            sender directly, as the gateway does with order_transport = "rest"."""
            rec = _CUR.get()
            if rec is None or "g0" not in rec or "c0" in rec or path != "order" or rec["mode"] == "ws":
                if rec is not None and "g0" in rec and "c0" not in rec and path == "order":
                    rec["c0"] = pc()
                return await orig_place(path, params)
            return await signer.post(path, params)  # timed_post

        def on_ws_send() -> None:
            rec = _CUR.get()
            if rec is not None and ("c0" in rec or (rec.get("bare") and "s1" in rec)) and "h0" not in rec and \
                    rec.get("mode") == "ws":
                rec["h0"] = pc()
                rec["h0_wall"] = time.time_ns()

        def timed_body(params: dict[str, Any]) -> str:
            t = pc()
            try:
                return orig_body(params)
            finally:
                on_sign(t, pc())

        def timed_sign(*a: Any, **kw: Any) -> Any:
            t = pc()
            try:
                return orig_sign(*a, **kw)
            finally:
                on_sign(t, pc())

        async def settle(rec: dict[str, Any]) -> None:
            """Not timed: the trade ends (an unfilled IOC at once; a filled real intent is flattened)."""
            need = ("h0", "ack", "inject") if rec.get("bare") else ("h0", "sign0", "ack", "inject")
            if all(k in rec for k in need):
                records.append(rec)
                counts[rec["mode"]] += bool(rec.get("bare"))  # the run stops on the headline's (bare) entries
            # the next round's kind (the entry is over: nothing of it runs through a wrapper any more)
            instrument(bool((st["triggers"] // len(modes)) % 2))
            for i in range(400):  # bounded: 0.2 s, then flatten whatever is left, up to another 4.5 s
                if not engine.trades:
                    break
                if i == 40:
                    st["flattened"] += 1
                    engine.flatten_all()
                await asyncio.sleep(0.005 if i < 40 else 0.0125)
            risk.gate.open_notional.clear()
            if min(counts.values()) >= entries:  # every path of the run (interleaved) has its bare entries
                done.set()
            # every other bot entry, the next trigger slot is the reference's (a recorded session is only so long)
            st["ref_turn"] = ref is not None and st["triggers"] % 2 == 0
            st["ready"] = True

        def run_pipeline(ev: Any, sync: Any, rec: dict[str, Any] | None) -> None:
            token = None
            if rec is not None:
                rec["p0"] = pc()
                # the engine's order task copies this context: ccxt inside it sees the same record
                token = _CUR.set(rec)
            try:
                pipeline.on_synced(ev, sync, time.time_ns())
            except Exception as e:  # App._dispatch reports these; here they are counted, then shown
                st["errors"].append(f"{type(e).__name__}: {e}")
                if rec is None or not rec.get("trigger"):
                    return
            finally:
                if token is not None:
                    _CUR.reset(token)
            if rec is not None:
                rec["p1"] = pc()
                if rec.get("trigger") and "s1" not in rec:
                    # denied by risk, or a symbol's first entry (its leverage is set first, off the hot
                    # path, in a task of the engine: not measured; its IOC expires by itself)
                    st["denied"] += not engine.trades
                    st["ready"] = True

        async def run_pipeline_task(ev: Any, sync: Any, rec: dict[str, Any] | None) -> None:
            run_pipeline(ev, sync, rec)

        def on_event(ev: Any) -> None:  # App._run_binance's on_event: the pipeline called synchronously
            assert feed is not None
            sync = feed.syncs.get(getattr(ev, "symbol", ""))
            rec = None
            if type(ev) is DepthDiff and "r0" in feed_rec:
                rec = {"r0": feed_rec["r0"], "ts_recv": feed_rec["ts_recv"], "parse": feed_rec.get("parse", 0),
                       "e0": pc()}
            # --dispatch-ab: every other round of len(modes) triggers, the event goes through a plain task of
            # its own (what App._spawn did before the pipeline was synchronous), for the comparison
            if dispatch_ab and (st["triggers"] // len(modes) // 2) % 2:  # bit 1 (bit 0: bare / timed)
                if rec is not None:
                    rec["dispatch_task"] = True
                t = asyncio.get_running_loop().create_task(run_pipeline_task(ev, sync, rec))
                tasks_live.add(t)
                t.add_done_callback(tasks_live.discard)
            else:
                run_pipeline(ev, sync, rec)

        tasks_live: set[asyncio.Task[None]] = set()
        feed = BinanceMarketFeed(venue, s.market, instruments, on_event)
        pipeline.syncs.update(feed.syncs)  # as App lists them (its warm-ups, the view and alerts read them there)
        orig_on_public = feed.public._on_message

        async def ref_send(coro: Any, rec: dict[str, Any]) -> None:
            try:
                await coro
            except Exception as e:  # counted: an answer the reference did not expect
                st["ref_errors"].append(f"{type(e).__name__}: {e}")
            finally:
                if "h0" in rec:
                    ref_rows.append({"total": rec["h0_wall"] - rec["ts_recv"], "parse_book": rec["rb"] - rec["r0"],
                                     "sign_send": rec["h0"] - rec["rb"]})
                st["ref_turn"] = False
                st["ready"] = True

        def on_public(raw: bytes, ts_recv_ns: int) -> None:
            if ref is not None and st["ready"] and st["ref_turn"] and st["ref_seeded"]:
                # the reference's turn: this message goes through it first (measured), then the bot's feed
                rec: dict[str, Any] = {"ts_recv": ts_recv_ns, "r0": pc()}
                hit = ref.on_raw(raw)
                if hit is not None:
                    st["ready"] = False
                    rec["rb"] = rec["c0"] = pc()
                    token = _CUR.set(rec)  # on_post stamps the hand-off to aiohttp
                    try:
                        ref.order(hit[0], hit[1], lambda coro: spawn_eager(
                            asyncio.get_running_loop().create_task, ref_send(coro, rec)))
                    finally:
                        _CUR.reset(token)
                feed_rec.clear()
                orig_on_public(raw, ts_recv_ns)
                return
            feed_rec.clear()
            feed_rec["r0"], feed_rec["ts_recv"] = pc(), ts_recv_ns
            orig_on_public(raw, ts_recv_ns)
            if ref is not None and st["ref_seeded"]:
                ref.on_raw(raw)  # its book follows every message (not timed)

        orig_warm = engine.warm_entry

        def counted_warm(*a: Any, **kw: Any) -> str:  # what the warm-ups reached (warm.py), for the facts
            got = orig_warm(*a, **kw)
            st["warm"][got] = st["warm"].get(got, 0) + 1
            return got

        engine.warm_entry = counted_warm  # type: ignore[method-assign]
        signals.on_depth = timed_signals  # type: ignore[method-assign,assignment]
        timed_risk = timed("risk", risk.assess)
        journal.open_trade = timed("journal", journal.open_trade, "journal_after_send")  # type: ignore[method-assign]
        engine.on_entry_sent = on_entry_sent
        orig_frame = ws_api.frame if ws_api is not None else None
        if ws_api is not None:
            assert orig_frame is not None

            def timed_frame(method: str, params: dict[str, Any]) -> tuple[int, bytes]:
                t = pc()
                try:
                    return orig_frame(method, params)
                finally:
                    on_sign(t, pc())

            ws_api.socket.on_send = on_ws_send
        # the routing wrappers (per-entry path and transport) are needed only when entries take several paths
        routing = len(modes) > 1

        def instrument(steps: bool) -> None:
            """Every other round of triggers the steps are timed (wrappers around parse, features, risk, the
            signing: each a Python frame and a few dict writes inside the measured window); in the other
            ("bare") rounds only the stamps the total needs stay (the trigger, the hand-off hooks, the gateway's
            answer for the bookkeeping), so the headline carries no instrumentation of its own, as the
            reference carries none."""
            st["bare"] = not steps
            on = steps or routing
            gw.submit = timed_submit  # type: ignore[method-assign]  # the answer and the settle: both kinds
            gw._place = timed_place if on else orig_place  # type: ignore[method-assign]
            signer.post = timed_post if on else orig_post  # type: ignore[method-assign]
            risk.assess = timed_risk if steps else orig_assess  # type: ignore[method-assign]
            signer.body = timed_body if steps else orig_body  # type: ignore[method-assign]
            ex.sign = timed_sign if steps else orig_sign
            if ws_api is not None:
                ws_api.frame = timed_frame if steps else orig_frame  # type: ignore[method-assign,assignment]
            feed_mod.parse_message = timed_parse if steps else orig_parse  # type: ignore[assignment]
            feat_mod.SymbolFeatures.on_depth = timed_features if steps else orig_feat  # type: ignore[method-assign]

        instrument(False)
        feed.public._on_message = on_public  # type: ignore[method-assign]
        await engine.refresh_account()
        tasks.append(asyncio.create_task(engine.run()))
        if s.execution.warm_interval_ms > 0:  # as App runs it: the entry path kept warm (warm.py)
            tasks.append(asyncio.create_task(pipeline.keep_warm(s.execution.warm_interval_ms / 1e3)))
        tasks.append(asyncio.create_task(feed.run()))
        await _wait_live(feed, 20.0)
        if ref is not None:
            for sym, sy in feed.syncs.items():
                ref.seed(sym, sy.book)
            st["ref_seeded"] = True
        if gc_freeze:
            gc.collect()
            gc.freeze()  # as in the in-process bench: no collection walks start-up objects on the hot path
        st["ready"] = True
        t0 = st["last_depth"] = time.monotonic()
        deadline = t0 + timeout_s
        seen, progress_at = -1, t0
        while not done.is_set() and time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), 1.0)
            # watchdog: a trigger whose trade never settles must not end the run silently
            now = time.monotonic()
            if st["ready"] or st["triggers"] != seen:
                seen, progress_at = st["triggers"], now
            elif now - progress_at > 10.0:
                st["stalls"] += 1
                st["stall_info"] = sorted((st.get("last_trigger") or {}).keys()), list(engine.trades)
                st["ready"], progress_at = True, now
            if time.monotonic() - st["last_depth"] > 5.0:
                st["stopped"] = "no LIVE depth message for 5 s (the recorded session ended?)"
                break
        st["ready"] = False
    finally:
        elapsed = time.monotonic() - t0
        feed_mod.parse_message = orig_parse  # type: ignore[assignment]
        feat_mod.SymbolFeatures.on_depth = orig_feat  # type: ignore[method-assign]
        if gc_freeze:
            gc.unfreeze()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if gw is not None:
            await gw.close()
        await session.close()
        journal.close()
    denials = dict(journal_rows(journal_path, "select reason, count(*) from denials group by reason"))
    acks: dict[str, int] = {}
    for r in records:
        acks[r["ack"]] = acks.get(r["ack"], 0) + 1
    return records, {"elapsed_s": round(elapsed, 2), "symbols": list(venue.symbols), "triggers": st["triggers"],
                     "denied": st["denied"], "real_fills_flattened": st["flattened"], "acks": acks,
                     "pipeline_errors": len(st["errors"]), "first_errors": st["errors"][:3], "stalls": st["stalls"],
                     "denials": denials, "stopped": st.get("stopped", ""),
                     "stall_info": st.get("stall_info"), "_reference_rows": ref_rows, "warm_ups": st["warm"],
                     "reference_errors": st["ref_errors"][:3]}


def journal_rows(path: str, sql: str) -> list[tuple[Any, ...]]:
    import sqlite3

    db = sqlite3.connect(path)
    try:
        return list(db.execute(sql))
    finally:
        db.close()


async def _wait_live(feed: Any, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not all(sy.health.is_live for sy in feed.syncs.values()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"books not LIVE within {timeout_s} s")
        await asyncio.sleep(0.05)
