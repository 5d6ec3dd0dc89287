"""Entry execution styles (issue 13 item 2; `execution.entry`, docs/execution.md): pure helpers the trade
machine calls at four points (plan, touch move, entry leg ended, entry deadline). No I/O.

taker            an IOC limit `entry_offset_ticks` through the crossing touch (or MARKET): today's entry.
maker            a post-only LIMIT (Binance `timeInForce=GTX`, Bybit `PostOnly`; exchange-facts A5/B3) at our
                 own side's touch (the bid for a long), which the venue refuses rather than lets take (-5022).
                 When the touch moves away (the bid rises) the resting order is cancelled and, once the venue
                 says it ended unfilled, re-posted at the new touch: at most `entry_reprice_max` times, never
                 beyond the plan's sizing price (the crossing touch at the decision), so a fill never carries
                 more risk than was sized. `entry_timeout_ms` after the first send whatever rests is cancelled.
maker_then_taker as maker; at the deadline (or when no re-post is left) the unfilled entry crosses with an IOC
                 limit at the plan's taker price (the decision's crossing touch + entry_offset_ticks), only if
                 the signal still holds: the opposite touch is still within that limit and the stop is not
                 reached. The intent was gated and sized at taker costs up front (EntryTerms.is_maker False),
                 so the cross always passes the risk gate's cost checks.

Races (never a blind resend): a replacement or a cross is sent only after the venue reported the previous
entry order ended (CANCELED / EXPIRED / REJECTED, i.e. a final status from the stream or the engine's
look-up); if that order filled, even partly, in the meantime, the trade is open: its stop goes out at once
(trade machine rule) and nothing is re-posted or crossed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.domain.types import EntryIntent, OrderKind, OrderStatus, TimeInForce
from bot.execution.actions import Action, Leg, LegRole, Timer, TradeState
from bot.execution.planner import EntryTerms

if TYPE_CHECKING:
    from bot.execution.trade import TradeMachine
    from bot.settings.execution import ExecutionSection

__all__ = ["POST_ONLY_REJECT", "entry_ended", "maker_terms", "on_entry_deadline", "on_touch"]

_MS = 1_000_000
POST_ONLY_REJECT = -5022  # Binance: "the Post Only order will be rejected" (GTX that would take)


def maker_terms(intent: EntryIntent, cfg: ExecutionSection) -> EntryTerms:
    """Post-only at our own side's touch. The intent's reference is the crossing touch (the ask for a long,
    bot.signals.setups.build_intent); our touch is one spread behind it (features' spread_ticks, 1 when a
    plug-in did not give it). Sizing: the crossing touch for maker (a re-post never goes beyond it), the
    taker limit for maker_then_taker (its cross fills no worse)."""
    sign = 1 if intent.side == "long" else -1
    ref = intent.price_ticks
    spread = max(1, int(intent.features.get("spread_ticks", 1) or 1))
    px = ref - sign * spread
    if cfg.entry == "maker_then_taker":
        return EntryTerms(OrderKind.LIMIT, TimeInForce.GTX, px, ref + sign * cfg.entry_offset_ticks, False)
    return EntryTerms(OrderKind.LIMIT, TimeInForce.GTX, px, ref, True)


def _waiting_entry(m: TradeMachine) -> Leg | None:
    """The one resting maker entry of a trade that holds no position yet (else None)."""
    if m.state is not TradeState.ENTERING or m.opened:
        return None
    legs = m._open_legs(LegRole.ENTRY)
    if len(legs) != 1 or legs[0].req.time_in_force is not TimeInForce.GTX:
        return None
    return legs[0]


def on_touch(m: TradeMachine, bid_ticks: int, ask_ticks: int, now_ns: int) -> list[Action]:
    """The book's touch moved: a resting maker entry left behind is cancelled to be re-posted at the new
    touch (the re-post itself waits for the venue's word that the old one ended: entry_ended)."""
    out: list[Action] = []
    m.touch = (bid_ticks, ask_ticks)
    leg = _waiting_entry(m)
    if leg is None or leg.cancel_sent or not leg.confirmed or m.entry_next is not None:
        return out
    if m.reprices >= m.cfg.entry_reprice_max:
        return out
    own = bid_ticks if m.sign > 0 else ask_ticks
    cap = m.plan.ref_ticks  # the crossing touch at the decision: what the trade was sized at (or better)
    want = own if m.sign * (own - cap) <= 0 else cap
    px = leg.req.price_ticks or 0
    if m.sign * (want - px) <= 0:
        return out  # we are still at (or better than) the touch
    m.reprices += 1
    m.entry_next = ("repost", want)
    m._cancel(leg, out)
    return out


def on_entry_deadline(m: TradeMachine, now_ns: int, out: list[Action]) -> None:
    """ENTRY_TIMEOUT: every resting entry is cancelled (the machine's rule); maker_then_taker asks for the
    cross once the venue says the maker order ended unfilled."""
    if m.cfg.entry == "maker_then_taker" and _waiting_entry(m) is not None and not m.crossed:
        m.entry_next = ("cross", 0)
    else:
        m.entry_next = None  # a re-post still waiting for its cancel is not sent after the deadline


def entry_ended(m: TradeMachine, leg: Leg, now_ns: int, out: list[Action], code: object = None) -> bool:
    """An entry leg reached a final status. Returns True when it was replaced (re-post or cross) and the trade
    goes on ENTERING; False: the machine's usual rule (ABORTED when nothing filled)."""
    nxt, m.entry_next = m.entry_next, None
    if m.opened or leg.filled_lots > 0 or m.state is not TradeState.ENTERING or m.exit_reason is not None:
        return False
    if leg.req.time_in_force is not TimeInForce.GTX or leg.status is OrderStatus.FILLED:
        return False
    refused = (leg.status is OrderStatus.REJECTED and str(code) == str(POST_ONLY_REJECT)) or (
        leg.status in (OrderStatus.CANCELED, OrderStatus.EXPIRED) and not leg.cancel_sent)  # Bybit cancels it
    if nxt is None and refused:
        # the touch came to our price before the order arrived: re-post at the touch we know, else cross
        if m.reprices < m.cfg.entry_reprice_max and m.touch is not None:
            m.reprices += 1
            nxt = ("repost", m.touch[0] if m.sign > 0 else m.touch[1])
        else:
            nxt = ("cross", 0)
    if nxt is not None and nxt[0] == "repost" and m.sign * (nxt[1] - m.plan.ref_ticks) > 0:
        nxt = ("cross", 0)  # the touch ran beyond the sized price: only a cross (if allowed) can follow
    if nxt is None:
        return False
    lots = m.plan.increments[0]
    if nxt[0] == "repost":
        m._submit(out, LegRole.ENTRY, "entry", OrderKind.LIMIT, lots, price=nxt[1], tif=TimeInForce.GTX,
                  intended=nxt[1], attached_stop=m.plan.stop_ticks)
        return True  # the first send's ENTRY_TIMEOUT still stands: the deadline is the style's, not a post's
    if m.cfg.entry != "maker_then_taker" or m.crossed:
        return False
    limit = m.plan.ref_ticks + m.sign * m.cfg.entry_offset_ticks
    if m.touch is not None:
        opp = m.touch[1] if m.sign > 0 else m.touch[0]
        if m.sign * (opp - limit) > 0 or m.sign * (opp - m.plan.stop_ticks) <= 0:
            return False  # the signal no longer holds: the price left the plan (or reached the stop)
    m.crossed = True
    m._submit(out, LegRole.ENTRY, "entry", OrderKind.LIMIT, lots, price=limit, tif=TimeInForce.IOC,
              intended=limit, attached_stop=m.plan.stop_ticks)
    m._schedule(Timer.ENTRY_TIMEOUT, now_ns + m.cfg.entry_timeout_ms * _MS, out)
    return True
