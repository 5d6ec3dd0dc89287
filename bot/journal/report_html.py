"""One-file HTML report (no server, no external assets, no build step): inline SVG charts (bot.journal.report_svg).

The first line of the page (`#verdict`) is the report's verdict: it says so when the net expectancy is
negative. Charts (each an <svg> with a stable id, for tests and for linking):
  #equity         cumulative net PnL after each closed trade, over its exit time (UTC axis)
  #drawdown       distance below the running equity peak, over time
  #daily          net PnL per UTC day (bars from zero)
  #r-hist         histogram of net R multiples (0.5 R bins)
  #mae-mfe        per trade: maximum adverse (x) vs favourable (y) excursion in R, green = net winner
  #slippage       mean adverse slippage per setup (ticks; bars from zero, so a favourable mean hangs below)
  #latency        the entry path on our clock, stacked: signal -> order -> venue's answer -> fill -> stop
  #trade-<id>     per trade: the price path the journal holds (its marks, fills, the stop as it moved, targets, the
                  signal price, the range reached from MAE/MFE) over time
Tables: what costs do per setup, risk-adjusted ratios (with their annualisation), streaks, daily breakdown,
best/worst trades, groups, and one row per trade with its costs and each fill's liquidity. Sized to fit a
1,400 px window (the chart width is fixed, tables use a compact font and wrap their headers).
"""

from __future__ import annotations

import html
import math
from datetime import UTC, datetime
from typing import Any

from bot.journal.report_html_shadow import shadow_html
from bot.journal.report_svg import bar_chart, hbar_stacked, line_chart, plain, scatter, trade_path

__all__ = ["render_html"]

_CSS = """body{font-family:system-ui,sans-serif;margin:16px;color:#222;max-width:1360px}
table{border-collapse:collapse;margin:10px 0;font-size:12px;max-width:100%}
td,th{border:1px solid #ccc;padding:2px 6px;text-align:right;white-space:nowrap}
th{white-space:normal;background:#f4f4f4;max-width:110px} td:first-child{text-align:left}
caption{text-align:left;font-weight:bold;padding:4px 0} .wrap{overflow-x:auto;max-width:100%}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(770px,1fr));gap:0 16px}
svg.chart{border:1px solid #eee;background:#fcfcfc;display:block;max-width:100%;height:auto}
.note{color:#666;font-size:12px;margin:2px 0} #verdict{font-size:16px}
.neg{color:#c0392b} .pos{color:#1e8449}"""

# Records what the browser actually laid out (read by the headless-Chromium tests; harmless otherwise);
# the journal report and the research report (bot/research/report_html.py) both end with it.
LAYOUT_PROBE = """<script>
// Record what the browser actually laid out (used by the headless-Chromium test; harmless otherwise).
for (const s of document.querySelectorAll("svg.chart")) {
  const b = s.getBBox();
  s.setAttribute("data-bbox", b.width.toFixed(1) + "x" + b.height.toFixed(1));
  s.setAttribute("data-marks", s.querySelectorAll(
    "path.series, rect.bar, circle.mark, path.mark, circle.point, rect.seg").length);
}
document.body.setAttribute("data-scroll-width", document.documentElement.scrollWidth);
</script>"""

_LAT_STEPS = (("signal_to_order_ms", "signal -> order sent", "#2980b9"),
              ("order_to_ack_ms", "order -> venue's answer", "#8e44ad"),
              ("ack_to_fill_ms", "answer -> fill received", "#16a085"),
              ("fill_to_stop_confirmed_ms", "fill -> stop confirmed", "#d35400"))


def _cell(v: Any, nd: int = 6) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool) or not isinstance(v, int | float):
        return html.escape(str(v))
    cls = ' class="neg"' if v < 0 else ""
    return f"<span{cls}>{plain(float(v), nd)}</span>"


def _table(caption: str, head: tuple[str, ...], rows: list[list[Any]], tid: str = "") -> str:
    h = "".join(f"<th>{html.escape(c)}</th>" for c in head)
    body = "".join("<tr>" + "".join(f"<td>{c if isinstance(c, str) and c.startswith('<') else _cell(c)}</td>"
                                    for c in row) + "</tr>" for row in rows)
    ident = f' id="{tid}"' if tid else ""
    return f'<div class="wrap"><table{ident}><caption>{html.escape(caption)}</caption><tr>{h}</tr>{body}</table></div>'


def _groups(rows: dict[str, dict[str, Any]], caption: str) -> str:
    cols = ("trades", "win_rate", "expectancy_quote", "expectancy_r", "profit_factor", "total_pnl_quote",
            "max_drawdown_quote", "fees_quote", "funding_quote", "net_pnl_quote")
    return _table(caption, ("", *cols), [[k, *[v.get(c) for c in cols]] for k, v in rows.items()])


def _ci(e: dict[str, Any]) -> str:
    lo, hi = e["ci95"]
    return html.escape(plain(e["mean"], 4) + ("" if lo is None else f" [{lo:+.3f}, {hi:+.3f}]"))


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v * 100:.1f}%"


def _costs_table(costs: dict[str, Any]) -> str:
    """Gross and net expectancy (R, 95 % t interval), cost at entry, win rates per setup and overall."""
    rows = [[html.escape(k), v["trades"], f"<span>{_ci(v['gross_expectancy_r'])}</span>",
             f"<span>{_ci(v['net_expectancy_r'])}</span>", f"<span>{_ci(v['net_expectancy_quote'])}</span>",
             v["mean_cost_r"], v["mean_cost_bps"], f"<span>{_pct(v['win_rate_net'])}</span>",
             f"<span>{_pct(v['breakeven_win_rate'])}</span>"]
            for k, v in {"OVERALL": costs["overall"], **costs["by_setup"]}.items()]
    fc = costs["fee_config"]
    return _table(f"What costs do ({costs['interval']}; fees maker {plain(fc['maker_bps'])} / taker "
                  f"{plain(fc['taker_bps'])} bps, slippage {plain(fc['slippage_bps'])} bps)",
                  ("", "trades", "gross exp R [95 % CI]", "net exp R [95 % CI]", "net exp quote [95 % CI]",
                   "mean cost R", "mean cost bps", "win rate (net)", "break-even win rate"), rows, "costs")


def _utc(ts: int | None) -> str:
    return "-" if not ts else datetime.fromtimestamp(ts / 1e9, UTC).strftime("%m-%d %H:%M:%S")


def _liquidity(t: dict[str, Any]) -> str:
    """Each fill's liquidity, counted per direction: "in 1 taker; out 2 maker, 1 taker" (stays narrow)."""
    counts: dict[str, dict[str, int]] = {}
    for f in t["fills"]:
        side = counts.setdefault("in" if f["role"] in ("entry", "add") else "out", {})
        side[f["liquidity"]] = side.get(f["liquidity"], 0) + 1
    return html.escape("; ".join(f"{d} " + ", ".join(f"{n} {liq}" for liq, n in sorted(c.items()))
                                 for d, c in counts.items())) or "-"


def _rd(v: float | None, nd: int) -> float | None:
    return None if v is None else round(v, nd)


def _trades_table(trades: list[dict[str, Any]]) -> str:
    rows = [[html.escape(t["trade_id"]), html.escape(t["setup"]), html.escape(t["symbol"]), html.escape(t["side"]),
             _utc(t["entry_ts_ns"]), t["entry_price"], t["exit_price"], html.escape(str(t["exit_reason"])),
             _rd(t.get("cost_bps"), 2), _rd(t.get("cost_r"), 3), _rd(t.get("gross_pnl_quote"), 2),
             _rd(t.get("fees_quote"), 2), _rd(t.get("net_pnl_quote"), 2), _rd(t.get("r_net"), 3),
             _rd(t.get("mae_r"), 3), _rd(t.get("mfe_r"), 3), _liquidity(t)]
            for t in trades]
    return _table("Trades (cost at entry in bps and R; gross, fees, net in quote; liquidity of each fill)",
                  ("id", "setup", "symbol", "side", "entry UTC", "entry", "exit", "reason", "cost bps", "cost R",
                   "gross", "fees", "net", "net R", "MAE R", "MFE R", "fills"), rows, "trades")


def _performance(perf: dict[str, Any]) -> str:
    ra, st = perf["ratios"], perf["streaks"]
    out = [_table("Risk-adjusted (net)", ("Sharpe", "Sortino", "Calmar", "days", "per-trade mean/stdev of net R"),
                  [[ra["sharpe"], ra["sortino"], ra["calmar"], ra["days"], ra["per_trade"]]], "ratios"),
           f'<p class="note">Annualisation: {html.escape(ra["annualisation"])}.</p>',
           _table("Streaks (net)", ("longest win", "longest loss", "current"),
                  [[st["longest_win"], st["longest_loss"], f"{st['current']:+d}"]], "streaks"),
           _table(f"Daily breakdown (UTC, by exit; {sum(1 for d in perf['daily'] if not d['trades'])} day(s) "
                  "without trades left out here, counted as 0 in the ratios)",
                  ("date", "trades", "wins", "net PnL", "fees", "net R"),
                  [[d["date"], d["trades"], d["wins"], d["net_pnl_quote"], d["fees_quote"], d["r_net"]]
                   for d in perf["daily"] if d["trades"]], "daily-table")]
    for title in ("best", "worst"):
        out.append(_table(f"{title.capitalize()} trades (net)", ("id", "setup", "symbol", "side", "exit UTC",
                                                                "reason", "net", "net R", "MAE R", "MFE R"),
                          [[b["trade_id"], b["setup"], b["symbol"], b["side"], _utc(b["exit_ts_ns"]),
                            b["exit_reason"], b["net_pnl_quote"], b["r_net"], b["mae_r"], b["mfe_r"]]
                           for b in perf[title]], title))
    return "".join(out)


def _charts(rep: dict[str, Any]) -> list[str]:
    trades = rep["trades"]
    nets = [t.get("net_pnl_quote") if t.get("net_pnl_quote") is not None else t["pnl"] for t in trades]
    times = [t["exit_ts_ns"] for t in trades]
    equity, acc = [], 0.0
    for v in nets:
        acc += v
        equity.append(acc)
    peak, dd = 0.0, []
    for e in equity:
        peak = max(peak, e)
        dd.append(e - peak)
    bins: dict[float, int] = {}
    for t in trades:
        r = t.get("r_net") if t.get("r_net") is not None else t["r_multiple"]
        if r is not None:
            b = math.floor(r * 2) / 2
            bins[b] = bins.get(b, 0) + 1
    slip = [(k, float(s["ticks"]["mean"] if s["ticks"]["mean"] is not None else s["bps"]["mean"]))
            for k, s in rep["slippage"]["by_setup"].items()
            if s["ticks"]["mean"] is not None or s["bps"]["mean"] is not None]
    perf = rep.get("performance") or {"daily": [], "excursions": []}
    points = [(e["mae_r"], e["mfe_r"], "#27ae60" if (e["r_net"] or 0) > 0 else "#c0392b",
               f"{e['trade_id']}: MAE {plain(e['mae_r'])} R, MFE {plain(e['mfe_r'])} R, net {plain(e['r_net'])} R")
              for e in perf["excursions"] if e["mae_r"] is not None and e["mfe_r"] is not None]
    lat = rep["latency"]
    lat_rows = [(stat, [(name, lat[k][stat], color) for k, name, color in _LAT_STEPS if lat[k][stat] is not None])
                for stat in ("mean", "median", "p90")]
    return [
        line_chart("equity", "Equity (cumulative net PnL, quote)", times, equity, "#2980b9", "quote"),
        line_chart("drawdown", "Drawdown below the running peak (quote)", times, dd, "#c0392b", "quote", fill=True),
        bar_chart("daily", "Net PnL per day (UTC)", [(d["date"][5:], d["net_pnl_quote"]) for d in perf["daily"]],
                  "#27ae60", "quote"),
        bar_chart("r-hist", "Net R histogram (0.5 R bins)", [(f"{b:+.1f}", float(n)) for b, n in sorted(bins.items())],
                  "#16a085", "trades"),
        scatter("mae-mfe", "MAE vs MFE per trade (R; green: net winner)", points, "MAE R", "MFE R",
                note="How far each trade went against (x) and for (y) the position from its first entry fill."),
        bar_chart("slippage", "Mean adverse slippage by setup (ticks; below 0 = in our favour)", slip, "#d35400",
                  "ticks"),
        hbar_stacked("latency", "Entry path latency on our clock (ms)", lat_rows,
                     note="Steps stacked: signal -> order sent -> the venue's first answer (ack or fill) -> "
                          "fill received -> stop confirmed. The mean row adds up exactly; medians and p90s "
                          "are per step."),
    ]


def render_html(rep: dict[str, Any], title: str = "scalper report", max_trade_charts: int = 200) -> str:
    trades = rep["trades"]
    o = rep["overall"]
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    run = rep.get("run") or {}
    runs = run.get("runs") or []
    run_line = (f"Run {run.get('run_id')} of {len(runs)} in this journal (" + ", ".join(
        f"{r['run_id'] if r['run_id'] is not None else '-'}: {r['mode']} {r['label'] or ''}, {r['trades']} trades"
        for r in runs) + ")." if runs else "")
    summary = (f"{o['trades']} trades, win rate {_pct(o['win_rate'])}, expectancy {plain(o['expectancy_r'], 4)} R / "
               f"{plain(o['expectancy_quote'])} quote, profit factor {plain(o['profit_factor'], 4)}, total "
               f"{plain(o['total_pnl_quote'])}, max drawdown {plain(o['max_drawdown_quote'])}, funding "
               f"{plain(o['funding_quote'])}, net of funding {plain(o['net_pnl_quote'])}")
    st = rep["stops"]
    stops = (f"Stops: {st['stop_exits']} stop-loss exits; slippage of the {st['slippage_ticks']['n']} filled stops: "
             f"mean {plain(st['slippage_ticks']['mean'])} ticks ({plain(st['slippage_bps']['mean'])} bps). "
             f"Definition: {st.get('slippage_definition', '')}.")
    per_trade = "".join(
        trade_path(f"trade-{html.escape(t['trade_id'])}",
                   f"{t['trade_id']} {t['symbol']} {t['setup']} {t['side']}: {t['exit_reason']}, net "
                   f"{plain(t.get('net_pnl_quote'))}"
                   + (f", {t['r_net']:+.2f} R" if t.get("r_net") is not None else ""),
                   t) for t in trades[-max_trade_charts:])
    perf = rep.get("performance")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>{_CSS}</style></head>
<body><p id="verdict"><strong>{html.escape(rep.get("verdict", ""))}</strong></p>
<h1>{html.escape(title)}</h1><p>Generated {now}. {html.escape(run_line)}</p><p>{html.escape(summary)}.</p>
<p class="note">{html.escape(stops)}</p>
{_costs_table(rep["costs"]) if "costs" in rep else ""}
{_performance(perf) if perf else ""}
<div class="grid">{''.join(_charts(rep))}</div>
{_groups(rep["by_setup"], "By setup")}{_groups(rep["by_symbol"], "By symbol")}{_groups(rep["by_hour"], "By hour (UTC)")}
{_trades_table(trades)}
{shadow_html(rep["shadow"], _table) if rep.get("shadow") else ""}
<h2>Price path of each trade</h2>
<p class="note">From what the journal holds: the price (grey: the mid, one mark a second from a minute before the
signal to a minute after the exit; journals written before marks existed have none), the fills (▲/▼ entries,
● exits), the stop as it moved (red), the targets (green), the signal price (○) and the range the price reached
(yellow: the engine's MAE/MFE).</p>
<div class="grid">{per_trade or "<p>no trades</p>"}</div>
{LAYOUT_PROBE}
</body></html>
"""
