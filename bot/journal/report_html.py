"""One-file HTML report (no server, no external assets): inline SVG charts built here.

Charts (each an <svg> with a stable id, for tests and for linking):
  #equity         cumulative PnL after each closed trade
  #drawdown       distance below the running equity peak
  #r-hist         histogram of R multiples (0.5 R bins)
  #slippage       mean adverse slippage (ticks, bps when the tick is unknown) per setup
  #trade-<id>     per trade: its fills over time (entry ▲/▼, exits ●), the stop (red) and targets (green)
"""

from __future__ import annotations

import html
import math
from datetime import UTC, datetime
from typing import Any

__all__ = ["render_html"]

W, H, PAD = 720, 220, 36


def _scale(vals: list[float], lo_px: float, hi_px: float) -> tuple[float, float, Any]:
    lo, hi = min(vals), max(vals)
    if hi == lo:
        lo, hi = lo - 1, hi + 1
    return lo, hi, lambda v: lo_px + (v - lo) / (hi - lo) * (hi_px - lo_px)


def _axes(lo: float, hi: float, y: Any) -> str:
    out = [f'<line x1="{PAD}" y1="{PAD / 2}" x2="{PAD}" y2="{H - PAD}" stroke="#888"/>',
           f'<line x1="{PAD}" y1="{H - PAD}" x2="{W - 10}" y2="{H - PAD}" stroke="#888"/>']
    for v in (lo, (lo + hi) / 2, hi):
        out.append(f'<text x="2" y="{y(v) + 4:.1f}" font-size="10">{v:.4g}</text>')
    return "".join(out)


def _line_chart(cid: str, title: str, values: list[float], color: str, fill: bool = False) -> str:
    if not values:
        return f'<h3>{title}</h3><p id="{cid}">no trades</p>'
    pts = [0.0, *values]
    lo, hi, y = _scale(pts, H - PAD, PAD / 2)
    def x(i: float) -> float:
        return PAD + i / max(1, len(pts) - 1) * (W - PAD - 10)

    path = " ".join(f"{'M' if i == 0 else 'L'}{x(i):.1f},{y(v):.1f}" for i, v in enumerate(pts))
    area = f'<path d="{path} L{x(len(pts) - 1):.1f},{y(0):.1f} L{x(0):.1f},{y(0):.1f} Z" fill="{color}" ' \
           f'fill-opacity="0.2"/>' if fill else ""
    return (f'<h3>{title}</h3><svg id="{cid}" class="chart" width="{W}" height="{H}" viewBox="0 0 {W} {H}">'
            f'{_axes(lo, hi, y)}{area}<path class="series" d="{path}" fill="none" stroke="{color}" '
            f'stroke-width="1.5"/></svg>')


def _bar_chart(cid: str, title: str, bars: list[tuple[str, float]], color: str) -> str:
    if not bars:
        return f'<h3>{title}</h3><p id="{cid}">no data</p>'
    vals = [0.0] + [v for _, v in bars]
    lo, hi, y = _scale(vals, H - PAD, PAD / 2)
    bw = (W - PAD - 10) / len(bars)
    rects = []
    for i, (label, v) in enumerate(bars):
        top, bottom = sorted((y(v), y(0)))
        bx = PAD + i * bw
        rects.append(f'<rect class="bar" x="{bx + 2:.1f}" y="{top:.1f}" width="{max(1.0, bw - 4):.1f}" '
                     f'height="{max(1.0, bottom - top):.1f}" fill="{color}"><title>{html.escape(label)}: '
                     f'{v:.4g}</title></rect>'
                     f'<text x="{bx + bw / 2:.1f}" y="{H - PAD + 14}" font-size="10" text-anchor="middle">'
                     f'{html.escape(label)}</text>')
    return (f'<h3>{title}</h3><svg id="{cid}" class="chart" width="{W}" height="{H}" viewBox="0 0 {W} {H}">'
            f'{_axes(lo, hi, y)}{"".join(rects)}</svg>')


def _trade_chart(t: dict[str, Any]) -> str:
    fills = t["fills"]
    prices = [f["price"] for f in fills] + [p for p in (t["stop_price"], *t["targets"]) if p]
    if not fills or not prices:
        return ""
    times = [f["ts_ns"] for f in fills]
    t0, t1 = min(times), max(times)
    lo, hi, y = _scale(prices, H - PAD, PAD / 2)
    def x(ts: float) -> float:
        return PAD + (ts - t0) / max(1, t1 - t0) * (W - PAD - 10)

    parts = [_axes(lo, hi, y)]
    if t["stop_price"]:
        parts.append(f'<line class="stop" x1="{PAD}" x2="{W - 10}" y1="{y(t["stop_price"]):.1f}" '
                     f'y2="{y(t["stop_price"]):.1f}" stroke="#c0392b" stroke-dasharray="4 3"/>')
    for tp in t["targets"]:
        parts.append(f'<line class="target" x1="{PAD}" x2="{W - 10}" y1="{y(tp):.1f}" y2="{y(tp):.1f}" '
                     f'stroke="#27ae60" stroke-dasharray="2 3"/>')
    path = " ".join(f"{'M' if i == 0 else 'L'}{x(f['ts_ns']):.1f},{y(f['price']):.1f}" for i, f in enumerate(fills))
    parts.append(f'<path d="{path}" fill="none" stroke="#555"/>')
    for f in fills:
        cx, cy = x(f["ts_ns"]), y(f["price"])
        if f["role"] in ("entry", "add"):
            d = -7 if f["side"] == "BUY" else 7
            parts.append(f'<path class="mark entry" d="M{cx:.1f},{cy:.1f} l-5,{-d} l10,0 Z" fill="#2980b9">'
                         f'<title>{f["role"]} {f["side"]} {f["qty"]:g} @ {f["price"]:g}</title></path>')
        else:
            parts.append(f'<circle class="mark exit" cx="{cx:.1f}" cy="{cy:.1f}" r="4" fill="#8e44ad">'
                         f'<title>{f["role"]} {f["side"]} {f["qty"]:g} @ {f["price"]:g}</title></circle>')
    tid = html.escape(t["trade_id"])
    title = (f'{tid} {html.escape(t["symbol"])} {html.escape(t["setup"])} {t["side"]}: {t["exit_reason"]}, '
             f'pnl {t["pnl"]:+.2f}' + (f', {t["r_multiple"]:+.2f}R' if t["r_multiple"] is not None else ""))
    return (f'<h4>{title}</h4><svg id="trade-{tid}" class="chart trade" width="{W}" height="{H}" '
            f'viewBox="0 0 {W} {H}">{"".join(parts)}</svg>')


def _table(rows: dict[str, dict[str, Any]], caption: str) -> str:
    cols = ("trades", "win_rate", "expectancy_quote", "expectancy_r", "profit_factor", "total_pnl_quote",
            "max_drawdown_quote", "fees_quote", "funding_quote", "net_pnl_quote")
    head = "".join(f"<th>{c}</th>" for c in ("", *cols))
    body = "".join("<tr><td>" + html.escape(k) + "</td>" + "".join(
        f"<td>{'-' if v.get(c) is None else (f'{v[c]:.4g}' if isinstance(v[c], float) else v[c])}</td>"
        for c in cols) + "</tr>" for k, v in rows.items())
    return f"<table><caption>{caption}</caption><tr>{head}</tr>{body}</table>"


def _ci(e: dict[str, Any]) -> str:
    lo, hi = e["ci95"]
    return _num(e["mean"]) + ("" if lo is None else f" [{lo:+.3f}, {hi:+.3f}]")


def _costs_table(costs: dict[str, Any]) -> str:
    """Gross and net expectancy (R, 95 % t interval), cost at entry, win rates per setup and overall."""
    head = "".join(f"<th>{c}</th>" for c in ("", "trades", "gross exp R [95 % CI]", "net exp R [95 % CI]",
                                             "mean cost R", "mean cost bps", "win rate (net)", "break-even win rate"))
    rows = {"OVERALL": costs["overall"], **costs["by_setup"]}
    body = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{v['trades']}</td><td>{_ci(v['gross_expectancy_r'])}</td>"
        f"<td>{_ci(v['net_expectancy_r'])}</td><td>{_num(v['mean_cost_r'])}</td><td>{_num(v['mean_cost_bps'])}</td>"
        f"<td>{_pct(v['win_rate_net'])}</td><td>{_pct(v['breakeven_win_rate'])}</td></tr>" for k, v in rows.items())
    return f"<table><caption>What costs do ({html.escape(costs['interval'])})</caption><tr>{head}</tr>{body}</table>"


def render_html(rep: dict[str, Any], title: str = "scalper report", max_trade_charts: int = 200) -> str:
    trades = rep["trades"]
    pnls = [t["pnl"] for t in trades]
    equity = list(_cumsum(pnls))
    peak, dd = 0.0, []
    for e in equity:
        peak = max(peak, e)
        dd.append(e - peak)
    rs = [t["r_multiple"] for t in trades if t["r_multiple"] is not None]
    bins: dict[float, int] = {}
    for r in rs:
        b = math.floor(r * 2) / 2
        bins[b] = bins.get(b, 0) + 1
    r_bars = [(f"{b:+.1f}", float(n)) for b, n in sorted(bins.items())]
    slip_bars = []
    for setup, s in rep["slippage"]["by_setup"].items():
        v = s["ticks"]["mean"] if s["ticks"]["mean"] is not None else s["bps"]["mean"]
        if v is not None:
            slip_bars.append((setup, float(v)))
    o = rep["overall"]
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    charts = [
        _line_chart("equity", "Equity curve (cumulative PnL, quote)", equity, "#2980b9"),
        _line_chart("drawdown", "Drawdown (quote)", dd, "#c0392b", fill=True),
        _bar_chart("r-hist", "R-multiple histogram (0.5 R bins)", r_bars, "#16a085"),
        _bar_chart("slippage", "Mean adverse slippage by setup (ticks)", slip_bars, "#d35400"),
    ]
    per_trade = "".join(_trade_chart(t) for t in trades[-max_trade_charts:])
    summary = (f"{o['trades']} trades, win rate {_pct(o['win_rate'])}, expectancy "
               f"{_num(o['expectancy_r'])} R / {_num(o['expectancy_quote'])} quote, profit factor "
               f"{_num(o['profit_factor'])}, total {_num(o['total_pnl_quote'])}, max drawdown "
               f"{_num(o['max_drawdown_quote'])}, funding {_num(o['funding_quote'])}, net of funding "
               f"{_num(o['net_pnl_quote'])}")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:24px;color:#222}} table{{border-collapse:collapse;margin:12px 0}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}} caption{{text-align:left;font-weight:bold}}
svg.chart{{border:1px solid #eee;background:#fcfcfc;display:block}}</style></head>
<body><p id="verdict"><strong>{html.escape(rep.get("verdict", ""))}</strong></p>
<h1>{html.escape(title)}</h1><p>Generated {now}. {html.escape(summary)}.</p>
{''.join(charts)}
{_costs_table(rep["costs"]) if "costs" in rep else ""}
{_table(rep["by_setup"], "By setup")}{_table(rep["by_symbol"], "By symbol")}{_table(rep["by_hour"], "By hour (UTC)")}
<h2>Trades</h2>{per_trade or "<p>no trades</p>"}
<script>
// Record what the browser actually laid out (used by the headless-Chromium test; harmless otherwise).
for (const s of document.querySelectorAll("svg.chart")) {{
  const b = s.getBBox();
  s.setAttribute("data-bbox", b.width.toFixed(1) + "x" + b.height.toFixed(1));
  s.setAttribute("data-marks", s.querySelectorAll("path.series, rect.bar, circle.mark, path.mark").length);
}}
</script>
</body></html>
"""


def _cumsum(vals: list[float]) -> Any:
    acc = 0.0
    for v in vals:
        acc += v
        yield acc


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v * 100:.1f}%"


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.4g}"
