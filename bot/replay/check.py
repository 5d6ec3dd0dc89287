"""`scalper check-data`: replay recorded sessions through parse -> sync -> DOM and audit them.

Per symbol: depth events, events applied, gaps, resyncs, crossed-book count, and the bookTicker
cross-check: at every bookTicker whose update id equals a depth event's final update id, the book's
best bid/ask price and size right after that depth event must equal the bookTicker's (Binance states
the true top of book in the same id space). The two streams may deliver a given id in either order,
so both sides wait for each other in small bounded maps.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from bot.domain.events import BookTicker, Trade
from bot.domain.instrument import Instrument
from bot.market.session import DepthUpdate, MarketSession
from bot.replay.reader import LineError, Record, read_session

__all__ = ["SessionChecker", "check_files"]

_PENDING = 4096  # ids kept waiting for their counterpart


class _SymbolCheck:
    __slots__ = (
        "bbo_by_u",
        "bbo_checked",
        "bbo_mismatched",
        "book_tickers",
        "first_mismatch",
        "pending_bt",
        "trades",
    )

    def __init__(self) -> None:
        self.bbo_by_u: OrderedDict[int, tuple[int, int, int, int] | None] = OrderedDict()
        self.pending_bt: OrderedDict[int, BookTicker] = OrderedDict()
        self.bbo_checked = 0
        self.bbo_mismatched = 0
        self.book_tickers = 0
        self.trades = 0
        self.first_mismatch: str | None = None


class SessionChecker:
    """The audit on top of the market session (bot.market.session): parse -> sync -> book is the
    session's; the bookTicker cross-check and the counts are this class's."""

    def __init__(self, instruments: dict[str, Instrument] | None = None, depth_bps: float = 200.0) -> None:
        self.session = MarketSession(dict(instruments or {}), depth_bps)
        self.symbols: dict[str, _SymbolCheck] = {}
        self.problems: list[str] = []

    @property
    def records(self) -> int:
        return self.session.records

    def _state(self, symbol: str) -> _SymbolCheck:
        st = self.symbols.get(symbol)
        if st is None:
            st = self.symbols[symbol] = _SymbolCheck()
        return st

    def feed(self, rec: Record | LineError) -> None:
        # Each line in its own boundary (the session's): a bad value is reported with file and line and
        # the check goes on (a book a bad level damaged resyncs, as live).
        for out in self.session.feed_record(rec):
            t = type(out)
            if t is DepthUpdate:
                sync = out.sync
                self._after_depth(self._state(out.symbol), sync, sync.last_update_id)
            elif t is BookTicker:
                st = self._state(out.symbol)
                st.book_tickers += 1
                if out.update_id in st.bbo_by_u:
                    self._compare(st, out, st.bbo_by_u[out.update_id])
                else:
                    st.pending_bt[out.update_id] = out
                    if len(st.pending_bt) > _PENDING:
                        st.pending_bt.popitem(last=False)
            elif t is Trade and out.symbol in self.session.syncs:
                self._state(out.symbol).trades += 1

    def _after_depth(self, st: _SymbolCheck, sync: Any, final_id: int) -> None:
        if final_id < 0:
            return  # a snapshot applied, waiting for the diff that bridges it: no id to check yet
        bbo = sync.book.bbo() if sync.health.is_live else None
        st.bbo_by_u[final_id] = bbo
        if len(st.bbo_by_u) > _PENDING:
            st.bbo_by_u.popitem(last=False)
        bt = st.pending_bt.pop(final_id, None)
        if bt is not None:
            self._compare(st, bt, bbo)

    def _compare(self, st: _SymbolCheck, bt: BookTicker, bbo: tuple[int, int, int, int] | None) -> None:
        if bbo is None:
            return  # the book was not live at that id: nothing to check against
        inst = self.session.syncs[bt.symbol].book.instrument
        want = (
            inst.price_to_ticks(bt.bid_price),
            inst.qty_to_lots(bt.bid_qty),
            inst.price_to_ticks(bt.ask_price),
            inst.qty_to_lots(bt.ask_qty),
        )
        st.bbo_checked += 1
        if want != bbo:
            st.bbo_mismatched += 1
            if st.first_mismatch is None:
                st.first_mismatch = f"u={bt.update_id}: bookTicker {want} != book {bbo}"

    # ------------------------------------------------------------------ results
    def finish(self, paths: Iterable[str] = ()) -> None:
        self.problems = self.session.finish(paths)

    def result(self) -> dict[str, Any]:
        syms: dict[str, Any] = {}
        for sym, sync in sorted(self.session.syncs.items()):
            s = sync.stats
            st = self._state(sym)
            syms[sym] = {
                "depth_events": s.depth_events,
                "applied": s.applied,
                "gaps": s.gaps,
                "resyncs": s.resyncs,
                "crossed": s.crossed,
                "bbo_checked": st.bbo_checked,
                "bbo_mismatched": st.bbo_mismatched,
                "snapshots": s.snapshots,
                "dropped": s.dropped,
                "book_tickers": st.book_tickers,
                "trades": st.trades,
                "status": sync.health.status.value,
            }
            if st.first_mismatch:
                syms[sym]["first_mismatch"] = st.first_mismatch
        ses = self.session
        return {
            "symbols": syms,
            "records": ses.records,
            "errors": ses.malformed,
            "error_lines": ses.errors,
            "problems": self.problems,
        }


def check_files(paths: Iterable[str], instruments: dict[str, Instrument] | None = None,
                progress: bool | None = False) -> dict[str, Any]:
    """`progress`: a bar on stderr (None: on a terminal only; bot.progress.replay_progress)."""
    from bot.progress import replay_progress

    paths = list(paths)
    chk = SessionChecker(instruments)
    for rec in replay_progress(read_session(paths), paths, "check-data", progress):
        chk.feed(rec)
    chk.finish(paths)
    return chk.result()
