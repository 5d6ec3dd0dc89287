"""The one-file HTML page of `scalper research report`: inline SVG charts from bot.journal.report_svg (the
backtest report's helpers), the backtest report's style and table helper; no library, no CDN, no build step.

Element ids (the headless-Chromium test counts them): #dsr-words, #pbo-words, svg#importance,
svg#is-oos, svg#equity-fold-N (one per walk-forward fold), svg#sens-fees, svg#sens-latency,
tables #trials, #folds, #sensitivity.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime
from typing import Any

from bot.journal.report_html import _CSS, LAYOUT_PROBE, _table
from bot.journal.report_svg import bar_chart, line_chart, plain, scatter

__all__ = ["render_research_html"]

_KIND_COLOR = {"walk_forward": "#2980b9", "cpcv": "#e67e22"}


def _r(p: dict[str, Any] | None) -> float | None:
    return None if not p else p.get("mean_r")


def _importance(rep: dict[str, Any]) -> str:
    imp = rep["importance"]
    bars = sorted(imp["values"].items(), key=lambda kv: -kv[1])
    note = imp["method"] + (f"; {imp['note']}" if imp.get("note") else "")
    return bar_chart("importance", "Parameter importance (share, sums to 1)", bars, "#2980b9", note=note)


def _is_oos(val: dict[str, Any]) -> str:
    pts = []
    for f in val["folds"]:
        x, y = _r(f.get("is")), _r(f.get("oos"))
        if x is None or y is None:
            continue
        pts.append((x, y, _KIND_COLOR[f["kind"]],
                    f"{f['kind']} fold {f['fold']}: trial {f['selected']} IS {plain(x)} R, OOS {plain(y)} R"))
    return scatter("is-oos", "In-sample vs out-of-sample mean net R of each fold's selected trial", pts,
                   "in-sample mean net R per trade", "OOS R",
                   note="Blue: walk-forward folds; orange: purged CV splits. A point lower than it is far to the "
                        "right lost its edge out of sample (OOS < IS); a cloud with no upward slope means the "
                        "in-sample ranking told nothing.")


def _equity(rep: dict[str, Any]) -> str:
    out = []
    for e in rep.get("fold_equity", []):
        title = (f"Walk-forward fold {e['fold']} (OOS block {','.join(map(str, e['oos_blocks']))}): "
                 f"trial {e['selected']}, cumulative net R")
        out.append(line_chart(f"equity-fold-{e['fold']}", title, e["ts_ns"], e["cum_r"], "#1e8449", "R",
                              fill=True))
    return "".join(out)


def _sensitivity(val: dict[str, Any]) -> str:
    rows = val.get("sensitivity") or []
    if not rows:
        return ('<p id="sensitivity">No cost or latency sensitivity in the saved validation (it was run with '
                '--no-sensitivity).</p>')
    fees = [r for r in rows if r["kind"] == "fees"]
    base = next((r for r in fees if r["value"] == 1.0), None)
    lat = ([base] if base else []) + [r for r in rows if r["kind"] == "latency"]

    def bars(rs: list[dict[str, Any]], label: Any) -> list[tuple[str, float]]:
        return [(label(r), r["metrics"].get("net_expectancy_r") or 0.0) for r in rs]

    charts = (bar_chart("sens-fees", "Cost sensitivity: net expectancy (R per trade) by fee multiplier",
                        bars(fees, lambda r: f"fees x{r['value']:g}"), "#16a085", "R")
              + bar_chart("sens-latency", "Latency sensitivity: net expectancy (R per trade) by added one-way delay",
                          bars(lat, lambda r: "+0 ms" if r["kind"] == "fees" else f"+{r['value']:g} ms"),
                          "#8e44ad", "R"))
    table = _table("Sensitivity of the chosen configuration (the same backtest re-run)",
                   ("variation", "trades", "win rate", "net expectancy R", "net PnL"),
                   [[f"fees x{r['value']:g}" if r["kind"] == "fees" else f"latency +{r['value']:g} ms",
                     r["metrics"].get("trades"), r["metrics"].get("win_rate"), r["metrics"].get("net_expectancy_r"),
                     r["metrics"].get("net_pnl_quote")] for r in rows], "sensitivity")
    return f'<div class="grid">{charts}</div>{table}'


def _folds_table(val: dict[str, Any]) -> str:
    def cell(p: dict[str, Any] | None) -> str:
        return "-" if not p else f"{p['trades']} tr, {plain(p['mean_r'])} R"

    return _table("Folds: the trial selected in-sample, and the chosen configuration, in and out of sample",
                  ("kind", "fold", "IS blocks", "OOS blocks", "selected", "IS (selected)", "OOS (selected)",
                   "IS (chosen)", "OOS (chosen)"),
                  [[f["kind"], f["fold"], ",".join(map(str, f["is_blocks"])), ",".join(map(str, f["oos_blocks"])),
                    "-" if f["selected"] is None else str(f["selected"]), cell(f.get("is")), cell(f.get("oos")),
                    cell(f.get("chosen_is")), cell(f.get("chosen_oos"))] for f in val["folds"]], "folds")


def _trials_table(rep: dict[str, Any], top: int = 20) -> str:
    rows = sorted(rep["trials"], key=lambda r: -r["value"])[:top]
    keys = sorted({k for r in rep["trials"] for k in r["params"]})
    return _table(f"Best {len(rows)} of {len(rep['trials'])} trials by {rep.get('objective') or 'value'}",
                  ("trial", "value", "trades", "net expectancy R", *keys),
                  [[str(r["number"]), r["value"], r["metrics"].get("trades"), r["metrics"].get("net_expectancy_r"),
                    *(r["params"].get(k) for k in keys)] for r in rows], "trials")


def render_research_html(rep: dict[str, Any], title: str = "scalper research report") -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    val = rep.get("validation")
    n = len(rep["trials"])
    if val:
        ch = val["chosen"]
        w = rep["words"]
        stale = (" <strong>The study has gained trials since this validation: run validate --save again.</strong>"
                 if rep.get("stale") else "")
        verdict = (f'<p id="dsr-words"><strong>{html.escape(w["dsr"])}</strong></p>'
                   f'<p id="pbo-words"><strong>{html.escape(w["pbo"])}</strong></p>'
                   f'<p>Chosen configuration: trial {ch["number"]} {html.escape(str(ch["params"]))}.{stale}</p>')
        body = (f'<h2>Validation</h2><div class="grid">{_is_oos(val)}</div>'
                f'<h2>Equity per walk-forward fold (out of sample)</h2>'
                f'<div class="grid">{_equity(rep) or "<p>no walk-forward fold</p>"}</div>'
                f'<h2>Cost and latency sensitivity</h2>{_sensitivity(val)}{_folds_table(val)}')
    else:
        verdict = (f'<p id="no-validation"><strong>No validation saved in this study: run `scalper research '
                   f'validate --study {html.escape(rep["study"])} --save` for folds, DSR, PBO and the '
                   f'sensitivity grids.</strong></p>')
        body = ""
    files = ", ".join(html.escape(f) for f in rep["files"]) or "-"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>{_CSS}</style></head>
<body>{verdict}
<h1>{html.escape(title)}</h1><p>Generated {now} from the study {html.escape(rep["study"])}: {n} finished trials,
objective {html.escape(str(rep.get("objective")))}. Sessions: {files}.</p>
<div class="grid">{_importance(rep)}</div>
{body}
{_trials_table(rep)}
{LAYOUT_PROBE}
</body></html>
"""


def write_report(path: str, out: str) -> dict[str, Any]:
    """Build the report of the study at `path` and write the page to `out`."""
    from pathlib import Path

    from bot.research.report import build_research_report

    rep = build_research_report(path)
    Path(out).write_text(render_research_html(rep), encoding="utf-8")
    return rep


__all__ += ["write_report"]
