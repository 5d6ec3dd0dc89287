"""The HTML report's shadow-mode section: the divergence report (bot/journal/shadow_report.py) as two tables."""

from __future__ import annotations

import html
from typing import Any

__all__ = ["shadow_html"]


def shadow_html(rep: dict[str, Any], table: Any) -> str:
    """`table(caption, head, rows)` is the report's own table renderer (bot/journal/report_html.py)."""
    s = rep["summary"]
    rows = []
    for key, label in (("entry_diff_bps", "entry price, demo worse than paper (bps)"),
                       ("exit_diff_bps", "exit price, demo worse than paper (bps)"),
                       ("pnl_diff_quote", "net PnL demo - paper (quote)")):
        v = s[key]
        rows.append([label, v["n"], v["median"], v["p90"], v["mean"]])
    for key, unit in (("entry_slippage_bps", "bps"), ("exit_slippage_bps", "bps"), ("entry_latency_ms", "ms")):
        for side in ("demo", "paper"):
            v = s[key][side]
            rows.append([f"{key.replace('_bps', '').replace('_ms', '').replace('_', ' ')}, {side} ({unit})",
                         v["n"], v["median"], v["p90"], v["mean"]])
    head = (f"Shadow mode: the demo account against the paper fills of the same orders. {s['trades']} trades, "
            f"entered demo {s['entered_demo']} / paper {s['entered_paper']} / both {s['entered_both']}; entries "
            f"filled on one side only: demo {s['entry_missed']['demo_only']}, paper {s['entry_missed']['paper_only']}; "
            f"fees demo {s['fees_quote']['demo']:.4f} / paper {s['fees_quote']['paper']:.4f}")
    per_trade = [[t["trade_id"], t["symbol"], t["side"], t["demo"]["entry_price"], t["paper"]["entry_price"],
                  t["entry_diff_bps"], t["demo"]["exit_price"], t["paper"]["exit_price"], t["exit_diff_bps"],
                  t["demo"]["entry_latency_ms"], t["paper"]["entry_latency_ms"], t["demo"]["net_pnl_quote"],
                  t["paper"]["net_pnl_quote"],
                  ", ".join(f"{m['role']}: {m['filled']}" for m in t["missed"]) or "-"] for t in rep["trades"]]
    return ('<h2 id="shadow">Shadow mode (docs/shadow.md)</h2>'
            + table(head, ("", "n", "median", "p90", "mean"), rows)
            + table("Per trade: demo / paper prices, differences in bps (adverse + = the demo did worse), latency "
                    "send -> first entry fill (ms), net PnL",
                    ("trade", "symbol", "side", "entry demo", "entry paper", "entry bps", "exit demo", "exit paper",
                     "exit bps", "lat demo", "lat paper", "net demo", "net paper", "one side only"), per_trade)
            + f'<p class="note">{html.escape("A side that never filled counts 0 in the PnL difference.")}</p>')
