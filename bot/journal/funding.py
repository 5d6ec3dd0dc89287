"""Funding payments from a gateway into the journal.

    recorder = FundingRecorder(journal)
    tg.create_task(recorder.run(gateway))     # returns at once for a gateway without funding_updates()
    recorder.record(payment)                   # or synchronously (tests, a backtest draining at the end)

Each `FundingPayment` (bot.venues.ports) becomes one `funding` row, attributed to the trade holding a
position on that symbol at the payment's venue time, and added to that trade's `funding_quote` in the
same transaction (Journal.funding). A payment already journaled (same `venue_ref`: a reconnect replay,
a catch-up) is counted once. Funding is off the trading path: a journal error is logged and counted,
never raised into the gateway.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from bot.domain.orders import FundingPayment
from bot.journal.store import Journal
from bot.logging import get_logger

__all__ = ["FundingRecorder"]


class FundingRecorder:
    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.log = get_logger("journal.funding")
        self.stats = {"recorded": 0, "attributed": 0, "duplicates": 0, "errors": 0}
        self.total_quote = 0.0  # of the payments recorded by this process

    def record(self, p: FundingPayment) -> str | None:
        """Journal one payment; returns the trade id it was attributed to (None: no trade held it)."""
        try:
            inserted, tid = self.journal.funding(p.ts_event_ns, p.symbol, p.amount_quote, p.venue_ref,
                                                 asset=p.asset, recv_ns=p.ts_recv_ns or None)
        except sqlite3.Error as e:
            self.stats["errors"] += 1
            self.log.error("funding_journal_failed", symbol=p.symbol, amount=p.amount_quote, ref=p.venue_ref,
                           error=str(e))
            return None
        if not inserted:
            self.stats["duplicates"] += 1
            return tid
        self.stats["recorded"] += 1
        self.total_quote += p.amount_quote
        if tid is not None:
            self.stats["attributed"] += 1
        self.log.info("funding", symbol=p.symbol or "?", amount=p.amount_quote, asset=p.asset, trade_id=tid)
        return tid

    async def run(self, gateway: Any) -> None:
        """Record every payment the gateway reports until cancelled (nothing to do without a source)."""
        if not gateway.capabilities.funding:
            return
        async for p in gateway.funding_updates():
            try:
                self.record(p)
            except Exception as e:  # a bookkeeping bug must not take the trading bot down: log it loudly
                self.stats["errors"] += 1
                self.log.error("funding_record_failed", payment=repr(p), error=f"{type(e).__name__}: {e}")
