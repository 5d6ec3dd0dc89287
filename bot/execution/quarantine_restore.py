"""Restart: the entry quarantines the journal holds open are held again before any entry is allowed.

An entry given up as "not found" after an ambiguous outcome quarantines its symbol until its fate is certain
(bot/execution/quarantine.py). The journal keeps each quarantine's start and end (bot/journal/quarantines.py);
a process that died inside the window (crash, SIGKILL, deploy) left its row open. At start-up (Recovery.adopt,
trading still HALTED "reconciling", before the engine consumes any update and before the first reconciliation
pass) every open row is decided here, with the same rules as live:

0. An entry given up as "not found" whose quarantine row a kill prevented (it follows the trade's ABORTED row in
   the same step) is found from its leg (`Journal.unrecorded_quarantines`, the last hour) and journaled with
   the deadline it had (the leg's end + `execution.unknown_entry_quarantine_ms`).
1. `on_restore`, from the journal alone: the trade is open or closed there -> the entry executed (its reopen
   was journaled; the restart adopts that trade): the quarantine ends. ABORTED -> still unknown: its machine is
   rebuilt (restore_machine, as an open trade's) and the quarantine held again (engine.restore_quarantine:
   entries either side denied ENTRY_OUTCOME_UNKNOWN, the entry's late updates routed to it, the final look-up
   timer at the journaled `until_ns`). A trade row the journal lacks, or a symbol this config no longer
   trades: held in the journal, with an alert (nothing here can look it up, and nothing enters it).
2. One look-up by client id right away (`after_lookup`): found executed (filled or resting) -> the late
   update reopens its trade as live (engine.on_update -> _reopen: its own stop, the quarantine released),
   BEFORE the first reconciliation pass, so that pass sees the trade owning its position (no "position of
   no known trade" stop or halt beside the trade's own stop); found ended with nothing filled -> certain,
   released; not found -> released only when `until_ns` has passed (then this was its final look-up, as
   live), else held until then (the engine's timer makes the final look-up); a failed look-up holds it (the
   timer's final look-up retries with backoff). Never released on a guess.

If the early look-up failed and the order had executed while the bot was down, the first pass treats the
position as nobody's (its stop, the symbol halted) until the timer's look-up reopens the trade; the next pass
then cancels that stop as an exit of no open trade and lifts the halt (reconcile.py rule 4): the existing path
of a late fill that reconciliation saw first.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Any

from bot.domain.orders import OrderUpdate
from bot.domain.types import OrderStatus
from bot.execution.actions import TradeState
from bot.execution.restore import restore_machine
from bot.venues.errors import VenueError

if TYPE_CHECKING:
    from bot.execution.engine import ExecutionEngine
    from bot.execution.trade import TradeMachine

__all__ = ["RestoredQuarantines", "Verdict", "after_lookup", "on_restore"]

_RESTING = (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED)
_MS = 1_000_000
# How far back a restart looks for an entry given up as not found whose quarantine row a kill prevented (the
# two are written in the same synchronous step; a restart usually follows within minutes). Older: a fill of it
# is a position reconciliation already treats as nobody's (its stop, the symbol halted).
_GAP_LOOKBACK_NS = 3_600 * 1_000_000_000


class Verdict(StrEnum):
    HOLD = "hold"  # still unknown: entries on the symbol denied until the final look-up
    LOOK_UP = "look up"  # unknown from the journal alone: hold it and ask the venue
    RELEASE = "release"  # its fate is certain: the quarantine ends
    REOPEN = "reopen"  # it executed: the late update reopens its trade (which releases the quarantine)


def on_restore(trade_state: str | None) -> tuple[Verdict, str]:
    """What the journal alone says of an open quarantine whose trade is in `trade_state` (None: no row)."""
    if trade_state is None:
        return Verdict.HOLD, "its trade is not in the journal"
    if trade_state == TradeState.ABORTED.value:
        return Verdict.LOOK_UP, "its trade is ABORTED: the entry may still execute"
    return Verdict.RELEASE, f"executed: its trade is {trade_state} in the journal"


def after_lookup(u: OrderUpdate | None, until_ns: int, now_ns: int) -> tuple[Verdict, str]:
    """The look-up by client id at restore (`u`: what the venue has, None = not found)."""
    if u is not None and (u.filled_lots > 0 or u.status in _RESTING):
        return Verdict.REOPEN, f"found at restart: {u.status.value}, {u.filled_lots} lots filled"
    if u is not None:
        return Verdict.RELEASE, f"found at restart: {u.status.value}, nothing filled"
    if now_ns >= until_ns:  # as live: past the quarantine, the final look-up said not found
        return Verdict.RELEASE, "final look-up after the quarantine (at restart): not found"
    return Verdict.HOLD, "not found yet; final look-up when the quarantine ends"


class RestoredQuarantines:
    """Recovery's part (a mixin): `restore_quarantines`, called from Recovery.adopt."""

    if TYPE_CHECKING:
        engine: ExecutionEngine
        journal: Any
        gw: Any
        cfg: Any
        log: Any
        time_limits_s: dict[str, float]
        def alert(self, kind: str, message: str, symbol: str = "") -> None: ...

    quarantines_restored = False

    async def restore_quarantines(self) -> int:
        """Every open quarantine of the journal held again or ended (module doc). Once per process.
        Returns how many are held after it."""
        if self.quarantines_restored:
            return 0
        self.quarantines_restored = True
        eng, j = self.engine, self.journal
        now, ms = eng.clock(), eng.cfg.unknown_entry_quarantine_ms
        for r in j.unrecorded_quarantines(now - _GAP_LOOKBACK_NS) if ms > 0 else ():
            # killed between the trade's ABORTED row and its quarantine's: the quarantine it had from then
            j.quarantine_start(r["ended_ns"], r["symbol"], r["client_id"], r["trade_id"], r["ended_ns"] + ms * _MS)
            self.log.warning("entry_quarantine_unrecorded", trade_id=r["trade_id"], client_id=r["client_id"])
        held: list[tuple[TradeMachine, str, int]] = []
        for q in j.open_quarantines():
            cid, tid, sym, until = q["client_id"], q["trade_id"], q["symbol"], int(q["until_ns"])
            rows = j.rows("trades", "trade_id=?", (tid,))
            verdict, why = on_restore(rows[0]["state"] if rows else None)
            inst = self.cfg.instruments.get(sym)
            if verdict is Verdict.RELEASE:
                j.quarantine_end(eng.clock(), cid, why)
                self.log.warning("entry_quarantine_ended_at_restart", trade_id=tid, client_id=cid, reason=why)
                continue
            if verdict is Verdict.HOLD or inst is None:
                self.alert("error", f"{cid} may still execute ({why or 'symbol not traded by this config'}): "
                                    "check it at the exchange", sym)
                continue
            m = restore_machine(rows[0], j.rows("legs", "trade_id=?", (tid,)), j.rows("fills", "trade_id=?", (tid,)),
                                inst, eng.cfg, taker_fee_bps=eng.risk_cfg.taker_fee_bps,
                                maker_fee_bps=eng.risk_cfg.maker_fee_bps,
                                time_limit_s=self.time_limits_s.get(rows[0]["setup"], 0.0),
                                states=j.rows("state_changes", "entity='trade' AND entity_id=?", (tid,)))
            eng.restore_quarantine(m, cid, until)
            held.append((m, cid, until))
        for m, cid, until in held:
            await self._look_up_restored(m, cid, until)
        return sum(len(v) for v in eng.risk.gate.quarantined.values())

    async def _look_up_restored(self, m: TradeMachine, cid: str, until: int) -> None:
        eng = self.engine
        req = m.legs[cid].req
        try:
            u = await self.gw.fetch_order(req.symbol, cid, req.kind.is_conditional)
        except VenueError as e:  # unknown still: held; the engine's timer makes the final look-up (retried)
            self.log.warning("quarantine_lookup_failed", trade_id=m.tid, client_id=cid, at="restart",
                             error=f"{type(e).__name__}: {e}")
            return
        verdict, why = after_lookup(u, until, eng.clock())
        self.log.warning("entry_quarantine_looked_up", trade_id=m.tid, client_id=cid, verdict=verdict.value,
                         reason=why)
        if verdict is Verdict.REOPEN and u is not None:
            eng.on_update(u)  # engine._reopen: the trade live again, its stop, the quarantine released
            if cid in eng.risk.gate.quarantined.get(req.symbol, {}):  # the reopen did not take: keep the rule
                verdict, why = Verdict.HOLD, "found executed but not reopened"
        if verdict is Verdict.RELEASE:
            eng._release_quarantine(m, why)
