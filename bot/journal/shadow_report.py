"""Shadow mode's divergence report: the demo account's fills against the paper fills of the same orders.

    rep = divergence(load_shadow(path), run="latest")     # pure: rows in, dict out (docs/shadow.md)

Per trade (each trade id the bot sent orders for in shadow mode), each side ("demo": the journal's own
fills of the real account; "paper": shadow_fills, the project's matching engine on the same public data):
  entry_qty / entry_price      opening fills (entry, add): quantity and volume-weighted price
  exit_qty / exit_price        closing fills (stop, tp, exit; on paper also "residual": its position closed
                               because the bot's trade had ended, bot/venues/shadow/mirror.py)
  entry_slippage_bps / exit_slippage_bps   against what the bot meant (legs.intended_price; the order's own
                               price or trigger when none), quantity-weighted, adverse positive
  entry_latency_ms             first entry fill (venue time) - the order's send (our clock, stamped once for
                               both sides): the demo's includes the network and the clock offset to the venue
  fees_quote, open_qty, net_pnl_quote      fees; what is still open (0: flat); sum of sells - buys - fees,
                               null while not flat
and between the sides:
  entry_diff_bps / exit_diff_bps   how much WORSE the demo's average price was than the paper's, bps of the
                               paper price (a long's entry: demo above paper is +; its exit: demo below is +)
  pnl_diff_quote               demo net PnL - paper net PnL (negative: the demo account did worse); a side
                               that never filled counts 0 (what the miss cost); null while a side is open
  missed                       legs that filled on one side only ("demo_only" / "paper_only"), each with role
  entry_missed                 "demo_only" / "paper_only" when the entry filled on one side only, else null
The summary: counts (trades, entered on both, entries/legs missed on each side) and n / median / p90 /
mean / max of each difference, slippage and latency per side, fee and PnL totals.
"""

from __future__ import annotations

import statistics
from typing import Any

__all__ = ["divergence", "side_summary"]

_OPENING = ("entry", "add")
_BUY = ("BUY", "buy")


def _q(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def _stats(values: list[float | None]) -> dict[str, Any]:
    vals = [v for v in values if v is not None]
    if not vals:
        return {"n": 0, "median": None, "p90": None, "mean": None, "max": None}
    return {"n": len(vals), "median": round(statistics.median(vals), 4), "p90": round(_q(vals, 0.9), 4),
            "mean": round(statistics.fmean(vals), 4), "max": round(max(vals), 4)}


def _vwap(fills: list[dict[str, Any]]) -> tuple[float, float | None]:
    qty = sum(f["qty"] for f in fills)
    return qty, (sum(f["qty"] * f["price"] for f in fills) / qty if qty > 0 else None)


def _slippage_bps(fills: list[dict[str, Any]], intended: dict[str, float]) -> float | None:
    """Quantity-weighted adverse slippage of `fills` against the intended price of each fill's order."""
    num = den = 0.0
    for f in fills:
        want = intended.get(f["client_id"])
        if not want:
            continue
        sign = 1.0 if f["side"] in _BUY else -1.0
        num += sign * (f["price"] - want) * f["qty"]
        den += want * f["qty"]
    return round(num / den * 1e4, 4) if den > 0 else None


def side_summary(fills: list[dict[str, Any]], sent_ns: dict[str, int],
                 intended: dict[str, float]) -> dict[str, Any]:
    """One side's fills of one trade (module docstring). `sent_ns`: client id -> send time;
    `intended`: client id -> the price the bot meant."""
    opening = [f for f in fills if f["role"] in _OPENING]
    closing = [f for f in fills if f["role"] not in _OPENING]
    entry_qty, entry_price = _vwap(opening)
    exit_qty, exit_price = _vwap(closing)
    latency = None
    if opening:
        first = min(opening, key=lambda f: f["ts_ns"])
        sent = sent_ns.get(first["client_id"])
        if sent is not None:
            latency = round((first["ts_ns"] - sent) / 1e6, 3)
    fees = sum(f["fee"] for f in fills)
    cash = sum((-1.0 if f["side"] in _BUY else 1.0) * f["qty"] * f["price"] for f in fills) - fees
    bought = sum(f["qty"] for f in fills if f["side"] in _BUY)
    sold = sum(f["qty"] for f in fills if f["side"] not in _BUY)
    open_qty = round(bought - sold, 9)
    return {"fills": len(fills), "entry_qty": round(entry_qty, 9), "entry_price": entry_price,
            "exit_qty": round(exit_qty, 9), "exit_price": exit_price,
            "entry_slippage_bps": _slippage_bps(opening, intended),
            "exit_slippage_bps": _slippage_bps([f for f in closing if f["role"] != "residual"], intended),
            "entry_latency_ms": latency, "fees_quote": round(fees, 8), "open_qty": open_qty,
            "net_pnl_quote": round(cash, 8) if abs(open_qty) < 1e-9 else None}


def _diff_bps(demo: float | None, paper: float | None, buy: bool) -> float | None:
    """How much worse the demo's price was than the paper's, for an order side `buy` (adverse +)."""
    if demo is None or paper is None or paper <= 0:
        return None
    return round((demo - paper) / paper * 1e4 * (1.0 if buy else -1.0), 4)


def _run_ids(data: dict[str, list[dict[str, Any]]], run: int | str | None) -> set[int | None] | None:
    """The runs reported: None = every run; "latest" = the last run that has shadow rows."""
    if run in (None, "all"):
        return None
    if run == "latest":
        ids = [r["run_id"] for r in data.get("shadow_orders", []) if r.get("run_id") is not None]
        return {max(ids)} if ids else None
    rid = int(run)  # type: ignore[arg-type]
    return {rid}


def _trade(tid: str, t: dict[str, Any], orders: list[dict[str, Any]], demo_fills: list[dict[str, Any]],
           paper_fills: list[dict[str, Any]], intended_legs: dict[str, float]) -> dict[str, Any]:
    sent: dict[str, int] = {}
    intended: dict[str, float] = {}
    for o in orders:
        sent.setdefault(o["client_id"], o["ts_ns"])
        want = intended_legs.get(o["client_id"]) or o.get("price") or o.get("trigger_price")
        if want:
            intended[o["client_id"]] = float(want)
    demo = side_summary(demo_fills, sent, intended)
    paper = side_summary(paper_fills, sent, intended)
    long = str(t.get("side", "long")) in ("long", "BUY", "buy")
    legs: list[dict[str, Any]] = []
    missed: list[dict[str, Any]] = []
    for o in orders:
        cid = o["client_id"]
        if o["role"] == "residual" or any(leg["client_id"] == cid for leg in legs):
            continue
        dq = sum(f["qty"] for f in demo_fills if f["client_id"] == cid)
        pq = sum(f["qty"] for f in paper_fills if f["client_id"] == cid)
        filled = "both" if dq > 0 and pq > 0 else "demo_only" if dq > 0 else "paper_only" if pq > 0 else "neither"
        legs.append({"client_id": cid, "role": o["role"], "kind": o["kind"], "demo_qty": round(dq, 9),
                     "paper_qty": round(pq, 9), "filled": filled, "demo_outcome": o.get("demo_outcome"),
                     "paper_outcome": o.get("paper_outcome")})
        if filled in ("demo_only", "paper_only"):
            missed.append({"client_id": cid, "role": o["role"], "filled": filled})
    entry_missed = None
    if demo["entry_qty"] > 0 and paper["entry_qty"] <= 0:
        entry_missed = "demo_only"
    elif paper["entry_qty"] > 0 and demo["entry_qty"] <= 0:
        entry_missed = "paper_only"
    pnl_diff = None
    if demo["net_pnl_quote"] is not None and paper["net_pnl_quote"] is not None:
        pnl_diff = round(demo["net_pnl_quote"] - paper["net_pnl_quote"], 8)
    return {"trade_id": tid, "symbol": t.get("symbol") or (orders[0]["symbol"] if orders else None),
            "side": t.get("side"), "setup": t.get("setup"), "state": t.get("state"),
            "exit_reason": t.get("exit_reason"), "demo": demo, "paper": paper,
            "entry_diff_bps": _diff_bps(demo["entry_price"], paper["entry_price"], long),
            "exit_diff_bps": _diff_bps(demo["exit_price"], paper["exit_price"], not long),
            "pnl_diff_quote": pnl_diff, "entry_missed": entry_missed, "missed": missed, "legs": legs}


def divergence(data: dict[str, list[dict[str, Any]]], run: int | str | None = "latest") -> dict[str, Any]:
    """The divergence report (module docstring) of `run` ("latest": the last run with shadow rows, an id,
    or "all"/None) from the rows of bot.journal.shadow.load_shadow."""
    runs = _run_ids(data, run)

    def ours(r: dict[str, Any]) -> bool:
        return runs is None or r.get("run_id") in runs

    orders_by: dict[str, list[dict[str, Any]]] = {}
    for o in data.get("shadow_orders", []):
        if o["trade_id"] and ours(o):
            orders_by.setdefault(o["trade_id"], []).append(o)
    paper_by: dict[str, list[dict[str, Any]]] = {}
    for f in data.get("shadow_fills", []):
        if f["trade_id"] and ours(f):
            paper_by.setdefault(f["trade_id"], []).append(f)
    demo_by: dict[str, list[dict[str, Any]]] = {}
    for f in data.get("fills", []):
        if f["trade_id"] in orders_by:
            demo_by.setdefault(f["trade_id"], []).append(f)
    trades_row = {t["trade_id"]: t for t in data.get("trades", [])}
    intended = {leg["client_id"]: leg["intended_price"] for leg in data.get("legs", [])
                if leg.get("intended_price")}
    trades = []
    for tid in sorted(orders_by, key=lambda k: min(o["ts_ns"] for o in orders_by[k])):
        trades.append(_trade(tid, trades_row.get(tid, {}), orders_by[tid], demo_by.get(tid, []),
                             paper_by.get(tid, []), intended))
    return {"run": sorted(r for r in runs if r is not None) if runs else "all", "summary": _summary(trades),
            "trades": trades}


def _summary(trades: list[dict[str, Any]]) -> dict[str, Any]:
    def per_side(key: str) -> dict[str, Any]:
        return {s: _stats([t[s][key] for t in trades]) for s in ("demo", "paper")}

    legs = [leg for t in trades for leg in t["legs"]]
    return {
        "trades": len(trades),
        "entered_demo": sum(1 for t in trades if t["demo"]["entry_qty"] > 0),
        "entered_paper": sum(1 for t in trades if t["paper"]["entry_qty"] > 0),
        "entered_both": sum(1 for t in trades if t["demo"]["entry_qty"] > 0 and t["paper"]["entry_qty"] > 0),
        "entry_missed": {k: sum(1 for t in trades if t["entry_missed"] == k) for k in ("demo_only", "paper_only")},
        "legs_missed": {k: sum(1 for leg in legs if leg["filled"] == k) for k in ("demo_only", "paper_only")},
        "entry_diff_bps": _stats([t["entry_diff_bps"] for t in trades]),
        "exit_diff_bps": _stats([t["exit_diff_bps"] for t in trades]),
        "pnl_diff_quote": _stats([t["pnl_diff_quote"] for t in trades]),
        "entry_slippage_bps": per_side("entry_slippage_bps"),
        "exit_slippage_bps": per_side("exit_slippage_bps"),
        "entry_latency_ms": per_side("entry_latency_ms"),
        "fees_quote": {s: round(sum(t[s]["fees_quote"] for t in trades), 8) for s in ("demo", "paper")},
        "net_pnl_quote": {s: round(sum(t[s]["net_pnl_quote"] or 0.0 for t in trades), 8) for s in ("demo", "paper")},
        "not_flat": {s: sum(1 for t in trades if t[s]["net_pnl_quote"] is None and t[s]["fills"])
                     for s in ("demo", "paper")},
    }
