"""The price path around each trade, for the journal (`marks` table) and the report's per-trade chart.

One mark per symbol at most every `interval_ns` (1 s): the last price the engine saw (its `on_price`,
the book's mid). The last `before_ns` (60 s) of marks are kept in memory for every symbol; when a trade
is open on the symbol they are written — the minute before the entry included — and writing goes on until
`after_ns` (60 s) after the last trade there ended. Pure and synchronous: the engine hands the rows to the
journal in batches (`MarkSampler.sample` returns the rows due; `flush_due` says when a batch is worth a
transaction: ten rows, or ten seconds, or the symbol's window just ended).
"""

from __future__ import annotations

from collections import deque

__all__ = ["MarkSampler"]

_S = 1_000_000_000


class _Symbol:
    __slots__ = ("buf", "last_ns", "until_ns", "writing", "written_ns")

    def __init__(self, keep: int) -> None:
        self.buf: deque[tuple[int, float]] = deque(maxlen=keep)
        self.last_ns = -(1 << 62)
        self.until_ns = -(1 << 62)  # marks are written while now <= until_ns
        self.written_ns = -(1 << 62)  # the newest mark already handed out
        self.writing = False


class MarkSampler:
    def __init__(self, interval_ns: int = _S, before_ns: int = 60 * _S, after_ns: int = 60 * _S) -> None:
        self.interval_ns = interval_ns
        self.after_ns = after_ns
        self._keep = max(1, before_ns // interval_ns + 1)
        self._st: dict[str, _Symbol] = {}
        self.pending: list[tuple[int, str, float]] = []
        self._first_pending_ns = 0
        self._window_ended = False

    def sample(self, symbol: str, price: float, now_ns: int, trading: bool) -> None:
        """A price of `symbol` at `now_ns`; `trading`: a trade of the bot is open there now."""
        st = self._st.get(symbol)
        if st is None:
            st = self._st[symbol] = _Symbol(self._keep)
        if now_ns - st.last_ns < self.interval_ns:
            if trading and st.until_ns < now_ns + self.after_ns:
                st.until_ns = now_ns + self.after_ns  # a trade opened between two marks: keep the window open
            return
        st.last_ns = now_ns
        st.buf.append((now_ns, price))
        if trading:
            st.until_ns = now_ns + self.after_ns
        if now_ns > st.until_ns:
            if st.writing:  # the window just closed: what is pending is complete, worth its transaction
                st.writing = False
                self._window_ended = True
            return
        rows = [(ts, symbol, p) for ts, p in st.buf if ts > st.written_ns]
        st.written_ns = now_ns
        st.writing = True
        if rows and not self.pending:
            self._first_pending_ns = rows[0][0]
        self.pending.extend(rows)

    def flush_due(self, now_ns: int) -> bool:
        return bool(self.pending) and (len(self.pending) >= 10 or now_ns - self._first_pending_ns >= 10 * _S
                                       or self._window_ended)

    def take(self) -> list[tuple[int, str, float]]:
        rows, self.pending, self._window_ended = self.pending, [], False
        return rows
