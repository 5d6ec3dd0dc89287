"""Inline SVG chart primitives for the one-file HTML report (bot.journal.report_html): no library, no CDN,
no build step. Every chart has a real axis on each side it plots:

- numbers are written plainly (`plain`: 63949.9, never 6.395e+04), with as many decimals as the range needs;
- a value axis always spans 0 and draws the zero line (`class="zero"`): a bar grows from 0, so a negative
  value hangs below the line instead of looking positive above a baseline at the data's minimum;
- a time axis is labelled in UTC with the unit the span needs (dates, hours:minutes, seconds, milliseconds).

Marks carry a class the report's test counts (path.series, rect.bar, circle.point, rect.seg, circle.mark,
path.mark) and a <title> tooltip with the exact value.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

__all__ = ["H", "W", "bar_chart", "hbar_stacked", "line_chart", "nice_ticks", "plain", "scatter", "time_ticks",
           "trade_path"]

W, H = 760, 240
L, R, T, B = 70, 14, 14, 34  # margins: left (value labels), right, top, bottom (time / category labels)


def plain(v: float | None, sig: int = 6, max_dp: int = 8) -> str:
    """A number as plain decimal text with about `sig` significant digits (no exponent, no grouping)."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if v == 0:
        return "0"
    digits = math.floor(math.log10(abs(v)))
    dp = min(max_dp, max(0, sig - 1 - digits))
    text = f"{v:.{dp}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """Round tick values covering [lo, hi] (about n of them)."""
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / max(1, n)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.floor(lo / step + 1e-9) * step
    last = math.ceil(hi / step - 1e-9) * step
    return [round(first + i * step, 12) for i in range(round((last - first) / step) + 1)]


_TIME_FMTS = ((3 * 86_400, "%m-%d"), (6 * 3600, "%m-%d %H:%M"), (120, "%H:%M"), (2, "%H:%M:%S"))


def time_ticks(t0_ns: int, t1_ns: int, n: int = 6) -> list[tuple[int, str]]:
    """(ts_ns, UTC label) ticks over [t0, t1], the label's unit chosen by the span."""
    span_s = max(1e-9, (t1_ns - t0_ns) / 1e9)
    fmt = next((f for s, f in _TIME_FMTS if span_s >= s), None)
    out = []
    for i in range(n):
        ts = t0_ns + (t1_ns - t0_ns) * i // max(1, n - 1)
        dt = datetime.fromtimestamp(ts / 1e9, UTC)
        label = dt.strftime(fmt) if fmt else dt.strftime("%H:%M:%S.") + f"{dt.microsecond // 1000:03d}"
        out.append((ts, label))
    return out


def _frame(cid: str, title: str, body: str, cls: str = "chart", note: str = "") -> str:
    return (f'<h3>{html.escape(title)}</h3>' + (f'<p class="note">{html.escape(note)}</p>' if note else "")
            + f'<svg id="{cid}" class="{cls}" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
            f'role="img" aria-label="{html.escape(title)}">{body}</svg>')


def _yaxis(lo: float, hi: float, unit: str = "") -> tuple[float, float, Callable[[float], float], str]:
    """Value scale spanning 0, its grid, labels and the zero line."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    ticks = nice_ticks(lo, hi)
    lo, hi = min(lo, ticks[0]), max(hi, ticks[-1])

    def y(v: float) -> float:
        return T + (hi - v) / (hi - lo) * (H - T - B)

    parts = [f'<line x1="{L}" y1="{T}" x2="{L}" y2="{H - B}" stroke="#888"/>']
    for v in ticks:
        parts.append(f'<line x1="{L}" x2="{W - R}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#eee"/>'
                     f'<text x="{L - 4}" y="{y(v) + 4:.1f}" font-size="10" text-anchor="end">{plain(v)}</text>')
    parts.append(f'<line class="zero" x1="{L}" x2="{W - R}" y1="{y(0):.1f}" y2="{y(0):.1f}" stroke="#444"/>')
    if unit:
        parts.append(f'<text x="4" y="{T + 8}" font-size="10">{html.escape(unit)}</text>')
    return lo, hi, y, "".join(parts)


def _xtime(t0: int, t1: int) -> tuple[Callable[[float], float], str]:
    span = max(1, t1 - t0)

    def x(ts: float) -> float:
        return L + (ts - t0) / span * (W - L - R)

    parts = [f'<line x1="{L}" y1="{H - B}" x2="{W - R}" y2="{H - B}" stroke="#888"/>']
    ticks = time_ticks(t0, t1)
    for i, (ts, label) in enumerate(ticks):
        anchor = "start" if i == 0 else "end" if i == len(ticks) - 1 else "middle"  # the ends stay inside
        parts.append(f'<line x1="{x(ts):.1f}" x2="{x(ts):.1f}" y1="{H - B}" y2="{H - B + 4}" stroke="#888"/>'
                     f'<text class="tlabel" x="{x(ts):.1f}" y="{H - B + 16}" font-size="10" '
                     f'text-anchor="{anchor}">{label}</text>')
    parts.append(f'<text x="{W - R}" y="{H - 3}" font-size="10" text-anchor="end">time, UTC</text>')
    return x, "".join(parts)


def line_chart(cid: str, title: str, ts_ns: Sequence[int], values: Sequence[float], color: str, unit: str = "",
               fill: bool = False, note: str = "") -> str:
    """A step-free line over time (x: UTC time of each point), starting at 0 at the first time."""
    if not values:
        return f'<h3>{html.escape(title)}</h3><p id="{cid}">no trades</p>'
    ts, vals = [ts_ns[0], *ts_ns], [0.0, *values]
    t0, t1 = min(ts), max(ts)
    _, _, y, yax = _yaxis(min(vals), max(vals), unit)
    x, xax = _xtime(t0, t1 if t1 > t0 else t0 + 1)
    path = " ".join(f"{'M' if i == 0 else 'L'}{x(t):.1f},{y(v):.1f}" for i, (t, v) in enumerate(zip(ts, vals)))
    area = (f'<path d="{path} L{x(ts[-1]):.1f},{y(0):.1f} L{x(ts[0]):.1f},{y(0):.1f} Z" fill="{color}" '
            f'fill-opacity="0.2"/>') if fill else ""
    dots = "".join(f'<circle class="point" cx="{x(t):.1f}" cy="{y(v):.1f}" r="2" fill="{color}"><title>'
                   f'{datetime.fromtimestamp(t / 1e9, UTC):%Y-%m-%d %H:%M:%S} UTC: {plain(v)}</title></circle>'
                   for t, v in zip(ts[1:], vals[1:]))
    return _frame(cid, title, f'{yax}{xax}{area}<path class="series" d="{path}" fill="none" stroke="{color}" '
                              f'stroke-width="1.5"/>{dots}', note=note)


def bar_chart(cid: str, title: str, bars: Sequence[tuple[str, float]], color: str, unit: str = "",
              neg_color: str = "#c0392b", note: str = "") -> str:
    """Bars from the zero line (negative values below it, in `neg_color`)."""
    if not bars:
        return f'<h3>{html.escape(title)}</h3><p id="{cid}">no data</p>'
    vals = [v for _, v in bars]
    _, _, y, yax = _yaxis(min(vals), max(vals), unit)
    bw = (W - L - R) / len(bars)
    every = max(1, math.ceil(len(bars) / 16))  # label at most ~16 categories
    rects = []
    for i, (label, v) in enumerate(bars):
        top, bottom = sorted((y(v), y(0)))
        bx = L + i * bw
        rects.append(f'<rect class="bar" x="{bx + 1:.1f}" y="{top:.1f}" width="{max(1.0, bw - 2):.1f}" '
                     f'height="{max(0.5, bottom - top):.1f}" fill="{color if v >= 0 else neg_color}">'
                     f'<title>{html.escape(label)}: {plain(v)}</title></rect>')
        if i % every == 0:
            rects.append(f'<text x="{bx + bw / 2:.1f}" y="{H - B + 16}" font-size="10" text-anchor="middle">'
                         f'{html.escape(label)}</text>')
    axis = f'<line x1="{L}" y1="{H - B}" x2="{W - R}" y2="{H - B}" stroke="#888"/>'
    return _frame(cid, title, yax + axis + "".join(rects), note=note)


def scatter(cid: str, title: str, points: Sequence[tuple[float, float, str, str]], x_label: str, y_label: str,
            note: str = "") -> str:
    """Points (x, y, colour, tooltip) on value axes that both span 0."""
    if not points:
        return f'<h3>{html.escape(title)}</h3><p id="{cid}">no data</p>'
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    _, _, y, yax = _yaxis(min(ys), max(ys), y_label)
    xlo, xhi = min(min(xs), 0.0), max(max(xs), 0.0)
    xt = nice_ticks(xlo, xhi)
    xlo, xhi = min(xlo, xt[0]), max(xhi, xt[-1])

    def x(v: float) -> float:
        return L + (v - xlo) / (xhi - xlo) * (W - L - R)

    parts = [yax, f'<line x1="{L}" y1="{H - B}" x2="{W - R}" y2="{H - B}" stroke="#888"/>',
             f'<line class="zero" x1="{x(0):.1f}" x2="{x(0):.1f}" y1="{T}" y2="{H - B}" stroke="#444"/>']
    for v in xt:
        parts.append(f'<text x="{x(v):.1f}" y="{H - B + 16}" font-size="10" text-anchor="middle">{plain(v)}</text>')
    parts.append(f'<text x="{W - R}" y="{H - 3}" font-size="10" text-anchor="end">{html.escape(x_label)}</text>')
    for px, py, color, tip in points:
        parts.append(f'<circle class="point" cx="{x(px):.1f}" cy="{y(py):.1f}" r="4" fill="{color}" '
                     f'fill-opacity="0.75"><title>{html.escape(tip)}</title></circle>')
    return _frame(cid, title, "".join(parts), note=note)


def hbar_stacked(cid: str, title: str, rows: Sequence[tuple[str, Sequence[tuple[str, float, str]]]],
                 unit: str = "ms", note: str = "") -> str:
    """One horizontal bar per row, its segments (name, value ≥ 0, colour) laid end to end from 0."""
    rows = [(label, [s for s in segs if s[1] is not None]) for label, segs in rows]
    total = max((sum(v for _, v, _ in segs) for _, segs in rows), default=0.0)
    if not rows or total <= 0:
        return f'<h3>{html.escape(title)}</h3><p id="{cid}">no data</p>'
    ticks = nice_ticks(0.0, total)
    hi = max(total, ticks[-1])
    left = 150

    def x(v: float) -> float:
        return left + v / hi * (W - left - R)

    bh = min(28.0, (H - T - B - 24) / len(rows) - 6)
    parts = [f'<line x1="{left}" y1="{H - B}" x2="{W - R}" y2="{H - B}" stroke="#888"/>',
             f'<line class="zero" x1="{left}" x2="{left}" y1="{T}" y2="{H - B}" stroke="#444"/>']
    for v in ticks:
        parts.append(f'<text x="{x(v):.1f}" y="{H - B + 16}" font-size="10" text-anchor="middle">{plain(v)}</text>')
    parts.append(f'<text x="{W - R}" y="{H - 3}" font-size="10" text-anchor="end">{html.escape(unit)}</text>')
    names = list(dict.fromkeys((name, color) for _, segs in rows for name, _, color in segs))
    for i, (name, color) in enumerate(names):  # legend, under the bars
        lx = left + i * (W - left - R) / max(1, len(names))
        parts.append(f'<rect x="{lx:.1f}" y="{H - B - 16}" width="10" height="10" fill="{color}"/>'
                     f'<text x="{lx + 14:.1f}" y="{H - B - 7}" font-size="10">{html.escape(name)}</text>')
    for i, (label, segs) in enumerate(rows):
        yy = T + i * (bh + 6)
        parts.append(f'<text x="{left - 6}" y="{yy + bh / 2 + 4:.1f}" font-size="11" text-anchor="end">'
                     f'{html.escape(label)}</text>')
        acc = 0.0
        for name, v, color in segs:
            width = max(0.5, x(acc + v) - x(acc))
            parts.append(f'<rect class="seg" x="{x(acc):.1f}" y="{yy:.1f}" width="{width:.1f}" height="{bh:.1f}" '
                         f'fill="{color}"><title>{html.escape(name)}: {plain(v)} {unit}</title></rect>')
            acc += v
    return _frame(cid, title, "".join(parts), note=note)


def trade_path(cid: str, title: str, t: dict[str, Any], note: str = "") -> str:
    """One trade over time: the fills (entry ▲/▼, exits ●), the stop as it stood at each moment (a step line:
    it moves when a new stop order is placed), the targets, the signal price, and the band the price
    reached (MAE/MFE from the first entry fill, as the engine tracked them)."""
    fills = t["fills"]
    if not fills:
        return ""
    tick = t.get("tick") or 0.0
    entry = t["entry_price"]
    sgn = 1 if t["side"] in ("long", "BUY", "buy") else -1
    band = []
    if tick and entry and t.get("mae_ticks") is not None and t.get("mfe_ticks") is not None:
        band = [entry - sgn * t["mae_ticks"] * tick, entry + sgn * t["mfe_ticks"] * tick]
    stops = t.get("stop_history") or []
    marks = t.get("price_path") or []  # the journal's marks around the trade (one a second), when it has them
    times = [f["ts_ns"] for f in fills] + [s["ts_ns"] for s in stops] + [m[0] for m in marks] + \
        [v for v in (t.get("intent_ts_ns"), t["entry_ts_ns"], t["exit_ts_ns"]) if v]
    prices = [f["price"] for f in fills] + [s["price"] for s in stops] + list(t["targets"]) + band + \
        [m[1] for m in marks] + ([t["intent_price"]] if t.get("intent_price") else [])
    t0, t1 = min(times), max(times)
    pad = max(1, (t1 - t0) // 20)
    t0, t1 = t0 - pad, t1 + pad
    plo, phi = min(prices), max(prices)
    margin = (phi - plo) * 0.08 or (tick or abs(plo) * 1e-4 or 1.0)
    plo, phi = plo - margin, phi + margin
    pt = nice_ticks(plo, phi, 4)

    def y(v: float) -> float:
        return T + (phi - v) / (phi - plo) * (H - T - B)

    x, xax = _xtime(t0, t1)
    parts = [xax, f'<line x1="{L}" y1="{T}" x2="{L}" y2="{H - B}" stroke="#888"/>']
    for v in pt:
        if plo <= v <= phi:
            parts.append(f'<line x1="{L}" x2="{W - R}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#eee"/>'
                         f'<text x="{L - 4}" y="{y(v) + 4:.1f}" font-size="10" text-anchor="end">{plain(v, 8)}</text>')
    if band:
        lo_b, hi_b = sorted(band)
        parts.append(f'<rect class="excursion" x="{x(t["entry_ts_ns"]):.1f}" y="{y(hi_b):.1f}" '
                     f'width="{max(1.0, x(t["exit_ts_ns"]) - x(t["entry_ts_ns"])):.1f}" '
                     f'height="{max(0.5, y(lo_b) - y(hi_b)):.1f}" fill="#f1c40f" fill-opacity="0.18">'
                     f'<title>price range reached: {plain(lo_b, 8)} .. {plain(hi_b, 8)} (MAE/MFE)</title></rect>')
    if marks:
        pd = " ".join(f"{'M' if i == 0 else 'L'}{x(ts):.1f},{y(p):.1f}" for i, (ts, p) in enumerate(marks))
        parts.append(f'<path class="price" d="{pd}" fill="none" stroke="#95a5a6" stroke-width="1">'
                     f'<title>price (mid), {len(marks)} marks</title></path>')
    for tp in t["targets"]:
        parts.append(f'<line class="target" x1="{L}" x2="{W - R}" y1="{y(tp):.1f}" y2="{y(tp):.1f}" '
                     f'stroke="#27ae60" stroke-dasharray="2 3"><title>target {plain(tp, 8)}</title></line>')
    if stops:
        end = t["exit_ts_ns"] or t1
        d = []
        for i, s in enumerate(stops):
            nxt = stops[i + 1]["ts_ns"] if i + 1 < len(stops) else end
            d.append(f"M{x(s['ts_ns']):.1f},{y(s['price']):.1f} H{x(max(nxt, s['ts_ns'])):.1f}")
        parts.append(f'<path class="stop" d="{" ".join(d)}" stroke="#c0392b" stroke-width="1.5" fill="none" '
                     f'stroke-dasharray="5 3"><title>stop {" → ".join(plain(s["price"], 8) for s in stops)}'
                     f'</title></path>')
    if t.get("intent_price") and t.get("intent_ts_ns"):
        parts.append(f'<circle class="mark signal" cx="{x(t["intent_ts_ns"]):.1f}" cy="{y(t["intent_price"]):.1f}" '
                     f'r="3" fill="none" stroke="#555"><title>signal price {plain(t["intent_price"], 8)}</title>'
                     f'</circle>')
    path = " ".join(f"{'M' if i == 0 else 'L'}{x(f['ts_ns']):.1f},{y(f['price']):.1f}" for i, f in enumerate(fills))
    parts.append(f'<path class="series" d="{path}" fill="none" stroke="#555"/>')
    for f in fills:
        cx, cy = x(f["ts_ns"]), y(f["price"])
        tip = (f'{f["role"]} {f["side"]} {plain(f["qty"])} @ {plain(f["price"], 8)} ({f.get("liquidity", "?")}, '
               f'fee {plain(f.get("fee_quote"))})')
        if f["role"] in ("entry", "add"):
            dy = -7 if f["side"] == "BUY" else 7  # ▲ for a buy, ▼ for a sell
            parts.append(f'<path class="mark entry" d="M{cx:.1f},{cy:.1f} l-5,{-dy} l10,0 Z" fill="#2980b9">'
                         f'<title>{html.escape(tip)}</title></path>')
        else:
            parts.append(f'<circle class="mark exit" cx="{cx:.1f}" cy="{cy:.1f}" r="4" fill="#8e44ad">'
                         f'<title>{html.escape(tip)}</title></circle>')
    return _frame(cid, title, "".join(parts), cls="chart trade", note=note)
