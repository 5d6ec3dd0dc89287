"""The trade lifecycle as a pure state machine (no I/O, explicit `now_ns`; states and legal moves in
bot.execution.actions.TRANSITIONS).

The machine's legs after the entry (fills, the stop and its moves, take-profits, scale-ins, exits, the close)
are in trade_legs.py, the restart's replay in trade_replay.py: functions of the machine, which delegates.

Inputs: `start`, `on_ack`, `on_rejected` (the venue said no), `on_denied` (our gate said no),
`on_update` (the user stream), `on_price` (mark or last price in ticks, per `stop_trigger`), `on_timer`,
`flatten`. Each returns the actions to carry out, in order.

Rules it keeps (issue 5, exchange-facts A3):
- The protective STOP_MARKET (reduce-only) is submitted the moment the first entry fill is known and
  re-submitted at the new size on every further fill. A stop is replaced, never edited (algo orders have
  no amend): the new one is sent first, the old one cancelled once the new one is acknowledged, so a
  confirmed stop covers the position at every moment but the first 500 ms. A stop not acknowledged
  within `stop_confirm_timeout_ms` -> flatten at market and halt the symbol.
- Take-profit tiers are reduce-only LIMITs placed when the entry order is done (fully filled or ended),
  sliced by their fractions; after TP1 fills the stop moves to breakeven (average entry ± fees) and is
  resized to what remains. Any leg that leaves the position flat cancels every other leg (Binance has no
  OCO). A stop's TRIGGERED and its fill may come in either order (the child's fill can precede
  ALGO_UPDATE TRIGGERED); fills are counted from the cumulative filled quantity, so neither order nor
  duplicates matter. A child order's update is matched through `parent_id`.
- Scale-ins: increment k is sent only after price moved in favour by its trigger from the first entry,
  never after a take-profit and never below the average (no averaging down); after the first add the
  stop goes to breakeven, after later adds under the previous add's entry; TPs are re-sliced. An add is
  shrunk so the risk to the new stop stays within the budget.
- A stop move that would trigger at once is skipped (the old stop stays, resized); a stop the venue refuses
  as already crossed (`RejectReason.STOP_WOULD_TRIGGER`, each venue's code translated by its adapter)
  flattens at once instead of halting the symbol.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from bot.domain.instrument import Instrument
from bot.domain.orders import OrderAck, OrderRequest, OrderUpdate
from bot.domain.types import CloseReason, OrderKind, OrderStatus, RejectReason, Side, TimeInForce, TriggerPrice
from bot.execution import entry_styles, trade_legs, trade_replay, trade_restart
from bot.execution.actions import (
    TRANSITIONS,
    Action,
    Cancel,
    FillRecord,
    HaltSymbol,
    Leg,
    LegRole,
    OrderEvent,
    Schedule,
    StateChanged,
    Submit,
    Timer,
    TradeState,
    Unschedule,
)
from bot.execution.planner import EntryTerms, TradePlan, slice_lots
from bot.execution.trade_replay import exit_reason_of
from bot.risk.limits import limits

if TYPE_CHECKING:
    from bot.settings.execution import ExecutionSection

__all__ = ["IllegalTransition", "TradeMachine", "entry_request", "exit_reason_of"]

_MS = 1_000_000
_LIVE = (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED, OrderStatus.TRIGGERED)
# on_rejected codes of a leg given up as "not found" after an ambiguous outcome (engine, recovery): not a no
_NOT_FOUND_CODES = frozenset({"unknown", "not-found"})
_MAX_EXIT_RETRIES = 3  # refused exits re-sent at once; after that with a capped backoff, never given up
_EXIT_RETRY_FIRST_MS = 250
_EXIT_RETRY_CAP_MS = 5_000

def entry_request(trade_id: str, symbol: str, sign: int, terms: EntryTerms, lots: int, stop_ticks: int,
                  cfg: ExecutionSection) -> OrderRequest:
    """The first entry's request exactly as `TradeMachine.start` builds it (client id `<tid>-entry`), for
    the engine to hand to the venue before it plans the rest of the trade (`start(entry=)` takes it)."""
    return OrderRequest(f"{trade_id}-entry", symbol, Side.BUY if sign > 0 else Side.SELL, terms.kind, lots,
                        price_ticks=terms.price_ticks, time_in_force=terms.tif,
                        working_type=TriggerPrice.MARK if cfg.stop_trigger == "mark" else TriggerPrice.LAST,
                        attached_stop_ticks=stop_ticks)

class IllegalTransition(RuntimeError):
    """A bug: the machine tried a move its table forbids. Stop trading that symbol and look at the log."""

class TradeMachine:
    def __init__(self, plan: TradePlan, inst: Instrument, cfg: ExecutionSection, *, taker_fee_bps: float,
                 maker_fee_bps: float) -> None:
        self.plan = plan
        self.inst = inst
        self.lim = limits(inst)
        self.cfg = cfg
        self.tid = plan.trade_id
        self.sign = plan.sign
        self.entry_side = Side.BUY if plan.sign > 0 else Side.SELL
        self.exit_side = self.entry_side.opposite
        self.working = TriggerPrice.MARK if cfg.stop_trigger == "mark" else TriggerPrice.LAST
        entry_fee = maker_fee_bps if plan.entry.is_maker else taker_fee_bps
        self._be_fee_frac = (entry_fee + taker_fee_bps) / 1e4  # entry fee paid + exit fee to come
        self.state = TradeState.PLANNED
        self.legs: dict[str, Leg] = {}
        self.deadlines: dict[Timer, int] = {}
        self.pos_lots = 0
        self.avg_entry = 0.0  # average entry price of the open position
        self.first_entry = 0.0  # average of the first entry order's fills (the report's entry_price)
        self.opened = False
        self.first_fill_ns = 0
        self.max_pos_lots = 0
        self.realized = 0.0
        self.fees = 0.0
        self.exit_lots = 0
        self.exit_value = 0.0
        self.stop_ticks = plan.stop_ticks
        self.stop_leg: Leg | None = None
        self.stop_confirm_ms: float | None = None
        self.max_open_risk = 0.0
        self.last_ticks = 0
        self.best_ticks = 0
        self.progress_done = False
        self.trailing = False
        self.tp_filled = 0  # highest TP tier filled
        self.next_inc = 1  # index of the next scale-in increment
        self.inc_avg: dict[int, float] = {}  # increment (1 = the entry, 2.. = adds) -> its average fill price
        self.exit_reason: CloseReason | None = None
        self._versions: dict[str, int] = {}
        self._exit_retries = 0
        self._not_found: set[str] = set()  # legs ended as "not found" after an ambiguous outcome
        # entry styles (entry_styles.py): last touch (bid, ask ticks), re-posts made, what follows the entry
        # order's end ("repost", ticks) | ("cross", 0) | None, whether the maker_then_taker cross went out
        self.touch: tuple[int, int] | None = None
        self.reprices = 0
        self.entry_next: tuple[str, int] | None = None
        self.crossed = False

    # -- helpers ----------------------------------------------------------------------------------------
    def _cid(self, name: str) -> str:
        v = self._versions.get(name, 0) + 1
        self._versions[name] = v
        return f"{self.tid}-{name}" if v == 1 else f"{self.tid}-{name}.{v}"

    def _set(self, new: TradeState, reason: str, out: list[Action], **fields: object) -> None:
        old = self.state
        if new is old:
            return
        if new not in TRANSITIONS[old]:
            raise IllegalTransition(f"{self.tid}: {old} -> {new} ({reason})")
        self.state = new
        out.append(StateChanged(self.tid, old, new, reason, dict(fields)))

    def _submit(self, out: list[Action], role: LegRole, name: str, kind: OrderKind, lots: int, *,
                price: int | None = None, trigger: int | None = None, tif: TimeInForce = TimeInForce.GTC,
                intended: int, tier: int = 0, attached_stop: int | None = None,
                req: OrderRequest | None = None) -> Leg:
        cid = self._cid(name)
        reduces = not role.opens
        if req is None:
            req = OrderRequest(cid, self.plan.symbol, self.exit_side if reduces else self.entry_side, kind, lots,
                               price_ticks=price, trigger_ticks=trigger, time_in_force=tif, reduce_only=reduces,
                               working_type=self.working, attached_stop_ticks=attached_stop)
        elif req.client_id != cid:
            raise IllegalTransition(f"{self.tid}: a request sent as {req.client_id} where {cid} was due")
        leg = Leg(cid, role, req, intended, tier=tier)
        self.legs[cid] = leg
        out.append(Submit(self.tid, leg, reduces))
        return leg

    def _cancel(self, leg: Leg, out: list[Action]) -> None:
        if not leg.done and not leg.cancel_sent:
            leg.cancel_sent = True
            out.append(Cancel(self.tid, self.plan.symbol, leg.client_id, leg.req.kind.is_conditional))

    def _schedule(self, timer: Timer, at_ns: int, out: list[Action]) -> None:
        self.deadlines[timer] = at_ns
        out.append(Schedule(self.tid, timer, at_ns))

    def _unschedule(self, timer: Timer, out: list[Action]) -> None:
        if self.deadlines.pop(timer, None) is not None:
            out.append(Unschedule(self.tid, timer))

    def _track_risk(self) -> None:
        if self.pos_lots:
            per_unit = max(0.0, self.sign * (self.avg_entry - self.stop_ticks * self.lim.tick))
            self.max_open_risk = max(self.max_open_risk, self.pos_lots * self.lim.step * per_unit)

    def _open_legs(self, *roles: LegRole) -> list[Leg]:
        return [leg for leg in self.legs.values() if not leg.done and leg.role in roles]

    @property
    def is_final(self) -> bool:
        return self.state in (TradeState.CLOSED, TradeState.ABORTED)

    # -- planned legs (journaled before anything is sent) ------------------------------------------------
    def planned_legs(self) -> list[tuple[str, LegRole, OrderRequest, int]]:
        """(client_id, role, request, intended ticks) of the entry, the stop and the TP tiers as planned
        for the first increment; the stop and TPs are re-sized to the real fills when sent."""
        p, lots = self.plan, self.plan.increments[0]
        out = []
        e = p.entry
        out.append((f"{self.tid}-entry", LegRole.ENTRY, OrderRequest(
            f"{self.tid}-entry", p.symbol, self.entry_side, e.kind, lots, price_ticks=e.price_ticks,
            time_in_force=e.tif), e.price_ticks if e.price_ticks is not None else p.ref_ticks))
        out.append((f"{self.tid}-sl", LegRole.STOP, OrderRequest(
            f"{self.tid}-sl", p.symbol, self.exit_side, OrderKind.STOP_MARKET, lots, trigger_ticks=p.stop_ticks,
            reduce_only=True, working_type=self.working), p.stop_ticks))
        for i, (px, lots_i) in enumerate(zip([t[0] for t in p.tp_tiers],
                                             slice_lots(lots, [t[1] for t in p.tp_tiers])), 1):
            out.append((f"{self.tid}-tp{i}", LegRole.TP, OrderRequest(
                f"{self.tid}-tp{i}", p.symbol, self.exit_side, OrderKind.LIMIT, lots_i, price_ticks=px,
                time_in_force=TimeInForce.GTX if self.cfg.tp_post_only else TimeInForce.GTC, reduce_only=True), px))
        return out

    # -- inputs -----------------------------------------------------------------------------------------
    def start(self, now_ns: int, entry: OrderRequest | None = None) -> list[Action]:
        """PLANNED -> ENTERING with the entry's Submit. `entry`: the entry's request as the engine already
        handed it to the venue (`entry_request`, built from the same terms before this machine existed:
        tick-to-order does not wait for the planning); the machine takes it as its entry leg."""
        out: list[Action] = []
        e = self.plan.entry
        self._set(TradeState.ENTERING, "entry sent", out)  # first: a denial of the Submit comes back nested
        # The plan's stop rides on the entry where the venue can attach it (Bybit `stopLoss`, armed the
        # moment the position opens); the STOP_MARKET leg after the first fill still confirms it either way.
        self._submit(out, LegRole.ENTRY, "entry", e.kind, self.plan.increments[0], price=e.price_ticks,
                     tif=e.tif, intended=e.price_ticks if e.price_ticks is not None else self.plan.ref_ticks,
                     attached_stop=self.plan.stop_ticks, req=entry)
        self._schedule(Timer.ENTRY_TIMEOUT, now_ns + self.cfg.entry_timeout_ms * _MS, out)
        return out

    def on_ack(self, ack: OrderAck, now_ns: int) -> list[Action]:
        out: list[Action] = []
        leg = self.legs.get(ack.client_id)
        if leg is None:
            return out
        if ack.venue_order_id and not leg.venue_order_id:
            leg.venue_order_id = ack.venue_order_id
        if leg.cancel_sent and not leg.done:
            # our cancel overtook the order (different latencies): it found nothing; cancel it again now
            leg.cancel_sent = False
            self._cancel(leg, out)
        if ack.status in _LIVE:
            if leg.status is OrderStatus.PENDING_NEW:
                leg.status = OrderStatus.NEW
                out.append(OrderEvent(self.tid, leg.client_id, OrderStatus.NEW, "ack", leg.venue_order_id))
            self._confirm(leg, now_ns, out)
        return out

    def on_denied(self, client_id: str, reason: str, now_ns: int) -> list[Action]:
        """Our gate refused to send this (entry or add) order: it never reached the venue."""
        out: list[Action] = []
        leg = self.legs.get(client_id)
        if leg is None or leg.done:
            return out
        leg.status = OrderStatus.CANCELED
        out.append(OrderEvent(self.tid, client_id, OrderStatus.CANCELED, f"denied: {reason}"))
        if leg.role is LegRole.ENTRY and not self.opened:
            self._unschedule(Timer.ENTRY_TIMEOUT, out)
            self._set(TradeState.ABORTED, f"entry denied: {reason}", out)
        return out

    def reopen_late(self, client_id: str, now_ns: int) -> list[Action]:
        """An ABORTED trade's entry that was reported not found (ambiguous outcome, look-ups said -2013)
        executed after all: the order exists, so the trade goes back to ENTERING and the fill that follows
        (on_update) opens it as usual (stop, targets, deadlines). Nothing for any other leg or state."""
        out: list[Action] = []
        leg = self.legs.get(client_id)
        if self.state is not TradeState.ABORTED or self.opened or leg is None or leg.role is not LegRole.ENTRY \
                or client_id not in self._not_found:
            return out  # only an order we gave up on as "not found" can turn up later; never a cancelled one
        self._set(TradeState.ENTERING, f"{client_id} executed after it was reported not found", out)
        leg.status = OrderStatus.NEW
        out.append(OrderEvent(self.tid, client_id, OrderStatus.NEW, "executed late", leg.venue_order_id))
        # a resting entry (post-only) is cancelled at the entry deadline as any other
        self._schedule(Timer.ENTRY_TIMEOUT, now_ns + self.cfg.entry_timeout_ms * _MS, out)
        return out

    def on_rejected(self, client_id: str, code: int | str | None, message: str, now_ns: int,
                    reason: RejectReason = RejectReason.OTHER) -> list[Action]:
        """The venue (or the driver, for a leg given up) said no. `code` is for people and the journal; the
        decision reads only `reason`, the venue adapter's translation (bot.venues.errors.OrderRejected)."""
        out: list[Action] = []
        leg = self.legs.get(client_id)
        if leg is None or leg.done:
            return out
        leg.status = OrderStatus.REJECTED
        if str(code) in _NOT_FOUND_CODES:
            self._not_found.add(client_id)  # the venue did not say no: it may still execute (reopen_late)
        out.append(OrderEvent(self.tid, client_id, OrderStatus.REJECTED, f"{code}: {message}"))
        self._leg_ended(leg, now_ns, out, code=code, reason=reason)
        return out

    def on_update(self, u: OrderUpdate, now_ns: int) -> list[Action]:
        out: list[Action] = []
        leg = self.legs.get(u.client_id)
        if leg is None and u.parent_id:
            leg = self.legs.get(u.parent_id)
        if leg is None:
            return out
        if u.venue_order_id and not leg.venue_order_id:
            leg.venue_order_id = u.venue_order_id
        delta = u.filled_lots - leg.filled_lots
        if delta > 0:
            if u.last_fill_lots == delta and u.last_fill_price > 0:
                price = u.last_fill_price
            else:
                price = (u.avg_price * u.filled_lots - leg.avg_price * leg.filled_lots) / delta
            leg.filled_lots = u.filled_lots
            leg.avg_price = u.avg_price if u.avg_price > 0 else price
            if not leg.done:
                if u.status.is_final or u.status is OrderStatus.PARTIALLY_FILLED:
                    leg.status = u.status
                else:  # a fill reported with NEW/TRIGGERED (a stop's child): infer from the quantity
                    full = leg.req.qty_lots and leg.filled_lots >= leg.req.qty_lots
                    leg.status = OrderStatus.FILLED if full else OrderStatus.PARTIALLY_FILLED
            leg.fees += u.fee
            self.fees += u.fee
            out.append(FillRecord(self.tid, leg.client_id, leg.role, leg.req.side.value, delta, price, u.fee,
                                  u.is_maker, u.trade_id, leg.status, leg.filled_lots, leg.avg_price,
                                  u.ts_event_ns or now_ns))
            self._confirm(leg, now_ns, out)
            self._on_fill(leg, delta, price, now_ns, out)
            if leg.done:
                self._leg_ended(leg, now_ns, out)
            return out
        if leg.done or u.status is leg.status or u.status is OrderStatus.PENDING_NEW:
            return out
        leg.status = u.status
        out.append(OrderEvent(self.tid, leg.client_id, u.status, u.reason, u.venue_order_id))
        if u.status in _LIVE:
            self._confirm(leg, now_ns, out)
        if leg.done:
            self._leg_ended(leg, now_ns, out, code=u.reason)
        return out

    def on_price(self, ticks: int, now_ns: int) -> list[Action]:
        out: list[Action] = []
        self.last_ticks = ticks
        if not self.opened or self.state not in (TradeState.PROTECTING, TradeState.PROTECTED):
            return out
        sign, tick = self.sign, self.lim.tick
        if sign * (ticks - self.best_ticks) > 0:
            self.best_ticks = ticks
        avg_ticks = self.avg_entry / tick
        if not self.progress_done and sign * (ticks - avg_ticks) >= self.plan.progress_ticks:
            self.progress_done = True
            self._unschedule(Timer.NO_PROGRESS, out)
        if self.state is not TradeState.PROTECTED:
            return out  # no adds or stop moves while a stop waits for its acknowledgement
        if self._maybe_add(ticks, now_ns, out):
            return out
        act_r = self.cfg.trailing_activation_r
        if act_r > 0 and sign * (self.best_ticks - avg_ticks) >= act_r * self.plan.r_ticks:
            self.trailing = True
            cb = math.ceil(self.best_ticks * self.cfg.trailing_callback_bps / 1e4)
            want = self.best_ticks - sign * cb
            if sign * (want - self.stop_ticks) >= self.cfg.trailing_min_move_ticks and sign * (ticks - want) > 0:
                self._place_stop(now_ns, out, "trail", want)
        return out

    def on_touch(self, bid_ticks: int, ask_ticks: int, now_ns: int) -> list[Action]:
        """The book's best bid/ask: a resting maker entry follows the touch (entry_styles.on_touch)."""
        return entry_styles.on_touch(self, bid_ticks, ask_ticks, now_ns)

    def on_timer(self, timer: Timer, now_ns: int) -> list[Action]:
        out: list[Action] = []
        at = self.deadlines.get(timer)
        if at is None or now_ns < at:
            return out  # stale or early: the deadline moved or was cleared
        del self.deadlines[timer]
        if timer is Timer.ENTRY_TIMEOUT:
            entry_styles.on_entry_deadline(self, now_ns, out)
            for leg in self._open_legs(LegRole.ENTRY, LegRole.ADD):
                self._cancel(leg, out)
        elif timer is Timer.STOP_CONFIRM:
            if self.stop_leg is not None and not self.stop_leg.confirmed and self.pos_lots > 0:
                ms = self.cfg.stop_confirm_timeout_ms
                out.append(HaltSymbol(self.plan.symbol, f"{self.stop_leg.client_id} not confirmed in {ms} ms"))
                self._flatten(CloseReason.RISK_HALT, f"stop not confirmed in {ms} ms", now_ns, out)
        elif timer is Timer.NO_PROGRESS:
            self._flatten(CloseReason.NO_PROGRESS, "no progress", now_ns, out)
        elif timer is Timer.MAX_HOLD:
            self._flatten(CloseReason.TIME_LIMIT, "max hold", now_ns, out)
        elif timer is Timer.EXIT_RETRY and self.state is TradeState.EXITING and self.pos_lots > 0 and \
                not self._open_legs(LegRole.EXIT):
            self._send_exit(self.pos_lots, now_ns, out)
        return out

    def flatten(self, reason: CloseReason, now_ns: int, why: str = "") -> list[Action]:
        out: list[Action] = []
        self._flatten(reason, why or reason.value, now_ns, out)
        return out

    # -- restart: the journal's events replayed through the machine (trade_replay.py; bot.execution.restore) --
    def replay_leg(self, leg: Leg, name: str, version: int) -> None:
        trade_replay.replay_leg(self, leg, name, version)

    def replay_fill(self, role: LegRole, lots: int, price: float, fee: float, ts_ns: int) -> None:
        trade_replay.replay_fill(self, role, lots, price, fee, ts_ns)

    def replay_state_change(self, to_state: str, reason: str) -> None:
        trade_replay.replay_state_change(self, to_state, reason)

    def replay_not_found(self, client_id: str) -> None:
        trade_replay.replay_not_found(self, client_id)

    def replay_end(self, state: TradeState, *, entry_ts_ns: int = 0, stop_confirm_ms: float | None = None,
                   max_open_risk: float = 0.0) -> None:
        trade_replay.replay_end(self, state, entry_ts_ns=entry_ts_ns, stop_confirm_ms=stop_confirm_ms,
                                max_open_risk=max_open_risk)

    # -- restart: catching up with the venue (bot.execution.restore / recovery), public so that a restart
    # never calls the machine's internals; each returns the actions to carry out (trade_restart.py says what)
    def restart_move(self, new: TradeState, reason: str, **fields: object) -> list[Action]:
        return trade_restart.restart_move(self, new, reason, **fields)

    def restart_flat(self, reason: CloseReason, ts_ns: int) -> list[Action]:
        return trade_restart.restart_flat(self, reason, ts_ns)

    def restart_deadline(self, timer: Timer, at_ns: int) -> list[Action]:
        return trade_restart.restart_deadline(self, timer, at_ns)

    def live_legs(self, *roles: LegRole) -> list[Leg]:
        return trade_restart.live_legs(self, *roles)

    def cancel_leg(self, client_id: str) -> list[Action]:
        return trade_restart.cancel_leg(self, client_id)

    def resend_exit(self, now_ns: int) -> list[Action]:
        return trade_restart.resend_exit(self, now_ns)

    def replace_targets(self) -> list[Action]:
        return trade_restart.replace_targets(self)

    def replace_stop(self, now_ns: int, why: str) -> list[Action]:
        return trade_restart.replace_stop(self, now_ns, why)

    def outside_exit_leg(self, lots: int) -> Leg:
        return trade_restart.outside_exit_leg(self, lots)

    def close_unknown(self, detail: str) -> list[Action]:
        return trade_restart.close_unknown(self, detail)

    # -- internals: fills, stops, take-profits, adds, exits, close (trade_legs.py) ------------------------
    def _confirm(self, leg: Leg, now_ns: int, out: list[Action]) -> None:
        trade_legs.confirm(self, leg, now_ns, out)

    def _on_fill(self, leg: Leg, lots: int, price: float, now_ns: int, out: list[Action]) -> None:
        trade_legs.on_fill(self, leg, lots, price, now_ns, out)

    def _leg_ended(self, leg: Leg, now_ns: int, out: list[Action], code: object = None,
                   reason: RejectReason = RejectReason.OTHER) -> None:
        trade_legs.leg_ended(self, leg, now_ns, out, code, reason)

    def _place_stop(self, now_ns: int, out: list[Action], why: str,
                    price_ticks: int | None = None) -> None:
        trade_legs.place_stop(self, now_ns, out, why, price_ticks)

    def _place_tps(self, out: list[Action]) -> None:
        trade_legs.place_tps(self, out)

    def _maybe_add(self, ticks: int, now_ns: int, out: list[Action]) -> bool:
        return trade_legs.maybe_add(self, ticks, now_ns, out)

    def _send_exit(self, lots: int, now_ns: int, out: list[Action]) -> None:
        trade_legs.send_exit(self, lots, now_ns, out)

    def _flatten(self, reason: CloseReason, why: str, now_ns: int, out: list[Action]) -> None:
        trade_legs.flatten(self, reason, why, now_ns, out)

    def _flat(self, reason: CloseReason, now_ns: int, out: list[Action]) -> None:
        trade_legs.flat(self, reason, now_ns, out)

