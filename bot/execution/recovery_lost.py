"""Restart: an entry that was sent and never recorded, found by its client id (issue 12, "What it must show").

The engine hands an entry to the venue first and commits its trade's record right after, in the same
synchronous step (engine.on_intent). A crash between the two leaves an order the journal does not know.
Its trade id is not lost: ids are reserved in the journal ahead of use (`reserved_ids`), so the numbers
after the verified ones up to the reservation (`ExecutionEngine.unrecorded_ids`) are the trades that may
have been sent unrecorded (`candidates` narrows them down), and their entries' client ids are known:
"t<N>-entry" (the only leg sent before its record; TradeMachine.start; on Bybit the orderLinkId,
bybit/orders.link_id). Once a start has looked them up, the journal marks them verified (`reserved_ids`
row 'trade_verified'): the next start searches only the ids reserved after.

The first reconciliation pass after a start (`LostEntries.recover_lost`, before anything is decided):
1. asks the account; only a symbol whose position differs from what the journal's open trades hold can
   carry a lost entry's fill (an unfilled lost entry is an "entry order of no open trade" and is cancelled
   by reconciliation rule 4);
2. looks every candidate client id up there (`fetch_order`: Binance GET /fapi/v1/order by
   origClientOrderId, Bybit /v5/order/realtime then /history by orderLinkId) and, for one that filled,
   its exact fills (`leg_fills`: userTrades / the execution list by order id) - the gateway's existing
   look-ups, no new endpoint;
3. journals each found entry as a trade in ONE transaction (`Journal.record_recovered`): setup
   "recovered", side, symbol, its entry leg as the venue reports it, the fills with the venue's price,
   fee and time; the plan's stop is lost with the process, so the trade's stop is the entry's own stop
   when the venue kept one with the order (Bybit `stopLoss`, read through `fetch_order_raw`), else
   `venue.unknown_position_stop_bps` from the average entry price (the configured distance for a
   position the bot did not plan), rounded away from the market; its risk budget is that distance (so
   R multiples mean something); no take-profits (the plan's targets are lost too);
4. adopts it like any journal trade (Recovery.adopt -> restore.restore_machine, the machine's own replay
   methods): the pass then gives it its stop at the exchange (its own machine's "<tid>-sl"), re-arms its
   deadlines from the entry's fill time, and an emergency alert says what happened.
A venue error leaves the pass incomplete (retried; entries stay halted): nothing is decided on a guess.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import orjson

from bot.domain.instrument import Instrument, trigger_ticks_away
from bot.domain.orders import OrderUpdate
from bot.domain.types import OrderKind, OrderStatus, Side
from bot.execution.actions import LegRole, TradeState
from bot.execution.reconcile import JournalTrade, expected_lots
from bot.execution.reconcile_io import journal_trades, leg_fills
from bot.execution.restore import restore_stop
from bot.venues.ports import RawOrderLookup

if TYPE_CHECKING:
    from bot.execution.engine import ExecutionEngine
    from bot.execution.reconcile import ReconcileConfig

__all__ = ["RECOVERED_SETUP", "LostEntries", "LostEntry", "lost_rows"]

RECOVERED_SETUP = "recovered"  # the setup of a trade rebuilt from the venue (the intent's setup is lost)


@dataclass(frozen=True, slots=True)
class LostEntry:
    """An entry the venue has and the journal does not: its report, its exact fills (() when the gateway
    cannot list them) and the stop price it carried at the venue (0.0: none)."""

    trade_id: str
    update: OrderUpdate
    fills: tuple[OrderUpdate, ...] = ()
    venue_stop: float = 0.0
    leverage: int = 0


def lost_rows(lost: LostEntry, inst: Instrument, stop_bps: float, now_ns: int
              ) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]], list[tuple[str | None, str, str]]]:
    """The journal rows of a found entry (pure): trade, legs, fills, state changes (record_recovered)."""
    u, tid = lost.update, lost.trade_id
    long = u.side is Side.BUY
    fills = [f for f in lost.fills if f.last_fill_lots > 0]
    if fills:
        rows = [(f.last_fill_lots, f.last_fill_price, f.fee, f.is_maker, f.trade_id, f.ts_event_ns or now_ns)
                for f in fills]
    elif u.filled_lots > 0:  # the gateway cannot list fills: the order's own average, fee unknown (0)
        rows = [(u.filled_lots, u.avg_price, 0.0, False, "", u.ts_event_ns or now_ns)]
    else:
        rows = []
    filled = sum(r[0] for r in rows)
    avg = sum(r[0] * r[1] for r in rows) / filled if filled else u.avg_price
    ref = avg
    close = Side.SELL if long else Side.BUY
    # the entry's own stop when the venue kept one with it, on the losing side of the entry
    own = lost.venue_stop > 0 and (lost.venue_stop < ref if long else lost.venue_stop > ref)
    stop = lost.venue_stop if own else 0.0
    if not stop and ref > 0:
        d = stop_bps / 10_000.0
        stop = ref * (1 - d) if long else ref * (1 + d)
    stop_ticks = trigger_ticks_away(stop, close, OrderKind.STOP_MARKET, inst) if stop > 0 else 0
    stop_px = inst.ticks_to_price(stop_ticks) if stop_ticks else None
    qty = inst.lots_to_qty(u.qty_lots or filled)
    first_ts = min((r[5] for r in rows), default=u.ts_event_ns or now_ns)
    risk = inst.lots_to_qty(filled or u.qty_lots) * abs(ref - float(stop_px)) if stop_px is not None and ref else 0.0
    trade = {
        "trade_id": tid, "symbol": u.symbol, "setup": RECOVERED_SETUP, "side": "long" if long else "short",
        "intent_ts_ns": first_ts, "intent_price": ref or None, "planned_qty": qty,
        "planned_stop_price": stop_px, "risk_budget": risk, "leverage": lost.leverage or 1,
        "features": orjson.dumps({"recovered_from": u.client_id,
                                  "stop": "venue" if own else f"{stop_bps:g} bps"}).decode(),
    }
    status = u.status
    if filled and not status.is_final and status is not OrderStatus.PARTIALLY_FILLED:
        status = OrderStatus.FILLED if u.qty_lots and filled >= u.qty_lots else OrderStatus.PARTIALLY_FILLED
    if status is OrderStatus.PENDING_NEW:
        status = OrderStatus.NEW  # the venue has it: it was sent
    leg = {
        "client_id": u.client_id, "trade_id": tid, "role": LegRole.ENTRY.value, "symbol": u.symbol,
        "side": u.side.value, "kind": u.kind.value, "qty": qty, "intended_price": ref or None,
        "price": None, "trigger_price": None, "reduce_only": False, "time_in_force": "GTC",
        "working_type": "MARK_PRICE", "status": status.value, "filled_qty": inst.lots_to_qty(filled),
        "avg_price": avg, "venue_order_id": u.venue_order_id or None, "reason": "found at the venue",
    }
    fill_rows = [{"ts_ns": ts, "client_id": u.client_id, "role": LegRole.ENTRY.value, "side": u.side.value,
                  "qty": inst.lots_to_qty(lots), "price": px, "fee": fee, "is_maker": maker, "venue_trade_id": vt}
                 for lots, px, fee, maker, vt, ts in rows]
    states: list[tuple[str | None, str, str]] = [
        (None, TradeState.PLANNED.value, f"recovered: {u.client_id} found at the venue, its record lost (crash "
                                         "between send and record)"),
        (TradeState.PLANNED.value, TradeState.ENTERING.value, "entry sent before the crash")]
    return trade, [leg], fill_rows, states


class LostEntries:
    """A mixin of bot.execution.recovery.Recovery: the search for entries sent and never recorded."""

    if TYPE_CHECKING:
        engine: ExecutionEngine
        gw: Any
        journal: Any
        cfg: ReconcileConfig
        symbols: Sequence[str]
        log: Any
        stats: Any

        def alert(self, kind: str, message: str, symbol: str = "") -> None: ...
        async def adopt(self) -> list[str]: ...

    def candidates(self) -> list[str]:
        """The trade ids whose entry may be at the venue unrecorded: the unrecorded numbers after the verified
        ones up to the reservation, and of those only up to the highest recorded one plus one per symbol.
        Ids are handed out in order and an entry is recorded in the step that sends it, so a lost one is
        the last handed out, or an earlier one whose send waited for its symbol's leverage (one trade per
        symbol at a time: at most one per symbol); the ids of a reservation block never reached are skipped."""
        rng = self.engine.unrecorded_ids
        if not rng:
            return []
        recorded = self.journal.trade_numbers(rng.start, rng.stop - 1)
        top = max(recorded, default=rng.start - 1) + max(1, len(self.symbols))
        return [f"t{n}" for n in rng if n <= top and n not in recorded and f"t{n}" not in self.engine.trades]

    async def find_lost(self, trades: Sequence[JournalTrade]) -> list[LostEntry]:
        """The candidates' entries the venue has, on the symbols whose position the journal does not explain.
        Raises VenueError on any failure (nothing decided on a partial picture)."""
        gw = self.gw
        ids = self.candidates()
        if not ids:
            return []
        acc = await gw.account()
        pos = {p.symbol: p for p in acc.positions if p.qty_lots}
        out: list[LostEntry] = []
        for sym in self.symbols:
            p = pos.get(sym)
            if p is None or p.qty_lots == expected_lots(trades, sym):
                continue
            for tid in ids:
                cid = f"{tid}-entry"
                u = await gw.fetch_order(sym, cid)
                if u is None or u.reduce_only or u.filled_lots <= 0:
                    continue  # not sent, or never filled (reconciliation cancels a resting one as an orphan)
                fills = await leg_fills(gw, sym, cid, u)
                stop = 0.0
                if gw.capabilities.raw_order_lookup:  # the stop the entry carried (Bybit stopLoss), if any
                    raw = await cast(RawOrderLookup, gw).fetch_order_raw(sym, cid, False) or {}
                    try:
                        stop = float(raw.get("stopLoss") or 0.0)
                    except (TypeError, ValueError):
                        stop = 0.0
                out.append(LostEntry(tid, u, fills, stop, p.leverage))
        return out

    async def recover_lost(self) -> list[str]:
        """Journal and adopt the entries sent before a crash and never recorded. Returns their trade ids."""
        trades = journal_trades(self.journal, self.cfg.instruments)
        found = await self.find_lost(trades)
        now = self.engine.clock()
        done: list[str] = []
        for lost in found:
            u = lost.update
            inst = self.cfg.instruments[u.symbol]
            trade, legs, fills, states = lost_rows(lost, inst, self.cfg.unknown_position_stop_bps, now)
            self.journal.record_recovered(now, trade, legs, fills, states)
            done.append(lost.trade_id)
            self.stats["trades_recovered"] += 1
            qty = sum(float(f["qty"]) for f in fills)
            px = sum(float(f["qty"]) * float(f["price"]) for f in fills) / qty if qty else u.avg_price
            stop_how = "its own stop at the venue" if '"venue"' in trade["features"] else \
                f"a stop {self.cfg.unknown_position_stop_bps:g} bps from its entry (the plan's stop is lost)"
            self.log.error("lost_entry_recovered", trade_id=lost.trade_id, client_id=u.client_id, symbol=u.symbol,
                           side=u.side.value, qty=qty, price=px, stop=trade["planned_stop_price"])
            self.alert("emergency", f"{lost.trade_id}: entry {u.client_id} ({u.side.value} {qty:g} @ {px:g}) was "
                                    "sent and the bot died before recording it; found at the exchange, journaled "
                                    f"as setup '{RECOVERED_SETUP}' and protected with {stop_how}", u.symbol)
        rng = self.engine.unrecorded_ids
        if rng:  # looked up (or nothing to explain): no later start searches these again
            self.journal.verify_trade_ids(rng.stop - 1)
        if done:
            await self.adopt()  # like any open journal trade: restore, repair (ENTERING -> PROTECTING)
        for tid in done:  # its stop now, from its own machine ("<tid>-sl"): not left to the pass's decision,
            m = self.engine.trades.get(tid)  # which looks at one owner per symbol and direction
            if m is not None and m.pos_lots > 0 and m.stop_leg is None:
                self.engine.act(m, restore_stop(m, self.engine.clock(), "recovered entry"))
                self.stats["stops_placed"] += 1
        return done
