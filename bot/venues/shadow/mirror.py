"""`ShadowMirror`: every order the bot sends to the demo account is also sent to a paper exchange.

Installed on the demo gateway's instance (`install()`): its `submit`, `cancel` and `set_leverage` are
wrapped, so every caller (the engine's order tasks, reconciliation, the shutdown) goes through the mirror
without knowing it. A submit is stamped (`sent_ns`, the wall clock), handed to the paper gateway as a task
of its own, then to the demo gateway as before: the demo request's synchronous prefix (build, sign, hand to
the transport: `capabilities.eager_submit`) still runs in the caller's step, after a few microseconds of
bookkeeping here, and nothing is written to SQLite on that path (the sink buffers; `run()` flushes).

The paper side is a `PaperGateway` (bot/venues/paper): the project's matching engine (queue position, order
latency, fees of the [sim] section) fed by the same public stream as the bot. Its fills never reach the
engine: they go to the sink (their own journal table), with the venue time of each fill.

The two accounts drift apart by construction (an entry that filled on one side only, a stop that fired on
one side only). The engine follows the demo account; the paper account is brought back in line when the
engine's trade ends: its orders of that trade are cancelled and, when no trade of the bot is open on the
symbol any more, what the paper account still holds there is closed at market (client id `<trade>-shx`,
journaled as role "residual") so every paper trade ends flat and its PnL is known.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from bot.domain.orders import OrderRequest, OrderUpdate
from bot.domain.types import OrderKind, Side
from bot.logging import get_logger

__all__ = ["ShadowMirror", "ShadowSink", "role_of", "trade_of"]

_HOUSEKEEPING_S = 0.25  # paper clean-up and journal flush period (off the order path)
# A trade that ended in the engine is cleaned up on the paper side this long after: its last mirrored orders
# (the market exit the engine sent as it ended) are still in flight there for the paper latency.
_SETTLE_NS = 500_000_000
_FINAL_WAIT_S = 1.0  # at shutdown, at most this long for the last paper requests and residual closes


class ShadowSink(Protocol):
    """Where the mirror's records go (bot/journal/shadow.py ShadowStore): buffered, written by flush()."""

    def order(self, row: dict[str, Any]) -> None: ...

    def fill(self, row: dict[str, Any]) -> None: ...

    def flush(self) -> None: ...


def trade_of(client_id: str) -> str:
    """The trade id a client id names ("t12-sl.2" -> "t12"); "" for orders of no trade (recon-flat-...)."""
    head = client_id.split("-", 1)[0]
    return head if len(head) > 1 and head[0] == "t" and head[1:].isdigit() else ""


def role_of(client_id: str) -> str:
    """The leg role a client id names (bot/execution/trade.py `_cid`): entry, add, stop, tp, exit, residual."""
    name = client_id.split("-", 1)[1].split(".", 1)[0] if "-" in client_id else ""
    if name == "entry":
        return "entry"
    if name.startswith("add"):
        return "add"
    if name == "sl":
        return "stop"
    if name.startswith("tp"):
        return "tp"
    if name == "shx":
        return "residual"
    return "exit"


def _outcome(exc: BaseException | None) -> str:
    if exc is None:
        return "accepted"
    if isinstance(exc, asyncio.CancelledError):
        return "cancelled"
    return f"refused: {type(exc).__name__}: {exc}"[:200]


class ShadowMirror:
    def __init__(self, demo: Any, paper: Any, sink: ShadowSink, open_trades: Callable[[], dict[str, str]],
                 clock: Callable[[], int] = time.time_ns, drive_clock: Callable[[], None] | None = None) -> None:
        self.demo = demo
        # brings the paper exchange to the wall clock (PaperGateway's run_clock does it while the feed runs;
        # at shutdown the feed is gone and the mirror drives it while the last paper requests complete)
        self.drive_clock = drive_clock
        self.paper = paper
        self.sink = sink
        self.open_trades = open_trades  # the engine's open trades: trade id -> symbol
        self.clock = clock
        self.log = get_logger("shadow")
        self._tasks: set[asyncio.Task[Any]] = set()
        self._pending: dict[str, dict[str, Any]] = {}  # client id -> its order row until both outcomes are in
        self._active: dict[str, str] = {}  # trade id -> symbol: trades with paper orders not yet cleaned up
        self._ended_ns: dict[str, int] = {}  # trade id -> when it was first seen ended in the engine
        self.stats = {"mirrored": 0, "paper_refused": 0, "paper_fills": 0, "residual_closes": 0}

    # ------------------------------------------------------------------ the demo gateway's wrappers
    def install(self) -> None:
        """Wrap the demo gateway's order entry on its instance (its class and other users are untouched)."""
        gw = self.demo
        submit, cancel, set_leverage = gw.submit, gw.cancel, gw.set_leverage

        async def shadow_submit(req: OrderRequest) -> Any:
            self._mirror_submit(req)
            exc: BaseException | None = None
            try:
                return await submit(req)
            except BaseException as e:
                exc = e
                raise
            finally:
                self._outcome(req.client_id, "demo_outcome", _outcome(exc))

        async def shadow_cancel(symbol: str, client_id: str, conditional: bool = False) -> None:
            self._spawn(self._paper_cancel(symbol, client_id, conditional))
            await cancel(symbol, client_id, conditional)

        async def shadow_set_leverage(symbol: str, leverage: int) -> None:
            self._spawn(self._paper_quiet(self.paper.set_leverage(symbol, leverage)))
            await set_leverage(symbol, leverage)

        gw.submit, gw.cancel, gw.set_leverage = shadow_submit, shadow_cancel, shadow_set_leverage

    def _mirror_submit(self, req: OrderRequest) -> None:
        now = self.clock()
        tid = trade_of(req.client_id)
        inst = self.demo.instrument(req.symbol)
        self._pending[req.client_id] = {
            "ts_ns": now, "trade_id": tid, "client_id": req.client_id, "role": role_of(req.client_id),
            "symbol": req.symbol, "side": req.side.value, "kind": req.kind.value,
            "qty": inst.lots_to_qty(req.qty_lots),
            "price": inst.ticks_to_price(req.price_ticks) if req.price_ticks is not None else None,
            "trigger_price": inst.ticks_to_price(req.trigger_ticks) if req.trigger_ticks is not None else None,
            "reduce_only": int(req.reduce_only or req.close_position), "demo_outcome": None, "paper_outcome": None}
        if tid:
            self._active[tid] = req.symbol
        self.stats["mirrored"] += 1
        self._spawn(self._paper_submit(req))

    def _outcome(self, client_id: str, key: str, value: str) -> None:
        row = self._pending.get(client_id)
        if row is None:
            return
        row[key] = value
        if row["demo_outcome"] is not None and row["paper_outcome"] is not None:
            self.sink.order(self._pending.pop(client_id))

    def _spawn(self, coro: Any) -> None:
        t = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ the paper side
    async def _paper_submit(self, req: OrderRequest) -> None:
        exc: BaseException | None = None
        try:
            await self.paper.submit(req)
        except Exception as e:  # the paper account refused (no position for a reduce-only stop, ...)
            exc = e
            self.stats["paper_refused"] += 1
        self._outcome(req.client_id, "paper_outcome", _outcome(exc))

    async def _paper_cancel(self, symbol: str, client_id: str, conditional: bool) -> None:
        # the paper order may have filled, expired or never existed there: nothing to do then
        with contextlib.suppress(Exception):
            await self.paper.cancel(symbol, client_id, conditional)

    async def _paper_quiet(self, coro: Any) -> None:
        with contextlib.suppress(Exception):
            await coro

    def on_paper_update(self, u: OrderUpdate) -> None:
        """A paper order's update: its fill (if any) into the sink, by the leg's own client id."""
        if u.last_fill_lots <= 0:
            return
        cid = u.parent_id or u.client_id  # a triggered stop's fill: the conditional order's id
        inst = self.paper.instrument(u.symbol)
        self.stats["paper_fills"] += 1
        self.sink.fill({"ts_ns": u.ts_event_ns or self.clock(), "trade_id": trade_of(cid), "client_id": cid,
                        "role": role_of(cid), "symbol": u.symbol, "side": u.side.value,
                        "qty": inst.lots_to_qty(u.last_fill_lots), "price": u.last_fill_price, "fee": u.fee,
                        "is_maker": int(u.is_maker)})

    async def _consume_paper(self, updates: AsyncIterator[OrderUpdate]) -> None:
        async for u in updates:
            self.on_paper_update(u)

    async def _clean_up(self, settle_ns: int | None = None) -> None:
        """Paper orders of ended trades cancelled; a paper position with no open trade of the bot on its
        symbol closed at market (the module docstring)."""
        live = self.open_trades()
        now = self.clock()
        settle = _SETTLE_NS if settle_ns is None else settle_ns
        ended = []
        for tid, sym in self._active.items():
            if tid in live:
                continue
            seen = self._ended_ns.setdefault(tid, now)
            if now - seen >= settle:
                ended.append((tid, sym))
        if not ended:
            return
        busy = set(live.values())
        for tid, sym in ended:
            del self._active[tid]
            self._ended_ns.pop(tid, None)
            for o in await self.paper.open_orders(sym):
                if trade_of(o.client_id) == tid:
                    await self._paper_cancel(sym, o.client_id, o.kind.is_conditional)
            if sym in busy:
                continue
            acct = await self.paper.account()
            for p in acct.positions:
                if p.symbol == sym and p.qty_lots:
                    side = Side.SELL if p.qty_lots > 0 else Side.BUY
                    req = OrderRequest(f"{tid}-shx", sym, side, OrderKind.MARKET, abs(p.qty_lots), reduce_only=True)
                    self.stats["residual_closes"] += 1
                    self._pending[req.client_id] = {
                        "ts_ns": self.clock(), "trade_id": tid, "client_id": req.client_id, "role": "residual",
                        "symbol": sym, "side": side.value, "kind": "MARKET",
                        "qty": self.paper.instrument(sym).lots_to_qty(abs(p.qty_lots)), "price": None,
                        "trigger_price": None, "reduce_only": 1, "demo_outcome": "not sent (paper only)",
                        "paper_outcome": None}
                    await self._paper_submit(req)

    async def _settle(self, wait_s: float) -> None:
        """At shutdown (the engine has ended its trades): the paper requests in flight answered, then the
        ended trades cleaned up at once (their residual positions closed), within `wait_s` in all."""
        end = time.monotonic() + wait_s

        async def until_idle() -> None:
            while self._tasks and time.monotonic() < end:
                if self.drive_clock is not None:
                    self.drive_clock()
                await asyncio.sleep(0.005)

        await until_idle()
        self._spawn(self._clean_up(settle_ns=0))
        await until_idle()
        await asyncio.sleep(0)  # the paper update consumer takes the last fills

    async def run(self) -> None:
        """Until cancelled: the paper account's fills into the sink; every 0.25 s its clean-up and a flush."""
        consumer = asyncio.get_running_loop().create_task(self._consume_paper(self.paper.updates()))
        try:
            while True:
                await asyncio.sleep(_HOUSEKEEPING_S)
                if consumer.done():
                    consumer.result()  # the paper stream died: say why (the TaskGroup reports it)
                try:
                    await self._clean_up()
                except Exception as e:  # the paper side must never stop the bot: logged, tried again
                    self.log.error("shadow_cleanup_failed", error=f"{type(e).__name__}: {e}")
                self.sink.flush()
        finally:
            try:
                await self._settle(_FINAL_WAIT_S)
            except BaseException as e:  # cancelled again, or failed: what is known is still journaled below
                self.log.warning("shadow_settle_incomplete", error=f"{type(e).__name__}: {e}")
            consumer.cancel()
            for t in list(self._tasks):
                t.cancel()
            for row in self._pending.values():  # outcomes still unknown at shutdown: journaled as such
                for k in ("demo_outcome", "paper_outcome"):
                    row[k] = row[k] or "unknown at shutdown"
                self.sink.order(row)
            self._pending.clear()
            with contextlib.suppress(Exception):
                self.sink.flush()
            self.log.info("shadow_stopped", **self.stats)
