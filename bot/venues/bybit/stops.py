"""Which of our stop legs the position's one stop stands for, per symbol (pure, sans-I/O).

On Bybit the protective stop is the POSITION's (tpslMode Full, orders.py): one stop per symbol, set by an
entry's attached `stopLoss` or by `POST /v5/position/trading-stop`, moved in place, resized and removed by
the venue with the position. The trade machine instead thinks in stop legs (t42-sl, t42-sl2, ...), each
placed, acknowledged and cancelled. This class maps one onto the other:

- `begin(symbol, cid)`: a stop leg is being sent (trading-stop). `confirm` once the venue has it: that
  leg becomes the OWNER (every stop order/fill of the symbol is reported under its client id) and the
  previous owner is SUPERSEDED (its cancel is then a no-op that reports CANCELED: the venue moved the one
  stop, nothing is left to cancel). Two legs in flight at once (a stop and its resize after a second
  entry fill) may be answered out of order: the later-begun leg stays the owner, an older leg's late
  answer makes it superseded, never the owner again (the machine has already ended it as replaced).
- `attach(symbol, entry_cid)`: an entry carrying an attached stop. Until a stop leg confirms, stop
  activity of the symbol (the attached stop firing before our stop leg is acknowledged) is HELD and
  handed to the first owner, never reported as the entry's (it would count as an opening fill).
- `clear(symbol, cid)`: we removed the stop (stopLoss "0").
- `adopt(symbol, cid, ticks)`: after a restart, a journal trade's live stop leg owns the position's stop
  again (this registry lives in memory only). Until the venue is seen to show that stop (a listing or a
  look-up at its price: `verified`), a position message without a stop raises no alarm for it: the
  start-up reconciliation decides (a stop lost while we were away is placed again, not flattened).

One trade per symbol at a time is assumed (one-way mode: one position per symbol, one stop per position).
"""

from __future__ import annotations

from dataclasses import replace

from bot.domain.orders import OrderUpdate

__all__ = ["PositionStops"]


class PositionStops:
    def __init__(self, hold_ns: int = 2_000_000_000) -> None:
        self.hold_ns = hold_ns
        self._owner: dict[str, str] = {}
        self._ticks: dict[str, int] = {}
        self.members: dict[str, str] = {}  # every stop leg's client id -> symbol
        self.superseded: set[str] = set()
        self.cleared: set[str] = set()
        self._held: dict[str, list[tuple[int, OrderUpdate]]] = {}
        self.attached_by: dict[str, str] = {}  # symbol -> entry client id whose stop is armed, no owner yet
        self.unverified: set[str] = set()  # adopted owners the venue has not been seen to show yet
        self._begun: dict[str, int] = {}  # stop leg -> the order it was sent in (adopted legs: none, 0)

    def owner(self, symbol: str) -> str:
        return self._owner.get(symbol, "")

    def ticks(self, symbol: str) -> int | None:
        return self._ticks.get(symbol)

    def is_member(self, cid: str) -> bool:
        return cid in self.members

    def begin(self, symbol: str, cid: str) -> None:
        self.members[cid] = symbol
        self._begun.setdefault(cid, len(self._begun) + 1)

    def attach(self, symbol: str, entry_cid: str) -> None:
        """A new entry with an attached stop: a new position's stop. The last trade's owner is history."""
        old = self._owner.pop(symbol, "")
        if old:
            self.superseded.add(old)
        self.attached_by[symbol] = entry_cid

    def confirm(self, symbol: str, cid: str, ticks: int | None) -> tuple[str, list[OrderUpdate]]:
        """`cid` is now the position's stop. Returns (previous owner or '', held updates relinked to cid)."""
        old = self._owner.get(symbol, "")
        self.members[cid] = symbol
        if old and old != cid and self._begun.get(cid, 0) < self._begun.get(old, 0):
            self.superseded.add(cid)  # an older leg answered after a newer one: the newer one owns the stop
            return "", []
        self._owner[symbol] = cid
        self.superseded.discard(cid)
        if ticks is not None:
            self._ticks[symbol] = ticks
        if old and old != cid:
            self.superseded.add(old)
        self.attached_by.pop(symbol, None)
        held = [replace(u, client_id=cid, parent_id=cid) for _, u in self._held.pop(symbol, [])]
        return (old if old != cid else ""), held

    def adopt(self, symbol: str, cid: str, ticks: int | None) -> list[OrderUpdate]:
        """A restored stop leg is the position's stop (the owner; a previous owner is superseded). Returns
        held stop activity, now reported under it."""
        _, held = self.confirm(symbol, cid, ticks)
        self.unverified.add(cid)
        return held

    def verified(self, cid: str) -> None:
        self.unverified.discard(cid)

    def clear(self, symbol: str, cid: str) -> None:
        if self._owner.get(symbol) == cid:
            del self._owner[symbol]
            self._ticks.pop(symbol, None)
        self.cleared.add(cid)

    def has_held(self, symbol: str) -> bool:
        return bool(self._held.get(symbol))

    def hold(self, symbol: str, ts_ns: int, u: OrderUpdate) -> None:
        self._held.setdefault(symbol, []).append((ts_ns, u))

    def flush_expired(self, now_ns: int) -> list[OrderUpdate]:
        """Stop activity no stop leg claimed in time (a stop set by hand, say): out as it is (no client id)."""
        out: list[OrderUpdate] = []
        for sym in [s for s, v in self._held.items() if v and now_ns - v[0][0] >= self.hold_ns]:
            out.extend(u for _, u in self._held.pop(sym))
        return out
