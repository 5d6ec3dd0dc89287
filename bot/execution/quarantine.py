"""Entries of unknown fate (a mixin of ExecutionEngine; issue 11, late execution).

An entry that answered "execution status unknown" (5xx, -1007, a timeout) and that its look-ups then did
not find is given up (its trade ABORTED), but the order may still reach the book seconds later
(exchange-facts A2: 5XX = status UNKNOWN; the loopback's `late_execute` fault). Were the symbol free
meanwhile, an entry on the OPPOSITE side would net against that late fill (one-way mode): the smaller
side's stop and exits refused -2022, "flatten failed", both trades closed "outside the bot".

So the symbol is quarantined (RiskGate.quarantine, the pure decision: entries either side denied
ENTRY_OUTCOME_UNKNOWN and journaled as denials; stops and exits of other trades never blocked) until the
order's fate is certain:
- it executed: its update reopens the trade (engine._reopen), which then holds the symbol (POSITION_OPEN)
  and the quarantine is released;
- `execution.unknown_entry_quarantine_ms` passed (a timer in the engine's heap, like the machines'
  deadlines) and a final look-up by client id (clientOrderId / Bybit orderLinkId: the gateway's
  fetch_order) says "not found": over. Found executed: adopted as any late update (reopened). A failed
  look-up keeps the quarantine and is retried with backoff: never released on a guess.

Durable (bot/journal/quarantines.py): the start (symbol, client id, trade id, when the final look-up is due)
and the end are journaled, and a restart holds every open one again before any entry is allowed
(`restore_quarantine`, from bot/execution/quarantine_restore.py): the same rules from there on.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bot.domain.types import OrderStatus
from bot.execution.actions import LegRole
from bot.execution.sending import backoff_s
from bot.venues.errors import RateLimited, VenueUnavailable

if TYPE_CHECKING:
    from bot.execution.trade import TradeMachine
    from bot.venues.ports import OrderUpdate

__all__ = ["QUARANTINE_END", "EntryQuarantine"]

QUARANTINE_END = "QUARANTINE_END"  # the engine-heap timer of a quarantine (no machine's deadline)
_MS = 1_000_000
_LOOKUP_CAP_S = 5.0  # a failed final look-up is retried at least this often (the symbol only waits)
_RESTING = (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED)


class EntryQuarantine:
    if TYPE_CHECKING:
        gw: Any
        cfg: Any
        risk: Any
        journal: Any
        log: Any
        trades: dict[str, TradeMachine]
        _ended: dict[str, TradeMachine]
        _by_client: dict[str, str]
        _timers: list[tuple[int, int, str, Any]]
        _seq: int
        _wake: asyncio.Event
        clock: Callable[[], int]
        def _journal_gate(self, now: int) -> None: ...
        def _spawn(self, coro: Any) -> asyncio.Task[Any]: ...
        def on_update(self, u: OrderUpdate, now_ns: int | None = None) -> None: ...

    def _quarantine_if_unknown(self, m: TradeMachine, now: int) -> None:
        """`m` just ABORTED: if its entry was given up as "not found" (engine look-up or reconciliation),
        its symbol takes no entry until that order's fate is certain (module doc)."""
        ms = self.cfg.unknown_entry_quarantine_ms
        cid = _unknown_entry(m)
        if ms <= 0 or cid is None:
            return
        until = now + ms * _MS
        self.risk.gate.quarantine(m.plan.symbol, cid, until, now)
        self.journal.quarantine_start(now, m.plan.symbol, cid, m.tid, until)  # a restart holds it again
        self._journal_gate(now)
        self._quarantine_timer(m.tid, until)
        self.log.warning("entry_quarantined", trade_id=m.tid, client_id=cid, symbol=m.plan.symbol, ms=ms)

    def restore_quarantine(self, m: TradeMachine, cid: str, until_ns: int) -> None:
        """After a restart: `cid` (an entry of ABORTED trade `m`, rebuilt from the journal) is in quarantine
        as the journal says, until its fate is certain: entries on its symbol denied again, its late updates
        routed to `m` (they reopen it, as live), its final look-up due at `until_ns` (at once when past)."""
        now = self.clock()
        if m.tid not in self.trades:
            self._ended[m.tid] = m
        for c in m.legs:
            self._by_client.setdefault(c, m.tid)
        m.replay_not_found(cid)
        self.risk.gate.quarantine(m.plan.symbol, cid, until_ns, now, why="restored after a restart")
        self._journal_gate(now)
        self._quarantine_timer(m.tid, until_ns)
        self.log.warning("entry_quarantine_restored", trade_id=m.tid, client_id=cid, symbol=m.plan.symbol,
                         due_in_ms=(until_ns - now) // _MS)

    def _quarantine_timer(self, tid: str, at_ns: int) -> None:
        self._seq += 1
        heapq.heappush(self._timers, (at_ns, self._seq, tid, QUARANTINE_END))
        if self._timers[0][1] == self._seq:
            self._wake.set()

    def _release_quarantine(self, m: TradeMachine, reason: str) -> None:
        now = self.clock()
        for cid in [c for c in self.risk.gate.quarantined.get(m.plan.symbol, {}) if c in m.legs]:
            if self.risk.gate.release(m.plan.symbol, cid, reason, now):
                self.journal.quarantine_end(now, cid, reason)
                self.log.warning("entry_quarantine_released", trade_id=m.tid, client_id=cid, reason=reason)
        self._journal_gate(now)

    def _quarantine_due(self, tid: str) -> int:
        """The quarantine of trade `tid`'s entry has passed: the final look-up (a task). 0 when already
        released (it executed meanwhile)."""
        m = self._ended.get(tid) or self.trades.get(tid)
        if m is None:
            return 0
        held = [c for c in self.risk.gate.quarantined.get(m.plan.symbol, {}) if c in m.legs]
        for cid in held:
            self._spawn(self._final_lookup(m, cid))
        return len(held)

    async def _final_lookup(self, m: TradeMachine, cid: str) -> None:
        req = m.legs[cid].req
        attempt = 0
        while cid in self.risk.gate.quarantined.get(req.symbol, {}):
            try:
                u = await self.gw.fetch_order(req.symbol, cid, req.kind.is_conditional)
            except (VenueUnavailable, RateLimited) as e:  # unknown still: the quarantine stays
                attempt += 1
                wait = backoff_s(attempt, cap_s=_LOOKUP_CAP_S)
                if isinstance(e, RateLimited):
                    wait = max(wait, e.retry_after_s)
                self.log.warning("quarantine_lookup_failed", trade_id=m.tid, client_id=cid, attempt=attempt,
                                 wait_s=round(wait, 3), error=str(e))
                await asyncio.sleep(wait)
                continue
            if u is not None and (u.filled_lots > 0 or u.status in _RESTING):
                self.on_update(u)  # executed after all: adopted as a late update (engine._reopen releases)
            what = "not found" if u is None else f"{u.status.value}, {u.filled_lots} lots filled"
            self._release_quarantine(m, f"final look-up after the quarantine: {what}")
            return


def _unknown_entry(m: TradeMachine) -> str | None:
    """The client id of `m`'s entry when it was given up as "not found" after an ambiguous outcome (it may
    still execute: TradeMachine.reopen_late), else None."""
    for cid in m._not_found:
        leg = m.legs.get(cid)
        if leg is not None and leg.role is LegRole.ENTRY:
            return cid
    return None
