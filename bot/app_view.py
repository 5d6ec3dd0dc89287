"""What the live web view (bot.ops.web) shows beyond /status, read from the running bot: the top of book
per symbol, the journal's last closed trades with R and costs, and equity with its drawdown from the day's
peak (the risk gate's own figures: the same equity that drives the daily-loss and drawdown halts).

    app.ops.web.extras = WebFeed(app)     # bot.app, once the ops server exists

Called by the web view a few times a second per open page, on the event loop: the journal is read only
when a trade closed since the last call (the engine's closed list grew), so an idle page costs no I/O.
"""

from __future__ import annotations

from typing import Any

__all__ = ["TRADE_FIELDS_SHOWN", "WebFeed"]

TRADE_FIELDS_SHOWN = ("trade_id", "setup", "symbol", "side", "entry_ts_ns", "entry_price", "qty", "stop_price",
                      "exit_ts_ns", "exit_price", "exit_reason", "pnl", "fees", "funding_quote", "risk_budget",
                      "r_multiple", "mae_r", "mfe_r")
_TRADES_SHOWN = 20


class WebFeed:
    def __init__(self, app: Any) -> None:
        self.app = app  # bot.app.App: engine, journal, pipeline and _books() (bot.app_ops)
        self._seen = -1
        self._trades: list[dict[str, Any]] = []

    def trades(self) -> list[dict[str, Any]]:
        """The last closed trades, newest first: pnl net of fees, fees, funding and R."""
        engine, journal = self.app.engine, self.app.journal
        closed = len(engine.closed) if engine is not None else 0
        if journal is not None and closed != self._seen:
            rows = journal.rows("trades", "rowid IN (SELECT rowid FROM trades WHERE state = 'CLOSED' "
                                "ORDER BY exit_ts_ns DESC, rowid DESC LIMIT ?)", (_TRADES_SHOWN,))
            rows.sort(key=lambda r: (r.get("exit_ts_ns") or 0), reverse=True)
            self._trades = [{k: r.get(k) for k in TRADE_FIELDS_SHOWN} for r in rows]
            self._seen = closed
        return self._trades

    def equity(self) -> dict[str, Any] | None:
        engine = self.app.engine
        if engine is None:
            return None
        g = engine.risk.gate
        peak = g.day_peak_equity or g.equity
        return {"equity": g.equity, "day_start": g.day_start_equity, "day_peak": peak,
                "drawdown_pct": (peak - g.equity) / peak * 100.0 if peak else 0.0,
                "day_pnl_pct": (g.equity - g.day_start_equity) / g.day_start_equity * 100.0
                if g.day_start_equity else 0.0,
                "max_drawdown_pct": g.cfg.max_drawdown_pct, "daily_loss_limit_pct": g.cfg.daily_loss_limit_pct}

    def __call__(self) -> dict[str, Any]:
        books = self.app._books() if self.app.pipeline is not None else {}
        return {"books": books, "trades": self.trades(), "equity": self.equity()}
