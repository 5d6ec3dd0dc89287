"""RuntimeState: the one object the app writes and the ops endpoints read. Pure: no I/O, no clock.

The app records what happens through small methods, each taking an explicit `now_ns` where time
matters (architecture.md: sans-I/O, explicit clock). `/health`, `/metrics` and `/status`
(bot.ops.server) only read it, on the same event loop, so there is no locking.

How the app drives it (all synchronous, O(1) unless noted; the running bot's feeders: bot.ops.live.OpsFeed
for orders, positions, PnL, account, trading state, halts and reconciliation; bot.pipeline for books, message
rates, denials and event-to-decision latency; bot.app_watch for the user stream):

    state = RuntimeState(user_stream_stale_after_ns=...)
    state.set_info(name=..., mode=..., venue=...)              # shown in /status
    state.track_book(symbol, sync.health, sync.stats)            # read live, zero cost per message
    state.set_book_status(symbol, BookStatus.STALE, "no message for 5 s", now_ns)  # no BookHealth
    state.on_message(symbol, "depth", now_ns)                    # per raw message (counter + 1 s rate)
    state.on_resync(symbol, now_ns)                               # only for books tracked without stats
    state.on_user_stream_message(now_ns); state.set_user_stream(False, "listenKey expired", now_ns)
    state.track_order_transport("binance-usdm", gateway.order_transport_state)  # read live (OpsFeed)
    state.set_user_stream_doubt("user stream in doubt: a fill it never delivered")  # "" = trusted again
    state.set_trading_state("HALTED", "stop not confirmed", now_ns)   # str or an Enum with .value
    state.set_position(symbol, side="long", qty=0.01, entry_price=..., stop_price=...,
                       unrealized_pnl_quote=...)
    state.clear_position(symbol)
    state.set_protection({"BTCUSDT": {"stop_price": ..., "targets": [...]}})  # bot.ops.legs.publish
    state.order_opened(client_id, symbol=..., kind=..., side=..., qty=..., price=...)
    state.order_closed(client_id)
    state.set_open_orders([{...,"client_id": ...}])              # bot.ops.legs.publish, from the live trades
    state.on_order(kind, result)     # result: "ack" | "rejected" | "filled" | "canceled" | "ambiguous" | ...
    state.on_denial(reason)          # our risk gate said no (kept apart from venue rejections)
    state.on_trade_closed(close_reason, pnl_quote, fees_quote=0.0)
    state.set_account(equity=..., available=..., wallet_balance=..., now_ns=...)
    state.on_error(source, message, now_ns)                       # bounded deque of the last N
    state.observe_latency("event_to_decision", ns); state.observe_latency("order_ack", ns)
    state.set_symbol_halts({"BTCUSDT": ("stop rejected", since_ns)})  # the gate's view; -> (halted, lifted)
    state.set_reconcile(runs=3, failures=0, failures_total=1, last_ok_ns=..., last_failed_ns=...,
                        last_error="...", actions={"stops_placed": 1, ...})

`health(now_ns)` -> {"status": "ok" | "degraded" | "halted", "reasons": [...]}: halted when the trading
state is HALTED; degraded when a book is not LIVE (SYNCING / STALE / CROSSED), the user stream is down
or stale or in doubt, trading is REDUCING, a symbol is halted (entries on it blocked: "symbol halted: BTCUSDT
(<reason>)") or the last reconciliation pass failed.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from enum import Enum
from typing import Any, Protocol

from bot.market.health import BookHealth, BookStatus
from bot.ops.counters import LATENCY_BUCKETS_NS, LatencyHistogram, Rate
from bot.venues.ports import OrderTransportSnapshot

__all__ = [
    "LATENCY_BUCKETS_NS",
    "RECONCILE_ACTIONS",
    "RECONCILE_STATES",
    "TRADING_STATES",
    "LatencyHistogram",
    "RuntimeState",
]

TRADING_STATES = ("ACTIVE", "REDUCING", "HALTED")
RECONCILE_STATES = ("pending", "ok", "failed")  # no pass finished yet / the last one was complete / failed
# What reconciliation (bot.execution.recovery) counts; always exported, 0 until it happens.
RECONCILE_ACTIONS = ("stops_placed", "orders_cancelled", "trades_adopted", "manual_closes",
                     "positions_flattened", "symbols_halted",
                     # while running (bot.app_watch): updates the user stream never delivered, positions from
                     # the stream that differed from the bot's, in-flight look-ups, reconnects asked of the stream
                     "stream_misses", "position_mismatches", "inflight_checks", "stream_reconnects")

_SEC_NS = 1_000_000_000


def _label(x: Any) -> str:
    """Enum members by value (OrderKind.LIMIT -> 'LIMIT'), everything else by str()."""
    return str(x.value) if isinstance(x, Enum) else str(x)


class _Stats(Protocol):
    resyncs: int


class _Book:
    __slots__ = ("health", "resyncs", "stats")

    def __init__(self, health: BookHealth, stats: _Stats | None) -> None:
        self.health = health
        self.stats = stats
        self.resyncs = 0

    def resync_count(self) -> int:
        return (self.stats.resyncs if self.stats is not None else 0) + self.resyncs


class RuntimeState:
    """What the bot is doing now. See the module docstring for how the app feeds it."""

    def __init__(self, *, last_errors_max: int = 50, user_stream_stale_after_ns: int = 0,
                 now_ns: int = 0) -> None:
        self.started_ns = now_ns
        self.info: dict[str, Any] = {}
        self.books: dict[str, _Book] = {}
        self.book_max_age_ms = 0.0  # market.max_book_age_ms (set by the pipeline); 0: age not checked
        self.messages: dict[tuple[str, str], Rate] = {}
        # User data stream: None = this mode has none (sim), else connected flag + reason.
        self.user_stream_ok: bool | None = None
        self.user_stream_reason = ""
        self.user_stream_since_ns = 0
        self.user_stream_last_msg_ns = 0
        self.user_stream_stale_after_ns = user_stream_stale_after_ns
        self.user_stream_doubt = ""  # connected but not trusted (bot.venues.stream_health): why
        # venue -> its gateway's order transport, read at every /status and scrape (ports.OrderTransportReport)
        self.order_transports: dict[str, Callable[[], OrderTransportSnapshot]] = {}
        self.trading_state = "ACTIVE"
        self.trading_reason = "started"
        self.trading_since_ns = now_ns
        self.positions: dict[str, dict[str, Any]] = {}
        self.open_orders: dict[str, dict[str, Any]] = {}
        # symbol -> {"stop_price", "targets", ...} from the live trades (bot.ops.legs): merged into /status
        # positions at read time, so a position refreshed from the account keeps its stop and targets
        self.protection: dict[str, dict[str, Any]] = {}
        self.realized_pnl_quote = 0.0
        # the venue's account (REST after each close and on the slow check): equity, available, wallet_balance
        self.account: dict[str, Any] = {}
        self.unrealized_pnl_quote = 0.0
        self.fees_quote = 0.0
        self.trades_closed: dict[str, int] = {}
        self.denials: dict[str, int] = {}
        self.orders: dict[tuple[str, str], int] = {}
        self.errors_by_source: dict[str, int] = {}
        self.last_errors: deque[dict[str, Any]] = deque(maxlen=last_errors_max)
        self.latency: dict[str, LatencyHistogram] = {
            "event_to_decision": LatencyHistogram(),
            "order_ack": LatencyHistogram(),
        }
        # Per-symbol halts (entries on the symbol blocked): symbol -> {"reason", "since_ns"}.
        self.halted_symbols: dict[str, dict[str, Any]] = {}
        # symbol -> {client id of an entry of unknown fate: end of its quarantine (ns)} (RiskGate.quarantined:
        # no new entry there until that order executed or a final look-up said not found)
        self.quarantined_symbols: dict[str, dict[str, int]] = {}
        # the entry path kept warm (bot/execution/warm.py): on, warm-ups so far, how far the last one went
        self.entry_warm: dict[str, Any] = {}
        self.symbols: set[str] = set()  # every symbol seen: scalper_symbol_halted is 0/1 for each
        self.reconcile: dict[str, Any] = {
            "runs": 0, "failures": 0, "failures_total": 0, "last_ok_ns": 0, "last_failed_ns": 0,
            "last_error": "", "actions": dict.fromkeys(RECONCILE_ACTIONS, 0),
        }

    # ---- identity -------------------------------------------------------------------------
    def set_info(self, **kv: Any) -> None:
        """Static facts shown in /status and as labels of scalper_info (name, mode, venue, version)."""
        self.info.update({k: _label(v) for k, v in kv.items()})

    # ---- feeds ----------------------------------------------------------------------------
    def track_book(self, symbol: str, health: BookHealth, stats: _Stats | None = None) -> None:
        """Read this BookHealth (and the sync's stats.resyncs) live on every scrape."""
        self.books[symbol] = _Book(health, stats)
        self.symbols.add(symbol)

    def set_book_status(self, symbol: str, status: BookStatus | str, reason: str, now_ns: int) -> bool:
        """For books without a tracked BookHealth (or to force one): returns True on a change."""
        book = self.books.get(symbol)
        if book is None:
            book = self.books[symbol] = _Book(BookHealth(symbol, now_ns), None)
            self.symbols.add(symbol)
        return book.health.set(BookStatus(_label(status)), reason, now_ns)

    def on_resync(self, symbol: str, now_ns: int) -> None:
        """Count a resync of a book tracked without stats (with stats, stats.resyncs is read instead)."""
        book = self.books.get(symbol)
        if book is None:
            book = self.books[symbol] = _Book(BookHealth(symbol, now_ns), None)
        book.resyncs += 1

    def on_message(self, symbol: str, channel: str, now_ns: int, n: int = 1) -> None:
        """Count n raw messages of one stream (e.g. 'BTCUSDT', 'depth'). Per message: keep it cheap."""
        key = (symbol, channel)
        r = self.messages.get(key)
        if r is None:
            r = self.messages[key] = Rate()
        r.add(n, now_ns)

    def message_rate_per_s(self, symbol: str, channel: str, now_ns: int) -> int:
        r = self.messages.get((symbol, channel))
        return r.per_s(now_ns) if r is not None else 0

    def set_user_stream(self, ok: bool, reason: str, now_ns: int) -> None:
        """Venue layer: user data stream connected (True) or lost (False, with why)."""
        if ok is not self.user_stream_ok:
            self.user_stream_since_ns = now_ns
        self.user_stream_ok = ok
        self.user_stream_reason = reason
        if ok:
            self.user_stream_last_msg_ns = max(self.user_stream_last_msg_ns, now_ns)

    def set_user_stream_doubt(self, reason: str) -> None:
        """Connected but in doubt (a missed fill, an unanswered keep-alive): `/health` degraded with why."""
        self.user_stream_doubt = reason

    def on_user_stream_message(self, now_ns: int) -> None:
        """Any user-stream message or successful keep-alive."""
        self.user_stream_last_msg_ns = now_ns

    def track_order_transport(self, venue: str, read: Callable[[], OrderTransportSnapshot]) -> None:
        """The gateway's order transport (REST / its order websocket), read live: /status `order_transport`."""
        self.order_transports[venue] = read

    # ---- trading --------------------------------------------------------------------------
    def set_trading_state(self, state: Any, reason: str, now_ns: int) -> None:
        s = _label(state).upper()
        if s not in TRADING_STATES:
            raise ValueError(f"trading state {s!r} is not one of {TRADING_STATES}")
        if s != self.trading_state:
            self.trading_since_ns = now_ns
        self.trading_state = s
        self.trading_reason = reason

    def set_symbol_halts(self, halts: dict[str, tuple[str, int]]) -> tuple[list[str], list[str]]:
        """Replace the per-symbol halts with the risk gate's view (symbol -> (reason, since_ns)).
        Returns (newly halted, lifted) symbols, so the caller alerts once per transition."""
        before = self.halted_symbols
        self.halted_symbols = {sym: {"reason": reason, "since_ns": since_ns}
                               for sym, (reason, since_ns) in sorted(halts.items())}
        self.symbols.update(halts)
        return ([s for s in self.halted_symbols if s not in before],
                [s for s in before if s not in self.halted_symbols])

    def set_reconcile(self, *, runs: int, failures: int, failures_total: int, last_ok_ns: int,
                      last_failed_ns: int, last_error: str = "", actions: dict[str, int] | None = None) -> None:
        """Reconciliation after a restart / reconnect (bot.execution.recovery): passes, failures (in a row
        and in total), last complete / failed pass (ns), the last error and what the passes did."""
        counts = dict.fromkeys(RECONCILE_ACTIONS, 0)
        counts.update(actions or {})
        self.reconcile = {"runs": runs, "failures": failures, "failures_total": failures_total,
                          "last_ok_ns": last_ok_ns, "last_failed_ns": last_failed_ns,
                          "last_error": last_error[:500], "actions": counts}

    def reconcile_state(self) -> str:
        """'pending' before any pass finished, 'failed' when the latest finished pass failed, else 'ok'."""
        if self.reconcile["failures"]:
            return "failed"
        return "ok" if self.reconcile["last_ok_ns"] else "pending"

    def set_position(self, symbol: str, *, side: Any, qty: float, entry_price: float,
                     stop_price: float | None = None, unrealized_pnl_quote: float = 0.0,
                     **extra: Any) -> None:
        """Open position of `symbol` (qty > 0; side 'long'/'short' or a Side)."""
        side_s = _label(side).lower()
        side_s = {"buy": "long", "sell": "short"}.get(side_s, side_s)
        self.positions[symbol] = {
            "symbol": symbol, "side": side_s, "qty": qty, "entry_price": entry_price,
            "stop_price": stop_price, "unrealized_pnl_quote": unrealized_pnl_quote,
            **{k: _label(v) if isinstance(v, Enum) else v for k, v in extra.items()},
        }
        self.unrealized_pnl_quote = sum(p["unrealized_pnl_quote"] or 0.0 for p in self.positions.values())

    def clear_position(self, symbol: str) -> None:
        self.positions.pop(symbol, None)
        self.unrealized_pnl_quote = sum(p["unrealized_pnl_quote"] or 0.0 for p in self.positions.values())

    def set_account(self, *, equity: float, available: float, wallet_balance: float, now_ns: int,
                    source: str = "rest") -> None:
        """The venue's account as last seen (`source`: "rest" or "user stream"): shown in /status `account`
        and as scalper_equity_quote."""
        self.account = {"equity": equity, "available": available, "wallet_balance": wallet_balance,
                        "updated_ns": now_ns, "source": source}

    def set_protection(self, by_symbol: dict[str, dict[str, Any]]) -> None:
        """The live trades' stop and targets per symbol (bot.ops.legs.publish), shown with the positions."""
        self.protection = by_symbol

    def positions_view(self) -> list[dict[str, Any]]:
        """The positions with their protection: a field the position lacks (None) is taken from it."""
        out = []
        for sym, p in self.positions.items():
            extra = self.protection.get(sym, {})
            out.append({**p, **{k: v for k, v in extra.items() if p.get(k) is None}})
        return out

    def order_opened(self, client_id: str, **fields: Any) -> None:
        self.open_orders[client_id] = {"client_id": client_id, **{k: _label(v) if isinstance(v, Enum) else v
                                                                  for k, v in fields.items()}}

    def order_closed(self, client_id: str) -> None:
        self.open_orders.pop(client_id, None)

    def set_open_orders(self, orders: list[dict[str, Any]]) -> None:
        """Every resting order of ours, rebuilt from the live trades (bot.ops.legs.publish)."""
        self.open_orders = {str(o["client_id"]): dict(o) for o in orders}

    def on_order(self, kind: Any, result: Any) -> None:
        key = (_label(kind), _label(result))
        self.orders[key] = self.orders.get(key, 0) + 1

    def on_denial(self, reason: Any) -> None:
        r = _label(reason)
        self.denials[r] = self.denials.get(r, 0) + 1

    def on_trade_closed(self, close_reason: Any, pnl_quote: float, fees_quote: float = 0.0) -> None:
        """A trade completed: realised PnL (net of fees as the caller computes it) and fees paid."""
        r = _label(close_reason)
        self.trades_closed[r] = self.trades_closed.get(r, 0) + 1
        self.realized_pnl_quote += pnl_quote
        self.fees_quote += fees_quote

    def on_error(self, source: str, message: str, now_ns: int) -> None:
        """Keep the last N errors for /status (never pass secrets in `message`)."""
        self.errors_by_source[source] = self.errors_by_source.get(source, 0) + 1
        self.last_errors.append({"ts_ns": now_ns, "source": source, "message": message[:500]})

    def observe_latency(self, name: str, ns: int) -> None:
        """Record one duration; 'event_to_decision' and 'order_ack' always exist, others on first use."""
        h = self.latency.get(name)
        if h is None:
            h = self.latency[name] = LatencyHistogram()
        h.observe(ns)

    # ---- reads ----------------------------------------------------------------------------
    def user_stream_stale(self, now_ns: int) -> bool:
        return bool(self.user_stream_ok and self.user_stream_stale_after_ns
                    and now_ns - self.user_stream_last_msg_ns > self.user_stream_stale_after_ns)

    def health(self, now_ns: int) -> dict[str, Any]:
        """{'status': 'ok'|'degraded'|'halted', 'reasons': [...]}; halted wins over degraded."""
        reasons: list[str] = []
        if self.trading_state == "HALTED":
            reasons.append(f"trading HALTED: {self.trading_reason}")
        elif self.trading_state == "REDUCING":
            reasons.append(f"trading REDUCING: {self.trading_reason}")
        for symbol, halt in self.halted_symbols.items():
            reasons.append(f"symbol halted: {symbol} ({halt['reason']})")
        if self.reconcile_state() == "failed":
            r = self.reconcile
            reasons.append(f"reconciliation failing ({r['failures']} in a row): {r['last_error']}")
        for symbol, book in self.books.items():
            h = book.health
            if h.status is not BookStatus.LIVE:
                reasons.append(f"{symbol} book {h.status.value}: {h.reason}")
            elif self.book_max_age_ms and h.last_recv_ns and h.age_ms(now_ns) > self.book_max_age_ms:
                # LIVE but older than entries accept (market.max_book_age_ms): before the watchdog fires
                reasons.append(f"{symbol} book stale: {h.age_ms(now_ns):.0f} ms old "
                               f"(> {self.book_max_age_ms:.0f} ms)")
        if self.user_stream_ok is False:
            reasons.append(f"user stream down: {self.user_stream_reason}")
        elif self.user_stream_doubt:
            reasons.append(self.user_stream_doubt)
        elif self.user_stream_stale(now_ns):
            age_ms = (now_ns - self.user_stream_last_msg_ns) // 1_000_000
            reasons.append(f"user stream stale: no message for {age_ms} ms")
        if self.trading_state == "HALTED":
            status = "halted"
        elif reasons:
            status = "degraded"
        else:
            status = "ok"
        return {"status": status, "reasons": reasons}

    def feeds(self, now_ns: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for symbol, book in self.books.items():
            age = book.health.age_ms(now_ns)
            out[symbol] = {**book.health.as_dict(), "age_ms": round(age, 1) if age != float("inf") else None,
                           "resyncs": book.resync_count(), "rates_per_s": {}}
        for (symbol, channel), r in self.messages.items():
            entry = out.setdefault(symbol, {"rates_per_s": {}})
            entry["rates_per_s"][channel] = r.per_s(now_ns)
        return out

    def status(self, now_ns: int) -> dict[str, Any]:
        """Everything /status shows: JSON-ready plain data."""
        return {
            "info": dict(self.info),
            "now_ns": now_ns,
            "uptime_s": round((now_ns - self.started_ns) / _SEC_NS, 3) if self.started_ns else None,
            "health": self.health(now_ns),
            "trading": {"state": self.trading_state, "reason": self.trading_reason,
                        "since_ns": self.trading_since_ns},
            "halted_symbols": {sym: dict(h) for sym, h in self.halted_symbols.items()},
            "quarantined_symbols": {sym: {"entries": sorted(held), "until_ns": max(held.values())}
                                    for sym, held in sorted(self.quarantined_symbols.items()) if held},
            "entry_warm": dict(self.entry_warm) or None,
            "reconcile": {"state": self.reconcile_state(), **self.reconcile,
                          "actions": dict(self.reconcile["actions"])},
            "feeds": self.feeds(now_ns),
            "order_transport": {venue: read().as_dict() for venue, read in self.order_transports.items()},
            "user_stream": None if self.user_stream_ok is None else {
                "ok": self.user_stream_ok, "reason": self.user_stream_reason, "doubt": self.user_stream_doubt,
                "since_ns": self.user_stream_since_ns, "last_message_ns": self.user_stream_last_msg_ns},
            "positions": self.positions_view(),
            "open_orders": list(self.open_orders.values()),
            "account": dict(self.account) or None,
            "pnl": {"realized_quote": self.realized_pnl_quote, "unrealized_quote": self.unrealized_pnl_quote,
                    "fees_quote": self.fees_quote},
            "trades_closed": dict(self.trades_closed),
            "denials": dict(self.denials),
            "orders": [{"kind": k, "result": r, "count": c} for (k, r), c in self.orders.items()],
            "latency": {name: h.as_dict() for name, h in self.latency.items()},
            "last_errors": list(self.last_errors),
        }
