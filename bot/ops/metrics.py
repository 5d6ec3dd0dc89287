"""Prometheus exposition of RuntimeState (and alert counters), read at scrape time.

A custom collector on its own `CollectorRegistry` (never the global one, so tests and several bots in
one process do not collide): nothing from prometheus_client runs on the trading path; the app only
bumps plain ints in RuntimeState and a scrape turns them into metric families.

Families (counters are exposed with the `_total` suffix):
  scalper_info{...}                         static labels (name, mode, venue, version)
  scalper_uptime_seconds
  scalper_messages_total{symbol,channel}    raw messages received
  scalper_message_rate{symbol,channel}      messages in the last complete second
  scalper_book_status{symbol,status}        1 for the current status (SYNCING/LIVE/STALE/CROSSED)
  scalper_book_live{symbol}                 1 when LIVE
  scalper_book_resyncs_total{symbol}
  scalper_user_stream_up                    1 connected and fresh, 0 down/stale (absent without one)
  scalper_order_transport_state{venue,state}  1 for the order transport's state (up/down/connecting/disabled)
  scalper_order_ws_up{venue}                1 while the order websocket is up (execution.order_transport = "ws")
  scalper_order_ws_reconnects_total{venue}  times the order websocket came back after a loss
  scalper_order_ws_requests_total{venue}    order requests sent over the websocket
  scalper_order_rest_fallbacks_total{venue} order requests sent by REST because the websocket was not up
  scalper_<name>_seconds                    latency histograms (event_to_decision, order_ack, ...)
  scalper_orders_total{kind,result}
  scalper_denials_total{reason}
  scalper_trades_closed_total{reason}
  scalper_open_positions, scalper_position_qty{symbol,side}, scalper_open_orders
  scalper_pnl_realized_quote, scalper_pnl_unrealized_quote, scalper_fees_quote
  scalper_equity_quote                      the venue account's equity as last seen (absent before)
  scalper_trading_state{state}              1 for the current state (ACTIVE/REDUCING/HALTED)
  scalper_health{status}                    1 for the current verdict (ok/degraded/halted)
  scalper_symbol_halted{symbol}             1 while entries on the symbol are halted, else 0
  scalper_reconcile_state{state}            1 for pending/ok/failed (the last reconciliation pass)
  scalper_reconcile_runs_total, scalper_reconcile_failures_total
  scalper_reconcile_actions_total{action}   stops_placed/orders_cancelled/trades_adopted/manual_closes/...
  scalper_reconcile_last_ok_timestamp_seconds   wall clock of the last complete pass (0: none yet)
  scalper_errors_total{source}
  scalper_alerts_total{outcome}             queued/sent/failed/dropped_queue_full/suppressed_rate/...
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from bot.market.health import BookStatus
from bot.ops.state import RECONCILE_STATES, TRADING_STATES, RuntimeState
from bot.venues.order_transport import TRANSPORT_STATES, OrderTransportSnapshot

__all__ = ["StateCollector", "build_registry"]

_HEALTH = ("ok", "degraded", "halted")


class StateCollector(Collector):
    def __init__(self, state: RuntimeState, clock: Callable[[], int] = time.time_ns,
                 alerts: Any = None) -> None:
        self.state = state
        self.clock = clock
        self.alerts = alerts  # anything with .stats: dict[str, int] (bot.ops.alerts.Alerts)

    def collect(self) -> Iterator[Metric]:
        st = self.state
        now_ns = self.clock()
        if st.info:
            yield InfoMetricFamily("scalper", "static facts about this bot", value=dict(st.info))
        g = GaugeMetricFamily("scalper_uptime_seconds", "seconds since start")
        g.add_metric([], (now_ns - st.started_ns) / 1e9 if st.started_ns else 0.0)
        yield g

        msgs = CounterMetricFamily("scalper_messages", "raw venue messages received",
                                   labels=["symbol", "channel"])
        rate = GaugeMetricFamily("scalper_message_rate", "messages received in the last complete second",
                                 labels=["symbol", "channel"])
        for (symbol, channel), r in st.messages.items():
            msgs.add_metric([symbol, channel], r.total)
            rate.add_metric([symbol, channel], r.per_s(now_ns))
        yield msgs
        yield rate

        status = GaugeMetricFamily("scalper_book_status", "1 for the book's current status",
                                   labels=["symbol", "status"])
        live = GaugeMetricFamily("scalper_book_live", "1 when the book is LIVE", labels=["symbol"])
        resyncs = CounterMetricFamily("scalper_book_resyncs", "book resynchronisations", labels=["symbol"])
        for symbol, book in st.books.items():
            for s in BookStatus:
                status.add_metric([symbol, s.value], 1.0 if book.health.status is s else 0.0)
            live.add_metric([symbol], 1.0 if book.health.is_live else 0.0)
            resyncs.add_metric([symbol], book.resync_count())
        yield status
        yield live
        yield resyncs

        if st.user_stream_ok is not None:
            us = GaugeMetricFamily("scalper_user_stream_up", "user data stream connected and fresh")
            us.add_metric([], 1.0 if st.user_stream_ok and not st.user_stream_stale(now_ns) else 0.0)
            yield us

        if st.order_transports:
            yield from _order_transport([read() for read in st.order_transports.values()])

        for name, h in st.latency.items():
            buckets = [("+Inf" if b is None else repr(b / 1e9), c) for b, c in h.cumulative()]
            fam = HistogramMetricFamily(f"scalper_{name}_seconds", f"{name.replace('_', ' ')} latency")
            fam.add_metric([], buckets, h.sum_ns / 1e9)
            yield fam

        orders = CounterMetricFamily("scalper_orders", "orders by kind and result", labels=["kind", "result"])
        for (kind, result), c in st.orders.items():
            orders.add_metric([kind, result], c)
        yield orders
        yield _counter("scalper_denials", "entries denied by our risk gate", "reason", st.denials)
        yield _counter("scalper_trades_closed", "closed trades by close reason", "reason", st.trades_closed)
        yield _counter("scalper_errors", "errors by source", "source", st.errors_by_source)

        yield _gauge("scalper_open_positions", "open positions", len(st.positions))
        pos = GaugeMetricFamily("scalper_position_qty", "open position size (base asset)",
                                labels=["symbol", "side"])
        for symbol, p in st.positions.items():
            pos.add_metric([symbol, str(p["side"])], float(p["qty"]))
        yield pos
        yield _gauge("scalper_open_orders", "open orders (entries, stops, take-profits)", len(st.open_orders))
        yield _gauge("scalper_pnl_realized_quote", "realised PnL since start (quote currency)",
                     st.realized_pnl_quote)
        yield _gauge("scalper_pnl_unrealized_quote", "unrealised PnL of open positions (quote currency)",
                     st.unrealized_pnl_quote)
        yield _gauge("scalper_fees_quote", "fees paid since start (quote currency)", st.fees_quote)
        if st.account:
            yield _gauge("scalper_equity_quote", "account equity as last seen (quote currency)",
                         st.account["equity"])

        ts = GaugeMetricFamily("scalper_trading_state", "1 for the current trading state", labels=["state"])
        for state in TRADING_STATES:
            ts.add_metric([state], 1.0 if st.trading_state == state else 0.0)
        yield ts
        verdict = st.health(now_ns)["status"]
        hf = GaugeMetricFamily("scalper_health", "1 for the current health verdict", labels=["status"])
        for verdict_word in _HEALTH:
            hf.add_metric([verdict_word], 1.0 if verdict == verdict_word else 0.0)
        yield hf

        sh = GaugeMetricFamily("scalper_symbol_halted", "1 while entries on the symbol are halted",
                               labels=["symbol"])
        for symbol in sorted(st.symbols | st.halted_symbols.keys()):
            sh.add_metric([symbol], 1.0 if symbol in st.halted_symbols else 0.0)
        yield sh
        rec = st.reconcile
        rs = GaugeMetricFamily("scalper_reconcile_state", "1 for the state of the last reconciliation pass",
                               labels=["state"])
        current = st.reconcile_state()
        for rstate in RECONCILE_STATES:
            rs.add_metric([rstate], 1.0 if current == rstate else 0.0)
        yield rs
        runs = CounterMetricFamily("scalper_reconcile_runs", "reconciliation passes run")
        runs.add_metric([], rec["runs"])
        yield runs
        fails = CounterMetricFamily("scalper_reconcile_failures", "reconciliation passes that failed")
        fails.add_metric([], rec["failures_total"])
        yield fails
        yield _counter("scalper_reconcile_actions", "what reconciliation did, by action", "action",
                       rec["actions"])
        yield _gauge("scalper_reconcile_last_ok_timestamp_seconds",
                     "wall clock of the last complete reconciliation pass (0: none yet)", rec["last_ok_ns"] / 1e9)

        if self.alerts is not None:
            yield _counter("scalper_alerts", "alerts by outcome", "outcome", dict(self.alerts.stats))


def _order_transport(snaps: list[OrderTransportSnapshot]) -> Iterator[Metric]:
    """Per venue: the transport's state; for a websocket transport, up, reconnects, requests over it and the
    REST fallbacks (an alert on `scalper_order_ws_up == 0` says orders take the slower path)."""
    state = GaugeMetricFamily("scalper_order_transport_state", "1 for the order transport's current state",
                              labels=["venue", "state"])
    up = GaugeMetricFamily("scalper_order_ws_up", "1 while the order websocket is up", labels=["venue"])
    reconnects = CounterMetricFamily("scalper_order_ws_reconnects", "order websocket reconnections after a loss",
                                     labels=["venue"])
    requests = CounterMetricFamily("scalper_order_ws_requests", "order requests sent over the order websocket",
                                   labels=["venue"])
    fallbacks = CounterMetricFamily("scalper_order_rest_fallbacks",
                                    "order requests sent by REST because the order websocket was not up",
                                    labels=["venue"])
    for snap in snaps:
        for word in TRANSPORT_STATES:
            state.add_metric([snap.venue, word], 1.0 if snap.state == word else 0.0)
        if snap.configured == "ws":
            up.add_metric([snap.venue], 1.0 if snap.state == "up" else 0.0)
            reconnects.add_metric([snap.venue], snap.reconnects)
            requests.add_metric([snap.venue], snap.ws_requests)
            fallbacks.add_metric([snap.venue], snap.rest_fallbacks)
    yield from (state, up, reconnects, requests, fallbacks)


def _counter(name: str, doc: str, label: str, values: dict[str, int]) -> CounterMetricFamily:
    fam = CounterMetricFamily(name, doc, labels=[label])
    for k, v in values.items():
        fam.add_metric([k], v)
    return fam


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    fam = GaugeMetricFamily(name, doc)
    fam.add_metric([], float(value))
    return fam


def build_registry(state: RuntimeState, clock: Callable[[], int] = time.time_ns,
                   alerts: Any = None) -> CollectorRegistry:
    """A fresh registry holding only the bot's collector (not prometheus_client's global REGISTRY)."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(StateCollector(state, clock, alerts))
    return reg
