"""Restart safety (issue 6): the engine's side of reconciliation, and the last check before exiting.

On start-up, before the engine consumes any update, `adopt()` rebuilds a TradeMachine for every open
journal trade (bot.execution.restore) and hands it to the engine, so every update of its legs reaches it.
Then `reconcile()` (at start-up, on a timer, after every user-stream reconnect, after a failure, when a
position from the stream differs from the bot's or the engine asks) asks the exchange
(bot.execution.reconcile: fetch -> decide -> apply) with this object as the sink:
- missed updates and fills go into the machines (`on_update`), which react as they would live: a stop
  that filled while we were away closes its trade as STOP_LOSS with the exchange's fills and fees;
- a stop the venue no longer has (cancelled, expired, never received) is ended quietly and replaced by the
  trade's own machine (`place_stop`): a new "<tid>-sl.N" at the machine's stop price, journaled, with its
  confirmation deadline; an emergency alert says so;
- a trade whose position is gone and no fill of ours explains it (closed by hand) closes as MANUAL with the
  exchange's fills of the closing orders (`on_trade_closed`), or with an unknown exit when none is found;
- entries, adds and exits that never reached the venue end as rejected (the trade aborts, or the flatten is
  sent again); a position of no known trade, or a size beside a trade that no trade owns (a manual add),
  halts entries on its symbol (reconcile.py gives it a stop): the bot's next trade must never net into it.
  The halt is lifted by the first complete pass that finds the unowned size gone;
- a fill or order change the pass had to apply that is older than `stream_doubt_grace_ms` (and not the
  first pass after a start) is one the user stream never delivered: `on_missed(symbol, detail)` tells the
  app, which puts the stream in doubt (bot.venues.stream_health);
- an entry sent before its record and never recorded (a crash in between) is found by its client id among
  the reserved trade ids and journaled as a trade of its own (bot.execution.recovery_lost), first pass only;
- an entry quarantine the journal holds open (an entry of unknown fate when the process died) holds its
  symbol again before any entry, looked up once by client id before the first pass (quarantine_restore.py);
- a machine whose position the exchange confirmed gets its deadlines again from its first fill (a deadline
  already past fires at once), a flatten under way is resumed, missing take-profits are placed again.
Any venue error leaves the reconciliation incomplete (`ReconcileIncomplete`): the caller retries and keeps
trading halted; nothing is decided from a partial picture.

`protect_for_exit()`: on a shutdown that keeps positions, every position must have a stop the exchange
shows as open; a trade without one is flattened, a position of no trade is closed at market.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, cast

from bot.domain.orders import OrderUpdate
from bot.domain.types import CloseReason, OrderKind, OrderStatus
from bot.execution.actions import LegRole, TradeState
from bot.execution.quarantine_restore import RestoredQuarantines
from bot.execution.reconcile import (
    OPEN_STATES,
    Action,
    ApplyUpdate,
    CancelOrder,
    Flatten,
    PlaceStop,
    ReconcileConfig,
    Unowned,
    decide,
)
from bot.execution.reconcile_io import apply, fetch_exchange_state, journal_trades, outside_fills
from bot.execution.recovery_exit import ExitCheck
from bot.execution.recovery_loop import ReconcileIncomplete, run_passes
from bot.execution.recovery_lost import LostEntries
from bot.execution.restore import (
    ExternalFill,
    close_outside,
    close_unknown,
    end_quietly,
    repair,
    restore_machine,
    restore_stop,
    resume,
)
from bot.execution.trade import TradeMachine
from bot.logging import get_logger
from bot.venues.errors import VenueError
from bot.venues.ports import PositionLevelStops

_DAY_NS = 86_400 * 1_000_000_000

if TYPE_CHECKING:
    from bot.execution.engine import ExecutionEngine

__all__ = ["RECONCILING", "ReconcileIncomplete", "Recovery"]

RECONCILING = "reconciling"  # the trading state's reason until the first pass succeeded
UNOWNED = "position of no known trade"  # a symbol's halt reason while an unowned size is held there

_OPEN_STATES = tuple(s.value for s in OPEN_STATES)  # the journal stores the values
_GONE = (OrderStatus.CANCELED, OrderStatus.EXPIRED, OrderStatus.REJECTED)
_STOPS = (OrderKind.STOP_MARKET, OrderKind.TRAILING_STOP_MARKET)


class Recovery(ExitCheck, LostEntries, RestoredQuarantines):
    def __init__(self, engine: ExecutionEngine, cfg: ReconcileConfig, *, symbols: Sequence[str],
                 time_limits_s: dict[str, float] | None = None,
                 alert: Callable[[str, str, str], None] | None = None) -> None:
        self.engine = engine
        self.gw = engine.gw
        self.journal = engine.journal
        self.cfg = cfg
        self.symbols = tuple(symbols)
        self.time_limits_s = time_limits_s or {}
        self._alert = alert
        self.log = get_logger("recovery")
        self.adopted: list[str] = []
        self._armed: set[str] = set()  # adopted trades whose deadlines run again
        self._entry_created: dict[str, int] = {}
        self._lock = asyncio.Lock()
        self.runs = 0
        self.last_actions: list[Action] = []
        self.deferred: tuple[str, ...] = ()  # symbols the last pass left for the next one
        self._alerted: dict[tuple[str, str, str], float] = {}
        # What the passes did, for the operator (/status, /metrics; read by the app, never by this class):
        # stops_placed, orders_cancelled, trades_adopted, manual_closes, positions_flattened, symbols_halted.
        self.stats: Counter[str] = Counter()
        self.failures = 0  # failed passes in a row (0 after a complete one)
        self.failures_total = 0
        self.last_ok_ns = 0  # engine clock of the last complete pass
        self.last_failed_ns = 0
        self.last_error = ""
        # a missed update found by a pass (symbol, detail): the user stream did not deliver it
        self.on_missed: Callable[[str, str], None] | None = None
        self.stream_doubt_grace_ns = 1_500_000_000
        self.reasons: list[str] = []  # why the next pass was asked for (logged with it)
        self.missed_total = 0
        self.lost_checked = False  # the search for entries sent and never recorded (recovery_lost) is done

    # -- start-up ------------------------------------------------------------------------------------------
    def halt_entries(self, now_ns: int) -> None:
        """Entries HALTED (reason RECONCILING) until `allow_entries`: exits and protective orders still go."""
        self.engine.risk.gate.halt(RECONCILING, now_ns)

    def allow_entries(self, now_ns: int) -> bool:
        """Lift the start-up halt (not another one: an operator's, a loss limit's, the shutdown's). Halts of
        single symbols set meanwhile (a position of no known trade) stay. True when it was lifted."""
        gate = self.engine.risk.gate
        if gate.state.value != "HALTED" or gate.state_reason != RECONCILING:
            return False
        kept = dict(gate.halted_symbols)
        # ACTIVE again, nothing else: the day's loss baseline, streak and cooldowns restored from the journal
        # (restore_limits) stay, so a restart is no way around a loss limit (issue 11 item 7)
        gate.resume("reconciled", now_ns)
        self.engine._journal_gate(now_ns)
        self.log.info("trading_allowed", reason="reconciled", adopted=len(self.adopted), halted_symbols=kept)
        return True

    def restore_limits(self, now_ns: int) -> int:
        """The gate's day (loss baseline, peak, loss streak, setup cooldowns) from the trades the journal
        closed today, since the last `reset-limits` of today. Call once the account's equity is known.
        Returns how many trades were replayed."""
        day_start = now_ns - now_ns % _DAY_NS
        since = max([day_start] + [int(r["ts_ns"]) for r in self.journal.rows(
            "state_changes", "entity='limits' AND ts_ns>=?", (day_start,))])
        rows = self.journal.rows("trades", "exit_ts_ns>=? AND pnl IS NOT NULL", (since,))
        closed = []
        for r in sorted(rows, key=lambda r: int(r["exit_ts_ns"])):
            try:
                reason = CloseReason(r["exit_reason"])
            except ValueError:
                reason = CloseReason.MANUAL
            closed.append((int(r["exit_ts_ns"]), r["symbol"], r["setup"],
                           float(r["pnl"]) + float(r["funding_quote"] or 0.0), reason))
        self.engine.risk.gate.restore_day(closed, now_ns)
        if closed:
            self.log.info("limits_restored", trades_today=len(closed),
                          day_start_equity=round(self.engine.risk.gate.day_start_equity, 2))
        return len(closed)

    async def adopt(self) -> list[str]:
        """Machines for the journal's open trades, handed to the engine (call before it consumes updates)."""
        j, eng = self.journal, self.engine
        marks = ",".join("?" * len(_OPEN_STATES))
        for t in j.rows("trades", f"state IN ({marks})", _OPEN_STATES):
            tid, inst = t["trade_id"], self.cfg.instruments.get(t["symbol"])
            if tid in eng.trades:
                continue
            if inst is None:  # the config no longer trades its symbol: nobody here can look after it
                self.alert("error", f"open trade {tid} ({t['state']}) is on a symbol this config does not trade; "
                                    "not reconciled: check it at the exchange", t["symbol"])
                continue
            legs, fills = j.rows("legs", "trade_id=?", (tid,)), j.rows("fills", "trade_id=?", (tid,))
            m = restore_machine(t, legs, fills, inst, eng.cfg,
                                taker_fee_bps=eng.risk_cfg.taker_fee_bps, maker_fee_bps=eng.risk_cfg.maker_fee_bps,
                                time_limit_s=self.time_limits_s.get(t["setup"], 0.0),
                                states=j.rows("state_changes", "entity='trade' AND entity_id=?", (tid,)))
            eng.adopt(m)
            if self.gw.capabilities.position_level_stop:  # a venue whose stop is the position's (Bybit): its
                adopt_stop = cast(PositionLevelStops, self.gw).adopt_stop  # in-memory owner died with the process
                since = min((int(f["ts_ns"]) for f in fills if LegRole(f["role"]).opens), default=0)
                for leg in sorted((x for x in m.legs.values() if x.role is LegRole.STOP and not x.done),
                                  key=lambda x: x.tier):  # oldest first: the last (m.stop_leg) owns it
                    adopt_stop(leg.req, since)
            self.adopted.append(tid)
            self.stats["trades_adopted"] += 1
            eng.act(m, repair(m, fills))
            self._entry_created[tid] = max((int(r["created_ns"]) for r in legs if r["role"] in ("entry", "add")),
                                           default=0)
            self.log.warning("trade_adopted", trade_id=tid, symbol=m.plan.symbol, state=m.state.value,
                             position_lots=m.sign * m.pos_lots, stop_ticks=m.stop_ticks)
        await self.restore_quarantines()  # entries of unknown fate hold their symbols again (quarantine_restore)
        return list(self.adopted)

    # -- reconciliation ------------------------------------------------------------------------------------
    async def reconcile(self) -> list[Action]:
        """One full pass. Raises VenueError / ReconcileIncomplete when the picture or a step failed."""
        async with self._lock:
            eng = self.engine
            if not self.lost_checked:  # first: a lost entry becomes a journal trade before anything is decided
                await self.recover_lost()
                self.lost_checked = True
            now = eng.clock()
            for p in [m for m in eng.trades.values() if m.state is TradeState.PLANNED and m.tid in self.adopted]:
                # PLANNED -> ENTERING is journaled before the entry is sent: a PLANNED trade never sent it
                eng.act(p, p.on_denied(f"{p.tid}-entry", "entry never sent before the restart", now))
            before = dict(eng.activity)
            trades = journal_trades(self.journal, self.cfg.instruments)
            ex = await fetch_exchange_state(self.gw, self.symbols, trades)
            if ex.account is not None:  # the pass's own account request keeps equity and free margin fresh
                eng.set_account(ex.account)
            # a symbol whose trades changed while the picture was taken: its journal rows and the exchange's
            # answers are from different moments; no decision for it in this pass (the caller runs another)
            self.deferred = tuple(s for s in self.symbols if eng.activity.get(s, 0) != before.get(s, 0))
            if self.deferred:
                ex = replace(ex, symbols=tuple(s for s in ex.symbols if s not in self.deferred))
            actions = decide(ex, trades, self.cfg, eng.clock())
            self._report_missed(actions, ex.symbols, now)
            stable = {t.trade_id for t in trades if t.symbol in ex.symbols}
            missing = [cid for cid, u in ex.looked_up.items() if u is None and cid not in eng.inflight
                       and self._trade_of(cid) in stable]
            for cid in missing:  # a stop or target the venue does not have: replaced below, not flattened
                owner = self._machine_of(cid)
                if owner is not None and owner.legs[cid].role in (LegRole.STOP, LegRole.TP):
                    eng.act(owner, end_quietly(owner, cid, OrderStatus.REJECTED, "not found at the venue"))
            errors: list[tuple[Action, VenueError]] = []
            done = await apply(actions, self.gw, self, on_error=lambda a, e: errors.append((a, e)))
            for a, ack in done:  # the machines' own stops are counted in place_stop
                if isinstance(a, PlaceStop) and ack is not None:
                    self.stats["stops_placed"] += 1
                elif isinstance(a, Flatten):
                    self.stats["positions_flattened"] += 1
                elif isinstance(a, CancelOrder):
                    self.stats["orders_cancelled"] += 1
            for cid in missing:  # an entry, add or exit that never reached the venue
                owner = self._machine_of(cid)
                if owner is not None and not owner.is_final and owner.legs[cid].role in (
                        LegRole.ENTRY, LegRole.ADD, LegRole.EXIT):
                    eng.act(owner, owner.on_rejected(cid, "not-found", "not found at the venue", eng.clock()))
            gate = eng.risk.gate
            unowned = {a.req.symbol for a in actions if isinstance(a, PlaceStop | Flatten) and not a.trade_id}
            unowned |= {a.symbol for a in actions if isinstance(a, Unowned)}
            for sym in sorted(unowned):
                cur = gate.halted_symbols.get(sym)
                # over no halt or the user stream's (which would lift it), never over an operator's or a loss's
                if cur is None or (cur != UNOWNED and cur.startswith("user stream")):
                    gate.halt_symbol(sym, UNOWNED, eng.clock())
                    self.stats["symbols_halted"] += 1
            for sym in ex.symbols:  # the unowned size is gone (closed by hand, stopped out): entries again
                if sym not in unowned and gate.halted_symbols.get(sym) == UNOWNED:
                    gate.lift_symbol(sym, "no unowned position left", eng.clock())
                    self.alert("error", "the position the bot did not own is gone; entries allowed again", sym)
            eng._journal_gate(eng.clock())
            for tid in [t for t in self.adopted if t not in self._armed]:
                held = eng.trades.get(tid)
                if held is None or held.is_final:
                    self._armed.add(tid)
                elif held.plan.symbol in ex.symbols:
                    pos = ex.positions.get(held.plan.symbol)
                    acts, warning = resume(held, pos.qty_lots if pos else 0, eng.clock(),
                                           self._entry_created.get(tid, 0))
                    self._armed.add(tid)
                    if warning:
                        self.alert("error", warning, held.plan.symbol)
                    eng.act(held, acts)
            self.runs += 1
            self.last_actions = actions
            reasons, self.reasons = self.reasons, []
            log = self.log.info if actions or self.runs == 1 or errors else self.log.debug  # the timer's are quiet
            log("reconciled", run=self.runs, actions=dict(Counter(type(a).__name__ for a in actions)),
                errors=len(errors), deferred=list(self.deferred), open_trades=list(eng.trades),
                positions={s: p.qty_lots for s, p in ex.positions.items()}, why=reasons[-5:])
            if errors:
                raise ReconcileIncomplete("; ".join(f"{type(a).__name__}: {e}" for a, e in errors))
            return actions

    def _report_missed(self, actions: Sequence[Action], symbols: Sequence[str], now: int) -> None:
        """Updates this pass applies that the stream should have delivered long ago: the stream missed them.
        Not on the first pass (a start-up catches up on what happened while the bot was down)."""
        if self.runs == 0:
            return
        told: set[str] = set()
        for a in actions:
            if not isinstance(a, ApplyUpdate) or a.update.symbol not in symbols:
                continue
            u = a.update
            if (u.parent_id or u.client_id) in told:
                continue  # its exact fills and its state: one miss
            m = self._machine_of(u.parent_id or u.client_id)
            leg = m.legs.get(u.parent_id or u.client_id) if m is not None else None
            if leg is None or u.client_id in self.engine.inflight:
                continue  # an answer still on its way is not the stream's miss
            if not (u.filled_lots > leg.filled_lots or (u.status.is_final and not leg.done)):
                continue  # a status the machine does not follow (TRIGGERED) is no evidence
            age_ns = now - u.ts_event_ns if u.ts_event_ns else self.stream_doubt_grace_ns + 1
            if age_ns <= self.stream_doubt_grace_ns:
                continue  # young: the stream may still be delivering it
            self.missed_total += 1
            told.add(u.parent_id or u.client_id)
            detail = (f"{u.client_id} {u.status.value} filled {u.filled_lots} lots "
                      f"{age_ns // 1_000_000} ms ago, never delivered by the user stream")
            self.log.warning("stream_missed_update", symbol=u.symbol, client_id=u.client_id,
                             status=u.status.value, filled_lots=u.filled_lots, age_ms=age_ns // 1_000_000)
            if self.on_missed is not None:
                self.on_missed(u.symbol, detail)

    async def run(self, wanted: asyncio.Event, on_done: Callable[[int], None], *, timeout_s: float = 30.0,
                  min_backoff_ms: int = 250, max_backoff_ms: int = 10_000, interval_ms: int = 0,
                  min_gap_ms: int = 0) -> None:
        """The passes, when asked and on a timer, with backoff after a failure (bot.execution.recovery_loop)."""
        await run_passes(self, wanted, on_done, timeout_s=timeout_s, min_backoff_ms=min_backoff_ms,
                         max_backoff_ms=max_backoff_ms, interval_ms=interval_ms, min_gap_ms=min_gap_ms)

    def _trade_of(self, client_id: str) -> str:
        m = self._machine_of(client_id)
        return m.tid if m is not None else ""

    def _machine_of(self, client_id: str) -> TradeMachine | None:
        for m in self.engine.trades.values():
            if client_id in m.legs:
                return m
        return None

    # -- the sink of bot.execution.reconcile.apply ------------------------------------------------------------
    async def on_update(self, u: OrderUpdate, quiet: bool = False) -> None:
        m = self._machine_of(u.client_id)
        if m is not None:
            leg = m.legs[u.client_id]
            if quiet and not leg.done and u.status.is_final and u.filled_lots <= leg.filled_lots:
                # the position is gone (its CloseTrade follows): a target the venue expired with it is not
                # re-sent (Bybit 110017 "nothing to reduce"), a stop not replaced
                self.engine.act(m, end_quietly(m, leg.client_id, u.status, u.reason or "ended with the position"))
                return
            if leg is m.stop_leg and not leg.done and u.status in _GONE and u.filled_lots <= leg.filled_lots:
                self.engine.act(m, end_quietly(m, leg.client_id, u.status, u.reason or "gone at the venue"))
                return
        self.engine.on_update(u)

    def before_cancel(self, a: CancelOrder) -> None:
        m = self._machine_of(a.client_id)
        if m is not None:
            m.legs[a.client_id].cancel_sent = True  # its CANCELED is ours: no "stop cancelled by someone" flatten

    async def place_stop(self, a: PlaceStop) -> bool:
        m = self.engine.trades.get(a.trade_id)
        if m is None or m.is_final or m.pos_lots <= 0:
            return False  # not ours to place: reconcile.apply sends its own stop
        sl = m.stop_leg
        if sl is not None and not sl.done and not sl.cancel_sent:
            return True  # live, or in flight since the picture was taken
        self.alert("emergency", f"{m.tid}: position had no live stop at the exchange; stop placed again",
                   m.plan.symbol)
        self.engine.act(m, restore_stop(m, self.engine.clock(), "reconcile"))
        self.stats["stops_placed"] += 1
        return True

    async def on_trade_closed(self, trade_id: str, reason: CloseReason, detail: str) -> None:
        eng = self.engine
        m = eng.trades.get(trade_id)
        if m is None or m.is_final:
            return
        ours = {leg.venue_order_id for leg in m.legs.values() if leg.venue_order_id}
        got = await outside_fills(self.gw, m.plan.symbol, m.exit_side, m.first_fill_ns, ours, m.pos_lots)
        now = eng.clock()
        if sum(f[0] for f in got) == m.pos_lots:
            leg, acts = close_outside(m, [ExternalFill(*f[:4], venue_trade_id=f[4], venue_order_id=f[5],
                                                       is_maker=f[6]) for f in got], now)
            if leg is not None:
                self.journal.add_leg(now, eng._leg_row(m.tid, leg.client_id, leg.role.value, leg.req,
                                                       leg.intended_ticks, m.lim, "NEW"))
                eng.route(leg.client_id, m.tid)
            eng.act(m, acts)
        else:
            eng.act(m, close_unknown(m, now, detail))
        self.stats["manual_closes"] += 1
        self.log.warning("trade_closed_outside", trade_id=trade_id, exit_known=bool(got), detail=detail)

    def alert(self, kind: str, message: str, symbol: str = "") -> None:
        """To the operator; the same alert again within 10 minutes (a kept stop found by every pass) only
        to the log."""
        self.log.warning("reconcile_alert", kind=kind, symbol=symbol, message=message)
        now = time.monotonic()
        key = (kind, message, symbol)
        if now - self._alerted.get(key, -1e9) < 600:
            return
        self._alerted[key] = now
        if self._alert is not None:
            self._alert(kind, message, symbol)
