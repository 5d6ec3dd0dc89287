"""`scalper report --shadow`: shadow mode's divergence report (bot.journal.shadow_report) as text or JSON.

    scalper report --shadow [--json] [--run ID|all] [-c CONFIG | --db PATH]

Text: the summary (counts, then n / median / p90 of each difference), then one line per trade: entry and
exit price of each side, entry/exit difference (bps, adverse + = the demo account did worse), entry latency
of each side, fees and net PnL of each side and the legs that filled on one side only.
"""

from __future__ import annotations

import sys
from typing import Any

import orjson

__all__ = ["print_shadow", "shadow_section"]


def _load(path: str, run: Any) -> dict[str, Any]:
    from bot.journal.shadow import load_shadow
    from bot.journal.shadow_report import divergence

    return divergence(load_shadow(path), run="latest" if run is None else run)


def shadow_section(path: str, run: Any) -> dict[str, Any] | None:
    """The divergence report of `run` for the report JSON's "shadow" key; None when it holds no shadow order."""
    rep = _load(path, run)
    return rep if rep["trades"] else None


def _f(v: Any, nd: int = 2) -> str:
    if v is None:
        return "-"
    return f"{v:.{nd}f}" if isinstance(v, float) else str(v)


def _stat(s: dict[str, Any], unit: str) -> str:
    return f"n={s['n']} median {_f(s['median'])} p90 {_f(s['p90'])} {unit}"


def print_shadow(path: str, run: Any, *, as_json: bool) -> int:
    rep = _load(path, run)
    if as_json:
        sys.stdout.write(orjson.dumps(rep, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    s = rep["summary"]
    runs = rep["run"] if isinstance(rep["run"], str) else ",".join(str(r) for r in rep["run"])
    if not rep["trades"]:
        print(f"no shadow-mode orders in {path} (run {runs}): run with app.mode = \"shadow\" first")
        return 0
    print(f"shadow divergence, run {runs}: {s['trades']} trades, entered demo {s['entered_demo']} / paper "
          f"{s['entered_paper']} / both {s['entered_both']}; entries filled on one side only: demo "
          f"{s['entry_missed']['demo_only']}, paper {s['entry_missed']['paper_only']}; legs: demo "
          f"{s['legs_missed']['demo_only']}, paper {s['legs_missed']['paper_only']}")
    print(f"  entry price, demo worse than paper: {_stat(s['entry_diff_bps'], 'bps')}")
    print(f"  exit price,  demo worse than paper: {_stat(s['exit_diff_bps'], 'bps')}")
    print(f"  net PnL demo - paper:               {_stat(s['pnl_diff_quote'], 'quote')}")
    for key, unit in (("entry_slippage_bps", "bps"), ("exit_slippage_bps", "bps"), ("entry_latency_ms", "ms")):
        print(f"  {key:<20} demo {_stat(s[key]['demo'], unit)}; paper {_stat(s[key]['paper'], unit)}")
    print(f"  fees demo {_f(s['fees_quote']['demo'], 4)} paper {_f(s['fees_quote']['paper'], 4)}; net PnL (flat "
          f"trades) demo {_f(s['net_pnl_quote']['demo'], 4)} paper {_f(s['net_pnl_quote']['paper'], 4)}")
    print(f"\n  {'id':<7}{'symbol':<9}{'side':<6}{'entry d/p':>22}{'exit d/p':>22}{'in bps':>8}{'out bps':>8}"
          f"{'lat ms d/p':>14}{'net d/p':>18}  one side only")
    for t in rep["trades"]:
        d, p = t["demo"], t["paper"]
        print(f"  {t['trade_id']:<7}{t['symbol'] or '-':<9}{t['side'] or '-':<6}"
              f"{_f(d['entry_price'], 4) + '/' + _f(p['entry_price'], 4):>22}"
              f"{_f(d['exit_price'], 4) + '/' + _f(p['exit_price'], 4):>22}"
              f"{_f(t['entry_diff_bps']):>8}{_f(t['exit_diff_bps']):>8}"
              f"{_f(d['entry_latency_ms'], 1) + '/' + _f(p['entry_latency_ms'], 1):>14}"
              f"{_f(d['net_pnl_quote'], 3) + '/' + _f(p['net_pnl_quote'], 3):>18}  "
              + (", ".join(f"{m['role']}:{m['filled']}" for m in t["missed"]) or "-"))
    return 0
