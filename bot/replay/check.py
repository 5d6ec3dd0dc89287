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

import orjson

from bot.domain.events import BookTicker, DepthDiff, DepthSnapshot, FundingInfo, Trade
from bot.domain.instrument import Instrument
from bot.errors import MalformedMessage
from bot.market.book import OrderBook, default_depth_ticks
from bot.market.sync import BinanceBookSync, BybitBookSync
from bot.replay.reader import LineError, Record, read_session
from bot.venues.binance_usdm import parse as bn
from bot.venues.binance_usdm.instruments import instrument_for
from bot.venues.bybit import parse as bb

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
        "sync",
        "trades",
    )

    def __init__(self, sync: BinanceBookSync | BybitBookSync) -> None:
        self.sync = sync
        self.bbo_by_u: OrderedDict[int, tuple[int, int, int, int] | None] = OrderedDict()
        self.pending_bt: OrderedDict[int, BookTicker] = OrderedDict()
        self.bbo_checked = 0
        self.bbo_mismatched = 0
        self.book_tickers = 0
        self.trades = 0
        self.first_mismatch: str | None = None


class SessionChecker:
    def __init__(self, instruments: dict[str, Instrument] | None = None, depth_bps: float = 200.0) -> None:
        self.instruments = instruments or {}
        self.depth_bps = depth_bps
        self.symbols: dict[str, _SymbolCheck] = {}
        self.errors: list[str] = []
        self.error_count = 0
        self.records = 0
        self._last_symbol = ""

    # ------------------------------------------------------------------ feeding
    def _state(self, symbol: str, venue: str, sample: list[list[str]] | None) -> _SymbolCheck:
        st = self.symbols.get(symbol)
        if st is None:
            p = sample[0][0] if sample else None
            q = sample[0][1] if sample else None
            inst = instrument_for(symbol, p, q, self.instruments)
            book = OrderBook(inst, default_depth_ticks(inst, float(p) if p else None, self.depth_bps))
            sync = BinanceBookSync(book) if venue == "binance" else BybitBookSync(book)
            st = self.symbols[symbol] = _SymbolCheck(sync)
        return st

    def _error(self, msg: str) -> None:
        self.error_count += 1
        if len(self.errors) < 50:
            self.errors.append(msg)

    def feed(self, rec: Record | LineError) -> None:
        if isinstance(rec, LineError):
            self._error(str(rec))
            return
        self.records += 1
        # Each line in its own boundary: a bad value is reported with file and line and the check goes
        # on (a book a bad level damaged resyncs, as live). ValueError & co. cover what no parser check
        # names, e.g. an unknown symbol whose sample level cannot give an instrument.
        try:
            if rec.raw.startswith(b'{"topic"'):
                for ev in bb.parse_payload(orjson.loads(rec.raw), rec.ts_recv_ns):
                    self._on_event(ev, "bybit")
                return
            ev = bn.parse_message(rec.raw, rec.ts_recv_ns)
            if ev is not None:
                if isinstance(ev, DepthSnapshot) and not ev.symbol:
                    if len(self.symbols) > 1:
                        self._error(f"{rec.path}:{rec.lineno}: bare snapshot in a multi-symbol session")
                        return
                    ev.symbol = self._last_symbol
                self._on_event(ev, "binance")
        except (MalformedMessage, orjson.JSONDecodeError) as e:
            self._error(f"{rec.path}:{rec.lineno}: {e}")
        except (ValueError, TypeError, ArithmeticError, KeyError) as e:
            self._error(f"{rec.path}:{rec.lineno}: {type(e).__name__}: {e}"[:300])

    def _on_event(self, ev: Any, venue: str) -> None:
        now = ev.ts_recv_ns
        if isinstance(ev, DepthDiff):
            self._last_symbol = ev.symbol
            st = self._state(ev.symbol, venue, ev.bids or ev.asks)
            sync = st.sync
            before = sync.stats.applied + sync.stats.snapshots
            sync.on_diff(ev, now)
            if sync.stats.applied + sync.stats.snapshots != before:
                self._after_depth(st, ev.final_id)
        elif isinstance(ev, DepthSnapshot):
            if not ev.symbol:
                return
            st = self._state(ev.symbol, venue, ev.bids or ev.asks)
            st.sync.on_snapshot(ev, now)
            # Buffered diffs applied inside on_snapshot end at the sync's last id.
            if st.sync.last_update_id >= 0:
                self._after_depth(st, st.sync.last_update_id)
        elif isinstance(ev, BookTicker):
            st = self._state(ev.symbol, venue, [[ev.bid_price, ev.bid_qty]])
            st.book_tickers += 1
            if ev.update_id in st.bbo_by_u:
                self._compare(st, ev, st.bbo_by_u[ev.update_id])
            else:
                st.pending_bt[ev.update_id] = ev
                if len(st.pending_bt) > _PENDING:
                    st.pending_bt.popitem(last=False)
        elif isinstance(ev, Trade):
            if ev.symbol in self.symbols:
                self.symbols[ev.symbol].trades += 1
        elif isinstance(ev, FundingInfo):
            pass

    def _after_depth(self, st: _SymbolCheck, final_id: int) -> None:
        sync = st.sync
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
        inst = st.sync.book.instrument
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
    def result(self) -> dict[str, Any]:
        syms: dict[str, Any] = {}
        for sym, st in sorted(self.symbols.items()):
            s = st.sync.stats
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
                "status": st.sync.health.status.value,
            }
            if st.first_mismatch:
                syms[sym]["first_mismatch"] = st.first_mismatch
        return {
            "symbols": syms,
            "records": self.records,
            "errors": self.error_count,
            "error_lines": self.errors,
        }


def check_files(paths: Iterable[str], instruments: dict[str, Instrument] | None = None) -> dict[str, Any]:
    chk = SessionChecker(instruments)
    for rec in read_session(paths):
        chk.feed(rec)
    return chk.result()
