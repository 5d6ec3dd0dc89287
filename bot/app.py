"""Composition root: build the bot from Settings and run it in one TaskGroup until told to stop.

Venues:
- `sim` (the embedded default): the seeded market generator paced by the wall clock feeds both the
  in-process simulated exchange (`SimExchange`, behind `SimGateway`) and the bot's own parse -> sync
  -> DOM path; no keys, no network.
- `binance-usdm`: the public feed (`BinanceMarketFeed`) and the ccxt gateway (`BinanceGateway`), for
  exchange-sim / demo / testnet / live, chosen by `venue.environment`.
- `app.mode = "paper"` (any venue but sim, any environment): that venue's public feed only, orders filled
  by the simulator's matching engine in process (bot.venues.paper); no key, no private endpoint.
- `app.mode = "shadow"`: [shadow]'s public feed drives the bot, orders go to [venue]'s demo/testnet account
  and are paper-filled alongside on the same feed (bot.venues.shadow, docs/shadow.md).

Every component gets only its own settings section.

Start-up (bot.execution.recovery): trading is HALTED "reconciling" until the exchange and the journal agree.
The journal's open trades are adopted by the engine before it consumes any update; then positions, open
orders and algo orders are compared with the journal (bot.execution.reconcile): missed fills applied, a
missing stop placed at once, a position of no known trade given a stop (or flattened) with an alert,
orphan exit orders cancelled, a position closed by hand recorded as a MANUAL close. A failed fetch decides
nothing: retried with backoff, still halted, alerted. The same pass runs after every user-stream reconnect,
on a timer (`venue.reconcile_interval_ms`), after a failure, when the engine asks (`on_reconcile_needed`),
when a position from the stream differs from the bot's, and for orders in flight too long; the user stream's
health is judged from its messages and probes (bot.app_watch).

Shutdown (SIGINT/SIGTERM, or `run_for_s`): new entries stop first (trading HALTED "shutdown"); then the
simulator flattens (its positions die with the process), a real venue either keeps its positions with their
exchange-side stops or flattens, by `app.on_shutdown`. Keeping checks the exchange first: a position whose
stop is not shown open there is flattened. The process never exits with an unprotected position.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import os
import signal
import sys
import time
from typing import Any, cast

import orjson

from bot.app_ops import OperatorControls
from bot.app_watch import ExchangeWatch
from bot.domain.instrument import Instrument
from bot.domain.types import CloseReason, TriggerPrice
from bot.errors import ConfigError
from bot.execution.engine import ExecutionEngine
from bot.execution.reconcile import ReconcileConfig
from bot.execution.recovery import RECONCILING, Recovery
from bot.guard import check as check_live_guard  # before any connection (bot/guard.py)
from bot.journal import Journal
from bot.journal.funding import FundingRecorder
from bot.logging import configure_logging, get_logger
from bot.ops.daily import DailySummary
from bot.ops.fills import FillAlerts
from bot.ops.live import OpsFeed
from bot.ops.state import RuntimeState
from bot.pipeline import Pipeline
from bot.risk import RiskManager
from bot.risk.brackets import LeverageBrackets
from bot.settings import Settings, redacted
from bot.signals import SignalEngine
from bot.venues.ports import RetryAfterState

__all__ = ["App", "check_live_guard"]

_MS = 1_000_000
_START_RETRY_FIRST_S = 1.0  # start-up against a venue answering 429/418/5xx: capped backoff
_START_RETRY_CAP_S = 60.0
_SHUTDOWN_WAIT_S = 10.0  # bounded wait for flat/protected at shutdown (plus any Retry-After running)
# the whole wait never beyond app.shutdown_max_wait_s (45 s): deploy/scalper.service's TimeoutStopSec (60 s)
# must still leave time for the EMERGENCY alert (flush <= 5 s); a longer ban is alerted, not waited out
EXIT_NAKED = 3  # exit code: the process ends with a position the exchange shows no stop for


def _instruments(settings: Settings) -> dict[str, Instrument]:
    """The sim venue's instruments: the embedded rules where known, rules derived from a reference price for
    any other symbol (bot/venues/sim/symbols.py). Live and exchange-sim venues take them from exchangeInfo."""
    from bot.venues.sim.symbols import sim_instruments

    return sim_instruments(settings.venue.symbols, settings.sim.gen_start_prices)


class App(OperatorControls, ExchangeWatch):
    def __init__(self, settings: Settings, *, view: bool | None = None, run_for_s: float | None = None,
                 config_path: str | None = None) -> None:
        self.settings = settings
        self.config_path = config_path
        self.run_for_s = run_for_s
        self.view = sys.stdout.isatty() if view is None else view
        self.log = get_logger("app")
        self.state = RuntimeState(last_errors_max=settings.ops.last_errors_max,
                                  user_stream_stale_after_ns=settings.ops.user_stream_stale_after_ms * _MS,
                                  now_ns=time.time_ns())  # uptime from here
        self.stop = asyncio.Event()
        self.engine: ExecutionEngine | None = None
        self.pipeline: Pipeline | None = None
        self.journal: Journal | None = None
        self.gateway: Any = None
        self.ops: Any = None
        self.recovery: Recovery | None = None
        self.reconcile_wanted = asyncio.Event()  # set by the user stream after every catch-up
        self.ops_feed: OpsFeed | None = None  # the operator side (bot.ops.live), built with the engine
        from bot.ops.alerts import Alerts

        self.alerts = Alerts(settings.ops.alerts, name=settings.app.name)
        self._init_watch()

    # ------------------------------------------------------------------ building
    def _journal_path(self) -> str:
        p = self.settings.journal.path
        if p != ":memory:" and not os.path.isabs(p):
            os.makedirs(self.settings.app.state_dir, exist_ok=True)
            p = os.path.join(self.settings.app.state_dir, p)
        return p

    def _build_core(self, gateway: Any, instruments: dict[str, Instrument], equity: float,
                    brackets: dict[str, LeverageBrackets] | None) -> None:
        s = self.settings
        now = time.time_ns()
        self.journal = Journal(self._journal_path(), s.journal.synchronous, s.journal.busy_timeout_ms)
        body = orjson.dumps(redacted(s), option=orjson.OPT_SORT_KEYS).decode()
        cfg_hash = hashlib.sha256(body.encode()).hexdigest()[:16]
        self.journal.begin_run(now, s.app.mode, s.app.name)  # this run's rows are kept apart (reports per run)
        self.journal.record_config(now, cfg_hash, body)
        self.funding = FundingRecorder(self.journal)  # funding settlements -> journal, attributed to trades
        self.daily = DailySummary(self.journal, self.alerts)
        self.fill_alerts = FillAlerts(self.journal, self.alerts)
        self.log.info("config", hash=cfg_hash, mode=s.app.mode, venue=s.venue.name, symbols=list(s.venue.symbols))
        risk = RiskManager(s.risk, equity, now, brackets)
        self.gateway = gateway
        self.engine = ExecutionEngine(gateway, risk, self.journal, s.execution, s.risk)
        self.ops_feed = OpsFeed(self.state, self.alerts, self.engine, venue=s.venue.name,
                                account_check_s=s.ops.account_check_s)
        self.ops_feed.watch_stats = self.watch_stats
        signals = SignalEngine(s.signals, instruments)
        # a strategy plug-in that raised is disabled by the engine (and logged): tell the operator
        signals.on_failure = lambda ev: self.alerts.error("strategy", ev.message, strategy=ev.name, symbol=ev.symbol)
        self.pipeline = Pipeline(instruments, signals, self.engine, self.state, depth_bps=s.market.depth_bps,
                                 clock=time.time_ns, max_book_age_ms=s.market.max_book_age_ms)
        self.state.set_info(name=s.app.name, mode=s.app.mode, venue=s.venue.name,
                            environment=s.venue.environment, symbols=list(s.venue.symbols), config_hash=cfg_hash)
        rc = ReconcileConfig(instruments, s.venue.unknown_position_action, s.venue.unknown_position_stop_bps,
                             TriggerPrice.MARK if s.execution.stop_trigger == "mark" else TriggerPrice.LAST)
        limits = {name: float(getattr(v, "time_limit_s", 0.0)) for name, v in s.signals if hasattr(v, "time_limit_s")}
        limits.update(signals.time_limits_s())  # plug-ins' setups too
        self.recovery = Recovery(self.engine, rc, symbols=s.venue.symbols, time_limits_s=limits,
                                 alert=self._reconcile_alert)
        self.ops_feed.recovery = self.recovery
        self.ops_feed.syncs = self.pipeline.syncs  # the venue feeds register theirs in it too
        self.recovery.halt_entries(now)  # no entry before the exchange and the journal agree (_reconciled)
        # the engine doubts its picture (a failed look-up, a fill for an ended trade, an input that raised):
        # a reconciliation pass now (bot/app_watch.py)
        self.engine.on_reconcile_needed = self._reconcile_needed  # type: ignore[attr-defined]
        self.state.set_trading_state("HALTED", RECONCILING, now)

    def _reconcile_alert(self, kind: str, message: str, symbol: str) -> None:
        if kind == "emergency":
            self.alerts.emergency(symbol or "-", message)
        else:
            self.alerts.error("reconcile", f"{symbol}: {message}" if symbol else message)
            self.state.on_error("reconcile", message, time.time_ns())
        self._sync_ops_state(time.time_ns())  # the failure shows in /status now, not at the next tick

    def _reconciled(self, runs: int) -> None:
        """After a successful pass: the start-up halt is lifted (symbol halts it set stay)."""
        assert self.recovery is not None
        now = time.time_ns()
        self._after_pass()
        if self.stream_health is not None and not self.stream_health.ever_connected:
            self._sync_ops_state(now)
            return  # the start-up halt holds until the user stream is there (its catch-up asks for a pass)
        if self.recovery.allow_entries(now):
            self.state.set_trading_state("ACTIVE", "reconciled", now)
        self._sync_ops_state(now)

    # ------------------------------------------------------------------ SIGHUP
    def reload_risk(self) -> bool:
        """Re-read the config file: risk parameters take effect now (journaled); venue settings cannot
        change under a running bot (refused, logged). Returns True when the new risk section applies."""
        from bot.settings import load_settings

        if self.config_path is None or self.engine is None:
            self.log.warning("reload_ignored", reason="started without a config file")
            return False
        try:
            new = load_settings(self.config_path)
        except ConfigError as e:
            self.log.error("reload_refused", error=str(e))
            return False
        old = self.settings
        if new.venue != old.venue:
            self.log.error("reload_refused", reason="venue settings cannot change while running; restart the bot")
            return False
        before, after = old.risk.model_dump(), new.risk.model_dump()
        changed = {k: [before[k], after[k]] for k in after if before[k] != after[k]}
        risk = self.engine.risk
        risk.cfg = risk.gate.cfg = self.engine.risk_cfg = new.risk
        self.settings = old.model_copy(update={"risk": new.risk})
        if self.journal is not None:
            body = orjson.dumps(redacted(self.settings), option=orjson.OPT_SORT_KEYS).decode()
            self.journal.record_config(time.time_ns(), hashlib.sha256(body.encode()).hexdigest()[:16], body)
        self.log.info("risk_reloaded", changed=changed)
        return True

    # ------------------------------------------------------------------ running
    async def run(self) -> int:
        s = self.settings
        if s.app.mode == "paper":  # before any venue branch: paper never builds a real gateway
            return await self._run_paper()
        if s.app.mode == "shadow":  # demo account + paper fills of the same orders (bot/venues/shadow)
            return await self._run_shadow()
        if s.venue.name == "sim":
            return await self._run_sim()
        if s.venue.name == "binance-usdm":
            return await self._run_binance()
        if s.venue.name == "bybit":
            return await self._run_bybit()
        raise ConfigError(f"venue.name = {s.venue.name!r} cannot run from `scalper run`; "
                          "use sim, binance-usdm or bybit")

    async def _run_sim(self) -> int:
        from bot.venues.sim.brackets import risk_brackets
        from bot.venues.sim.gateway import SimGateway, exchange_from_settings
        from bot.venues.sim.generator import MarketGenerator

        s = self.settings
        instruments = _instruments(s)
        ex = exchange_from_settings(s.sim, instruments)
        gw = SimGateway(ex)
        self._build_core(gw, instruments, s.sim.starting_balance_usdt, risk_brackets())
        gen = MarketGenerator(list(instruments.values()), s.sim, start_ns=time.time_ns())

        async def market() -> None:
            assert self.pipeline is not None
            on_raw = self.pipeline.on_raw
            while True:  # until cancelled: the shutdown flatten needs the market to keep moving
                now = time.time_ns()
                for m in gen.take(now):
                    raw = m.raw
                    ex.on_message(raw, m.ts_ns)
                    self._dispatch(on_raw, raw, time.time_ns())
                ex.advance_to(now)
                await asyncio.sleep(0.005)

        return await self._serve([market()], flatten_on_exit=True)

    async def _run_binance(self) -> int:
        from bot.venues.binance_usdm.feed import BinanceMarketFeed
        from bot.venues.binance_usdm.gateway import BinanceGateway

        return await self._run_venue(BinanceGateway(
            self.settings.venue, order_transport=self.settings.execution.order_transport), BinanceMarketFeed)

    async def _run_bybit(self) -> int:
        from bot.venues.bybit.feed import BybitMarketFeed
        from bot.venues.bybit.gateway import BybitGateway

        gw = BybitGateway(self.settings.venue, order_transport=self.settings.execution.order_transport)
        return await self._run_venue(gw, BybitMarketFeed)

    async def _run_paper(self) -> int:
        from bot.venues.paper.venue import paper_venue

        gw, feed_factory = paper_venue(self.settings)
        return await self._run_venue(gw, feed_factory, flatten_on_exit=True)  # paper positions end with us

    async def _run_shadow(self) -> int:
        from bot.journal.shadow import ShadowStore
        from bot.venues.shadow.venue import shadow_venue

        def open_trades() -> dict[str, str]:
            return {} if self.engine is None else {t: m.plan.symbol for t, m in self.engine.trades.items()}

        def sink() -> ShadowStore:
            assert self.journal is not None
            return ShadowStore(self.journal)

        gw, feed_factory = shadow_venue(self.settings, sink, open_trades)
        return await self._run_venue(gw, feed_factory)

    async def _run_venue(self, gw: Any, feed_cls: Any, flatten_on_exit: bool | None = None) -> int:
        """A live venue: its gateway (orders, user stream) and its public feed (books) around the core."""
        s = self.settings
        acct = await self._start_venue(gw)
        if acct is None:
            return 0  # stopped (SIGINT/SIGTERM) before the venue answered: nothing was traded
        instruments = {sym: gw.instrument(sym) for sym in s.venue.symbols}
        self._build_core(gw, instruments, acct.equity, None)
        assert self.pipeline is not None
        pipeline = self.pipeline
        feed: Any = None

        on_synced = pipeline.on_synced

        def on_event(ev: Any) -> None:
            # synchronous, in the feed's own step: no task per market event (issue 12 item 1)
            self._dispatch(on_synced, ev, feed.syncs.get(getattr(ev, "symbol", "")), time.time_ns())

        if gw.user_stream is not None:  # every reconnect's catch-up -> a reconciliation pass
            gw.user_stream.on_caught_up = self.reconcile_wanted.set
            self._wire_stream(gw.user_stream)
            assert self.ops_feed is not None
            gw.on_balance = self.ops_feed.on_balance  # the wallet between REST checks (bot.ops.live)
        feed = feed_cls(s.venue, s.market, instruments, on_event)
        for sym, sync in feed.syncs.items():
            self.state.track_book(sym, sync.health, sync.stats)
            # the feed owns its syncs; the pipeline lists them so feed-loss alerts and the view see them
            pipeline.syncs[sym] = sync
        # the one await of the set-up, after everything is wired (an await earlier let the user stream's
        # "connected" go unheard, or showed a pipeline without its books); entries wait for reconciliation
        await self._load_fees(gw)
        flatten = s.app.on_shutdown == "flatten" if flatten_on_exit is None else flatten_on_exit
        return await self._serve([feed.run()], flatten_on_exit=flatten)

    async def _load_fees(self, gw: Any) -> None:
        """The venue's fee rates into the cost model (config's as fallback, with a warning): bot/app_fees.py."""
        from bot.app_fees import describe, load_fee_rates
        from bot.risk.costs import FeeRates

        assert self.engine is not None
        rates = await load_fee_rates(gw, self.settings.venue.symbols, FeeRates.from_config(self.settings.risk),
                                     self.log)
        for sym, r in rates.items():
            self.engine.risk.set_fees(sym, r)
        self.state.set_info(fees=describe(rates))
        self.log.info("fee_rates", fees=describe(rates))

    async def _start_venue(self, gw: Any) -> Any:
        """gw.start() + the account, retried with capped backoff while the venue answers 429/418/5xx or is
        unreachable, instead of exiting into a restart loop that would lengthen a ban. Nothing is sent
        while a Retry-After or ban runs (the limiter keeps it across attempts). None when told to stop."""
        from bot.venues.errors import AmbiguousOutcome, RateLimited, VenueUnavailable

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):  # a stop during start-up is honoured at once
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop.set)
        attempt = 0
        started = False  # start() once it succeeded: a second one would start a second user stream
        while not self.stop.is_set():
            try:
                if not started:
                    await gw.start()
                    started = True
                return await gw.account()
            except (RateLimited, VenueUnavailable, AmbiguousOutcome) as e:
                attempt += 1
                wait = min(_START_RETRY_CAP_S, _START_RETRY_FIRST_S * 2 ** (attempt - 1))
                blocked = 0.0
                if gw.capabilities.retry_after:
                    blocked = cast(RetryAfterState, gw).blocked_for_s(time.time())
                if isinstance(e, RateLimited):
                    blocked = max(blocked, e.retry_after_s)
                wait = max(wait, blocked + 0.05)
                self.log.error("venue_start_failed", attempt=attempt, retry_in_s=round(wait, 2),
                               error=f"{type(e).__name__}: {e}")
                self.state.on_error("venue", f"start-up: {type(e).__name__}: {e}", time.time_ns())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), wait)
        return None

    def _dispatch(self, fn: Any, *args: Any) -> None:
        """One market event through the synchronous pipeline (signals -> risk -> engine decision; order
        sends start as the engine's own tasks), inside an error boundary: what it raises is shown and
        logged, and the feed goes on with the next message (the engine's inputs have their own boundary)."""
        try:
            fn(*args)
        except Exception as exc:
            self.state.on_error("pipeline", f"{type(exc).__name__}: {exc}", time.time_ns())
            self.log.error("pipeline_error", error=repr(exc))

    async def _serve(self, sources: list[Any], *, flatten_on_exit: bool) -> int:
        s = self.settings
        assert self.engine is not None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop.set)
        with contextlib.suppress(NotImplementedError, RuntimeError, AttributeError):
            loop.add_signal_handler(signal.SIGHUP, self.reload_risk)
        assert self.ops_feed is not None
        self.ops_feed.on_account(await self.engine.refresh_account())
        assert self.recovery is not None
        self.recovery.restore_limits(time.time_ns())  # a restart keeps the day's loss limits
        await self.recovery.adopt()  # before the engine consumes any update: those of adopted legs reach them
        if s.ops.enabled:
            from bot.app_view import WebFeed
            from bot.ops.server import OpsServer

            self.ops = OpsServer(self.state, s.ops, alerts=self.alerts, state_dir=s.app.state_dir)
            self.ops.on_control("halt", self._halt)
            self.ops.on_control("resume", self._resume)
            self.ops.on_control("flatten", self._flatten)
            self.ops.on_control("reset-limits", self._reset_limits)
            self.ops.web.extras = WebFeed(self)  # /view: books, last trades, equity (bot.app_view)
            port = await self.ops.start()
            self.log.info("ops_listening", url=f"http://{s.ops.host}:{port}")
        rc = 0
        # Start-up's objects (settings, the venue's markets, modules) moved out of the cyclic GC's reach:
        # a collection that lands on the decision path walks only what was made since (gc.freeze, as the
        # latency bench measures it; docs/architecture.md "Entry path latency").
        gc.collect()
        gc.freeze()
        try:
            async with asyncio.TaskGroup() as tg:
                engine_task = tg.create_task(self.engine.run())
                workers = [tg.create_task(src) for src in sources]
                workers.append(tg.create_task(self._housekeeping()))
                workers.append(tg.create_task(self.alerts.run()))  # sends off the trading path
                workers.append(tg.create_task(self.funding.run(self.gateway)))
                workers.append(tg.create_task(self.daily.run()))
                workers.append(tg.create_task(self.fill_alerts.run()))
                warm = self.pipeline if s.execution.warm_interval_ms > 0 and s.venue.name != "sim" else None
                if warm is not None:  # the entry path kept in the CPU caches (bot/execution/warm.py)
                    workers.append(tg.create_task(warm.keep_warm(s.execution.warm_interval_ms / 1e3)))
                else:
                    self.engine.warm_ok = False  # /status: entry_warm.on false
                workers.append(tg.create_task(self.recovery.run(
                    self.reconcile_wanted, self._reconciled, interval_ms=s.venue.reconcile_interval_ms,
                    min_gap_ms=1000 if s.venue.name != "sim" else 0)))
                if self.stream_health is not None:  # a venue with a user stream (bot.app_watch)
                    workers.append(tg.create_task(self._watch_positions()))
                    workers.append(tg.create_task(self._inflight_check()))
                if self.run_for_s is not None:
                    workers.append(tg.create_task(self._stop_after(self.run_for_s)))
                await self.stop.wait()
                self.log.info("shutdown", flatten=flatten_on_exit)
                self._halt("shutdown")
                bound_s = self._shutdown_bound_s()
                protect_by = time.monotonic() + bound_s
                if flatten_on_exit:
                    self.engine.flatten_all(CloseReason.MANUAL)
                    await self._wait_flat(bound_s)
                else:  # keep: only positions the exchange shows protected
                    unprotected = await self.recovery.protect_for_exit()
                    if unprotected:
                        await self._wait_flat(bound_s, unprotected)
                if await self._naked_at_exit(protect_by):
                    rc = EXIT_NAKED
                # what this process leaves open at the venue, and with which stop (bot.ops.live)
                self.log.info("shutdown_complete", left_open=self.ops_feed.open_positions(), exit_code=rc)
                for w in workers:
                    w.cancel()
                engine_task.cancel()
        except* Exception as eg:  # a component died: report it, never swallow it
            for e in _leaves(eg):
                self.log.error("fatal", error=f"{type(e).__name__}: {e}")
            rc = 1
        finally:
            if self.ops is not None:
                await self.ops.stop()
            with contextlib.suppress(Exception):
                await self.gateway.close()
            if self.journal is not None:
                self.journal.close()
        return rc

    def _shutdown_bound_s(self) -> float:
        """The shutdown's wait: the fixed bound plus a Retry-After still running (exits wait it out) plus
        the stop-confirm deadline, at most app.shutdown_max_wait_s."""
        extra = 0.0
        gw = self.gateway
        if gw is not None and gw.capabilities.retry_after:
            extra = cast(RetryAfterState, gw).blocked_for_s(time.time())
        wait = _SHUTDOWN_WAIT_S + extra + self.settings.execution.stop_confirm_timeout_ms / 1000.0
        return min(self.settings.app.shutdown_max_wait_s, wait)

    async def _naked_at_exit(self, protect_by: float = 0.0) -> bool:
        """Until `protect_by` (monotonic s) every position must be flat or have a confirmed stop (a stop
        still being acknowledged, or retried after a Retry-After, gets that long); what is left then -> an
        EMERGENCY alert naming symbol, side, qty and what is missing (sent before the process ends).
        True when there was one."""
        assert self.engine is not None
        # bounded 50 ms poll, during shutdown only (the engine has no "protected" event to await)
        while self.engine.unprotected() and time.monotonic() < protect_by:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        naked = self.engine.unprotected()
        for n in naked:
            what = (f"{n['side']} {n['qty']} left WITHOUT A STOP at shutdown ({n['trade_id']}, {n['state']}): "
                    f"{n['missing']}")
            self.log.error("shutdown_naked_position", **n)
            self.alerts.emergency(n["symbol"], what)
        if naked:
            await self.alerts.flush(5.0)
        return bool(naked)

    async def _stop_after(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self.stop.set()

    async def _wait_flat(self, timeout_s: float, trade_ids: list[str] | None = None) -> None:
        """Until every trade (or those of `trade_ids`) is closed and no order task is in flight, bounded."""
        assert self.engine is not None
        eng = self.engine

        def open_ones() -> list[str]:
            return [t for t in eng.trades if trade_ids is None or t in trade_ids]

        deadline = time.monotonic() + timeout_s
        # The engine has no "flat" event to await; a bounded 50 ms poll only runs during shutdown.
        while (open_ones() or eng._pending) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        if open_ones():
            self.log.error("shutdown_not_flat", open_trades=open_ones())


def _leaves(eg: BaseException) -> list[BaseException]:
    """The leaf exceptions of (nested) exception groups, each logged with its own type and message."""
    if isinstance(eg, BaseExceptionGroup):
        return [leaf for e in eg.exceptions for leaf in _leaves(e)]
    return [eg]


def run_app(settings: Settings, *, live: bool = False, view: bool | None = None,
            run_for_s: float | None = None, config_path: str | None = None) -> int:
    check_live_guard(settings, live)
    from bot.signals.plugins import load_plugins

    load_plugins(settings.signals)  # a bad strategy plug-in: one line and exit 2 before anything starts
    view = sys.stdout.isatty() if view is None else view
    if view and settings.log.format == "auto":
        # The live view owns the terminal; logs go to a JSON file beside the journal.
        os.makedirs(settings.app.state_dir, exist_ok=True)
        log_file = open(os.path.join(settings.app.state_dir, "scalper.log"), "a", buffering=1)  # noqa: SIM115
        configure_logging(settings.log.level, "json", stream=log_file)
    else:
        configure_logging(settings.log.level, settings.log.format)
    app = App(settings, view=view, run_for_s=run_for_s, config_path=config_path)
    try:
        import uvloop

        return int(uvloop.run(app.run()))
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return int(asyncio.run(app.run()))
