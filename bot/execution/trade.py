"""The trade lifecycle as a pure state machine (no I/O, explicit `now_ns`; states and legal moves in
bot.execution.actions.TRANSITIONS).

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
from bot.execution import entry_styles
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
    TradeClosed,
    TradeState,
    Unschedule,
)
from bot.execution.planner import TradePlan, slice_lots
from bot.risk.limits import limits

if TYPE_CHECKING:
    from bot.settings.execution import ExecutionSection

__all__ = ["IllegalTransition", "TradeMachine", "exit_reason_of"]

_MS = 1_000_000
_LIVE = (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED, OrderStatus.TRIGGERED)
# on_rejected codes of a leg given up as "not found" after an ambiguous outcome (engine, recovery): not a no
_NOT_FOUND_CODES = frozenset({"unknown", "not-found"})
_MAX_EXIT_RETRIES = 3  # refused exits re-sent at once; after that with a capped backoff, never given up
_EXIT_RETRY_FIRST_MS = 250
_EXIT_RETRY_CAP_MS = 5_000


def exit_reason_of(why: str) -> CloseReason | None:
    """The close reason of a flatten, from the reason text the machine journaled when it entered EXITING."""
    if why in CloseReason.__members__:
        return CloseReason(why)
    if why == "max hold":
        return CloseReason.TIME_LIMIT
    if why == "no progress":
        return CloseReason.NO_PROGRESS
    if why.startswith("stop would trigger"):
        return CloseReason.STOP_LOSS
    if why.startswith("stop "):  # "stop not confirmed in 500 ms", "stop rejected", "stop canceled"
        return CloseReason.RISK_HALT
    return None


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
                intended: int, tier: int = 0, attached_stop: int | None = None) -> Leg:
        cid = self._cid(name)
        reduces = not role.opens
        req = OrderRequest(cid, self.plan.symbol, self.exit_side if reduces else self.entry_side, kind, lots,
                           price_ticks=price, trigger_ticks=trigger, time_in_force=tif, reduce_only=reduces,
                           working_type=self.working, attached_stop_ticks=attached_stop)
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
    def start(self, now_ns: int) -> list[Action]:
        out: list[Action] = []
        e = self.plan.entry
        self._set(TradeState.ENTERING, "entry sent", out)  # first: a denial of the Submit comes back nested
        # The plan's stop rides on the entry where the venue can attach it (Bybit `stopLoss`, armed the
        # moment the position opens); the STOP_MARKET leg after the first fill still confirms it either way.
        self._submit(out, LegRole.ENTRY, "entry", e.kind, self.plan.increments[0], price=e.price_ticks,
                     tif=e.tif, intended=e.price_ticks if e.price_ticks is not None else self.plan.ref_ticks,
                     attached_stop=self.plan.stop_ticks)
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

    # -- restart: the journal's events replayed through the machine (bot.execution.restore) ---------------
    def replay_leg(self, leg: Leg, name: str, version: int) -> None:
        """A leg the journal says was sent ("<tid>-sl.3": `name` "sl", `version` 3): known again. New client
        ids continue after the highest version, never one the venue has seen; the newest live stop is the
        one that protects the position (with none live, the newest)."""
        self._versions[name] = max(self._versions.get(name, 0), version)
        self.legs[leg.client_id] = leg
        cur = self.stop_leg
        if leg.role is LegRole.STOP and (cur is None or (not leg.done, leg.tier) > (not cur.done, cur.tier)):
            self.stop_leg = leg

    def replay_fill(self, role: LegRole, lots: int, price: float, fee: float, ts_ns: int) -> None:
        """A journaled fill, oldest first: the position with the live arithmetic, so the trade closes with the
        PnL it would have had."""
        self.fees += fee
        if not role.opens:
            self._shrink(lots, price)
            return
        self._grow(lots, price)
        if not self.opened:
            self.opened = True
            self.first_fill_ns = ts_ns

    def replay_state_change(self, to_state: str, reason: str) -> None:
        """A journaled state change, oldest first: what the trade's legs and fills do not say (a trailing stop,
        the reason of a flatten under way)."""
        if reason == "new stop (trail)":
            self.trailing = True
        if to_state == TradeState.EXITING.value and self.exit_reason is None:
            self.exit_reason = exit_reason_of(reason)

    def replay_end(self, state: TradeState, *, entry_ts_ns: int = 0, stop_confirm_ms: float | None = None,
                   max_open_risk: float = 0.0) -> None:
        """The replay is complete: the state the journal last wrote (no transition: nothing happens, the
        machine only remembers), what follows from the legs, and no further scale-ins (the increments not yet
        sent are not journaled; an add on a guess is risk nobody planned)."""
        self.state = state
        for leg in self.legs.values():
            if leg.role.opens and leg.filled_lots:
                self.inc_avg[max(leg.tier, 1)] = leg.avg_price
                if leg.role is LegRole.ENTRY:
                    self.first_entry = leg.avg_price
            if leg.role is LegRole.TP and leg.status is OrderStatus.FILLED:
                self.tp_filled = max(self.tp_filled, leg.tier)
        if self.opened and not self.first_entry:
            self.first_entry = self.avg_entry
        if entry_ts_ns:  # the machine's own clock at the first fill (the fill row has the venue's)
            self.first_fill_ns = entry_ts_ns
        self.next_inc = len(self.plan.increments)
        if self.stop_leg is not None and self.stop_leg.req.trigger_ticks is not None:
            self.stop_ticks = self.stop_leg.req.trigger_ticks
        if self.avg_entry:
            self.best_ticks = round(self.avg_entry / self.lim.tick)
        self.stop_confirm_ms = stop_confirm_ms
        self.max_open_risk = max_open_risk
        self._track_risk()

    # -- restart: catching up with the venue (bot.execution.restore / recovery; public so that a restart
    # never calls the machine's internals). Each returns the actions to carry out, like every input.
    def restart_move(self, new: TradeState, reason: str, **fields: object) -> list[Action]:
        """A move the journal missed (a kill between a fill and the state change it causes), inferred on
        restart; only a legal one (TRANSITIONS, else IllegalTransition)."""
        out: list[Action] = []
        self._set(new, reason, out, **fields)
        return out

    def restart_flat(self, reason: CloseReason, ts_ns: int) -> list[Action]:
        """The position is flat (its last exit fill is journaled): other legs cancelled, the trade closed."""
        out: list[Action] = []
        self._flat(reason, ts_ns, out)
        return out

    def restart_deadline(self, timer: Timer, at_ns: int) -> list[Action]:
        """A deadline again after a restart (one already past fires at once)."""
        out: list[Action] = []
        self._schedule(timer, at_ns, out)
        return out

    def live_legs(self, *roles: LegRole) -> list[Leg]:
        """The legs of these roles the venue may still have (not final)."""
        return self._open_legs(*roles)

    def cancel_leg(self, client_id: str) -> list[Action]:
        """Cancel one leg (a stop superseded before a restart whose cancel was never confirmed)."""
        out: list[Action] = []
        leg = self.legs.get(client_id)
        if leg is not None:
            self._cancel(leg, out)
        return out

    def resend_exit(self, now_ns: int) -> list[Action]:
        """A flatten under way whose exit order is gone: a market exit for the whole position."""
        out: list[Action] = []
        if self.pos_lots > 0 and not self._open_legs(LegRole.EXIT):
            self._send_exit(self.pos_lots, now_ns, out)
        return out

    def replace_targets(self) -> list[Action]:
        """The take-profit tiers again for the position (none live after a restart)."""
        out: list[Action] = []
        self._place_tps(out)
        return out

    def replace_stop(self, now_ns: int, why: str) -> list[Action]:
        """A new protective stop for the whole position at the machine's stop price (the venue lost or never
        received the last one), with its confirmation deadline. Nothing when flat or final."""
        out: list[Action] = []
        if self.pos_lots > 0 and not self.is_final:
            self._place_stop(now_ns, out, why)
        return out

    def outside_exit_leg(self, lots: int) -> Leg:
        """A leg "<tid>-manual" standing for orders that are not ours which closed the position (by hand): the
        exchange's fills of them are then applied to it (`on_update`) as the trade's exit."""
        cid = self._cid("manual")
        req = OrderRequest(cid, self.plan.symbol, self.exit_side, OrderKind.MARKET, lots, reduce_only=True)
        leg = Leg(cid, LegRole.EXIT, req, self.last_ticks, status=OrderStatus.NEW, confirmed=True)
        self.legs[cid] = leg
        self.exit_reason = CloseReason.MANUAL
        return leg

    def close_unknown(self, detail: str) -> list[Action]:
        """The exchange says flat and no fill explains it: CLOSED (from any state: the position is gone,
        whatever the machine thought) as MANUAL with exit price, time and PnL unknown; live legs cancelled."""
        out: list[Action] = []
        if self.is_final:
            return out
        for leg in self.legs.values():
            self._cancel(leg, out)
        self.deadlines.clear()
        old, self.state, self.exit_reason = self.state, TradeState.CLOSED, CloseReason.MANUAL
        out.append(StateChanged(self.tid, old, TradeState.CLOSED, f"{detail}; exit price unknown", {
            "exit_reason": CloseReason.MANUAL.value, "exit_price": None, "exit_ts_ns": None, "pnl": None,
            "r_multiple": None, "fees": self.fees, "qty": self.lim.qty(self.max_pos_lots),
            "max_open_risk": self.max_open_risk, "entry_price": self.first_entry or None}))
        # the risk gate counts an unknown result as neither a win nor a loss
        out.append(TradeClosed(self.tid, self.plan.symbol, self.plan.setup, CloseReason.MANUAL, 0.0, self.fees, 0.0))
        return out

    # -- internals --------------------------------------------------------------------------------------
    def _confirm(self, leg: Leg, now_ns: int, out: list[Action]) -> None:
        if leg.confirmed:
            return
        leg.confirmed = True
        if leg.role is LegRole.STOP and leg is self.stop_leg:
            self._unschedule(Timer.STOP_CONFIRM, out)
            if self.stop_confirm_ms is None:
                self.stop_confirm_ms = (now_ns - self.first_fill_ns) / _MS
            for other in self._open_legs(LegRole.STOP):
                if other is not leg:
                    self._cancel(other, out)
            if self.state is TradeState.PROTECTING:
                self._set(TradeState.PROTECTED, f"{leg.client_id} confirmed", out,
                          stop_confirm_ms=self.stop_confirm_ms)

    def _on_fill(self, leg: Leg, lots: int, price: float, now_ns: int, out: list[Action]) -> None:
        if leg.role.opens:
            self._grow(lots, price)
            self.inc_avg[max(leg.tier, 1)] = leg.avg_price
            if leg.role is LegRole.ENTRY:
                self.first_entry = leg.avg_price
            first = not self.opened
            if first:
                self.opened = True
                self.first_fill_ns = now_ns
                self.best_ticks = self.last_ticks = round(price / self.lim.tick)
                self._set(TradeState.PROTECTING, "first entry fill", out, entry_ts_ns=now_ns, entry_price=price,
                          stop_price=self.lim.px(self.stop_ticks))
                if self.plan.no_progress_ns:
                    self._schedule(Timer.NO_PROGRESS, now_ns + self.plan.no_progress_ns, out)
                self._schedule(Timer.MAX_HOLD, now_ns + self.plan.max_hold_ns, out)
            if self.state is TradeState.EXITING:
                self._send_exit(lots, now_ns, out)  # a late fill while flattening: out with it at once
                return
            self._place_stop(now_ns, out, "entry fill" if leg.role is LegRole.ENTRY else "add fill",
                             self._stop_after_add(leg.tier) if leg.role is LegRole.ADD else None)
            if first and self.exit_reason is not None:  # a flatten was asked before the first fill
                self._flatten(self.exit_reason, "flatten requested before the fill", now_ns, out)
            return
        self._shrink(lots, price)
        if self.pos_lots == 0:
            if leg.role is LegRole.STOP:
                reason = CloseReason.TRAILING_STOP if self.trailing else CloseReason.STOP_LOSS
            elif leg.role is LegRole.TP:
                reason = CloseReason.TAKE_PROFIT
            else:
                reason = self.exit_reason or CloseReason.MANUAL
            self._flat(reason, now_ns, out)

    def _grow(self, lots: int, price: float) -> None:
        """The position after an opening fill (live and replayed alike)."""
        new_pos = self.pos_lots + lots
        self.avg_entry = (self.avg_entry * self.pos_lots + price * lots) / new_pos if new_pos else 0.0
        self.pos_lots = new_pos
        self.max_pos_lots = max(self.max_pos_lots, new_pos)

    def _shrink(self, lots: int, price: float) -> None:
        """The position and realised PnL after a closing fill (live and replayed alike)."""
        self.realized += self.sign * (price - self.avg_entry) * lots * self.lim.step
        self.pos_lots = max(0, self.pos_lots - lots)
        self.exit_lots += lots
        self.exit_value += price * lots

    def _leg_ended(self, leg: Leg, now_ns: int, out: list[Action], code: object = None,
                   reason: RejectReason = RejectReason.OTHER) -> None:
        role = leg.role
        if role is LegRole.ENTRY and entry_styles.entry_ended(self, leg, now_ns, out, code):
            return  # re-posted at the new touch, or crossed (maker_then_taker): still ENTERING
        if role.opens:
            if not self._open_legs(LegRole.ENTRY, LegRole.ADD):
                self._unschedule(Timer.ENTRY_TIMEOUT, out)
            if not self.opened:
                if self.state is TradeState.ENTERING:
                    self._set(TradeState.ABORTED, f"entry {leg.status.value.lower()} unfilled", out)
                return
            if self.state is TradeState.EXITING and self.pos_lots == 0:
                if not self._open_legs(LegRole.ENTRY, LegRole.ADD):
                    self._close(now_ns, out)
            elif self.state in (TradeState.PROTECTING, TradeState.PROTECTED) and self.pos_lots > 0 and (
                    role is LegRole.ENTRY or leg.filled_lots > 0):
                self._place_tps(out)  # entry done, or an add filled: (re-)slice the targets
            return
        if role is LegRole.STOP:
            if leg is self.stop_leg and self.pos_lots > 0 and not leg.cancel_sent and \
                    leg.status is not OrderStatus.FILLED and self.state is not TradeState.EXITING:
                if reason is RejectReason.STOP_WOULD_TRIGGER:
                    # the price is already through the stop: take the loss now (exchange-facts A3)
                    self._flatten(CloseReason.STOP_LOSS, "stop would trigger immediately", now_ns, out)
                else:
                    out.append(HaltSymbol(self.plan.symbol, f"{leg.client_id} {leg.status.value}: {code}"))
                    self._flatten(CloseReason.RISK_HALT, f"stop {leg.status.value.lower()}", now_ns, out)
            return
        if role is LegRole.TP:
            refused = leg.status in (OrderStatus.EXPIRED, OrderStatus.CANCELED) or (
                leg.status is OrderStatus.REJECTED and str(code) == str(entry_styles.POST_ONLY_REJECT))
            if refused and not leg.cancel_sent and self.pos_lots > 0 and leg.req.time_in_force is TimeInForce.GTX \
                    and self.state in (TradeState.PROTECTING, TradeState.PROTECTED):
                # a post-only target the venue refused or expired (it would have crossed: Binance -5022, Bybit
                # cancels a crossing PostOnly): the price is at the target already, so the same tier goes
                # once as a plain reduce-only GTC LIMIT at the same price (takes at the target or better)
                lots = min(leg.req.qty_lots - leg.filled_lots, self.pos_lots)
                if lots >= 1:
                    self._submit(out, LegRole.TP, f"tp{leg.tier}", OrderKind.LIMIT, lots,
                                 price=leg.req.price_ticks, intended=leg.intended_ticks, tier=leg.tier)
                return
            if leg.status is OrderStatus.FILLED and self.pos_lots > 0:
                self.tp_filled = max(self.tp_filled, leg.tier)
                be = None
                if leg.tier == 1 and self.cfg.breakeven_after_tp1:
                    be = self._breakeven_ticks(self.avg_entry)
                if self.state in (TradeState.PROTECTING, TradeState.PROTECTED):
                    self._place_stop(now_ns, out, f"tp{leg.tier} filled", be)
            return
        if role is LegRole.EXIT and leg.status is not OrderStatus.FILLED and self.pos_lots > 0:
            if self._open_legs(LegRole.EXIT):
                return  # another exit is still working
            self._exit_retries += 1
            n = self._exit_retries
            if n <= _MAX_EXIT_RETRIES:
                self._send_exit(self.pos_lots, now_ns, out)
                return
            if n == _MAX_EXIT_RETRIES + 1:  # once: entries stop on the symbol; protecting goes on
                out.append(HaltSymbol(self.plan.symbol, f"{self.tid}: flatten failed {n} times"))
            # never given up while a position exists: again after a capped backoff (EXIT_RETRY)
            wait_ms = min(_EXIT_RETRY_CAP_MS, _EXIT_RETRY_FIRST_MS * 2 ** (n - _MAX_EXIT_RETRIES - 1))
            self._schedule(Timer.EXIT_RETRY, now_ns + wait_ms * _MS, out)

    def _breakeven_ticks(self, avg_price: float) -> int:
        """Entry ± fees (the entry's and the exit's), rounded away from the entry to the tick grid."""
        be = avg_price * (1 + self.sign * self._be_fee_frac) / self.lim.tick
        return math.ceil(be - 1e-9) if self.sign > 0 else math.floor(be + 1e-9)

    def _stop_for_increment(self, tier: int, avg_price: float) -> int:
        """Stop of the whole position once increment `tier` (2, 3, ..) is in: breakeven after the first add,
        under the previous add's entry after later ones; never looser than the current stop."""
        if tier <= 2:
            want = self._breakeven_ticks(avg_price)
        else:
            prev = self.inc_avg.get(tier - 1, self.avg_entry)
            want = round(prev / self.lim.tick) - self.sign * self.cfg.scale_in_stop_buffer_ticks
        return want if self.sign * (want - self.stop_ticks) > 0 else self.stop_ticks

    def _stop_after_add(self, tier: int) -> int:
        return self._stop_for_increment(tier, self.avg_entry)

    def _place_stop(self, now_ns: int, out: list[Action], why: str, price_ticks: int | None = None) -> None:
        if self.pos_lots <= 0:
            return
        # never a move that would trigger at once (the venue would refuse it): keep the old price, resize only
        if price_ticks is not None and (not self.last_ticks or self.sign * (self.last_ticks - price_ticks) > 0):
            self.stop_ticks = price_ticks
        leg = self._submit(out, LegRole.STOP, "sl", OrderKind.STOP_MARKET, self.pos_lots, trigger=self.stop_ticks,
                           intended=self.stop_ticks, tier=self._versions.get("sl", 0) + 1)
        self.stop_leg = leg
        if self.state is TradeState.PROTECTED:
            self._set(TradeState.PROTECTING, f"new stop ({why})", out)
        self._schedule(Timer.STOP_CONFIRM, now_ns + self.cfg.stop_confirm_timeout_ms * _MS, out)
        self._track_risk()

    def _place_tps(self, out: list[Action]) -> None:
        for leg in self._open_legs(LegRole.TP):
            self._cancel(leg, out)
        tiers = [(i, px, f) for i, (px, f) in enumerate(self.plan.tp_tiers, 1) if i > self.tp_filled]
        if not tiers:
            return
        sizes = slice_lots(self.pos_lots, [f for _, _, f in tiers], self.lim.min_lots)
        tif = TimeInForce.GTX if self.cfg.tp_post_only else TimeInForce.GTC  # resting, as maker
        for (i, px, _), lots in zip(tiers[-len(sizes):] if sizes else [], sizes):
            self._submit(out, LegRole.TP, f"tp{i}", OrderKind.LIMIT, lots, price=px, tif=tif, intended=px, tier=i)

    def _maybe_add(self, ticks: int, now_ns: int, out: list[Action]) -> bool:
        p = self.plan
        k = self.next_inc
        if k >= len(p.increments) or self.tp_filled or self._open_legs(LegRole.ENTRY, LegRole.ADD):
            return False
        sign, tick = self.sign, self.lim.tick
        if sign * (ticks - self.first_entry / tick) < p.add_trigger_ticks[k - 1]:
            return False
        if sign * (ticks * tick - self.avg_entry) <= 0:
            return False  # never average down
        price = ticks + sign * self.cfg.entry_offset_ticks
        lots = p.increments[k]
        # shrink the add until the whole position's risk to its next stop fits the budget
        while lots > 0:
            new_pos = self.pos_lots + lots
            avg = (self.avg_entry * self.pos_lots + price * tick * lots) / new_pos
            stop = self._stop_for_increment(k + 1, avg)
            risk = new_pos * self.lim.step * max(0.0, sign * (avg - stop * tick))
            if risk <= p.risk_budget:
                break
            lots -= max(1, lots // 10)
        self.next_inc += 1
        if lots < self.lim.min_lots:
            return False
        if self.cfg.entry_order == "market":
            self._submit(out, LegRole.ADD, f"add{k + 1}", OrderKind.MARKET, lots, intended=ticks, tier=k + 1)
        else:
            self._submit(out, LegRole.ADD, f"add{k + 1}", OrderKind.LIMIT, lots, price=price,
                         tif=TimeInForce.IOC, intended=price, tier=k + 1)
        self._schedule(Timer.ENTRY_TIMEOUT, now_ns + self.cfg.entry_timeout_ms * _MS, out)
        return True

    def _send_exit(self, lots: int, now_ns: int, out: list[Action]) -> None:
        self._submit(out, LegRole.EXIT, "exit", OrderKind.MARKET, lots, intended=self.last_ticks)

    def _flatten(self, reason: CloseReason, why: str, now_ns: int, out: list[Action]) -> None:
        if self.is_final:
            return
        if self.state is TradeState.EXITING:
            # asked again (operator, shutdown): a position with no exit working gets one now, instead of
            # waiting for a retry timer (issue 11: a flatten at SIGTERM once returned with a naked position)
            if self.pos_lots > 0 and not self._open_legs(LegRole.EXIT):
                self._unschedule(Timer.EXIT_RETRY, out)
                self._send_exit(self.pos_lots, now_ns, out)
            return
        if self.exit_reason is None:
            self.exit_reason = reason
        for leg in self._open_legs(LegRole.ENTRY, LegRole.ADD, LegRole.TP):
            self._cancel(leg, out)
        if not self.opened:
            return  # the entry's cancel ends the trade (ABORTED)
        self._set(TradeState.EXITING, why, out)
        if self.pos_lots > 0:
            self._send_exit(self.pos_lots, now_ns, out)
        elif not self._open_legs(LegRole.ENTRY, LegRole.ADD):
            self._close(now_ns, out)

    def _flat(self, reason: CloseReason, now_ns: int, out: list[Action]) -> None:
        if self.exit_reason is None:
            self.exit_reason = reason
        for leg in self.legs.values():
            self._cancel(leg, out)  # OCO: every other leg of the trade
        if self._open_legs(LegRole.ENTRY, LegRole.ADD):
            self._set(TradeState.EXITING, "flat; waiting for entry legs to end", out)
        else:
            self._close(now_ns, out)

    def _close(self, now_ns: int, out: list[Action]) -> None:
        for leg in self.legs.values():
            self._cancel(leg, out)
        for timer in list(self.deadlines):
            self._unschedule(timer, out)
        reason = self.exit_reason or CloseReason.MANUAL
        pnl = self.realized - self.fees
        r_mult = pnl / self.plan.risk_budget if self.plan.risk_budget > 0 else 0.0
        exit_px = self.exit_value / self.exit_lots if self.exit_lots else 0.0
        self._set(TradeState.CLOSED, reason.value, out, exit_ts_ns=now_ns, exit_price=exit_px,
                  exit_reason=reason.value, pnl=pnl, fees=self.fees, r_multiple=r_mult,
                  qty=self.lim.qty(self.max_pos_lots), max_open_risk=self.max_open_risk,
                  entry_price=self.first_entry, stop_confirm_ms=self.stop_confirm_ms)
        out.append(TradeClosed(self.tid, self.plan.symbol, self.plan.setup, reason, pnl, self.fees, r_mult))
