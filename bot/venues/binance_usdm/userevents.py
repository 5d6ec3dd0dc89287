"""User-data-stream events -> OrderUpdate / PositionSnapshot (pure, sans-I/O; exchange-facts A3, A4).

- ORDER_TRADE_UPDATE: one change of one regular order (`x` TRADE carries a fill: `l`, `L`, `n`, `t`, `m`).
- ALGO_UPDATE: one change of an algo (conditional) order. When it fires, `ai` names the matching-engine
  order it created; that child's fills come as ORDER_TRADE_UPDATE with `o.i == ai`. Binance does not
  promise the order of the two (nautilus #3664: the child's fill can come first), and the child's own
  client id is undocumented. So:
  * a child update is recognised by `i` already linked from an ALGO_UPDATE, or by a client id that is
    one of our algo orders' (the simulator names children that way);
  * an ORDER_TRADE_UPDATE nobody knows is held for `link_wait_ms`, waiting for the ALGO_UPDATE that
    links it; the link releases it; past the wait it goes out as it is (a manual order, say);
  * a child update is delivered with `client_id` AND `parent_id` = the algo order's client id (the leg
    the engine knows, e.g. "t42-sl") and `venue_order_id` = the child's order id.
- ACCOUNT_UPDATE: `a.P[]` -> PositionSnapshot (one-way mode: position side BOTH). With reason `a.m`
  FUNDING_FEE, each balance `a.B[]` with a non-zero change `bc` -> FundingPayment (signed as sent:
  negative = paid). Binance names the symbol only for an isolated position (the one `P` entry); a
  cross-margin funding event carries `B` only (A4), so its symbol is "" (the journal attributes it).
  Its `venue_ref` is built from E, T, asset, symbol, bc and the wallet balance after (`wb`): the same
  message replayed gives the same key, two settlements in the same millisecond do not.
- listenKeyExpired -> `ListenKeyExpired` (the runner makes a new key and reconnects).

Duplicates (a reconnect overlap, REST catch-up after a gap) are dropped: a fill by (order id, trade id),
a state change when (status, filled) did not change for that order.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import orjson

from bot.domain.instrument import Instrument
from bot.domain.orders import BalanceUpdate, FundingPayment, OrderUpdate, PositionSnapshot
from bot.domain.types import OrderStatus, Side
from bot.errors import MalformedMessage
from bot.market.values import finite
from bot.venues.binance_usdm.orders import algo_status_of, kind_of, status_of

__all__ = ["USER_EVENT_OPTIONAL", "ListenKeyExpired", "UserEventTranslator"]

# Event fields the translator reads when present and does without on purpose (`scalper conformance`
# checks every other field it reads: bot/conformance/fields.py). ALGO_UPDATE `rm`: the reason, with a
# rejection or an expiry; without it the status word is the reason.
USER_EVENT_OPTIONAL = frozenset({"o.rm"})

_MAX_REMEMBERED = 20_000


@dataclass(frozen=True, slots=True)
class ListenKeyExpired:
    ts_event_ns: int


Item = OrderUpdate | PositionSnapshot | FundingPayment | BalanceUpdate | ListenKeyExpired


def _f(v: Any) -> float:
    """A signed amount (fee, pnl, balance change): absent/"" is 0.0; NaN, inf, non-numbers raise."""
    return finite(v) if v is not None and v != "" else 0.0


def _px(v: Any) -> float:
    """A price (average, last fill, entry): absent/"" is 0.0 (unfilled); negative or non-finite raises."""
    x = _f(v)
    if x < 0.0:
        raise ValueError(f"negative price {v!r:.40}")
    return x


def _lots(inst: Instrument, v: Any) -> int:
    """An order quantity in lots: never negative or absurd (NaN/inf/non-numbers raise in the Decimal
    conversion)."""
    n = inst.qty_to_lots(v or "0")
    if not 0 <= n < 1 << 53:  # Decimal("1e400") is finite: an absurd size is refused too
        raise ValueError(f"quantity out of range {v!r:.40}")
    return n


def _status(word: Any) -> OrderStatus:
    # An unknown status must not be read as NEW (the old default): malformed -> the stream's REST
    # catch-up looks the order up instead. Words: exchange-facts A4 (`X`).
    if word not in ORDER_STATUS_WORDS:
        raise ValueError(f"unknown order status {word!r:.40}")
    return status_of(word)


def _algo_word(word: Any) -> str:
    if word not in _ALGO_WORDS:  # ALGO_UPDATE statuses, exchange-facts A3
        raise ValueError(f"unknown algo status {word!r:.40}")
    return str(word)


# exchange-facts A4 `X` (the words orders.status_of maps)
ORDER_STATUS_WORDS = frozenset(("NEW", "PARTIALLY_FILLED", "FILLED", "CANCELED", "EXPIRED", "EXPIRED_IN_MATCH",
                                "REJECTED"))
_ALGO_WORDS = frozenset(("NEW", "TRIGGERING", "TRIGGERED", "FINISHED", "CANCELED", "REJECTED", "EXPIRED"))
_BAD = (KeyError, TypeError, ValueError, AttributeError, ArithmeticError, orjson.JSONDecodeError)


class UserEventTranslator:
    def __init__(self, instruments: Mapping[str, Instrument], link_wait_ms: int = 2000) -> None:
        self.instruments = instruments
        self.link_wait_ns = link_wait_ms * 1_000_000
        self.known: dict[str, bool] = {}  # our client ids -> is conditional
        self.algo_of_child: dict[str, str] = {}  # child order id (`ai`) -> algo client id
        self._pending: dict[str, list[tuple[int, OrderUpdate]]] = {}  # child order id -> held updates
        self._last: OrderedDict[str, tuple[OrderStatus, int]] = OrderedDict()  # venue id -> (status, filled)
        self._fills: OrderedDict[tuple[str, str], None] = OrderedDict()
        self.live: dict[str, OrderUpdate] = {}  # client id -> last update of a non-final order
        self.positions: dict[str, PositionSnapshot] = {}
        self.stats = {"messages": 0, "held": 0, "linked": 0, "released_unlinked": 0, "duplicates": 0,
                      "funding": 0, "malformed": 0}

    def expect(self, client_id: str, conditional: bool) -> None:
        """An order we place (or found open at the venue): its updates need no linking."""
        self.known[client_id] = conditional

    # ----------------------------------------------------------------------------------- entry point
    def on_message(self, raw: bytes | str | dict[str, Any], ts_recv_ns: int) -> list[Item]:
        """MalformedMessage for bad JSON, a missing field, a wrong type, NaN/inf, a negative quantity or
        price, an unknown side or status: nothing of the message is delivered (the caller catches up by
        REST, which reads the order's true state)."""
        self.stats["messages"] += 1
        out: list[Item] = []
        try:
            msg = raw if isinstance(raw, dict) else orjson.loads(raw)
            if "data" in msg and "stream" in msg:  # combined-stream wrapper
                msg = msg["data"]
            e = msg.get("e")
            if e == "ORDER_TRADE_UPDATE":
                out.extend(self._order(msg, ts_recv_ns))
            elif e == "ALGO_UPDATE":
                out.extend(self._algo(msg, ts_recv_ns))
            elif e == "ACCOUNT_UPDATE":
                out.extend(self._account(msg, ts_recv_ns))
            elif e == "listenKeyExpired":
                out.append(ListenKeyExpired(int(msg.get("E", 0)) * 1_000_000))
        except _BAD as err:
            self.stats["malformed"] += 1
            raise MalformedMessage(f"user event: {type(err).__name__}: {err}"[:300]) from err
        out.extend(self.flush_expired(ts_recv_ns))
        return out

    def flush_expired(self, now_ns: int) -> list[OrderUpdate]:
        """Updates held for a link that never came: out as they are."""
        out: list[OrderUpdate] = []
        for oid in [k for k, v in self._pending.items() if v and now_ns - v[0][0] >= self.link_wait_ns]:
            for _, u in self._pending.pop(oid):
                self.stats["released_unlinked"] += 1
                out.extend(self._emit(u))
        return out

    # ------------------------------------------------------------------------------------- events
    def _order(self, msg: dict[str, Any], ts_recv_ns: int) -> list[OrderUpdate]:
        o = msg["o"]
        inst = self.instruments.get(o["s"])
        if inst is None:
            return []
        is_trade = o.get("x") == "TRADE"
        u = OrderUpdate(
            client_id=str(o.get("c", "")),
            venue_order_id=str(o.get("i", "")),
            symbol=o["s"],
            side=Side(o["S"]),
            kind=kind_of(str(o.get("o", "MARKET"))),
            status=_status(o.get("X", "NEW")),
            qty_lots=_lots(inst, o.get("q")),
            filled_lots=_lots(inst, o.get("z")),
            avg_price=_px(o.get("ap")),
            last_fill_lots=_lots(inst, o.get("l")) if is_trade else 0,
            last_fill_price=_px(o.get("L")) if is_trade else 0.0,
            fee=_f(o.get("n")) if is_trade else 0.0,
            is_maker=bool(o.get("m", False)),
            reduce_only=bool(o.get("R", False)) or bool(o.get("cp", False)),
            trade_id=str(o.get("t", "")) if is_trade else "",
            reason=str(o.get("x", "")) if o.get("x") in ("CALCULATED", "EXPIRED", "AMENDMENT") else "",
            ts_event_ns=int(o.get("T") or msg.get("T") or msg.get("E") or 0) * 1_000_000,
            ts_recv_ns=ts_recv_ns,
        )
        cid, oid = u.client_id, u.venue_order_id
        if cid in self.known and not self.known[cid]:
            return self._emit(u)  # one of our regular orders
        parent = self.algo_of_child.get(oid)
        if parent is None and self.known.get(cid):
            parent = cid  # a child named after its algo order
            self.algo_of_child[oid] = cid
        if parent is not None:
            return self._emit(replace(u, client_id=parent, parent_id=parent))
        if o.get("x") == "CALCULATED" or cid.startswith(("autoclose-", "adl_autoclose")):
            return self._emit(u)  # liquidation / ADL: nothing will link it, and it must not wait
        self._pending.setdefault(oid, []).append((ts_recv_ns, u))
        self.stats["held"] += 1
        return []

    def _algo(self, msg: dict[str, Any], ts_recv_ns: int) -> list[OrderUpdate]:
        o = msg["o"]
        inst = self.instruments.get(o["s"])
        if inst is None:
            return []
        filled = _lots(inst, o.get("aq"))
        word = _algo_word(o.get("X", "NEW"))
        u = OrderUpdate(
            client_id=str(o.get("caid", "")),
            venue_order_id=str(o.get("aid", "")),
            symbol=o["s"],
            side=Side(o["S"]),
            kind=kind_of(str(o.get("o", "STOP_MARKET"))),
            status=algo_status_of(word, filled),
            qty_lots=_lots(inst, o.get("q")),
            filled_lots=filled,
            avg_price=_px(o.get("ap")),
            reduce_only=bool(o.get("R", False)) or bool(o.get("cp", False)),
            reason=str(o.get("rm") or (word if word not in ("NEW", "CANCELED") else "")),
            ts_event_ns=int(msg.get("E") or 0) * 1_000_000,  # E is the event time (A3: labels swapped)
            ts_recv_ns=ts_recv_ns,
        )
        self.known.setdefault(u.client_id, True)
        out = self._emit(u)
        child = str(o.get("ai") or "")
        if child:
            self.algo_of_child[child] = u.client_id
            for _, held in self._pending.pop(child, []):
                self.stats["linked"] += 1
                out.extend(self._emit(replace(held, client_id=u.client_id, parent_id=u.client_id)))
        return out

    def _account(self, msg: dict[str, Any], ts_recv_ns: int) -> list[PositionSnapshot | FundingPayment | BalanceUpdate]:
        out: list[PositionSnapshot | FundingPayment | BalanceUpdate] = []
        a = msg.get("a") or {}
        if a.get("m") == "FUNDING_FEE":
            out.extend(self._funding(msg, a, ts_recv_ns))
        t_ns = int(msg.get("T") or msg.get("E") or 0) * 1_000_000
        for b in a.get("B") or []:  # the wallet after this change (exchange-facts A4: ACCOUNT_UPDATE)
            if b.get("wb") is not None:
                out.append(BalanceUpdate(str(b.get("a", "")), _f(b.get("wb")), _f(b.get("cw", b.get("wb"))), t_ns))
        for p in a.get("P") or []:
            inst = self.instruments.get(p.get("s", ""))
            if inst is None or p.get("ps", "BOTH") != "BOTH":
                continue
            snap = PositionSnapshot(
                symbol=p["s"],
                qty_lots=inst.qty_to_lots(p.get("pa") or "0"),
                entry_price=_px(p.get("ep")),
                unrealized_pnl=_f(p.get("up")),
                isolated=p.get("mt") == "isolated",
            )
            self.positions[snap.symbol] = snap
            out.append(snap)
        return out

    def _funding(self, msg: dict[str, Any], a: dict[str, Any], ts_recv_ns: int) -> list[FundingPayment]:
        pos = [p for p in a.get("P") or [] if p.get("s")]
        symbol = str(pos[0]["s"]) if len(pos) == 1 else ""
        e_ms, t_ms = int(msg.get("E") or 0), int(msg.get("T") or msg.get("E") or 0)
        out: list[FundingPayment] = []
        for b in a.get("B") or []:
            amount = _f(b.get("bc"))
            if amount == 0.0:
                continue
            asset = str(b.get("a", ""))
            ref = f"binance:{e_ms}:{t_ms}:{asset}:{symbol}:{b.get('bc')}:{b.get('wb', '')}"
            out.append(FundingPayment(symbol, amount, asset, t_ms * 1_000_000, ts_recv_ns, ref))
        self.stats["funding"] += len(out)
        return out

    # ------------------------------------------------------------------------------------- dedupe
    def _emit(self, u: OrderUpdate) -> list[OrderUpdate]:
        key = u.venue_order_id or u.client_id
        if u.trade_id:
            fk = (key, u.trade_id)
            if fk in self._fills:
                self.stats["duplicates"] += 1
                return []
            self._fills[fk] = None
            if len(self._fills) > _MAX_REMEMBERED:
                self._fills.popitem(last=False)
        else:
            prev = self._last.get(key)
            if prev is not None and prev == (u.status, u.filled_lots):
                self.stats["duplicates"] += 1
                return []
        self._last[key] = (u.status, u.filled_lots)
        self._last.move_to_end(key)
        if len(self._last) > _MAX_REMEMBERED:
            self._last.popitem(last=False)
        if u.status.is_final and u.parent_id == "":
            self.live.pop(u.client_id, None)
        elif u.parent_id == "":
            self.live[u.client_id] = u
        return [u]

    def track(self, u: OrderUpdate) -> None:
        """An order we just placed (its acknowledgement): followed, so a catch-up looks it up if it
        disappears from the open orders, but nothing is emitted (the caller has the ack)."""
        self.known[u.client_id] = u.kind.is_conditional
        key = u.venue_order_id or u.client_id
        self._last.setdefault(key, (u.status, u.filled_lots))
        if not u.status.is_final:
            self.live.setdefault(u.client_id, u)

    def seen_fill(self, venue_order_id: str, trade_id: str) -> bool:
        return (venue_order_id, trade_id) in self._fills

    def accept_rest(self, u: OrderUpdate) -> list[OrderUpdate]:
        """An update found by REST catch-up (already linked by the caller): delivered unless a duplicate."""
        if u.parent_id == "" and u.client_id:
            self.known.setdefault(u.client_id, u.kind.is_conditional)
        return self._emit(u)
