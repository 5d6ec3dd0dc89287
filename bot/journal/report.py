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
when known) and bps. Stop slippage has ONE definition (STOP_SLIPPAGE), used by both
slippage.by_role.stop and stops.slippage_*: per filled stop order, its average fill price against its own
trigger price (the stop as it stood when it fired, after any move), adverse +. (Before, "stops" compared the
initial stop with the average of all exits, which mixed in take-profit fills and moved stops.)
"not confirmed in time" = stop_confirm_ms missing or above the deadline.

Latency per trade (ms), the entry path, on OUR clock except where named (LATENCY_STEPS):
  exchange_event_to_receive_ms  exchange event -> our receive (two clocks: includes their offset)
  receive_to_signal_ms          receive -> signal emitted
  signal_to_order_ms            signal -> entry order sent (the last PENDING_NEW write of the entry leg
                                before the venue's first answer; intent_ts_ns in journals without signal_ts_ns)
  order_to_ack_ms               sent -> the venue's first answer received: its ack, or the fill when the fill
                                report came first (a taker IOC fills before its REST answer arrives)
  ack_to_fill_ms                that answer -> the first entry fill received (trades.entry_ts_ns); 0 when the
                                fill was the first answer
  fill_to_stop_confirmed_ms     first entry fill received -> stop acknowledged
The four steps from signal on add up: signal_to_fill_ms = signal_to_order + order_to_ack + ack_to_fill, and
none is negative. (Before, ack -> fill subtracted our ack time from the venue's fill time, two clocks: the
venue fills before its answer reaches us, so it was negative at every percentile on a loopback journal.)
venue_fill_to_receive_ms (the venue's fill time -> our receipt, two clocks) is reported beside them.
A step whose times are missing (older journals) is null.

Runs (bot.journal.store `runs`): `run` selects the trades of one run ("latest": the journal's last run,
the default of `scalper report`; an int: that run; "all" or None: every run, and journals from before runs).
"""

from __future__ import annotations

import statistics
from bisect import bisect_left, bisect_right
from datetime import UTC, datetime
from math import inf
from typing import Any

import orjson

from bot.journal.costs import FeeConfig, by_setup, expectancy, trade_costs, verdict
from bot.journal.report_stats import max_drawdown, performance

__all__ = ["LATENCY_STEPS", "STOP_SLIPPAGE", "build_report", "load_journal"]

STOP_SLIPPAGE = ("per filled stop order: its average fill price against its own trigger price (the stop as it "
                 "stood when it fired), adverse positive, in ticks and bps")
LATENCY_STEPS = ("exchange_event_to_receive_ms", "receive_to_signal_ms", "signal_to_order_ms", "order_to_ack_ms",
                 "ack_to_fill_ms", "fill_to_stop_confirmed_ms", "signal_to_fill_ms", "venue_fill_to_receive_ms")

_ACKED = ("NEW", "PARTIALLY_FILLED", "FILLED", "TRIGGERED")
_BUY_SIDES = ("long", "BUY", "buy")


def load_journal(path: str) -> dict[str, list[dict[str, Any]]]:
    from bot.journal.store import Journal

    j = Journal(path)
    try:
        return {t: j.rows(t) for t in ("trades", "legs", "fills", "order_events", "funding", "config", "runs",
                                       "marks")}
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
        "max_drawdown_quote": round(max_drawdown(pnls), 6),
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


def _fee_config(data: dict[str, list[dict[str, Any]]], run_id: int | None = None) -> FeeConfig:
    """The fee rates of the last journaled config of run `run_id` (of any run when None or when that run
    journaled none; the defaults when the journal has none)."""
    rows = data.get("config") or []
    mine = [r for r in rows if run_id is not None and r.get("run_id") == run_id]
    rows = mine or rows
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
    out["latency_ms"] = _latency(t, legs, entry_fills, events)
    out["stop_in_time"] = t["stop_confirm_ms"] is not None and t["stop_confirm_ms"] <= stop_deadline_ms
    out["stop_slippage"] = _stop_slippage(legs, tick)
    # the stop as it stood over time (each stop order from its placement; the price path chart)
    out["stop_history"] = sorted(({"ts_ns": leg["created_ns"], "price": leg["trigger_price"] or leg["intended_price"],
                                   "client_id": leg["client_id"], "filled_qty": leg["filled_qty"]}
                                  for leg in legs if leg["role"] == "stop"
                                  and (leg["trigger_price"] or leg["intended_price"])), key=lambda s: s["ts_ns"])
    out["targets"] = sorted({leg["trigger_price"] or leg["price"] for leg in legs
                             if leg["role"] == "tp" and (leg["trigger_price"] or leg["price"])})
    out["fills"] = [{"ts_ns": f["ts_ns"], "role": f["role"], "side": f["side"], "qty": f["qty"],
                     "price": f["price"], "kind": c["kind"], "liquidity": c["liquidity"], "fee_quote": c["fee_quote"]}
                    for f, c in zip(fills, costs["fills"], strict=True)]
    return out


PATH_MARGIN_NS = 60 * 1_000_000_000  # the price path shown from a minute before the signal to a minute after


def _attach_price_paths(trades: list[dict[str, Any]], marks: list[dict[str, Any]]) -> None:
    """Each trade's `price_path`: [[ts_ns, price], ...] of the journal's marks (bot.execution.marks, one a
    second around trades) from a minute before its signal (or entry) to a minute after its exit."""
    by_symbol: dict[str, list[tuple[int, float]]] = {}
    for m in marks:
        by_symbol.setdefault(m["symbol"], []).append((m["ts_ns"], m["price"]))
    for rows in by_symbol.values():
        rows.sort()
    for t in trades:
        rows = by_symbol.get(t["symbol"], [])
        start = min(v for v in (t.get("intent_ts_ns"), t["entry_ts_ns"]) if v) - PATH_MARGIN_NS
        end = t["exit_ts_ns"] + PATH_MARGIN_NS
        lo, hi = bisect_left(rows, (start, -inf)), bisect_right(rows, (end, inf))
        t["price_path"] = [[ts, p] for ts, p in rows[lo:hi]]


def _latency(t: dict[str, Any], legs: list[dict[str, Any]], entry_fills: list[dict[str, Any]],
             events: list[dict[str, Any]]) -> dict[str, float | None]:
    """The entry path's steps (module docstring): each from our own clock's journal writes, except the two
    named as two-clock steps."""
    event, recv, signal = t.get("event_ts_ns"), t.get("recv_ts_ns"), t.get("signal_ts_ns")
    lat: dict[str, float | None] = dict.fromkeys(LATENCY_STEPS)
    lat["exchange_event_to_receive_ms"] = (recv - event) / 1e6 if event and recv else None
    lat["receive_to_signal_ms"] = (signal - recv) / 1e6 if recv and signal else None
    lat["fill_to_stop_confirmed_ms"] = t["stop_confirm_ms"]
    entry = next((leg for leg in legs if leg["role"] == "entry"), None)
    filled = t.get("entry_ts_ns")  # the first entry fill as WE received it (the engine's clock)
    if entry is None or not filled:
        return lat
    mine = [e for e in events if e["client_id"] == entry["client_id"]]
    # the fill's own order_events row carries the venue's fill time (reason "fill"): not an answer we timed
    ack = next((e["ts_ns"] for e in mine if e["status"] in _ACKED and e.get("reason") != "fill"), None)
    answer = filled if ack is None else min(ack, filled)
    # Sent = the last PENDING_NEW write before the answer (a leg planned up front is written again when sent).
    pending = [e["ts_ns"] for e in mine if e["status"] == "PENDING_NEW" and e["ts_ns"] <= answer]
    sent = max(pending) if pending else entry["created_ns"]
    signalled = signal or t["intent_ts_ns"]
    if signalled:
        lat["signal_to_order_ms"] = (sent - signalled) / 1e6
        lat["signal_to_fill_ms"] = (filled - signalled) / 1e6
    lat["order_to_ack_ms"] = (answer - sent) / 1e6
    lat["ack_to_fill_ms"] = (filled - answer) / 1e6
    if entry_fills:
        lat["venue_fill_to_receive_ms"] = (filled - entry_fills[0]["ts_ns"]) / 1e6
    return lat


def _stop_slippage(legs: list[dict[str, Any]], tick: float | None) -> dict[str, Any] | None:
    """STOP_SLIPPAGE over a trade's filled stop orders, weighted by their filled quantity."""
    stops = [leg for leg in legs if leg["role"] == "stop" and leg["filled_qty"] and leg["avg_price"]
             and (leg["trigger_price"] or leg["intended_price"])]
    if not stops:
        return None
    qty = sum(leg["filled_qty"] for leg in stops)
    trigger = sum((leg["trigger_price"] or leg["intended_price"]) * leg["filled_qty"] for leg in stops) / qty
    got = sum(leg["avg_price"] * leg["filled_qty"] for leg in stops) / qty
    return _slip(stops[0]["side"], trigger, got, tick)


def _run_filter(data: dict[str, list[dict[str, Any]]], run: int | str | None) -> tuple[int | None, dict[str, Any]]:
    """The run a report covers: (run_id or None for all, its description)."""
    runs = data.get("runs") or []
    counts: dict[Any, int] = {}
    for t in data.get("trades", []):
        counts[t.get("run_id")] = counts.get(t.get("run_id"), 0) + 1
    listing = [{"run_id": r["run_id"], "started_ns": r["started_ns"], "mode": r["mode"], "label": r["label"],
                "trades": counts.get(r["run_id"], 0)} for r in runs]
    if counts.get(None):
        listing.insert(0, {"run_id": None, "started_ns": None, "mode": "before runs", "label": "",
                           "trades": counts[None]})
    if run in (None, "all") or not runs:
        return None, {"run_id": "all", "runs": listing}
    rid = runs[-1]["run_id"] if run == "latest" else int(run)
    if rid not in {r["run_id"] for r in runs}:
        raise ValueError(f"no run {rid} in this journal (runs: {', '.join(str(r['run_id']) for r in runs)})")
    return rid, {"run_id": rid, "runs": listing}


def _group(trades: list[dict[str, Any]], key: str) -> dict[str, Any]:
    groups: dict[Any, list[dict[str, Any]]] = {}
    for t in trades:
        groups.setdefault(t[key], []).append(t)
    return {str(k): _stats(v) for k, v in sorted(groups.items(), key=lambda kv: str(kv[0]))}


def _funding(data: dict[str, list[dict[str, Any]]], since_ns: int | None, until_ns: int | None,
             setup: str | None, symbol: str | None, run_id: int | None = None) -> dict[str, Any]:
    """Every journaled funding payment of the run in the window (by its venue time), attributed or not."""
    trade_of = {t["trade_id"]: t for t in data.get("trades", [])}

    def sym(f: dict[str, Any]) -> str:  # an unnamed cross-margin fee takes its trade's symbol
        t = trade_of.get(f["trade_id"])
        return f["symbol"] or (t["symbol"] if t else "") or "?"

    rows = [f for f in data.get("funding", [])
            if (since_ns is None or f["ts_ns"] >= since_ns) and (until_ns is None or f["ts_ns"] < until_ns)
            and (not symbol or sym(f) == symbol)
            and (not setup or (f["trade_id"] in trade_of and trade_of[f["trade_id"]]["setup"] == setup))
            and (run_id is None or f.get("run_id") == run_id)]
    by_symbol: dict[str, float] = {}
    for f in rows:
        by_symbol[sym(f)] = round(by_symbol.get(sym(f), 0.0) + f["amount_quote"], 6)
    return {"payments": len(rows), "total_quote": round(sum((f["amount_quote"] for f in rows), 0.0), 6),
            "attributed_quote": round(sum((f["amount_quote"] for f in rows if f["trade_id"]), 0.0), 6),
            "unattributed_quote": round(sum((f["amount_quote"] for f in rows if not f["trade_id"]), 0.0), 6),
            "by_symbol": dict(sorted(by_symbol.items()))}


def build_report(data: dict[str, list[dict[str, Any]]], *, since_ns: int | None = None,
                 until_ns: int | None = None, setup: str | None = None, symbol: str | None = None,
                 stop_deadline_ms: float = 2000.0, run: int | str | None = None) -> dict[str, Any]:
    """The report (module docstring). `run`: "latest", a run id, or "all"/None (every run). Raises
    ValueError naming the journal's runs when `run` is not one of them."""
    run_id, run_info = _run_filter(data, run)
    by_trade: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for table in ("legs", "fills", "order_events"):
        for r in data.get(table, []):
            by_trade.setdefault(r["trade_id"], {}).setdefault(table, []).append(r)
    trades = []
    fees = _fee_config(data, run_id)
    for t in data.get("trades", []):
        if t["entry_ts_ns"] is None or t["exit_ts_ns"] is None or t["pnl"] is None:
            continue  # open or never filled: not a closed trade
        if run_id is not None and t.get("run_id") != run_id:
            continue
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
    _attach_price_paths(trades, data.get("marks", []))

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
    stop_slips = roles.get("stop", [])  # STOP_SLIPPAGE: the very rows of slippage.by_role.stop
    beyond = sum(1 for t in trades if t["r_multiple"] is not None and t["r_multiple"] < -1.1)
    stops = {
        "all_stops_respected": beyond == 0,
        "stop_exits": len(stop_exits),
        # A stop is respected when no trade lost more than its planned risk (1 R) plus a slippage allowance.
        "trades_beyond_stop": beyond,
        "worst_r": min((t["r_multiple"] for t in trades if t["r_multiple"] is not None), default=None),
        "slippage_ticks": _summary([s["ticks"] for s in stop_slips]),
        "slippage_bps": _summary([s["bps"] for s in stop_slips]),
        "slippage_definition": STOP_SLIPPAGE,
        "not_confirmed_in_time": sum(1 for t in trades if not t["stop_in_time"]),
        "stop_deadline_ms": stop_deadline_ms,
        "stop_confirm_ms": _summary([t["stop_confirm_ms"] for t in trades]),
    }
    latency: dict[str, Any] = {k: _summary([t["latency_ms"][k] for t in trades]) for k in LATENCY_STEPS}
    latency["clock"] = ("our clock, except exchange_event_to_receive_ms and venue_fill_to_receive_ms (venue -> "
                        "us: two clocks); signal_to_fill_ms = signal_to_order + order_to_ack + ack_to_fill")
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
        "funding": _funding(data, since_ns, until_ns, setup, symbol, run_id),
        "run": run_info,
        "performance": performance(trades),
        "trades": trades,
    }
