"""Readable live terminal view (when attached to a TTY): books, positions with their stops and targets,
orders resting at the exchange, last trades, PnL, health.

`render(status, books, trades, width, height)` is a pure function of plain data (RuntimeState.status(), a
per-symbol top-of-book summary, the last closed trades) returning the screen as text, so it is tested
without a terminal; `TerminalView` redraws it at a fixed rate with ANSI home+clear, sized to the terminal.

Fits the terminal, never scrolls: at most `height - 1` lines (the cursor's line is the last), so the
header stays on screen at 80×24; when there is more than fits, the least urgent rows go first (old
trades, then books, then resting orders; positions last) and a "… N more" line says so. Each line puts its
numbers before its free text (R and PnL before the prices and the setup name), so a line cut at the
width loses a name, never a digit (a −0.98 R stop-out reads "-0.98" at 80 columns).
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterable, Mapping
from typing import Any, TextIO

__all__ = ["TerminalView", "render"]

_CLEAR = "\x1b[H\x1b[2J"


def _f(x: Any, nd: int = 2) -> str:
    return "-" if x is None else f"{x:,.{nd}f}"


def _fit(line: str, width: int) -> str:
    return line if len(line) <= width else line[:width - 1] + "…"


class _Section:
    def __init__(self, title: str | None, rows: list[str], keep: int, empty: str = "") -> None:
        self.title, self.rows, self.keep, self.empty = title, rows, keep, empty
        self.shown = len(rows)

    def lines(self) -> list[str]:
        out = [self.title] if self.title is not None else []
        out += self.rows[:self.shown]
        if self.shown < len(self.rows):
            out.append(f"  … {len(self.rows) - self.shown} more")
        if not self.rows and self.empty:
            out.append(self.empty)
        return out


def render(status: Mapping[str, Any], books: Mapping[str, Mapping[str, Any]],
           trades: Iterable[Mapping[str, Any]] = (), width: int = 100, height: int | None = None) -> str:
    info = status.get("info", {})
    health = status.get("health", {})
    trading = status.get("trading", {})
    pnl = status.get("pnl", {})
    feeds = status.get("feeds", {})
    decimals = {sym: b.get("price_decimals", 2) for sym, b in books.items()}

    def px(sym: str, x: Any) -> str:
        return _f(x, decimals.get(sym, 2))

    head = [f"scalper {info.get('mode', '')} on {info.get('venue', '')}  up {_f(status.get('uptime_s'), 0)} s  "
            f"health {health.get('status', '?').upper()}  trading {trading.get('state', '?')}", "=" * width]
    book_rows = []
    for sym, b in books.items():
        fd = feeds.get(sym, {})
        rate = sum(fd.get("rates_per_s", {}).values())
        book_rows.append(f"{sym:<10}{fd.get('status', '?'):<8}{px(sym, b.get('bid')):>12}{px(sym, b.get('ask')):>12}"
                         f"{_f(b.get('spread_ticks'), 0):>5}{_f(b.get('imbalance'), 2):>6}{rate:>6}  "
                         f"{fd.get('reason', '')}")
    books_s = _Section(f"{'symbol':<10}{'book':<8}{'bid':>12}{'ask':>12}{'spr':>5}{'imb':>6}{'msg/s':>6}  reason",
                       book_rows, 1)
    positions = status.get("positions", [])
    pos_rows = []
    for p in positions:
        sym = p.get("symbol", "")
        targets = " ".join(px(sym, t) for t in p.get("targets") or [])
        line = (f"  {sym:<9}{p.get('side', ''):<6}{_f(p.get('qty'), 4):>9} @ {px(sym, p.get('entry_price')):>11}"
                f"  stop {px(sym, p.get('stop_price')):>11}  uPnL {_f(p.get('unrealized_pnl_quote')):>8}")
        tp = f"tp {targets}" if targets else ""
        if tp and len(line) + 2 + len(tp) <= width:
            line += "  " + tp
        elif tp:  # on a line of its own rather than cut inside a price
            pos_rows.append(line)
            line = f"{'':<11}{tp}"
        pos_rows.append(line)
    pos_s = _Section(f"positions ({len(positions)})", pos_rows, len(pos_rows))  # never hidden
    orders = status.get("open_orders", [])
    order_rows = []
    for o in orders:
        sym = o.get("symbol", "")
        state = "" if o.get("confirmed", True) else " (unacked)"
        order_rows.append(f"  {o.get('client_id', ''):<16}{sym:<9}{o.get('role') or o.get('kind', ''):<6}"
                          f"{o.get('side', ''):<5}{_f(o.get('qty'), 4):>9} @ {px(sym, o.get('price')):>11}  "
                          f"{o.get('kind', '')}{state}")
    orders_s = _Section(f"open orders ({len(orders)})", order_rows, 1)
    trade_rows = []
    for t in trades:
        sym = t.get("symbol", "")
        trade_rows.append(f"  {sym:<9}{t.get('side', ''):<6}{t.get('exit_reason') or '':<12} "
                          f"R {_f(t.get('r_multiple')):>6} pnl {_f(t.get('pnl')):>8}  "
                          f"{px(sym, t.get('entry_price'))} -> {px(sym, t.get('exit_price'))}  {t.get('setup', '')}")
    trades_s = _Section("last trades", trade_rows, 1, "  (none yet)")
    denials = status.get("denials", {})
    foot = [f"PnL real {_f(pnl.get('realized_quote'))}  unreal {_f(pnl.get('unrealized_quote'))}  fees "
            f"{_f(pnl.get('fees_quote'))}  closed {sum(status.get('trades_closed', {}).values())}  "
            f"denials {sum(denials.values())}"]
    reasons_s = _Section(None, [f"! {r}" for r in health.get("reasons", [])], 1)
    errs = status.get("last_errors", [])
    err = [f"last error: {errs[-1].get('source', '')}: {errs[-1].get('message', '')}"
           if isinstance(errs[-1], Mapping) else f"last error: {errs[-1]}"] if errs else []
    blank = _Section(None, [""], 1)

    def screen() -> list[str]:
        return [*head, *books_s.lines(), *blank.lines(), *pos_s.lines(), *orders_s.lines(), *blank.lines(),
                *trades_s.lines(), *blank.lines(), *foot, *reasons_s.lines(), *err]

    lines = screen()
    if height is not None:
        budget = max(1, height - 1)  # the cursor's line: one more and the terminal scrolls the header away
        if len(lines) > budget:  # the blank separators go first
            blank.rows, blank.shown = [], 0
            lines = screen()
        for sec in (trades_s, books_s, orders_s, reasons_s):  # least urgent first
            while len(lines) > budget and sec.shown > sec.keep:
                # hiding one row costs a "… N more" line the first time: hide two then
                sec.shown = max(sec.keep, sec.shown - (2 if sec.shown == len(sec.rows) else 1))
                lines = screen()
        lines = lines[:budget]
    return "\n".join(_fit(line, width) for line in lines) + "\n"


class TerminalView:
    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout

    def draw(self, screen: str) -> None:
        self.out.write(_CLEAR + screen)
        self.out.flush()

    def show(self, status: Mapping[str, Any], books: Mapping[str, Mapping[str, Any]],
             trades: Iterable[Mapping[str, Any]] = ()) -> None:
        """Render at the terminal's current size (read each time: a resized window redraws to fit)."""
        size = shutil.get_terminal_size((100, 30))
        self.draw(render(status, books, trades, width=max(40, size.columns), height=max(8, size.lines)))
