"""One venue's market session: raw messages -> domain events and book updates, per symbol.

Written once, used by every replay command (check-data, signals, features, backtest) and the benches:

    session = MarketSession(instruments)
    for out in session.feed(raw, recv_ns, source=path, lineno=n):
        if type(out) is DepthUpdate: ...   # a depth message changed `out.sync.book`
        else: ...                         # Trade, FundingInfo, BookTicker (domain events, as parsed)

Pure and synchronous (no I/O, explicit times). `decode()` + `apply()` split the two halves for a caller
that must see the parsed event before the book does (the backtest's simulated exchange sees each message
at its recorded time, the bot `market_data_latency` later): the message is parsed once.

Each message is handled in its own error boundary (issue 11): a malformed one is counted, its
`source:line` kept (the first 50), and the session goes on; a level the book cannot apply resyncs that
symbol (BookSync's own rule).

Bare REST snapshots (`{"lastUpdateId":…}` without a symbol, as hftbacktest and other tools record them)
are placed per source (file), never by "the last symbol seen" across merged files:
- a source that has carried the diffs of one symbol only: that symbol (a single-symbol file), if the
  snapshot's prices are plausible for it (within 2x: a multi-symbol file whose second symbol starts
  with its snapshot is not mistaken for the first);
- otherwise the symbol whose diffs bridge its lastUpdateId by Binance's splice rule (exchange-facts A1
  step 5: `U <= lastUpdateId <= u`; on USD-M the ids are one space across symbols, so the prices must be
  plausible too): a symbol whose diffs in this source already span it, or the first later diff of that
  source that bridges it. A snapshot that precedes the first diff therefore waits, and syncs the book
  when its diff comes (the sync buffers the diffs before it and drops those older than it, A1 step 4).
This is decided in `decode()`, so a consumer of the parsed events (the simulated exchange) sees the
snapshot with its symbol, just before the diff that placed it.
`finish()` lists what never worked out: snapshots no diff bridged, books that never went LIVE, sources
that carried no market message at all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import orjson

from bot.domain.events import BookTicker, DepthDiff, DepthSnapshot, FundingInfo, Trade
from bot.domain.instrument import Instrument
from bot.errors import MalformedMessage
from bot.market.book import OrderBook, default_depth_ticks
from bot.market.instruments import instrument_for
from bot.market.sync import BinanceBookSync, BybitBookSync
from bot.venues.binance_usdm import parse as bn
from bot.venues.bybit import parse as bb

__all__ = ["DepthUpdate", "MarketSession", "Sync"]

Sync = BinanceBookSync | BybitBookSync
_MAX_ERRORS = 50  # error texts kept (all are counted)
_MAX_PENDING = 8  # bare snapshots of one source waiting for their symbol
# What else converting a message can raise: e.g. an unknown symbol whose levels give no instrument.
_OTHER = (ValueError, TypeError, ArithmeticError, KeyError)


class DepthUpdate:
    """A depth message (diff or snapshot) changed `sync.book`. `ts_event_ns`: the venue's event time
    (a snapshot's is never earlier than the symbol's last diff: bare REST answers carry older stamps)."""

    __slots__ = ("event", "recv_ns", "symbol", "sync", "ts_event_ns")

    def __init__(self, symbol: str, sync: Sync, event: Any, ts_event_ns: int, recv_ns: int) -> None:
        self.symbol = symbol
        self.sync = sync
        self.event = event
        self.ts_event_ns = ts_event_ns
        self.recv_ns = recv_ns


class _Source:
    __slots__ = ("bad", "ok", "pending", "refs", "spans")

    def __init__(self) -> None:
        # symbol -> [U of its first diff, u of its last diff] in this source, in order of appearance
        self.spans: dict[str, list[int]] = {}
        self.refs: dict[str, float] = {}  # symbol -> a price of its first diff with levels (plausibility)
        self.pending: list[tuple[DepthSnapshot, int]] = []  # bare snapshots without a symbol yet, lineno
        self.ok = 0  # messages decoded (market or not)
        self.bad = 0  # lines that were not


def _top_price(snap: DepthSnapshot) -> float | None:
    lv = snap.bids or snap.asks
    try:
        return float(lv[0][0])
    except (IndexError, TypeError, ValueError):
        return None


def _median_price(levels: list[Any]) -> float | None:
    try:
        ps = sorted(float(lv[0]) for lv in levels[:64])
    except (TypeError, ValueError, IndexError):
        return None
    return ps[len(ps) // 2] if ps else None


def _plausible(price: float | None, ref: float | None) -> bool:
    """A snapshot's top price within 2x of a symbol's reference price (no price known: no evidence)."""
    if price is None or ref is None:
        return True
    return ref > 0 and 0.5 < price / ref < 2.0


class MarketSession:
    """parse -> sequence (BookSync) -> book for every symbol of one venue's message stream.

    `book_tickers=False` skips bookTicker messages by their first bytes, undecoded (the bot does not use
    them; they are most of a recorded session). `bybit=False` leaves Bybit's messages undecoded.
    `on_new_sync(symbol, sync)` is called once per new book (the live pipeline registers its health there)."""

    def __init__(self, instruments: dict[str, Instrument] | None = None, depth_bps: float = 200.0, *,
                 book_tickers: bool = True, bybit: bool = True,
                 on_new_sync: Callable[[str, Sync], None] | None = None) -> None:
        self.instruments = instruments if instruments is not None else {}
        self.depth_bps = depth_bps
        self.book_tickers = book_tickers
        self.bybit = bybit  # False: Bybit messages are not decoded (a Binance-only consumer: the backtest)
        self.on_new_sync = on_new_sync
        self.syncs: dict[str, Sync] = {}
        self.records = 0  # lines/messages fed
        self.skipped = 0  # bookTickers skipped undecoded
        self.malformed = 0  # messages that could not be decoded or applied
        self.errors: list[str] = []
        self.last_error = ""  # the latest, whatever the count (a live consumer reports each one)
        self.sources: dict[str, _Source] = {}
        self.went_live: set[str] = set()
        self._last_depth_ts: dict[str, int] = {}
        self._bybit: set[str] = set()  # symbols whose depth came in Bybit's format (their sync is Bybit's)

    # ------------------------------------------------------------------ errors
    def error(self, where: str, msg: str) -> None:
        self.malformed += 1
        self.last_error = f"{where}: {msg}"[:300] if where else msg[:300]
        if len(self.errors) < _MAX_ERRORS:
            self.errors.append(self.last_error)

    def _source(self, source: str) -> _Source:
        src = self.sources.get(source)
        if src is None:
            src = self.sources[source] = _Source()
        return src

    # ------------------------------------------------------------------ whole path
    def feed(self, raw: bytes, recv_ns: int, source: str = "", lineno: int = 0) -> list[Any]:
        evs = self.decode(raw, recv_ns, source, lineno)
        if not evs:
            return []
        if len(evs) == 1:
            return self.apply(evs[0], recv_ns, source, lineno)
        out: list[Any] = []
        for ev in evs:
            out += self.apply(ev, recv_ns, source, lineno)
        return out

    def feed_record(self, rec: Any) -> list[Any]:
        """A `bot.replay.reader` Record, or a LineError (counted against its file)."""
        raw = getattr(rec, "raw", None)
        if raw is None:
            self._source(rec.path).bad += 1
            self.error("", str(rec))
            return []
        return self.feed(raw, rec.ts_recv_ns, rec.path, rec.lineno)

    # ------------------------------------------------------------------ parse
    def decode(self, raw: bytes, recv_ns: int, source: str = "", lineno: int = 0) -> list[Any] | None:
        """The domain events of one message ([] for acks and kinds we do not use; None for a skipped
        bookTicker or a malformed message, which is counted)."""
        self.records += 1
        if not self.book_tickers and raw.find(b"bookTicker", 0, 48) >= 0:
            self.skipped += 1
            return None
        src = self.sources.get(source)
        if src is None:
            src = self._source(source)
        try:
            if raw.startswith(b'{"topic"'):
                evs = bb.parse_payload(orjson.loads(raw), recv_ns) if self.bybit else []
                for bev in evs:
                    if type(bev) is DepthDiff:
                        self._bybit.add(bev.symbol)
            else:
                ev: Any = bn.parse_message(raw, recv_ns)
                if ev is None:
                    evs = []
                else:
                    t = type(ev)
                    if t is DepthDiff:
                        evs = self._track(src, ev) if src.pending or ev.symbol not in src.spans else [ev]
                        src.spans[ev.symbol][1] = ev.final_id  # the symbol's id span in this source
                    elif t is DepthSnapshot and not ev.symbol:
                        evs = self._bare_snapshot(ev, src, source, lineno)
                    else:
                        evs = [ev]
        except (MalformedMessage, orjson.JSONDecodeError) as e:
            src.bad += 1
            self.error(f"{source}:{lineno}" if source else "", str(e))
            return None
        except _OTHER as e:
            src.bad += 1
            self.error(f"{source}:{lineno}" if source else "", f"{type(e).__name__}: {e}")
            return None
        src.ok += 1
        return evs

    # ------------------------------------------------------------------ sequence -> book
    def apply(self, ev: Any, now_ns: int, source: str = "", lineno: int = 0) -> list[Any]:
        """One parsed event into its symbol's book: [DepthUpdate] when the book changed, [event] for
        trades, funding and bookTickers, [] otherwise (buffered, dropped, a malformed level: counted)."""
        try:
            t = type(ev)
            if t is DepthDiff:
                return self._diff(ev, now_ns)
            if t is DepthSnapshot:
                return self._snapshot(ev, ev.symbol, now_ns) if ev.symbol else []
            if t is Trade or t is FundingInfo or t is BookTicker:
                return [ev]
            return []
        except MalformedMessage as e:
            self.error(f"{source}:{lineno}" if source else "", str(e))
        except _OTHER as e:
            self.error(f"{source}:{lineno}" if source else "", f"{type(e).__name__}: {e}")
        return []

    def sync_for(self, symbol: str, sample: Any, venue: str = "binance") -> Sync:
        s = self.syncs.get(symbol)
        if s is None:
            p = sample[0][0] if sample else None
            q = sample[0][1] if sample else None
            inst = instrument_for(symbol, p, q, self.instruments)
            self.instruments.setdefault(symbol, inst)
            book = OrderBook(inst, default_depth_ticks(inst, float(p) if p else None, self.depth_bps))
            s = self.syncs[symbol] = BinanceBookSync(book) if venue == "binance" else BybitBookSync(book)
            if self.on_new_sync is not None:
                self.on_new_sync(symbol, s)
        return s

    def _diff(self, ev: DepthDiff, now_ns: int) -> list[Any]:
        sym = ev.symbol
        sync = self.syncs.get(sym)
        if sync is None:
            sync = self.sync_for(sym, ev.bids or ev.asks, "bybit" if sym in self._bybit else "binance")
        st = sync.stats
        before = st.applied + st.snapshots
        self._last_depth_ts[sym] = ev.ts_event_ns
        sync.on_diff(ev, now_ns)
        if st.applied + st.snapshots != before:
            if sym not in self.went_live and sync.health.is_live:
                self.went_live.add(sym)
            return [DepthUpdate(sym, sync, ev, ev.ts_event_ns, now_ns)]
        return []

    def _snapshot(self, snap: DepthSnapshot, sym: str, now_ns: int) -> list[Any]:
        sync = self.sync_for(sym, snap.bids or snap.asks)
        st = sync.stats
        before = st.applied + st.snapshots
        sync.on_snapshot(snap, now_ns)
        if st.applied + st.snapshots == before:
            return []
        if sym not in self.went_live and sync.health.is_live:
            self.went_live.add(sym)
        return [DepthUpdate(sym, sync, snap, max(snap.ts_event_ns, self._last_depth_ts.get(sym, 0)), now_ns)]

    # ------------------------------------------------------------------ bare snapshots: whose?
    def _track(self, src: _Source, ev: DepthDiff) -> list[Any]:
        """A diff of a new symbol in this source, or one while bare snapshots wait: [placed snapshots...,
        the diff]. A waiting snapshot is this symbol's when the diff bridges it (A1 step 5: U <=
        lastUpdateId <= u) and its prices fit; or, in a source that carries this symbol only, when the
        diff is already newer (U > lastUpdateId): applied all the same, the sync counts the resync."""
        sym = ev.symbol
        span = src.spans.get(sym)
        if span is None:
            span = src.spans[sym] = [ev.first_id, ev.final_id]
        if sym not in src.refs:
            ref = _median_price(ev.bids + ev.asks)
            if ref is not None:
                src.refs[sym] = ref
        out: list[Any] = []
        for item in list(src.pending):
            snap = item[0]
            lid = snap.last_update_id
            if not _plausible(_top_price(snap), src.refs.get(sym)):
                continue
            if ev.first_id <= lid <= ev.final_id or (ev.first_id > lid and len(src.spans) == 1):
                src.pending.remove(item)
                snap.symbol = sym
                out.append(snap)
        out.append(ev)
        return out

    def _bare_snapshot(self, snap: DepthSnapshot, src: _Source, source: str, lineno: int) -> list[Any]:
        """[snapshot] with its symbol set when the source's diffs so far tell whose it is; else [] and it
        waits (bounded) for the diff that bridges it."""
        price = _top_price(snap)
        lid = snap.last_update_id
        fits = [sym for sym in src.spans if _plausible(price, src.refs.get(sym))]
        owner = None
        if len(src.spans) == 1 and fits:
            owner = fits[0]  # a single-symbol source
        else:
            for sym in fits:
                first_u, last_u = src.spans[sym]
                if first_u <= lid <= last_u:  # its bridging diff has already gone by
                    owner = sym
                    break
        if owner is not None:
            snap.symbol = owner
            return [snap]
        if len(src.pending) >= _MAX_PENDING:
            old, old_line = src.pending.pop(0)
            self.error(f"{source}:{old_line}", f"bare REST snapshot lastUpdateId={old.last_update_id}: "
                       "no depth diff of this file bridged it; not applied")
        src.pending.append((snap, lineno))
        return []

    # ------------------------------------------------------------------ end of data
    def finish(self, paths: Iterable[str] = ()) -> list[str]:
        """What went wrong for good, one line each: files that carried no market message, bare
        snapshots no diff bridged, books that never went LIVE."""
        problems: list[str] = []
        for p in paths:
            src = self.sources.get(p)
            if src is None or src.ok == 0:
                bad = src.bad if src is not None else 0
                problems.append(f"{p}: no market message could be read ({bad} bad lines)")
        for source, src in self.sources.items():
            for snap, lineno in src.pending:
                problems.append(f"{source}:{lineno}: bare REST snapshot lastUpdateId={snap.last_update_id}: "
                                "no depth diff of this file bridged it; not applied")
        for sym, sync in sorted(self.syncs.items()):
            if sym not in self.went_live:
                st = sync.stats
                files = [p for p, src in self.sources.items() if p and sym in src.spans]
                where = f" in {', '.join(files)}" if files else ""
                problems.append(f"{sym}: the book never went LIVE{where} ({st.depth_events} depth events, "
                                f"{st.snapshots} snapshots applied, {st.resyncs} resyncs): no snapshot bridged "
                                "its diffs")
        return problems

    def damage(self, paths: Iterable[str] = ()) -> list[str]:
        """Partial damage, one line per file that had bad lines *and* market messages (the rest was used):
        its count and its first bad line (file:line). Files with no market message at all are `finish`'s."""
        out: list[str] = []
        for p in paths:
            src = self.sources.get(p)
            if src is None or not src.bad or not src.ok:
                continue
            first = next((e for e in self.errors if e.startswith(f"{p}:")), "")
            out.append(f"{p}: {src.bad} bad lines skipped, the rest used" + (f"; first: {first}" if first else ""))
        return out
