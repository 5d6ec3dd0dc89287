"""Readable live terminal view (when attached to a TTY): books, positions, last trades, PnL, health.

`render(status, books, trades)` is a pure function of plain data (RuntimeState.status(), a per-symbol
top-of-book summary, the last closed trades) returning the screen as text, so it is tested without a
terminal; `TerminalView` only redraws it at a fixed rate with ANSI home+clear.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from typing import Any, TextIO

__all__ = ["TerminalView", "render"]

_CLEAR = "\x1b[H\x1b[2J"


def _f(x: Any, nd: int = 2) -> str:
    return "-" if x is None else f"{x:,.{nd}f}"


def render(status: Mapping[str, Any], books: Mapping[str, Mapping[str, Any]],
           trades: Iterable[Mapping[str, Any]] = (), width: int = 100) -> str:
    info = status.get("info", {})
    health = status.get("health", {})
    trading = status.get("trading", {})
    pnl = status.get("pnl", {})
    lines = [
        f"scalper  {info.get('mode', '')} on {info.get('venue', '')}   uptime {_f(status.get('uptime_s'), 0)} s"
        f"   health {health.get('status', '?').upper()}   trading {trading.get('state', '?')}",
        "=" * width,
        f"{'symbol':<10}{'book':<9}{'bid':>14}{'ask':>14}{'spread':>8}{'imb10':>8}{'msgs/s':>8}  reason",
    ]
    feeds = status.get("feeds", {})
    for sym, b in books.items():
        fd = feeds.get(sym, {})
        rates = fd.get("rates_per_s", {})
        lines.append(
            f"{sym:<10}{fd.get('status', '?'):<9}{_f(b.get('bid'), b.get('price_decimals', 2)):>14}"
            f"{_f(b.get('ask'), b.get('price_decimals', 2)):>14}{_f(b.get('spread_ticks'), 0):>8}"
            f"{_f(b.get('imbalance'), 2):>8}{sum(rates.values()):>8}  {fd.get('reason', '')[:30]}"
        )
    lines.append("")
    positions = status.get("positions", [])
    lines.append(f"positions ({len(positions)})")
    for p in positions:
        lines.append(
            f"  {p.get('symbol', ''):<10}{p.get('side', ''):<6} qty {_f(p.get('qty'), 4):>10}  entry "
            f"{_f(p.get('entry_price')):>12}  stop {_f(p.get('stop_price')):>12}"
            f"  uPnL {_f(p.get('unrealized_pnl_quote')):>9}"
        )
    orders = status.get("open_orders", [])
    lines.append(f"open orders ({len(orders)})")
    for o in orders[:8]:
        # a stop rests at its trigger price (no limit price); the role says what it is for (stop, tp, entry)
        px = o.get('price') if o.get('price') is not None else o.get('trigger_price')
        lines.append(f"  {o.get('client_id', ''):<22}{o.get('symbol', ''):<10}{o.get('role', ''):<6}"
                     f"{o.get('kind', ''):<14}{o.get('side', ''):<5}{_f(o.get('qty'), 4):>10} @ {_f(px)}")
    lines.append("")
    lines.append("last trades")
    shown = 0
    for t in trades:
        lines.append(
            f"  {t.get('setup', ''):<18}{t.get('symbol', ''):<10}{t.get('side', ''):<6}"
            f"{_f(t.get('entry_price')):>12} -> {_f(t.get('exit_price')):>12}  {t.get('exit_reason', ''):<13}"
            f" pnl {_f(t.get('pnl')):>9}  R {_f(t.get('r_multiple')):>6}"
        )
        shown += 1
    if not shown:
        lines.append("  (none yet)")
    lines.append("")
    denials = status.get("denials", {})
    lines.append(
        f"PnL realised {_f(pnl.get('realized_quote'))}  unrealised {_f(pnl.get('unrealized_quote'))}  "
        f"fees {_f(pnl.get('fees_quote'))}   closed {sum(status.get('trades_closed', {}).values())}   "
        f"denials {sum(denials.values())}"
    )
    for r in health.get("reasons", [])[:4]:
        lines.append(f"! {r}")
    errs = status.get("last_errors", [])
    if errs:
        lines.append(f"last error: {errs[-1]}")
    return "\n".join(line[:width] for line in lines) + "\n"


class TerminalView:
    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout

    def draw(self, screen: str) -> None:
        self.out.write(_CLEAR + screen)
        self.out.flush()
