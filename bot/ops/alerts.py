"""Operator alerts through Telegram and/or a generic JSON webhook, never on the trading path.

`notify()` is synchronous and O(1): a per-kind rate check (rolling minute), then an append to a bounded
deque. A background task (`run()`, one task of the app's TaskGroup) drains the deque and does the HTTP.
A dead or hanging sink only delays other alerts (each request is bounded by send_timeout_ms); the
trading loop never awaits it. A full queue drops the new alert and counts it.

    alerts = Alerts(settings.ops.alerts, name=settings.app.name)
    tg.create_task(alerts.run())
    alerts.fill("BTCUSDT", "BUY", 0.01, 60000.5, trade_id="t42", leg="entry")
    alerts.stop_out("BTCUSDT", "long", trade_id="t42", stop_price=59950.0, exit_price=59949.9,
                    pnl_quote=-5.3, r_multiple=-1.02)
    alerts.halt("stop not confirmed within 2000 ms")
    alerts.symbol_halt("BTCUSDT", "t7-sl REJECTED: -2021")   # kind "halt"; symbol_resume: kind "resume"
    alerts.feed_lost("BTCUSDT", "no message for 5000 ms")
    alerts.emergency("BTCUSDT", "position without a confirmed stop; flattening")
    alerts.daily_summary({"trades": 12, "win_rate": 0.58, "pnl_quote": 41.2})  # at next_daily_summary_ns()

Webhook body (POST, JSON): {"bot", "kind", "text", "ts_ns", "fields", "suppressed_before"}.
Telegram: POST {telegram_api_url}/bot<token>/sendMessage {"chat_id", "text"}. Secrets (the bot
token, the webhook URL) never appear in logs, in `stats` or in a body sent (cut out if a text had one).

`stats` counts: queued, sent, failed (per request), dropped_queue_full, suppressed_rate, kind_disabled.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.settings.ops import AlertsSection

__all__ = ["Alert", "Alerts"]

_MINUTE_NS = 60_000_000_000


class Alert:
    __slots__ = ("fields", "kind", "suppressed_before", "text", "ts_ns")

    def __init__(self, kind: str, text: str, ts_ns: int, fields: dict[str, Any],
                 suppressed_before: int) -> None:
        self.kind = kind
        self.text = text
        self.ts_ns = ts_ns
        self.fields = fields
        self.suppressed_before = suppressed_before


class Alerts:
    def __init__(self, section: AlertsSection | None = None, *, name: str = "scalper",
                 clock_ns: Callable[[], int] = time.time_ns,
                 monotonic_ns: Callable[[], int] = time.monotonic_ns) -> None:
        self.section = s = section or AlertsSection()
        self.name = name
        self._clock_ns = clock_ns
        self._mono_ns = monotonic_ns
        self._kinds = frozenset(s.kinds)
        self._max_per_min = s.max_per_kind_per_min
        self._recent: dict[str, deque[int]] = {}
        self._suppressed: dict[str, int] = {}
        self._queue: deque[Alert] = deque()
        self._queue_max = s.queue_size
        self._wake = asyncio.Event()
        self._webhook = s.webhook_url.get_secret_value()
        token = s.bot_token.get_secret_value()
        self._telegram = (f"{s.telegram_api_url}/bot{token}/sendMessage"
                          if token and s.telegram_chat_id else "")
        # cut out of every body sent: an alert's text or fields never carry the sinks' own secrets
        self._secrets = tuple(v.encode() for v in (self._webhook, token) if len(v) >= 4)
        self.in_flight = 0
        self.stats: dict[str, int] = {"queued": 0, "sent": 0, "failed": 0, "dropped_queue_full": 0,
                                      "suppressed_rate": 0, "kind_disabled": 0}

    @property
    def has_sinks(self) -> bool:
        return bool(self._webhook or self._telegram)

    @property
    def queued(self) -> int:
        return len(self._queue)

    # ---- the trading-path side: synchronous, O(1) -----------------------------------------
    def notify(self, kind: str, text: str, **fields: Any) -> bool:
        """Queue an alert; True when queued. Never blocks, never awaits, never raises on a full queue."""
        if not self.section.enabled or kind not in self._kinds:
            self.stats["kind_disabled"] += 1
            return False
        now = self._mono_ns()
        recent = self._recent.get(kind)
        if recent is None:
            recent = self._recent[kind] = deque(maxlen=self._max_per_min)
        if len(recent) == self._max_per_min and now - recent[0] < _MINUTE_NS:
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
            self.stats["suppressed_rate"] += 1
            return False
        if len(self._queue) >= self._queue_max:
            self.stats["dropped_queue_full"] += 1
            return False
        recent.append(now)
        suppressed = self._suppressed.pop(kind, 0)
        self._queue.append(Alert(kind, text, self._clock_ns(), fields, suppressed))
        self.stats["queued"] += 1
        self._wake.set()
        return True

    def fill(self, symbol: str, side: Any, qty: float, price: float, *, trade_id: str = "", leg: str = "",
             **extra: Any) -> bool:
        side_s = getattr(side, "value", side)
        what = f" ({trade_id} {leg})".rstrip() if trade_id or leg else ""
        return self.notify("fill", f"FILL {symbol} {side_s} {qty:g} @ {price:g}{what}", symbol=symbol,
                           side=str(side_s), qty=qty, price=price, trade_id=trade_id, leg=leg, **extra)

    def stop_out(self, symbol: str, side: str, *, trade_id: str, stop_price: float, exit_price: float,
                 pnl_quote: float, r_multiple: float | None = None, slip_ticks: int | None = None,
                 **extra: Any) -> bool:
        r = f" ({r_multiple:+.2f}R)" if r_multiple is not None else ""
        slip = f", slip {slip_ticks} ticks" if slip_ticks is not None else ""
        text = (f"STOP-OUT {symbol} {side} {trade_id}: exit {exit_price:g} vs stop {stop_price:g}{slip}, "
                f"pnl {pnl_quote:+.2f}{r}")
        return self.notify("stop_out", text, symbol=symbol, side=side, trade_id=trade_id,
                           stop_price=stop_price, exit_price=exit_price, pnl_quote=pnl_quote,
                           r_multiple=r_multiple, slip_ticks=slip_ticks, **extra)

    def halt(self, reason: str, **extra: Any) -> bool:
        return self.notify("halt", f"HALTED: {reason}", reason=reason, **extra)

    def resume(self, reason: str, **extra: Any) -> bool:
        return self.notify("resume", f"RESUMED: {reason}", reason=reason, **extra)

    def symbol_halt(self, symbol: str, reason: str, **extra: Any) -> bool:
        """Entries on one symbol halted (a stop refused or unconfirmed, a position of no known trade)."""
        return self.notify("halt", f"SYMBOL HALTED {symbol}: {reason}", symbol=symbol, reason=reason, **extra)

    def symbol_resume(self, symbol: str, **extra: Any) -> bool:
        return self.notify("resume", f"SYMBOL RESUMED {symbol}", symbol=symbol, **extra)

    def feed_lost(self, symbol: str, reason: str, **extra: Any) -> bool:
        text = f"FEED LOST {symbol}: {reason}"
        return self.notify("feed_lost", text, symbol=symbol, reason=reason, **extra)

    def feed_restored(self, symbol: str, **extra: Any) -> bool:
        return self.notify("feed_restored", f"FEED RESTORED {symbol}", symbol=symbol, **extra)

    def emergency(self, symbol: str, reason: str, **extra: Any) -> bool:
        text = f"EMERGENCY {symbol}: {reason}"
        return self.notify("emergency", text, symbol=symbol, reason=reason, **extra)

    def error(self, source: str, message: str, **extra: Any) -> bool:
        return self.notify("error", f"ERROR [{source}] {message}", source=source, message=message, **extra)

    def daily_summary(self, summary: dict[str, Any]) -> bool:
        parts = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in summary.items())
        return self.notify("daily_summary", f"DAILY SUMMARY: {parts}", **summary)

    def next_daily_summary_ns(self, now_ns: int) -> int | None:
        """Wall-clock ns of the next daily summary (ops.alerts.daily_summary_hour_utc); None when off."""
        hour = self.section.daily_summary_hour_utc
        if hour < 0:
            return None
        now = datetime.fromtimestamp(now_ns / 1e9, UTC)
        at = now.replace(hour=hour, minute=0, second=0, microsecond=0)
        if at <= now:
            at += timedelta(days=1)
        return int(at.timestamp()) * 1_000_000_000

    # ---- the background side ----------------------------------------------------------------
    async def run(self) -> None:
        """Drain the queue until cancelled (one task of the app's TaskGroup)."""
        import aiohttp

        timeout = aiohttp.ClientTimeout(total=self.section.send_timeout_ms / 1000)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                if not self._queue:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                alert = self._queue.popleft()
                if self.has_sinks:
                    self.in_flight += 1
                    try:
                        await self._send(session, alert)
                    finally:
                        self.in_flight -= 1

    async def _send(self, session: Any, alert: Alert) -> None:
        prefix = f"[{self.name}] "
        more = f" (+{alert.suppressed_before} suppressed)" if alert.suppressed_before else ""
        text = prefix + alert.text + more
        jobs = []
        if self._webhook:
            body = {"bot": self.name, "kind": alert.kind, "text": text, "ts_ns": alert.ts_ns,
                    "fields": alert.fields, "suppressed_before": alert.suppressed_before}
            jobs.append(self._post(session, "webhook", self._webhook, body))
        if self._telegram:
            body = {"chat_id": self.section.telegram_chat_id, "text": text, "disable_web_page_preview": True}
            jobs.append(self._post(session, "telegram", self._telegram, body))
        await asyncio.gather(*jobs)

    async def _post(self, session: Any, sink: str, url: str, body: dict[str, Any]) -> None:
        import orjson

        from bot.logging import get_logger

        data = orjson.dumps(body, default=str)
        for secret in self._secrets:
            data = data.replace(secret, b"<redacted>")
        try:
            async with session.post(url, data=data,
                                    headers={"Content-Type": "application/json"}) as r:
                await r.read()
                if r.status >= 300:
                    raise _HttpStatus(r.status)
            self.stats["sent"] += 1
        except asyncio.CancelledError:
            raise
        except Exception as e:  # a failed alert must never take the bot down; count and log it
            self.stats["failed"] += 1
            # Never log the URL or str(e): the Telegram token is in the path, webhook URLs embed keys.
            detail = f"HTTP {e.status}" if isinstance(e, _HttpStatus) else type(e).__name__
            get_logger("ops.alerts").warning("alert_send_failed", sink=sink, error=detail)

    async def flush(self, timeout_s: float) -> bool:
        """Wait until the queue is empty and nothing is in flight (shutdown, tests); True if it did."""
        deadline = time.monotonic() + timeout_s
        while self._queue or self.in_flight:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.01)
        return True


class _HttpStatus(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status
