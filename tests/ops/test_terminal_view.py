"""The terminal view (bot.ui.terminal): stops and resting orders shown, nothing cut that matters, and it
fits the terminal so the header never scrolls away. (Fed by the running bot: tests/test_web_view_e2e.py
renders the real bot's /status.)"""

from __future__ import annotations

import io
import os

from bot.ops.state import RuntimeState
from bot.ui import terminal
from bot.ui.terminal import TerminalView, render

BOOK = {"bid": 60_000.1, "ask": 60_000.2, "spread_ticks": 1, "imbalance": 0.12, "price_decimals": 1}


def _busy_status() -> dict:
    st = RuntimeState(now_ns=1)
    st.set_info(name="t", mode="exchange-sim", venue="binance-usdm")
    for i in range(3):
        sym = f"SYM{i}USDT"
        st.set_position(sym, side="long", qty=0.01, entry_price=60_000.0)
    st.set_protection({f"SYM{i}USDT": {"stop_price": 59_900.0 + i, "targets": [60_100.0, 60_200.0]} for i in range(3)})
    st.set_open_orders([{"client_id": f"t{i}-tp{j}", "symbol": f"SYM{i}USDT", "role": "tp", "kind": "LIMIT",
                         "side": "SELL", "qty": 0.005, "price": 60_100.0 + j} for i in range(3) for j in range(4)])
    st.set_symbol_halts({f"SYM{i}USDT": ("stop rejected -4045", 1) for i in range(4)})
    st.on_error("venue", "x" * 300, 2)
    return st.status(2)


def _trade(i: int, r: float = 1.5) -> dict:
    return {"setup": "momentum_pullback_long", "symbol": "BTCUSDT", "side": "long", "entry_price": 60_000.0,
            "exit_price": 59_941.2, "exit_reason": "STOP_LOSS", "pnl": -9.8 + i, "r_multiple": r}


def test_the_stop_targets_and_resting_orders_are_shown() -> None:
    st = RuntimeState(now_ns=1)
    st.set_position("BTCUSDT", side="short", qty=0.079, entry_price=59_945.8)  # as the account refresh gives it
    st.set_protection({"BTCUSDT": {"stop_price": 60_001.0, "targets": [59_761.0, 59_821.0]}})
    st.set_open_orders([{"client_id": "t1-sl", "symbol": "BTCUSDT", "role": "stop", "kind": "STOP_MARKET",
                         "side": "BUY", "qty": 0.079, "price": 60_001.0, "confirmed": True},
                        {"client_id": "t1-tp1", "symbol": "BTCUSDT", "role": "tp", "kind": "LIMIT", "side": "BUY",
                         "qty": 0.039, "price": 59_821.0, "confirmed": False}])
    screen = render(st.status(2), {"BTCUSDT": BOOK}, [], width=80, height=24)
    lines = screen.splitlines()
    i = next(i for i, line in enumerate(lines) if line.startswith("  BTCUSDT") and "stop" in line)
    assert "stop    60,001.0" in lines[i]
    assert lines[i + 1].strip() == "tp 59,761.0 59,821.0"  # at 80 columns on its own line, never cut in a price
    assert all(len(line) <= 80 for line in lines)
    wide = render(st.status(2), {"BTCUSDT": BOOK}, [], width=120, height=24)
    assert "uPnL     0.00  tp 59,761.0 59,821.0" in wide
    assert "open orders (2)" in screen
    assert "t1-sl" in screen and "60,001.0  STOP_MARKET" in screen and "(unacked)" in screen


def test_a_stop_out_shows_its_whole_r_at_80_columns() -> None:
    screen = render({}, {}, [_trade(0, r=-0.98)], width=80)
    line = next(line for line in screen.splitlines() if "STOP_LOSS" in line)
    assert "R  -0.98" in line and "pnl    -9.80" in line, line
    assert all(len(line) <= 80 for line in screen.splitlines())


def test_at_80x24_the_header_stays_and_every_position_is_shown() -> None:
    trades = [_trade(i) for i in range(8)]
    books = {f"SYM{i}USDT": BOOK for i in range(6)}
    screen = render(_busy_status(), books, trades, width=80, height=24)
    lines = screen.splitlines()
    assert len(lines) <= 23, len(lines)  # + the cursor's line = 24: nothing scrolls
    assert lines[0].startswith("scalper exchange-sim on binance-usdm") and lines[1] == "=" * 80
    assert all(len(line) <= 80 for line in lines)
    assert sum(1 for line in lines if "  stop " in line) == 3  # positions are never dropped
    assert "open orders (12)" in screen and any("more" in line for line in lines)
    # on a tall terminal everything is there
    tall = render(_busy_status(), books, trades, width=120, height=80).splitlines()
    assert not any(line.strip().startswith("… ") for line in tall)
    assert sum(1 for line in tall if "STOP_LOSS" in line) == 8


def test_the_view_draws_at_the_terminals_size(monkeypatch) -> None:
    monkeypatch.setattr(terminal.shutil, "get_terminal_size", lambda fallback: os.terminal_size((80, 24)))
    out = io.StringIO()
    TerminalView(out).show(_busy_status(), {f"SYM{i}USDT": BOOK for i in range(6)}, [_trade(i) for i in range(8)])
    drawn = out.getvalue().removeprefix("\x1b[H\x1b[2J")
    assert drawn.count("\n") <= 23 and drawn.startswith("scalper ")
