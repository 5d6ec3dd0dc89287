"""`scalper trades [-c CONFIG] [--db PATH] [--json] [--all]`: the trades in a journal.

Fields (the same as `scalper backtest --json`): setup, symbol, side, entry_ts_ns, entry_price (first entry
fill's average), qty (largest position held), stop_price (initial protective stop), stop_confirm_ms,
max_open_risk, exit_ts_ns, exit_price, exit_reason, pnl (net of fees), fees, r_multiple; plus trade_id
and state. Trades that never held a position (ABORTED) are listed only with --all.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import orjson

__all__ = ["add_arguments", "format_table", "journal_path", "load_trades", "run"]

REPORT_FIELDS = ("setup", "symbol", "side", "entry_ts_ns", "entry_price", "qty", "stop_price", "stop_confirm_ms",
                 "max_open_risk", "exit_ts_ns", "exit_price", "exit_reason", "pnl", "fees", "r_multiple")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", metavar="CONFIG", help="config file (for journal.path and app.state_dir)")
    p.add_argument("--db", metavar="PATH", help="journal file (default: <app.state_dir>/<journal.path>)")
    p.add_argument("--json", action="store_true", help='print {"trades": [...]} as JSON')
    p.add_argument("--all", action="store_true", help="also list trades that never held a position")


def journal_path(config: str | None) -> str:
    from bot.settings import load_settings

    s = load_settings(config)
    return s.journal.path if os.path.isabs(s.journal.path) else os.path.join(s.app.state_dir, s.journal.path)


def load_trades(path: str, include_aborted: bool = False) -> list[dict[str, Any]]:
    from bot.journal import Journal

    j = Journal(path)
    try:
        rows = j.trades()
    finally:
        j.close()
    out = []
    for r in rows:
        if not include_aborted and r["entry_ts_ns"] is None:
            continue
        out.append({"trade_id": r["trade_id"], **{k: r[k] for k in REPORT_FIELDS}, "state": r["state"]})
    return out


def _fmt(v: Any, nd: int = 2) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def format_table(trades: list[dict[str, Any]]) -> str:
    head = (f"{'id':<6}{'setup':<16}{'symbol':<10}{'side':<6}{'entry':>12}{'qty':>10}{'stop':>12}{'conf_ms':>8}"
            f"{'risk':>8}{'exit':>12}{'reason':>15}{'pnl':>10}{'fees':>8}{'R':>7}")
    lines = [head]
    for t in trades:
        lines.append(
            f"{t['trade_id']:<6}{t['setup'][:15]:<16}{t['symbol']:<10}{t['side']:<6}{_fmt(t['entry_price']):>12}"
            f"{_fmt(t['qty'], 4):>10}{_fmt(t['stop_price']):>12}{_fmt(t['stop_confirm_ms'], 1):>8}"
            f"{_fmt(t['max_open_risk']):>8}{_fmt(t['exit_price']):>12}{_fmt(t['exit_reason'] or t['state']):>15}"
            f"{_fmt(t['pnl']):>10}{_fmt(t['fees']):>8}{_fmt(t['r_multiple']):>7}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    path = args.db or journal_path(args.config)
    if path != ":memory:" and not os.path.exists(path):
        print(f"error: no journal at {path} (pass --db PATH)", file=sys.stderr)
        return 2
    trades = load_trades(path, include_aborted=args.all)
    if args.json:
        sys.stdout.write(orjson.dumps({"trades": trades}, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        print(format_table(trades))
        print(f"{len(trades)} trade(s)")
    return 0
