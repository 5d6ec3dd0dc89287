"""How the engine sends, retries, looks up and cancels orders (a mixin of ExecutionEngine, split out of
engine.py to keep it small).

Rules (issue 11, "protective orders always get through"; architecture habit 7, never a blind resend):
- A protective leg (the STOP and the market EXIT of a trade holding a position) is never given up while
  the position exists: a 429/418 (or the limiter refusing it locally) is waited out for exactly the
  Retry-After the venue gave, other failures with a capped exponential backoff, then it is sent again
  under the SAME client id. Before a resend after an outcome that may have reached the matching engine
  (timeout, 5xx, connection lost, "ClientOrderId is duplicated") the order is looked up by its client id:
  found -> applied as the venue's answer, never resent. After a 429/418 or a local refusal nothing was
  processed (Binance General Info: the request is rejected), so the resend follows the wait directly.
  The loop ends when the leg is answered (ack, stream update, rejection), superseded (a newer stop) or
  no longer needed (flat, trade ended).
- An entry's ambiguous outcome is resolved by looking it up; a look-up that itself fails (VenueUnavailable,
  RateLimited) is retried with backoff while the trade stays ENTERING (so a fill arriving on the stream
  meanwhile is applied as usual) and reconciliation is requested; it never ends the process.
- A cancel refused for a rate limit or an outage is retried (bounded); a cancel of an order the venue no
  longer has is final (the stream says what happened).
- Halts (symbol or global) deny entries only (RiskGate.check_order): nothing here looks at them.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.domain.orders import OrderRequest
from bot.domain.types import OrderStatus, RejectReason
from bot.execution.actions import Cancel, Leg, LegRole, Submit
from bot.execution.eager import spawn_eager
from bot.venues.errors import AmbiguousOutcome, OrderRejected, RateLimited, VenueUnavailable
from bot.venues.ports import OrderAck

if TYPE_CHECKING:
    from bot.execution.trade import TradeMachine
    from bot.risk.reasons import Denial

__all__ = ["RETRY_CAP_S", "RETRY_FIRST_S", "EntryHandOff", "OrderSending", "backoff_s"]


@dataclass(frozen=True, slots=True)
class EntryHandOff:
    """An entry on_intent checked (`denied`: the gate's answer) and, allowed, handed off (`task`)."""

    req: OrderRequest
    denied: Denial | None
    task: asyncio.Task[OrderAck] | None

RETRY_FIRST_S = 0.1  # first backoff of a protective resend or a failed look-up
RETRY_CAP_S = 2.0  # backoff cap: a naked position is retried at least this often
_LOOKUP_CAP_S = 5.0  # an entry's look-up backs off further (nothing is at risk while it is unknown)
_CANCEL_ATTEMPTS = 30  # ~1 min at the cap; reconciliation removes what a cancel could not
_NOT_FOUND = object()
# test-only hook of the SIGKILL drill between an entry's send and its journal record (never set in a config)
_DRILL_KILL_AFTER_SEND = os.environ.get("SCALPER_DRILL_KILL_AFTER_SEND") == "1"


def backoff_s(attempt: int, first_s: float | None = None, cap_s: float | None = None) -> float:
    """Capped exponential backoff: attempt 1 -> first_s, doubling, never above cap_s (module defaults)."""
    first = RETRY_FIRST_S if first_s is None else first_s
    return min(RETRY_CAP_S if cap_s is None else cap_s, first * 2 ** max(0, attempt - 1))


class OrderSending:
    """The order tasks of ExecutionEngine (which provides the attributes below)."""

    if TYPE_CHECKING:
        gw: Any
        journal: Any
        log: Any
        risk: Any
        inflight: set[str]
        on_entry_sent: Callable[[str, int], None] | None
        on_reconcile_needed: Callable[[str, str], None] | None
        stats: dict[str, int]
        _by_client: dict[str, str]
        _pending: set[asyncio.Task[None]]
        _tg: asyncio.TaskGroup | None

        clock: Callable[[], int]
        def request_reconcile(self, symbol: str, reason: str) -> None: ...
        def _apply(self, m: TradeMachine, actions: list[Any], prejournaled: bool = False,
                   record: Callable[[], None] | None = None) -> None: ...
        def _leg_row(self, tid: str, cid: str, role: str, req: Any, intended: int, lim: Any,
                     status: str) -> dict[str, Any]: ...

    # -- sending ----------------------------------------------------------------------------------------
    def _hand_off(self, req: OrderRequest) -> asyncio.Task[OrderAck]:
        """An entry handed to an `eager_submit` gateway before its trade is planned (on_intent): the
        gateway's synchronous part (checks, the request, its signature, the hand-off to the transport) runs
        now, in a task of its own started eagerly (eager.py); `_submit` then gives the task to the order
        task, which awaits its answer as for any entry."""
        if self.on_entry_sent is not None:
            self.on_entry_sent(req.client_id, time.perf_counter_ns())
        return spawn_eager(asyncio.get_running_loop().create_task, self.gw.submit(req))

    def _submit(self, m: TradeMachine, a: Submit, now: int, journaled: bool = False,
                record: Callable[[], None] | None = None, sent: EntryHandOff | None = None) -> None:
        """Send one leg. `record`: the trade's durable record (on_intent), written right after the hand-off
        to the gateway, or before anything else is journaled when the order is not sent. `sent`: the entry
        was checked by the gate and (allowed) handed off already by on_intent (`_hand_off`)."""
        leg = a.leg
        if sent is not None:
            denial = sent.denied
        else:
            denial = self.risk.gate.check_order(now, a.reduces, m.plan.symbol)  # never denies a reducing order
        if denial is not None:
            if record is not None:
                record()
            self.journal.denial(now, m.plan.symbol, m.plan.setup, m.plan.side, denial.reason.value,
                                f"{leg.client_id}: {denial.detail}")
            self._apply(m, m.on_denied(leg.client_id, denial.reason.value, now))
            return
        if not journaled:
            self.journal.add_leg(now, self._leg_row(m.tid, leg.client_id, leg.role.value, leg.req,
                                                    leg.intended_ticks, m.lim, "PENDING_NEW"))
        self._by_client[leg.client_id] = m.tid
        self.inflight.add(leg.client_id)
        sub = sent.task if sent is not None else None
        if sub is None and self.on_entry_sent is not None and leg.role is LegRole.ENTRY:
            self.on_entry_sent(leg.client_id, time.perf_counter_ns())
        if sub is None and leg.role is LegRole.ENTRY and self.gw.capabilities.eager_submit:
            # The gateway's synchronous part (checks, the request, its signature, the hand-off to the
            # transport) runs now, in a task of its own started eagerly (eager.py), instead of a loop turn
            # later behind the queued market data; the order task awaits its answer exactly as before.
            sub = spawn_eager(asyncio.get_running_loop().create_task, self.gw.submit(leg.req))
        if sub is not None:
            if _DRILL_KILL_AFTER_SEND and record is not None:
                # test-only (the send-before-record drill): the process dies once the venue has answered this
                # entry sent before its record, the record never written: the crash the restart must cover
                sub.add_done_callback(lambda _t: os.kill(os.getpid(), signal.SIGKILL))
                return
            if record is not None:
                self._record(m, record)
            task = self._spawn(self._send(m, leg, sub))
            task.add_done_callback(lambda t: sub.cancel() if t.cancelled() else None)
            return
        if record is not None:
            self._record(m, record)
        self._spawn(self._send(m, leg))

    def _record(self, m: TradeMachine, record: Callable[[], None]) -> None:
        """The entry's record after its send: a failure (disk full, I/O error) must not take the trade's
        machine with it (its order is out; the machine protects the fill): logged, counted, reconciled."""
        try:
            record()
        except Exception as e:
            self.stats["errors"] += 1
            self.log.error("journal_record_failed", trade_id=m.tid, error=f"{type(e).__name__}: {e}")
            self.request_reconcile(m.plan.symbol, f"{m.tid}: journal record failed")

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        """An engine task (order, cancel, leverage + entry, account refresh) inside its own error boundary:
        what it raises is counted and logged, never raised into the TaskGroup (it would end the process)."""
        if self._tg is not None:
            task = self._tg.create_task(self._guarded(coro))
        else:  # driven without run() (backtests step the engine themselves): still owned and awaited by drain()
            task = asyncio.get_running_loop().create_task(self._guarded(coro))
        # a task cancelled before its first step never started `coro`: close it (no "never awaited")
        task.add_done_callback(lambda _t: coro.close())
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        return task

    async def _guarded(self, coro: Any) -> Any:
        try:
            return await coro
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self.stats["errors"] += 1
            self.log.error("engine_task_failed", task=getattr(coro, "__qualname__", "?"),
                           error=f"{type(e).__name__}: {e}")
            self.request_reconcile("", f"engine task {getattr(coro, '__qualname__', '?')} raised {type(e).__name__}")
            return None

    async def _send(self, m: TradeMachine, leg: Leg, started: asyncio.Task[OrderAck] | None = None) -> None:
        try:
            if leg.role in (LegRole.STOP, LegRole.EXIT):
                await self._send_protective(m, leg, started)
            else:
                await self._send_once(m, leg, started)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # the error boundary of one order task: never into the TaskGroup
            self.stats["errors"] += 1
            self.log.error("order_task_failed", trade_id=m.tid, client_id=leg.client_id,
                           error=f"{type(e).__name__}: {e}")
            self.request_reconcile(m.plan.symbol, f"{leg.client_id}: {type(e).__name__}")
        finally:
            self.inflight.discard(leg.client_id)

    async def _send_once(self, m: TradeMachine, leg: Leg, started: asyncio.Task[OrderAck] | None = None) -> None:
        req = leg.req
        try:
            ack = await (started if started is not None else self.gw.submit(req))
        except OrderRejected as e:
            now = self.clock()
            self.journal.rejection(now, m.tid, req.client_id, str(e.code), str(e))
            self._apply(m, m.on_rejected(req.client_id, e.code, str(e), now, e.reason))
            return
        except AmbiguousOutcome:
            # never resend blindly: look the order up by its client id (architecture.md habit 7)
            u = await self._lookup_until_known(m, leg)
            if u is None:
                return  # answered meanwhile by the stream
            now = self.clock()
            if u is _NOT_FOUND:
                self.journal.rejection(now, m.tid, req.client_id, "unknown", "ambiguous outcome; order not found")
                self._apply(m, m.on_rejected(req.client_id, "unknown", "not found after timeout", now))
            else:
                self._apply(m, m.on_update(u, now))
            return
        except (VenueUnavailable, RateLimited) as e:
            now = self.clock()
            self.journal.rejection(now, m.tid, req.client_id, type(e).__name__, str(e))
            self._apply(m, m.on_rejected(req.client_id, type(e).__name__, str(e), now))
            return
        self._apply(m, m.on_ack(ack, self.clock()))

    async def _lookup_until_known(self, m: TradeMachine, leg: Leg) -> Any:
        """The venue's answer for `leg` by client id: its OrderUpdate, _NOT_FOUND, or None when the leg was
        answered otherwise (the stream) while look-ups kept failing. Retries failed look-ups with backoff."""
        req = leg.req
        attempt = 0
        while True:
            try:
                u = await self.gw.fetch_order(req.symbol, req.client_id, req.kind.is_conditional)
                return _NOT_FOUND if u is None else u
            except (VenueUnavailable, RateLimited) as e:
                attempt += 1
                self.stats["lookup_retries"] += 1
                if attempt == 1:  # the picture is unknown: let reconciliation compare it too
                    self.request_reconcile(m.plan.symbol, f"{req.client_id}: look-up failed ({type(e).__name__})")
                wait = backoff_s(attempt, cap_s=_LOOKUP_CAP_S)
                if isinstance(e, RateLimited):
                    wait = max(wait, e.retry_after_s)
                self.log.warning("lookup_failed_retrying", trade_id=m.tid, client_id=req.client_id,
                                 attempt=attempt, wait_s=round(wait, 3), error=str(e))
                await asyncio.sleep(wait)
                if _answered(leg):
                    return None

    async def _send_protective(self, m: TradeMachine, leg: Leg, started: asyncio.Task[OrderAck] | None) -> None:
        """Send a stop or a market exit until the venue has answered it (see the module doc)."""
        req = leg.req
        attempt = 0
        may_exist = False  # the previous attempt may have reached the matching engine
        while True:
            if attempt:
                if not _still_needed(m, leg):
                    self.log.info("protective_retry_ended", trade_id=m.tid, client_id=req.client_id,
                                  attempts=attempt, state=m.state.value, pos_lots=m.pos_lots)
                    return
                if may_exist:
                    try:
                        u = await self.gw.fetch_order(req.symbol, req.client_id, req.kind.is_conditional)
                    except (VenueUnavailable, RateLimited) as e:
                        attempt += 1
                        await self._protective_wait(m, leg, e, attempt)
                        continue
                    if u is not None:
                        self.log.warning("protective_found_on_lookup", trade_id=m.tid, client_id=req.client_id,
                                         status=u.status.value)
                        self._apply(m, m.on_update(u, self.clock()))
                        return
                    if _answered(leg):
                        return
                self.stats["protective_resends"] += 1
                self.log.warning("protective_resend", trade_id=m.tid, client_id=req.client_id, role=leg.role.value,
                                 attempt=attempt)
            try:
                ack = await (started if started is not None else self.gw.submit(req))
            except OrderRejected as e:
                started = None
                if e.reason is RejectReason.DUPLICATE_CLIENT_ID:
                    may_exist, attempt = True, attempt + 1  # an earlier attempt landed: look it up
                    continue
                now = self.clock()
                self.journal.rejection(now, m.tid, req.client_id, str(e.code), str(e))
                self._apply(m, m.on_rejected(req.client_id, e.code, str(e), now, e.reason))
                return
            except (AmbiguousOutcome, VenueUnavailable, RateLimited) as e:
                started = None
                # 429/418 and local refusals: not processed. Anything else: it may exist, look before resending.
                may_exist = not isinstance(e, RateLimited)
                attempt += 1
                await self._protective_wait(m, leg, e, attempt)
                continue
            self._apply(m, m.on_ack(ack, self.clock()))
            return

    async def _protective_wait(self, m: TradeMachine, leg: Leg, e: Exception, attempt: int) -> None:
        self.stats["protective_retries"] += 1
        if isinstance(e, RateLimited):
            # exactly the Retry-After the venue gave (what is left of it when refused locally): sending
            # earlier would be refused again and count towards a ban (exchange-facts A2)
            wait = e.retry_after_s + 0.01
        else:
            wait = backoff_s(attempt)
        if attempt == 1:
            self.request_reconcile(m.plan.symbol, f"{leg.client_id}: {type(e).__name__}")
        self.log.warning("protective_retry", trade_id=m.tid, client_id=leg.client_id, role=leg.role.value,
                         attempt=attempt, wait_s=round(wait, 3), pos_lots=m.pos_lots, error=f"{type(e).__name__}: {e}")
        await asyncio.sleep(wait)

    async def _cancel(self, m: TradeMachine, a: Cancel) -> None:
        for attempt in range(1, _CANCEL_ATTEMPTS + 1):
            try:
                await self.gw.cancel(a.symbol, a.client_id, a.conditional)
                return
            except OrderRejected as e:
                # the venue no longer has it open (filled, expired: the stream says which). Expected after
                # a fill races the cancel (an OCO leg's sibling filled), so not a warning
                self.log.info("cancel_not_open", client_id=a.client_id, error=str(e))
                return
            except AmbiguousOutcome as e:
                self.log.warning("cancel_failed", client_id=a.client_id, error=str(e))
                return
            except (VenueUnavailable, RateLimited) as e:
                leg = m.legs.get(a.client_id)
                if leg is not None and leg.done:
                    return
                wait = max(backoff_s(attempt), e.retry_after_s + 0.01 if isinstance(e, RateLimited) else 0.0)
                self.log.warning("cancel_retry", client_id=a.client_id, attempt=attempt, wait_s=round(wait, 3),
                                 error=str(e))
                await asyncio.sleep(wait)
        self.request_reconcile(a.symbol, f"cancel of {a.client_id} failed {_CANCEL_ATTEMPTS} times")


def _answered(leg: Leg) -> bool:
    """The venue told us about this leg some other way (ack, stream update, fill) or it ended."""
    return leg.done or leg.confirmed or leg.filled_lots > 0 or leg.status is not OrderStatus.PENDING_NEW


def _still_needed(m: TradeMachine, leg: Leg) -> bool:
    """A protective leg still worth sending: unanswered, not cancelled, the trade holds a position and (a
    stop) no newer stop replaced it."""
    if m.is_final or _answered(leg) or leg.cancel_sent or m.pos_lots <= 0:
        return False
    if leg.role is LegRole.STOP:
        return leg is m.stop_leg
    return True

