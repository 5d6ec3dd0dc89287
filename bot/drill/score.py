"""Scoring a drill from what the exchange and the journal hold at the end (pure functions).

Inputs: the exchange's `GET /_sim/state?history=1` (every order, algo order, fill, position and open
order) and the bot's journal rows (trades, legs, fills), read read-only. Orders the drill itself placed
"by hand" (`outside_order`) are foreign; every other order on the account is the bot's.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from bot.drill.watcher import position_amounts

__all__ = ["Ledger", "duplicates", "journal_vs_exchange", "orphans"]

EPS = 1e-9
OPEN = ("NEW", "PARTIALLY_FILLED")


def _signed(side: str, qty: float) -> float:
    return qty if side.upper() in ("BUY", "LONG") else -qty


@dataclass
class Ledger:
    """The journal's side of the comparison."""

    trades: list[dict[str, Any]]
    legs: list[dict[str, Any]]
    fills: list[dict[str, Any]]

    @property
    def open_trade_ids(self) -> set[str]:
        return {t["trade_id"] for t in self.trades if t["state"] not in ("CLOSED", "ABORTED")}

    @property
    def leg_ids(self) -> set[str]:
        return {leg["client_id"] for leg in self.legs}


def duplicates(state: dict[str, Any], ledger: Ledger) -> list[str]:
    """Client ids used by two orders at the exchange, and trades whose entry executed more than once
    (two of its entry orders have fills)."""
    out = []
    regular = Counter((o["symbol"], o["clientOrderId"]) for o in state.get("orders", [])
                      if not o.get("parentClientAlgoId"))
    out += [f"order id {cid} ({sym}) used {n} times" for (sym, cid), n in regular.items() if n > 1]
    algo = Counter((a["symbol"], a["clientAlgoId"]) for a in state.get("algo_orders", []))
    out += [f"algo id {cid} ({sym}) used {n} times" for (sym, cid), n in algo.items() if n > 1]
    entry_legs = defaultdict(set)
    for leg in ledger.legs:
        if leg["role"] == "entry":
            entry_legs[leg["trade_id"]].add(leg["client_id"])
    executed = {o["clientOrderId"] for o in state.get("orders", []) if float(o.get("executedQty") or 0) > 0}
    for tid, cids in entry_legs.items():
        hit = sorted(cids & executed)
        if len(hit) > 1:
            out.append(f"trade {tid}: entry executed by {len(hit)} orders {hit}")
    return out


def orphans(state: dict[str, Any], moved_after_end: set[str] | None = None) -> list[str]:
    """Open orders left at the end that protect or belong to nothing: an order that can open a position
    (nobody is there to manage it once the bot stopped), or a reduce-only / closePosition order on a
    symbol with no position. `moved_after_end`: symbols whose position a fill changed after the bot
    stopped (a kept take-profit filled): their exits are the next start's to clean up, not counted."""
    amounts = position_amounts(state)
    out = []
    skip = moved_after_end or set()
    for o in state.get("open_orders", []):
        if o["symbol"] in skip:
            continue
        if not (o.get("reduceOnly") or o.get("closePosition")):
            out.append(f"open entry order {o['clientOrderId']} ({o['symbol']})")
        elif not amounts.get(o["symbol"]):
            out.append(f"reduce-only order {o['clientOrderId']} on flat {o['symbol']}")
    for a in state.get("open_algo_orders", []):
        if a["symbol"] not in skip and not amounts.get(a["symbol"]):
            out.append(f"{a['orderType']} {a['clientAlgoId']} on flat {a['symbol']}")
    return out


@dataclass
class JournalCheck:
    ok: bool
    lost_rows: int
    problems: list[str] = field(default_factory=list)
    after_end: int = 0  # unjournaled fills after the bot stopped listening
    after_symbols: set[str] = field(default_factory=set)  # ... and their symbols


def journal_vs_exchange(state: dict[str, Any], ledger: Ledger, foreign_cids: set[str],
                        after_ms: int | None = None) -> JournalCheck:
    """Every fill of the bot's orders at the exchange is in the journal (lost rows otherwise), the journal
    has no fill the exchange does not know, and per symbol the journal's open trades net to the
    exchange's position minus what was traded by hand. Unjournaled fills after `after_ms` (exchange
    time the bot stopped listening: its resting exits filled after it left) are set aside like the hand
    fills: the next start's reconciliation owns them."""
    problems: list[str] = []
    fills = state.get("fills", [])
    parent = {o["orderId"]: o.get("parentClientAlgoId") or "" for o in state.get("orders", [])}

    def foreign(f: dict[str, Any]) -> bool:
        return f["clientOrderId"] in foreign_cids or parent.get(f["orderId"], "") in foreign_cids

    j_ids = {str(f["venue_trade_id"]) for f in ledger.fills if f.get("venue_trade_id")}
    # journal fills without a venue id can still account for exchange fills by client id and quantity
    no_id_qty: dict[str, float] = defaultdict(float)
    for f in ledger.fills:
        if not f.get("venue_trade_id"):
            no_id_qty[f["client_id"]] += float(f["qty"])
    lost = 0
    after: list[dict[str, Any]] = []
    for f in fills:
        if foreign(f) and str(f["id"]) not in j_ids:
            continue
        if str(f["id"]) in j_ids:
            continue
        if no_id_qty[f["clientOrderId"]] >= f["qty"] - EPS:
            no_id_qty[f["clientOrderId"]] -= f["qty"]
            continue
        if after_ms is not None and f.get("time", 0) > after_ms:
            after.append(f)
            continue
        lost += 1
        problems.append(f"fill {f['id']} of {f['clientOrderId']} ({f['side']} {f['qty']} {f['symbol']}) "
                        "not in the journal")
    ex_ids = {str(f["id"]) for f in fills}
    phantom = sorted(j_ids - ex_ids)
    if phantom:
        problems.append(f"journal fills the exchange never made: {phantom[:5]}")
    amounts = position_amounts(state)
    foreign_net: dict[str, float] = defaultdict(float)
    for f in fills:
        if foreign(f) and str(f["id"]) not in j_ids:
            foreign_net[f["symbol"]] += _signed(f["side"], f["qty"])
    for f in after:
        foreign_net[f["symbol"]] += _signed(f["side"], f["qty"])
    journal_net: dict[str, float] = defaultdict(float)
    open_ids = ledger.open_trade_ids
    sym_of = {t["trade_id"]: t["symbol"] for t in ledger.trades}
    for f in ledger.fills:
        if f["trade_id"] in open_ids:
            journal_net[sym_of[f["trade_id"]]] += _signed(f["side"], float(f["qty"]))
    for sym in set(amounts) | set(journal_net) | set(foreign_net):
        bot_net = amounts.get(sym, 0.0) - foreign_net.get(sym, 0.0)
        if abs(bot_net - journal_net.get(sym, 0.0)) > 1e-6:
            problems.append(f"{sym}: journal's open trades hold {journal_net.get(sym, 0.0):+.6g}, the exchange "
                            f"{amounts.get(sym, 0.0):+.6g} of which by hand or after the bot stopped "
                            f"{foreign_net.get(sym, 0.0):+.6g}")
    return JournalCheck(not problems, lost, problems, len(after), {f["symbol"] for f in after})
