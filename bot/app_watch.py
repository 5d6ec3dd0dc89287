"""Watching the exchange while running (issue 11): user-stream health, positions from the stream, in-flight
orders. A mixin of `bot.app.App`, which owns every attribute used here.

- User-stream health (bot.venues.stream_health.StreamHealth) is fed by the real stream of either venue
  (`on_event`: connected / lost / every message / catch-up done / keep-alive or ping answered or not) and
  by reconciliation (`Recovery.on_missed`: a fill or final order state the stream never delivered). While
  the stream is down or in doubt, entries are halted on every symbol (reason "user stream ..."), `/health`
  is degraded with the reason and one alert goes out per transition; a doubt also asks the stream to
  reconnect (its reconnect catches up by REST) and a reconciliation pass runs at once.
- Positions from the stream (ACCOUNT_UPDATE, Bybit `position`) are compared with what the engine's trades
  hold on the symbol; a difference still there `position_grace_s` (0.2 s) later (the fill's order update
  follows the position update on Binance) asks for a reconciliation pass at once: a size the bot does not own gets its
  own stop and halts entries on the symbol within seconds (bot.execution.reconcile `Unowned`).
- In-flight check (as NautilusTrader's): an order whose request returned without an acknowledgement, or a
  market order without its fill, `inflight_check_ms` after it was first seen pending is looked up by client
  id (a reconciliation pass); if the stream said nothing since then, the stream is in doubt. A request still
  under way (the engine's `inflight`, e.g. waiting out a Retry-After) is not the stream's to answer.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from bot.domain.types import OrderKind, OrderStatus
from bot.venues.stream_health import REASON_PREFIX, StreamHealth

if TYPE_CHECKING:
    from bot.execution.engine import ExecutionEngine
    from bot.execution.recovery import Recovery
    from bot.ops.alerts import Alerts
    from bot.ops.state import RuntimeState
    from bot.settings import Settings

__all__ = ["ExchangeWatch"]

_MS = 1_000_000


class ExchangeWatch:
    settings: Settings
    state: RuntimeState
    alerts: Alerts
    engine: ExecutionEngine | None
    recovery: Recovery | None
    reconcile_wanted: asyncio.Event
    gateway: Any
    log: Any

    position_grace_s = 0.2
    reconnect_min_interval_s = 5.0

    def _init_watch(self) -> None:
        self.stream_health: StreamHealth | None = None  # None: this venue has no user stream (sim)
        self._stream: Any = None
        self._pending_since: dict[str, int] = {}  # client id -> when first seen waiting for ack / fill
        self._missed_seen = 0
        self._last_reconnect_ask = 0.0
        self._reconnect_later: asyncio.TimerHandle | None = None  # a reconnect deferred by the min interval
        self.watch_stats = {"position_mismatches": 0, "inflight_checks": 0, "reconnects_asked": 0,
                            "reconcile_asked": 0}

    # ------------------------------------------------------------------ asking for a pass
    def _reconcile_needed(self, symbol: str, reason: str) -> None:
        """Any part of the bot that doubts the picture (the engine after a failed order or flatten, the
        watches below): a reconciliation pass at once."""
        self.watch_stats["reconcile_asked"] += 1
        if self.recovery is not None:
            self.recovery.reasons.append(f"{symbol}: {reason}" if symbol else reason)
        self.log.info("reconcile_needed", symbol=symbol, reason=reason)
        self.reconcile_wanted.set()

    # ------------------------------------------------------------------ the user stream
    def _wire_stream(self, stream: Any) -> None:
        v = self.settings.venue
        # a renewed stream earns trust back over two timer passes that find nothing missed (stream_health)
        self.stream_health = StreamHealth(probation_ns=2 * max(v.reconcile_interval_ms, 2500) * _MS)
        self._stream = stream
        stream.on_event = self._on_stream_event
        if self.gateway.capabilities.stream_missed_hook:  # fills from an order's answer the stream never sent
            self.gateway.on_stream_missed = self._on_missed
        if self.recovery is not None:
            self.recovery.on_missed = self._on_missed
            self.recovery.stream_doubt_grace_ns = self.settings.venue.stream_doubt_grace_ms * _MS
        self.state.set_user_stream(False, "not connected yet", time.time_ns())

    def _on_stream_event(self, kind: str, detail: str = "") -> None:
        h = self.stream_health
        if h is None:
            return
        now = time.time_ns()
        if kind == "message":  # per message: keep it cheap
            h.on_message(now)
            self.state.on_user_stream_message(now)
            return
        if kind == "connected":
            h.on_connected(now)
            self.state.set_user_stream(True, "connected", now)
        elif kind == "lost":
            h.on_lost(detail, now)
            self.state.set_user_stream(False, detail, now)
        elif kind == "caught_up":
            h.on_caught_up(now)
        elif kind in ("probe_ok", "probe_failed"):
            h.on_probe(kind == "probe_ok", detail, now)
            if kind == "probe_ok":
                self.state.on_user_stream_message(now)
            else:
                self._reconcile_needed("", f"user stream probe: {detail}")
        self._stream_gate()

    def _on_missed(self, symbol: str, detail: str) -> None:
        """Reconciliation (or the in-flight check) found what the stream should have told: doubt, reconnect."""
        h = self.stream_health
        if h is None:
            return
        h.on_missed(detail, time.time_ns())
        self._stream_gate()
        self._ask_reconnect(detail)
        self._reconcile_needed(symbol, "user stream in doubt")

    def _ask_reconnect(self, detail: str) -> None:
        """A doubt ends only after a catch-up that follows it (StreamHealth.on_missed), so a reconnect asked
        within `reconnect_min_interval_s` of the last one is deferred to the end of that interval, never
        dropped: a dropped one left a muted stream in doubt, and every symbol halted, for good."""
        stream = self._stream
        if stream is None:
            return
        wait_s = self._last_reconnect_ask + self.reconnect_min_interval_s - time.monotonic()
        if wait_s > 0:
            if self._reconnect_later is None:
                self._reconnect_later = asyncio.get_running_loop().call_later(wait_s, self._deferred_reconnect,
                                                                               detail)
            return
        self._last_reconnect_ask = time.monotonic()
        if stream.request_reconnect(detail[:200]):
            self.watch_stats["reconnects_asked"] += 1

    def _deferred_reconnect(self, detail: str) -> None:
        self._reconnect_later = None
        h = self.stream_health
        if h is not None and h.doubt and not h.caught_up_since_doubt:  # still owed a renewed stream
            self._ask_reconnect(detail)

    def _after_pass(self) -> None:
        """After a complete reconciliation pass: a doubt ends when the renewed stream missed nothing."""
        h, rec = self.stream_health, self.recovery
        if h is None or rec is None:
            return
        if rec.missed_total == self._missed_seen:
            h.on_clean_pass(time.time_ns())
        self._missed_seen = rec.missed_total
        self._stream_gate()

    def _stream_gate(self) -> None:
        """Entries halted on every symbol while the stream is down or in doubt (after its first connect;
        before it the start-up halt holds them); lifted when it is healthy again. Only halts this judgement
        set are lifted or renamed: another reason (an operator's, a position of no known trade) stays."""
        h, eng = self.stream_health, self.engine
        if h is None or eng is None:
            return
        now = time.time_ns()
        reason = h.reason()
        self.state.set_user_stream_doubt(reason if h.connected else "")
        gate = eng.risk.gate
        changed = False
        if reason and h.ever_connected:
            for sym in self.settings.venue.symbols:
                cur = gate.halted_symbols.get(sym)
                if cur is None or (cur.startswith(REASON_PREFIX) and cur != reason):
                    gate.halt_symbol(sym, reason, now)
                    changed = True
        elif not reason:
            for sym, cur in list(gate.halted_symbols.items()):
                if cur.startswith(REASON_PREFIX):
                    gate.lift_symbol(sym, "user stream healthy", now)
                    changed = True
        if changed:
            eng._journal_gate(now)
        t = h.transition()
        if t is not None:
            if t.ok:
                self.alerts.error("user stream", "user stream healthy again; entries allowed")
                self.log.warning("user_stream_healthy")
            else:
                self.alerts.error("user stream", f"{t.reason}; entries refused, REST catch-up")
                self.state.on_error("user stream", t.reason, now)
                self.log.error("user_stream_unhealthy", reason=t.reason)

    # ------------------------------------------------------------------ positions from the stream
    def _bot_lots(self, symbol: str) -> int:
        assert self.engine is not None
        return sum(m.sign * m.pos_lots for m in self.engine.trades.values() if m.plan.symbol == symbol)

    async def _watch_positions(self) -> None:
        """Every position the stream reports vs the engine's trades on that symbol."""
        pending: dict[str, asyncio.Task[None]] = {}
        latest: dict[str, int] = {}

        async def recheck(sym: str) -> None:
            await asyncio.sleep(self.position_grace_s)
            pending.pop(sym, None)
            lots, mine = latest[sym], self._bot_lots(sym)
            if lots != mine:
                self.watch_stats["position_mismatches"] += 1
                self.log.warning("position_differs", symbol=sym, exchange_lots=lots, bot_lots=mine)
                self._reconcile_needed(sym, f"position {lots} lots at the exchange, the bot's trades hold {mine}")

        try:
            async for snap in self.gateway.position_updates():
                latest[snap.symbol] = snap.qty_lots
                if snap.symbol not in pending and snap.qty_lots != self._bot_lots(snap.symbol):
                    pending[snap.symbol] = asyncio.get_running_loop().create_task(recheck(snap.symbol))
        finally:
            for t in pending.values():
                t.cancel()

    # ------------------------------------------------------------------ in-flight orders
    async def _inflight_check(self) -> None:
        period_s = min(0.25, self.settings.venue.inflight_check_ms / 4000.0)
        while True:
            await asyncio.sleep(period_s)
            self._inflight_once(time.time_ns())

    def _inflight_once(self, now: int) -> list[str]:
        """Orders waiting too long for their acknowledgement or (market) fill -> a look-up pass. Returns the
        client ids that triggered it."""
        eng = self.engine
        if eng is None:
            return []
        limit_ns = self.settings.venue.inflight_check_ms * _MS
        waiting: set[str] = set()
        for m in eng.trades.values():
            for leg in m.legs.values():
                if leg.done or leg.client_id in eng.inflight:
                    continue  # a request still under way (a Retry-After wait) is the sender's to resolve
                unacked = leg.status is OrderStatus.PENDING_NEW and not leg.confirmed
                unfilled = leg.req.kind is OrderKind.MARKET and leg.filled_lots < leg.req.qty_lots
                if unacked or unfilled:
                    waiting.add(leg.client_id)
        for cid in [c for c in self._pending_since if c not in waiting]:
            del self._pending_since[cid]
        late = []
        for cid in waiting:
            since = self._pending_since.setdefault(cid, now)
            if now - since >= limit_ns:
                late.append(cid)
                self._pending_since[cid] = now  # again after another period if still waiting
        if not late:
            return []
        self.watch_stats["inflight_checks"] += 1
        h = self.stream_health
        waited_ms = limit_ns // _MS
        if h is not None and h.connected and h.silent_since(now - limit_ns):
            self._on_missed("", f"{len(late)} order(s) without ack or fill for {waited_ms} ms and no message "
                                f"since ({', '.join(sorted(late)[:3])})")
        else:
            self._reconcile_needed("", f"in-flight check: {', '.join(sorted(late)[:3])} waiting {waited_ms} ms")
        return late
