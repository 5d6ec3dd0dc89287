"""What every venue's public market feed does the same way around its book syncs."""

from __future__ import annotations

import time
from typing import Any

from bot.errors import MalformedMessage

__all__ = ["FeedHealthMixin"]


class FeedHealthMixin:
    """Health reporting, stale marking and malformed-message accounting shared by the Binance and Bybit
    feeds. The feed provides `syncs` (symbol -> book sync), `on_health`, `_log`, `malformed`, `market`, and
    `_want` (an asyncio.Event its snapshot/resubscribe loop waits on)."""

    syncs: dict[str, Any]
    _want: Any
    on_health: Any
    _log: Any
    malformed: int
    handler_errors: int = 0  # messages whose handling raised something other than MalformedMessage
    market: Any

    def _health_changed(self, sync: Any) -> None:
        h = sync.health
        self._log.info("book_health", symbol=sync.symbol, status=h.status.value, reason=h.reason)
        if self.on_health is not None:
            self.on_health(sync.symbol, h)

    def _apply_diff(self, ev: Any, ts_recv_ns: int) -> bool:
        """One depth diff into its symbol's sync: health changes reported, a needed snapshot asked for.
        False for a symbol this feed does not keep (a stream nobody asked for): the event is dropped."""
        sync = self.syncs.get(ev.symbol)
        if sync is None:
            return False
        before = sync.health.status
        try:  # a malformed level raises after the sync reset itself: report and resync all the same
            sync.on_diff(ev, ts_recv_ns)
        finally:
            if sync.health.status is not before:
                self._health_changed(sync)
            if sync.needs_snapshot:
                self._want.set()
        return True

    def _mark_stale_all(self, reason: str) -> None:
        """The connection's watchdog fired: every book it carries is STALE (reported once per change)."""
        for sync in self.syncs.values():
            before = sync.health.status
            sync.mark_stale(reason, time.time_ns())
            if sync.health.status is not before:
                self._health_changed(sync)

    def _handler_error(self, err: Exception, raw: bytes, symbol: str | None) -> None:
        """The error boundary of one market message: a bug or an input no parser check caught raised
        while handling it. Counted and logged with its traceback (a bug stays visible); the feed goes
        on. The message's book, if any, may be half-updated: that symbol resyncs."""
        self.handler_errors += 1
        self._log.error("market_message_failed", count=self.handler_errors,
                        error=f"{type(err).__name__}: {err}"[:200], sample=raw[:120].decode(errors="replace"),
                        exc_info=self.handler_errors <= 3)
        sync = self.syncs.get(symbol) if type(symbol) is str else None
        if sync is not None:
            sync.invalidate(f"message failed: {type(err).__name__}", time.time_ns())
            self._health_changed(sync)
            self._want.set()

    def _malformed(self, err: MalformedMessage, raw: bytes) -> None:
        self.malformed += 1
        if (self.malformed - 1) % self.market.malformed_log_every == 0:
            self._log.warning("malformed_message", count=self.malformed, error=str(err)[:200],
                              sample=raw[:120].decode(errors="replace"))
