"""Book sequencing: one small state machine per symbol and venue, exactly by the venue's rules.

Sans-I/O: `on_diff` / `on_snapshot` take parsed events and an explicit `now_ns`; when a REST snapshot
is needed the machine sets `needs_snapshot`, and the async shell (venues/*/feed.py) fetches one and
calls `snapshot_requested()` so it is asked for only once. A gap resyncs *this* symbol only and keeps
the socket and the buffer (architecture.md habit 3).
"""

from __future__ import annotations

from collections import deque

from bot.domain.events import DepthDiff, DepthSnapshot
from bot.errors import MalformedMessage
from bot.market.book import OrderBook
from bot.market.health import _FLOOR_RISE_SHIFT, BookHealth, BookStatus

__all__ = ["BAD_LEVEL", "BinanceBookSync", "BybitBookSync", "SyncStats"]

# What converting a venue level can raise (book.py: NaN -> ValueError, inf -> OverflowError, a
# non-number -> ValueError/TypeError, a 3-item level -> ValueError in the unpacking, a negative size or
# price -> ValueError). The book may be half-updated by then, so the symbol resyncs.
BAD_LEVEL = (ValueError, TypeError, OverflowError)


class SyncStats:
    __slots__ = ("applied", "crossed", "depth_events", "dropped", "gaps", "malformed", "resyncs", "snapshots")

    def __init__(self) -> None:
        self.depth_events = 0  # diffs received
        self.applied = 0  # diffs applied to the book
        self.dropped = 0  # diffs discarded as older than the book (u < lastUpdateId, stale u)
        self.gaps = 0  # sequence breaks detected
        self.resyncs = 0  # snapshots requested after the first
        self.snapshots = 0  # snapshots applied
        self.crossed = 0  # updates after which the book was crossed
        self.malformed = 0  # updates whose levels could not be applied (the book was resynced)

    def as_dict(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in self.__slots__}


class _SyncBase:
    __slots__ = ("book", "health", "needs_snapshot", "stats", "symbol")

    def __init__(self, book: OrderBook, now_ns: int = 0) -> None:
        self.book = book
        self.symbol = book.symbol
        self.health = BookHealth(book.symbol, now_ns)
        self.stats = SyncStats()
        self.needs_snapshot = True

    def _stamp(self, ts_event_ns: int, ts_recv_ns: int, now_ns: int) -> None:
        self.health.stamp(ts_event_ns, ts_recv_ns or now_ns)

    def _after_apply(self, now_ns: int) -> None:
        if self.book.is_crossed():
            self.stats.crossed += 1
            self.health.set(BookStatus.CROSSED, "best bid >= best ask", now_ns)
        elif self.health.status is not BookStatus.LIVE:
            self.health.set(BookStatus.LIVE, "in sequence", now_ns)

    def invalidate(self, reason: str, now_ns: int) -> None:
        """The book may be half-updated (a bad level, a handler that raised): clear it, drop the sequence
        and ask for a fresh snapshot (the venue's own resync path)."""
        self.stats.resyncs += 1
        self.book.clear()
        self._forget(reason[:200], now_ns)

    def _damaged(self, err: Exception, now_ns: int) -> MalformedMessage:
        """A level could not be converted: invalidate the book, report the message as malformed."""
        self.stats.malformed += 1
        self.invalidate(f"malformed levels: {err}", now_ns)
        return MalformedMessage(f"{self.symbol}: bad depth level: {err}"[:300])

    def _forget(self, reason: str, now_ns: int) -> None:
        raise NotImplementedError

    def mark_stale(self, reason: str, now_ns: int) -> None:
        """Watchdog: no message for too long. The book is kept; the next in-sequence update revives it."""
        if self.health.status in (BookStatus.LIVE, BookStatus.CROSSED):
            self.health.set(BookStatus.STALE, reason, now_ns)

    def snapshot_requested(self) -> None:
        self.needs_snapshot = False


class BinanceBookSync(_SyncBase):
    """Binance USD-M diff-depth splice (exchange-facts A1, "How to manage a local order book"):

    1. buffer diffs while the REST snapshot loads;
    2. drop every buffered event with u < lastUpdateId;
    3. the first applied event must have U <= lastUpdateId <= u (no +1, unlike spot);
    4. afterwards every event's pu must equal the previous event's u (grouped events skip u values,
       so "U == last u + 1" would be wrong: ccxt #26819);
    otherwise take a new snapshot, keeping the socket and the buffer.
    """

    __slots__ = ("_buffer", "_last_u", "_pending_snapshot", "max_buffer")

    def __init__(self, book: OrderBook, now_ns: int = 0, max_buffer: int = 20_000) -> None:
        super().__init__(book, now_ns)
        self._buffer: deque[DepthDiff] = deque(maxlen=max_buffer)
        self._last_u = -1  # final update id of the last applied event; -1 while not in sequence
        self._pending_snapshot: DepthSnapshot | None = None  # applied, waiting for the bridging event
        self.max_buffer = max_buffer

    @property
    def last_update_id(self) -> int:
        return self._last_u

    def buffered_span(self) -> tuple[int, int] | None:
        """(U of the first, u of the last) buffered diff, None when nothing waits for a snapshot: lets a
        replay tell whether a REST snapshot of unknown symbol bridges this symbol's diffs (A1 step 5)."""
        buf = self._buffer
        return (buf[0].first_id, buf[-1].final_id) if buf else None

    def on_diff(self, ev: DepthDiff, now_ns: int) -> None:
        """MalformedMessage when the diff's levels cannot be applied (the symbol is resynced)."""
        st = self.stats
        st.depth_events += 1
        if self._last_u >= 0:  # in sequence: the hot path
            if ev.prev_final_id == self._last_u:
                try:  # zero-cost unless raised (3.11+)
                    self.book.apply_diff(ev.bids, ev.asks)
                except BAD_LEVEL as e:
                    raise self._damaged(e, now_ns) from e
                self._last_u = ev.final_id
                # BookHealth.stamp, inlined (the hot path): freshness for the risk gate
                h = self.health
                ev_ns = h.last_event_ns = ev.ts_event_ns
                r = h.last_recv_ns = ev.ts_recv_ns or now_ns
                if ev_ns and r - ev_ns < h.lag_floor_ns + ((r - h.floor_at_ns) >> _FLOOR_RISE_SHIFT):
                    h.lag_floor_ns = r - ev_ns
                    h.floor_at_ns = r
                st.applied += 1
                if self.health.status is not BookStatus.LIVE or self.book.is_crossed():
                    self._after_apply(now_ns)
                return
            if ev.final_id <= self._last_u:
                st.dropped += 1  # a duplicate or replayed older event: harmless
                return
            self._gap(f"pu={ev.prev_final_id} but last u={self._last_u}", now_ns)
            self._buffer.append(ev)
            return
        if self._pending_snapshot is not None:
            self._bridge(ev, now_ns)
            return
        self._buffer.append(ev)

    def on_snapshot(self, snap: DepthSnapshot, now_ns: int) -> None:
        """Apply a REST snapshot and splice the buffered diffs onto it. MalformedMessage when the
        snapshot or a buffered diff has levels that cannot be applied (a new snapshot is asked for)."""
        try:
            self._on_snapshot(snap, now_ns)
        except BAD_LEVEL as e:
            raise self._damaged(e, now_ns) from e

    def _on_snapshot(self, snap: DepthSnapshot, now_ns: int) -> None:
        self.needs_snapshot = False
        if self._last_u >= 0:
            return  # already in sequence (a late answer to an earlier request): nothing to do
        last_id = snap.last_update_id
        buf = self._buffer
        while buf and buf[0].final_id < last_id:
            buf.popleft()
            self.stats.dropped += 1
        if buf and buf[0].first_id > last_id:
            # The snapshot is older than everything we buffered: it cannot be bridged. Ask again.
            self.needs_snapshot = True
            self.stats.resyncs += 1
            self.health.set(
                BookStatus.SYNCING, f"snapshot {last_id} older than buffered U={buf[0].first_id}", now_ns
            )
            return
        self.book.apply_snapshot(snap.bids, snap.asks)
        self.stats.snapshots += 1
        self._pending_snapshot = snap
        pending = list(buf)
        buf.clear()
        for ev in pending:
            if self._last_u >= 0 or self._pending_snapshot is not None:
                self._continue(ev, now_ns)
            else:
                buf.append(ev)  # a gap inside the buffer put us back to waiting for a snapshot

    def _continue(self, ev: DepthDiff, now_ns: int) -> None:
        if self._last_u >= 0:
            self.stats.depth_events -= 1  # on_diff counts it again; it was counted when buffered
            self.on_diff(ev, now_ns)
        else:
            self._bridge(ev, now_ns)

    def _bridge(self, ev: DepthDiff, now_ns: int) -> None:
        snap = self._pending_snapshot
        assert snap is not None
        last_id = snap.last_update_id
        if ev.final_id < last_id:
            self.stats.dropped += 1
            return
        if ev.first_id <= last_id <= ev.final_id:
            self._pending_snapshot = None
            try:
                self.book.apply_diff(ev.bids, ev.asks)
            except BAD_LEVEL as e:
                raise self._damaged(e, now_ns) from e
            self._stamp(ev.ts_event_ns, ev.ts_recv_ns, now_ns)
            self._last_u = ev.final_id
            self.stats.applied += 1
            self._after_apply(now_ns)
            return
        # U > lastUpdateId: events between the snapshot and this one are missing.
        self._pending_snapshot = None
        self._gap(f"first event U={ev.first_id} > lastUpdateId={last_id}", now_ns)
        self._buffer.append(ev)

    def _gap(self, reason: str, now_ns: int) -> None:
        self.stats.gaps += 1
        self.stats.resyncs += 1
        self._last_u = -1
        self._pending_snapshot = None
        self._buffer.clear()
        self.needs_snapshot = True
        self.health.set(BookStatus.SYNCING, f"gap: {reason}", now_ns)

    def _forget(self, reason: str, now_ns: int) -> None:
        self.reset(reason, now_ns)

    def reset(self, reason: str, now_ns: int) -> None:
        """Forget the sequence (reconnect, planned rollover): buffer from scratch, ask for a snapshot."""
        self._last_u = -1
        self._pending_snapshot = None
        self._buffer.clear()
        self.needs_snapshot = True
        self.health.set(BookStatus.SYNCING, reason, now_ns)


class BybitBookSync(_SyncBase):
    """Bybit v5 `orderbook.{1,50,200,1000}.{symbol}` (exchange-facts B1):

    - a `snapshot` message (at any time) or `u == 1` (service restart) resets the book;
    - a `delta` applies absolute sizes; size 0 deletes;
    - `u <= last u` is stale and dropped;
    - `u != last u + 1` is not promised by the docs but holds on recorded data: it is counted as a gap
      and, with `resync_on_gap`, the shell resubscribes to force a fresh snapshot.
    """

    __slots__ = ("_last_u", "resync_on_gap")

    def __init__(self, book: OrderBook, now_ns: int = 0, resync_on_gap: bool = True) -> None:
        super().__init__(book, now_ns)
        self._last_u = -1
        self.resync_on_gap = resync_on_gap
        self.needs_snapshot = False  # Bybit pushes the snapshot itself after (re)subscribing

    @property
    def last_update_id(self) -> int:
        return self._last_u

    def on_diff(self, ev: DepthDiff, now_ns: int) -> None:
        """MalformedMessage when the levels cannot be applied (the topic is resubscribed)."""
        try:
            self._on_diff(ev, now_ns)
        except BAD_LEVEL as e:
            raise self._damaged(e, now_ns) from e

    def _on_diff(self, ev: DepthDiff, now_ns: int) -> None:
        st = self.stats
        st.depth_events += 1
        if ev.is_snapshot or ev.final_id == 1:
            self.book.apply_snapshot(ev.bids, ev.asks)
            self._stamp(ev.ts_event_ns, ev.ts_recv_ns, now_ns)
            self._last_u = ev.final_id
            st.snapshots += 1
            self._after_apply(now_ns)
            return
        if self._last_u < 0:
            st.dropped += 1  # a delta before any snapshot cannot be applied
            return
        if ev.final_id <= self._last_u:
            st.dropped += 1
            return
        if ev.final_id != self._last_u + 1:
            st.gaps += 1
            if self.resync_on_gap:
                st.resyncs += 1
                self.health.set(BookStatus.SYNCING, f"gap: u={ev.final_id} after {self._last_u}", now_ns)
                self._last_u = -1
                self.needs_snapshot = True  # shell: resubscribe the topic
                return
        self.book.apply_diff(ev.bids, ev.asks)
        self._stamp(ev.ts_event_ns, ev.ts_recv_ns, now_ns)
        self._last_u = ev.final_id
        st.applied += 1
        self._after_apply(now_ns)

    def on_snapshot(self, snap: DepthSnapshot, now_ns: int) -> None:
        """A REST snapshot (orderbook.full initialisation); websocket snapshots come through on_diff."""
        try:
            self.book.apply_snapshot(snap.bids, snap.asks)
        except BAD_LEVEL as e:
            raise self._damaged(e, now_ns) from e
        self._stamp(snap.ts_event_ns, snap.ts_recv_ns, now_ns)
        self._last_u = snap.last_update_id
        self.stats.snapshots += 1
        self.needs_snapshot = False
        self._after_apply(now_ns)

    def _forget(self, reason: str, now_ns: int) -> None:
        self._last_u = -1
        self.needs_snapshot = True  # a damaged book needs a fresh snapshot whatever resync_on_gap says
        self.health.set(BookStatus.SYNCING, reason, now_ns)

    def reset(self, reason: str, now_ns: int) -> None:
        self._last_u = -1
        self.health.set(BookStatus.SYNCING, reason, now_ns)
