"""Keeping the entry path warm: an entry's path run up to its signature and dropped, between entries.

Why: entries are seconds to minutes apart, and in between the process runs other code (every book update,
the features, the event loop, its I/O). The entry path's bytecode, its specialised inline caches (3.11's
adaptive interpreter keeps them in the code objects), the type attribute cache and the objects it reads
leave the CPU caches, and the same Python runs several times slower cold than warm: against the loopback
exchange the risk step of an entry took 85 us median cold and 17 us right after a dry run of itself
(docs/architecture.md "Entry path latency"). Low-latency trading systems keep the hot path hot by running
it regularly with an order that is dropped just before the wire (C. Cook, "When a Microsecond Is an
Eternity: High Performance Trading Systems in C++", CppCon 2017).

What runs (`warm_entry`): the risk manager's `assess` on a made-up entry at the touch (the gate in dry mode:
no denial counted, nothing appended to the order-rate windows), the first increment, the entry's request,
the order gate's check (dry), and the venue's synchronous part of `submit` (`WarmSubmit.warm_submit`: the
clock check, the venue's request, the limiter's look, the signature; nothing sent, no budget spent). Not the
plan, the machine or the journal rows: those follow the hand-off (send first, plan after), off the
tick-to-order path.

Safety: it must change nothing the bot does. It takes no trade id (the request carries the client id
`warm-entry`, never handed to a transport), writes no journal row and no venue state, and leaves the gate's
counters as they were. Any exception turns warming off for the run (logged once): a warm-up never takes the
decision path down. A task of the pipeline calls it every `execution.warm_interval_ms`, between market messages
(`Pipeline.keep_warm`: a timer, or a spin below 1 ms), so it never runs inside an entry's own step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from bot.domain.types import EntryIntent, OrderKind, TakeProfitTier
from bot.execution.planner import entry_terms, scale_in
from bot.execution.trade import entry_request
from bot.risk import Denial, MarketView

if TYPE_CHECKING:
    from bot.execution.engine import ExecutionEngine
    from bot.venues.ports import WarmSubmit

__all__ = ["WARM_CLIENT_ID", "WARM_STOP_BPS", "warm_entry"]

WARM_TRADE_ID = "warm"
WARM_CLIENT_ID = f"{WARM_TRADE_ID}-entry"
# the made-up entry's stop distance: the middle of the method's 0.10-0.15 % stops; its target two stops away
WARM_STOP_BPS = 12.0


def warm_intent(symbol: str, side: str, bid_ticks: int, ask_ticks: int, now_ns: int) -> EntryIntent:
    """A plain entry at the touch (long at the ask, short at the bid), stopped WARM_STOP_BPS away."""
    price = ask_ticks if side == "long" else bid_ticks
    dist = max(1, round(price * WARM_STOP_BPS / 1e4))
    sign = 1 if side == "long" else -1
    return EntryIntent(symbol, side, WARM_TRADE_ID, now_ns, price, price - sign * dist,
                       (TakeProfitTier(price + 2 * sign * dist, 1.0),), 60.0)


def warm_entry(engine: ExecutionEngine, symbol: str, market: MarketView, bid_ticks: int, ask_ticks: int,
               side: str, now_ns: int) -> str:
    """Run an entry's path on `symbol` up to the venue's signature and drop it. Returns how far it went:
    "signed" (the gateway built and signed it), "request" (no warm-capable gateway), "order-gate", or the denial's
    reason (a real entry there would have been denied at that point: the rest stays cold)."""
    acct = engine.account
    if acct is None:
        return "no-account"
    gate = engine.risk.gate
    intent = warm_intent(symbol, side, bid_ticks, ask_ticks, now_ns)
    inst = engine.gw.instrument(symbol)
    cfg = engine.cfg
    gate.dry = True
    try:
        terms = entry_terms(intent, cfg)
        decision = engine.risk.assess(intent, inst, market, equity=acct.equity, free_margin=acct.available,
                                      now_ns=now_ns, entry_ticks=terms.sizing_ticks, entry_is_maker=terms.is_maker,
                                      market_entry=terms.kind is OrderKind.MARKET)
        if isinstance(decision, Denial):
            return decision.reason.value
        first = scale_in(decision.qty_lots, terms, inst, cfg, abs(terms.sizing_ticks - intent.stop_ticks))
        req = entry_request(WARM_TRADE_ID, symbol, 1 if side == "long" else -1, terms, first[0][0],
                            intent.stop_ticks, cfg)
        if gate.check_order(now_ns, False, symbol) is not None:
            return "order-gate"
    finally:
        gate.dry = False
    if not engine.gw.capabilities.warm_submit:
        return "request"
    cast("WarmSubmit", engine.gw).warm_submit(req)  # promised by capabilities.warm_submit
    return "signed"
