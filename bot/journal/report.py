"""Journal review: statistics of closed trades from the SQLite journal (schema: bot.journal.store).

    data = load_journal(path)                       # plain rows, read once
    rep = build_report(data, since_ns=..., until_ns=..., setup=..., symbol=..., stop_deadline_ms=2000)
    rep.keys() == {"verdict", "costs", "filters", "overall", "by_setup", "by_symbol", "by_hour", "slippage",
                   "stops", "latency", "funding", "trades"}

"verdict" comes first (the first line of the text, JSON and HTML reports): it says so when the net
expectancy (after fees, slippage and funding) is negative. "costs": overall and per setup, gross and net
expectancy (R and quote) with 95 % Student t intervals, the mean cost at entry, the measured win rate and
the break-even win rate at the configured costs (bot.journal.costs; the fee rates from the journaled config,
`fee_config`). Each trade carries cost_bps / cost_r (the cost model's round trip at entry), gross_pnl_quote,
fees_quote, net_pnl_quote, r_gross, r_net, and its fills their liquidity (maker|taker) and fee_quote.

Per group (overall, per setup, per symbol, per hour of entry, UTC): trades, wins, win_rate, avg_win,
avg_loss (quote), expectancy_quote and expectancy_r, profit_factor, total_pnl, max_drawdown_quote (of the
group's cumulative PnL), hold time (mean, median, p90, histogram), fees, MAE/MFE (ticks and R, tracked by
the engine), funding_quote (the funding settled on the group's trades, signed as the venue reports:
negative = paid) and net_pnl_quote = total_pnl (net of fees, as journaled) + funding. Each trade carries
its funding_quote and net_pnl. "funding" sums every journaled payment in the filter window, including the
ones no trade held (a position the bot did not open, or an unnamed cross-margin fee with several open).

Slippage, adverse positive (a buy filled above what we meant to pay is +): per leg role (entry, add,
stop, tp, exit) from legs.intended_price vs legs.avg_price, and for entries also the signal price
(trades.intent_price) vs the fill; in ticks (the symbol's tick from bot.market.instruments
when known) and bps. Stops: for STOP_LOSS exits the planned stop (trades.stop_price) vs the realised exit;
"not confirmed in time" = stop_confirm_ms missing or above the deadline.

Latency per trade (ms), the entry path: exchange event -> our receive (trades.recv_ts_ns - event_ts_ns:
two clocks, the venue's and ours, so it includes their offset), receive -> signal emitted (signal_ts_ns -
recv_ts_ns), signal -> entry order sent (the last PENDING_NEW write of the entry leg before its ack, the
moment the engine hands it to the gateway; from intent_ts_ns in journals older than signal_ts_ns),
order -> ack (first NEW/PARTIALLY_FILLED/FILLED order event), ack -> first fill, entry fill -> stop
confirmed. A step whose times are missing (older journals) is null.
"""

from __future__ import annotations

import statistics
from datetime import UTC, datetime
from typing import Any

import orjson

from bot.journal.costs import FeeConfig, by_setup, expectancy, trade_costs, verdict

__all__ = ["build_report", "load_journal"]

_ACKED = ("NEW", "PARTIALLY_FILLED", "FILLED", "TRIGGERED")
_BUY_SIDES = ("long", "BUY", "buy")


def load_journal(path: str) -> dict[str, list[dict[str, Any]]]:
    from bot.journal.store import Journal

    j = Journal(path)
    try:
        return {t: j.rows(t) for t in ("trades", "legs", "fills", "order_events", "funding", "config")}
    finally:
        j.close()


def _tick(symbol: str) -> float | None:
    try:
        from bot.market.instruments import KNOWN

        inst = KNOWN.get(symbol)
        return float(inst.tick_size) if inst is not None else None
    except ImportError:  # pragma: no cover - the instruments table ships with the bot
        return None


def _slip(side: str, intended: float | None, got: float | None, tick: float | None) -> dict[str, Any] | None:
    """Adverse slippage of a fill at `got` against `intended` for an order on `side` (BUY/SELL)."""
    if not intended or not got:
        return None
    diff = (got - intended) if side in _BUY_SIDES else (intended - got)
    return {"ticks": round(diff / tick, 2) if tick else None, "bps": round(diff / intended * 1e4, 3),
            "quote": diff}


def _q(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def _summary(values: list[float | None]) -> dict[str, Any]:
    vals = [v for v in values if v is not None]
    if not vals:
        return {"n": 0, "mean": None, "median": None, "p90": None, "max": None}
    return {"n": len(vals), "mean": round(statistics.fmean(vals), 4), "median": round(statistics.median(vals), 4),
            "p90": round(_q(vals, 0.9) or 0.0, 4), "max": round(max(vals), 4)}


def _max_drawdown(pnls: list[float]) -> float:
    peak = cum = dd = 0.0
    for p in pnls:
        cum += p
        peak = max(peak, cum)
        dd = max(dd, peak - cum)
    return round(dd, 6)


_HOLD_BINS_S = (5, 15, 30, 60, 120, 300, 900)


def _stats(trades: list[dict[str, Any]]) -> dict[str, Any]:
    pnls = [t["pnl"] for t in trades]
    wins = [p for p in pnls if p > 0]
    losses = [p for p in pnls if p <= 0]
    rs = [t["r_multiple"] for t in trades if t["r_multiple"] is not None]
    holds = [t["hold_s"] for t in trades if t["hold_s"] is not None]
    gross_loss = -sum(losses)
    funding = sum(t.get("funding_quote") or 0.0 for t in trades)
    hist = {f"<={b}s": 0 for b in _HOLD_BINS_S} | {f">{_HOLD_BINS_S[-1]}s": 0}
    for h in holds:
        key = next((f"<={b}s" for b in _HOLD_BINS_S if h <= b), f">{_HOLD_BINS_S[-1]}s")
        hist[key] += 1
    n = len(trades)
    return {
        "trades": n,
        "wins": len(wins),
        "losses": len(losses),
        "win_rate": round(len(wins) / n, 4) if n else None,
        "avg_win_quote": round(statistics.fmean(wins), 6) if wins else None,
        "avg_loss_quote": round(statistics.fmean(losses), 6) if losses else None,
        "expectancy_quote": round(sum(pnls) / n, 6) if n else None,
        "expectancy_r": round(statistics.fmean(rs), 4) if rs else None,
        "profit_factor": round(sum(wins) / gross_loss, 4) if gross_loss > 0 else None,
        "total_pnl_quote": round(sum(pnls), 6),
        "max_drawdown_quote": _max_drawdown(pnls),
        "hold_s": _summary(holds) | {"histogram": hist},
        "fees_quote": round(sum(t["fees"] or 0.0 for t in trades), 6),
        "funding_quote": round(funding, 6),
        "net_pnl_quote": round(sum(pnls) + funding, 6),
        # maximum adverse / favourable excursion from the first entry fill, tracked by the engine
        "mae_ticks": _summary([t.get("mae_ticks") for t in trades]),
        "mfe_ticks": _summary([t.get("mfe_ticks") for t in trades]),
        "mae_r": _summary([t.get("mae_r") for t in trades]),
        "mfe_r": _summary([t.get("mfe_r") for t in trades]),
    }


def _fee_config(data: dict[str, list[dict[str, Any]]]) -> FeeConfig:
    """The fee rates of the last journaled config (the defaults when the journal has none)."""
    rows = data.get("config") or []
    if not rows:
        return FeeConfig()
    try:
        return FeeConfig.from_config_body(orjson.loads(rows[-1]["body"]))
    except (orjson.JSONDecodeError, TypeError, ValueError, AttributeError):
        return FeeConfig()


def _enrich(t: dict[str, Any], legs: list[dict[str, Any]], fills: list[dict[str, Any]],
            events: list[dict[str, Any]], stop_deadline_ms: float, fees: FeeConfig | None = None) -> dict[str, Any]:
    tick = _tick(t["symbol"])
    out = dict(t)
    costs = trade_costs(t, fills, fees or FeeConfig())
    out.update({k: v for k, v in costs.items() if k != "fills"})
    out["tick"] = tick
    out["hold_s"] = (t["exit_ts_ns"] - t["entry_ts_ns"]) / 1e9 if t["entry_ts_ns"] and t["exit_ts_ns"] else None
    out["funding_quote"] = t.get("funding_quote") or 0.0
    out["net_pnl"] = t["pnl"] + out["funding_quote"]
    out["entry_hour_utc"] = datetime.fromtimestamp(t["entry_ts_ns"] / 1e9, UTC).hour if t["entry_ts_ns"] else None
    leg_slip = []
    for leg in legs:
        s = _slip(leg["side"], leg["intended_price"], leg["avg_price"], tick) if leg["filled_qty"] else None
        if s is not None:
            leg_slip.append({"client_id": leg["client_id"], "role": leg["role"], **s})
    out["leg_slippage"] = leg_slip
    entry_fills = [f for f in fills if f["role"] == "entry"]
    out["signal_slippage"] = (_slip(t["side"], t["intent_price"], entry_fills[0]["price"], tick)
                              if entry_fills else None)
    # Latency: the entry leg's life.
    entry = next((leg for leg in legs if leg["role"] == "entry"), None)
    event, recv, signal = t.get("event_ts_ns"), t.get("recv_ts_ns"), t.get("signal_ts_ns")
    lat: dict[str, float | None] = {
        "exchange_event_to_receive_ms": (recv - event) / 1e6 if event and recv else None,
        "receive_to_signal_ms": (signal - recv) / 1e6 if recv and signal else None,
        "signal_to_order_ms": None, "order_to_ack_ms": None, "ack_to_fill_ms": None,
        "fill_to_stop_confirmed_ms": t["stop_confirm_ms"]}
    if entry is not None:
        mine = [e for e in events if e["client_id"] == entry["client_id"]]
        ack = next((e["ts_ns"] for e in mine if e["status"] in _ACKED), None)
        # Sent = the last PENDING_NEW write before the ack (a leg planned up front is written again when sent).
        pending = [e["ts_ns"] for e in mine if e["status"] == "PENDING_NEW" and (ack is None or e["ts_ns"] <= ack)]
        sent = max(pending) if pending else entry["created_ns"]
        signalled = signal or t["intent_ts_ns"]
        if signalled:
            lat["signal_to_order_ms"] = (sent - signalled) / 1e6
        if ack is not None:
            lat["order_to_ack_ms"] = (ack - sent) / 1e6
            if entry_fills:
                lat["ack_to_fill_ms"] = (entry_fills[0]["ts_ns"] - ack) / 1e6
    out["latency_ms"] = lat
    out["stop_in_time"] = t["stop_confirm_ms"] is not None and t["stop_confirm_ms"] <= stop_deadline_ms
    if t["exit_reason"] == "STOP_LOSS" and t["stop_price"]:
        exit_side = "SELL" if t["side"] in _BUY_SIDES else "BUY"
        out["stop_slippage"] = _slip(exit_side, t["stop_price"], t["exit_price"], tick)
    else:
        out["stop_slippage"] = None
    out["targets"] = sorted({leg["trigger_price"] or leg["price"] for leg in legs
                             if leg["role"] == "tp" and (leg["trigger_price"] or leg["price"])})
    out["fills"] = [{"ts_ns": f["ts_ns"], "role": f["role"], "side": f["side"], "qty": f["qty"],
                     "price": f["price"], "kind": c["kind"], "liquidity": c["liquidity"], "fee_quote": c["fee_quote"]}
                    for f, c in zip(fills, costs["fills"], strict=True)]
    return out


def _group(trades: list[dict[str, Any]], key: str) -> dict[str, Any]:
    groups: dict[Any, list[dict[str, Any]]] = {}
    for t in trades:
        groups.setdefault(t[key], []).append(t)
    return {str(k): _stats(v) for k, v in sorted(groups.items(), key=lambda kv: str(kv[0]))}


def _funding(data: dict[str, list[dict[str, Any]]], since_ns: int | None, until_ns: int | None,
             setup: str | None, symbol: str | None) -> dict[str, Any]:
    """Every journaled funding payment in the window (by its venue time), attributed or not."""
    trade_of = {t["trade_id"]: t for t in data.get("trades", [])}

    def sym(f: dict[str, Any]) -> str:  # an unnamed cross-margin fee takes its trade's symbol
        t = trade_of.get(f["trade_id"])
        return f["symbol"] or (t["symbol"] if t else "") or "?"

    rows = [f for f in data.get("funding", [])
            if (since_ns is None or f["ts_ns"] >= since_ns) and (until_ns is None or f["ts_ns"] < until_ns)
            and (not symbol or sym(f) == symbol)
            and (not setup or (f["trade_id"] in trade_of and trade_of[f["trade_id"]]["setup"] == setup))]
    by_symbol: dict[str, float] = {}
    for f in rows:
        by_symbol[sym(f)] = round(by_symbol.get(sym(f), 0.0) + f["amount_quote"], 6)
    return {"payments": len(rows), "total_quote": round(sum((f["amount_quote"] for f in rows), 0.0), 6),
            "attributed_quote": round(sum((f["amount_quote"] for f in rows if f["trade_id"]), 0.0), 6),
            "unattributed_quote": round(sum((f["amount_quote"] for f in rows if not f["trade_id"]), 0.0), 6),
            "by_symbol": dict(sorted(by_symbol.items()))}


def build_report(data: dict[str, list[dict[str, Any]]], *, since_ns: int | None = None,
                 until_ns: int | None = None, setup: str | None = None, symbol: str | None = None,
                 stop_deadline_ms: float = 2000.0) -> dict[str, Any]:
    by_trade: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for table in ("legs", "fills", "order_events"):
        for r in data.get(table, []):
            by_trade.setdefault(r["trade_id"], {}).setdefault(table, []).append(r)
    trades = []
    fees = _fee_config(data)
    for t in data.get("trades", []):
        if t["entry_ts_ns"] is None or t["exit_ts_ns"] is None or t["pnl"] is None:
            continue  # open or never filled: not a closed trade
        if since_ns is not None and t["entry_ts_ns"] < since_ns:
            continue
        if until_ns is not None and t["entry_ts_ns"] >= until_ns:
            continue
        if (setup and t["setup"] != setup) or (symbol and t["symbol"] != symbol):
            continue
        rel = by_trade.get(t["trade_id"], {})
        trades.append(_enrich(t, rel.get("legs", []), rel.get("fills", []), rel.get("order_events", []),
                              stop_deadline_ms, fees))
    trades.sort(key=lambda t: t["exit_ts_ns"])

    slippage: dict[str, Any] = {"by_role": {}, "by_setup": {}, "signal_to_entry_fill": {}}
    roles: dict[str, list[dict[str, Any]]] = {}
    for t in trades:
        for s in t["leg_slippage"]:
            roles.setdefault(s["role"], []).append(s)
    for role, rows in sorted(roles.items()):
        slippage["by_role"][role] = {"ticks": _summary([r["ticks"] for r in rows]),
                                     "bps": _summary([r["bps"] for r in rows])}
    for name in sorted({t["setup"] for t in trades}):
        rows = [s for t in trades if t["setup"] == name for s in t["leg_slippage"]]
        slippage["by_setup"][name] = {"ticks": _summary([r["ticks"] for r in rows]),
                                      "bps": _summary([r["bps"] for r in rows])}
    sig = [t["signal_slippage"] for t in trades if t["signal_slippage"]]
    slippage["signal_to_entry_fill"] = {"ticks": _summary([s["ticks"] for s in sig]),
                                        "bps": _summary([s["bps"] for s in sig])}

    stop_exits = [t for t in trades if t["exit_reason"] == "STOP_LOSS"]
    stop_slips = [t["stop_slippage"] for t in stop_exits if t["stop_slippage"]]
    beyond = sum(1 for t in trades if t["r_multiple"] is not None and t["r_multiple"] < -1.1)
    stops = {
        "all_stops_respected": beyond == 0,
        "stop_exits": len(stop_exits),
        # A stop is respected when no trade lost more than its planned risk (1 R) plus a slippage allowance.
        "trades_beyond_stop": beyond,
        "worst_r": min((t["r_multiple"] for t in trades if t["r_multiple"] is not None), default=None),
        "slippage_ticks": _summary([s["ticks"] for s in stop_slips]),
        "slippage_bps": _summary([s["bps"] for s in stop_slips]),
        "not_confirmed_in_time": sum(1 for t in trades if not t["stop_in_time"]),
        "stop_deadline_ms": stop_deadline_ms,
        "stop_confirm_ms": _summary([t["stop_confirm_ms"] for t in trades]),
    }
    latency = {k: _summary([t["latency_ms"][k] for t in trades])
               for k in ("exchange_event_to_receive_ms", "receive_to_signal_ms", "signal_to_order_ms",
                         "order_to_ack_ms", "ack_to_fill_ms", "fill_to_stop_confirmed_ms")}
    overall_costs = expectancy(trades)
    return {
        "verdict": verdict(overall_costs),
        "costs": {"overall": overall_costs, "by_setup": by_setup(trades),
                  "fee_config": {"maker_bps": fees.maker_bps, "taker_bps": fees.taker_bps,
                                 "slippage_bps": fees.slippage_bps},
                  "interval": "95 % Student t on the mean"},
        "filters": {"since_ns": since_ns, "until_ns": until_ns, "setup": setup, "symbol": symbol},
        "overall": _stats(trades),
        "by_setup": _group(trades, "setup"),
        "by_symbol": _group(trades, "symbol"),
        "by_hour": _group(trades, "entry_hour_utc"),
        "slippage": slippage,
        "stops": stops,
        "latency": latency,
        "funding": _funding(data, since_ns, until_ns, setup, symbol),
        "trades": trades,
    }
