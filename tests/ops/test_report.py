"""`scalper report` on a journal written through bot.journal.Journal (the engine's own API)."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
import zlib
from html.parser import HTMLParser
from pathlib import Path

import pytest

from bot.__main__ import main
from bot.journal import Journal

S = 1_763_700_000 * 10**9  # 2025-11-21 04:40:00 UTC


def _trade(j: Journal, tid: str, symbol: str, setup: str, side: str, t0: int, *, intent: float, fill: float,
           stop: float, tp: float, exit_price: float, reason: str, pnl: float, r: float, qty: float = 0.01,
           stop_confirm_ms: float = 40.0) -> None:
    buy, sell = ("BUY", "SELL") if side == "long" else ("SELL", "BUY")
    j.open_trade(t0, {"trade_id": tid, "symbol": symbol, "setup": setup, "side": side, "intent_ts_ns": t0,
                      "intent_price": intent, "planned_qty": qty, "planned_stop_price": stop,
                      "risk_budget": abs(pnl / r)},
                 [{"client_id": f"{tid}-entry", "trade_id": tid, "role": "entry", "symbol": symbol, "side": buy,
                   "kind": "MARKET", "qty": qty, "intended_price": intent, "status": "PENDING_NEW"}],
                 "PLANNED")
    # the entry leg is written 0.2 ms after the signal; acked 3 ms later; the fill is received 1 ms after the
    # ack, but the venue stamped it 2 ms after the send: before its ack reached us (a loopback taker order)
    j.add_leg(t0 + 200_000, {"client_id": f"{tid}-entry", "trade_id": tid, "role": "entry", "symbol": symbol,
                             "side": buy, "kind": "MARKET", "qty": qty, "intended_price": intent,
                             "status": "PENDING_NEW"})
    j.order_event(t0 + 3_200_000, tid, f"{tid}-entry", "NEW")
    j.fill(t0 + 2_200_000, tid, f"{tid}-entry", "entry", buy, qty, fill, 0.1, False, "v1", "FILLED", qty, fill)
    for leg, kind, price in (("sl", "STOP_MARKET", stop), ("tp1", "TAKE_PROFIT_MARKET", tp)):
        j.add_leg(t0 + 5_000_000, {"client_id": f"{tid}-{leg}", "trade_id": tid, "role": "stop" if leg == "sl"
                                   else "tp", "symbol": symbol, "side": sell, "kind": kind, "qty": qty,
                                   "intended_price": price, "trigger_price": price, "reduce_only": True,
                                   "status": "NEW"})
    exit_leg, exit_role = (f"{tid}-sl", "stop") if reason == "STOP_LOSS" else (f"{tid}-tp1", "tp")
    t_exit = t0 + 30 * 10**9
    j.fill(t_exit, tid, exit_leg, exit_role, sell, qty, exit_price, 0.1, False, "v2", "FILLED", qty, exit_price)
    j.trade_state(t_exit, tid, "OPEN", "CLOSED", reason, {
        "entry_ts_ns": t0 + 4_200_000, "entry_price": fill, "qty": qty, "stop_price": stop,
        "stop_confirm_ms": stop_confirm_ms, "exit_ts_ns": t_exit, "exit_price": exit_price, "exit_reason": reason,
        "pnl": pnl, "fees": 0.2, "r_multiple": r, "mae_ticks": 4.0, "mfe_ticks": 6.0, "mae_r": 0.25 * abs(r),
        "mfe_r": 0.5 * abs(r)})


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    path = tmp_path / "journal.sqlite"
    j = Journal(str(path))
    # BTC tick 0.10: entry filled 2 ticks worse than the signal; stop slipped 1 tick.
    _trade(j, "t1", "BTCUSDT", "momentum", "long", S, intent=60000.0, fill=60000.2, stop=59950.0, tp=60100.0,
           exit_price=59949.9, reason="STOP_LOSS", pnl=-5.0, r=-1.0)
    # ETH tick 0.01: short filled 1 tick better than the signal.
    _trade(j, "t2", "ETHUSDT", "absorption", "short", S + 3600 * 10**9, intent=3000.00, fill=3000.01,
           stop=3005.0, tp=2990.0, exit_price=2990.0, reason="TAKE_PROFIT", pnl=10.0, r=2.0,
           stop_confirm_ms=2500.0)
    _trade(j, "t3", "BTCUSDT", "momentum", "long", S + 7200 * 10**9, intent=60500.0, fill=60500.0,
           stop=60450.0, tp=60540.0, exit_price=60540.0, reason="TAKE_PROFIT", pnl=4.0, r=0.8)
    j.close()
    return path


def test_report_json_stats(journal: Path, capsys):
    assert main(["report", "--db", str(journal), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    for key in ("overall", "by_setup", "by_symbol", "by_hour", "slippage", "stops", "latency"):
        assert key in rep, key
    o = rep["overall"]
    assert (o["trades"], o["wins"], o["losses"]) == (3, 2, 1)
    assert o["win_rate"] == pytest.approx(2 / 3, abs=1e-4)
    assert o["total_pnl_quote"] == pytest.approx(9.0)
    assert o["expectancy_quote"] == pytest.approx(3.0)
    assert o["expectancy_r"] == pytest.approx((-1.0 + 2.0 + 0.8) / 3, abs=1e-4)
    assert o["profit_factor"] == pytest.approx(14.0 / 5.0)
    assert o["max_drawdown_quote"] == pytest.approx(5.0)  # -5 first, then recovered
    assert o["hold_s"]["median"] == pytest.approx(30 - 0.0042, abs=1e-3)
    assert rep["by_setup"]["momentum"]["trades"] == 2 and rep["by_symbol"]["ETHUSDT"]["trades"] == 1
    assert set(rep["by_hour"]) == {"4", "5", "6"}
    sig = rep["slippage"]["signal_to_entry_fill"]["ticks"]
    assert sig["n"] == 3 and sig["max"] == pytest.approx(2.0)  # t1: 60000.0 -> 60000.2 = 2 ticks adverse
    assert sig["mean"] == pytest.approx((2.0 - 1.0 + 0.0) / 3, abs=1e-3)  # t2 short filled 1 tick better
    st = rep["stops"]
    assert st["stop_exits"] == 1 and st["slippage_ticks"]["mean"] == pytest.approx(1.0)
    assert st["all_stops_respected"] is True and st["not_confirmed_in_time"] == 1  # t2: 2500 ms > 2000
    lat = rep["latency"]
    assert lat["signal_to_order_ms"]["median"] == pytest.approx(0.2)
    assert lat["order_to_ack_ms"]["median"] == pytest.approx(3.0)
    assert lat["ack_to_fill_ms"]["median"] == pytest.approx(1.0)  # was -1.0: venue fill time - our ack time
    assert lat["signal_to_fill_ms"]["median"] == pytest.approx(4.2)
    assert lat["venue_fill_to_receive_ms"]["median"] == pytest.approx(2.0)  # the two-clock step, named apart
    assert rep["verdict"].startswith("Net expectancy is positive")


def test_report_filters_csv_and_table(journal: Path, tmp_path: Path, capsys):
    out_csv = tmp_path / "trades.csv"
    assert main(["report", "--db", str(journal), "--setup", "momentum", "--since", "2025-11-21T05:00",
                 "--csv", str(out_csv)]) == 0
    text = capsys.readouterr().out
    assert "OVERALL" in text and "setup momentum" in text and "absorption" not in text
    rows = list(csv.DictReader(out_csv.open()))
    assert [r["trade_id"] for r in rows] == ["t3"]
    assert float(rows[0]["pnl"]) == 4.0


class _Svg(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.svgs: dict[str, dict[str, int]] = {}
        self._cur: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "svg":
            self._cur = a.get("id")
            self.svgs[self._cur] = {}
        elif self._cur and tag in ("path", "rect", "circle", "line"):
            if tag == "path" and not a.get("d"):
                return
            self.svgs[self._cur][tag] = self.svgs[self._cur].get(tag, 0) + 1

    def handle_endtag(self, tag):
        if tag == "svg":
            self._cur = None


def test_html_report_has_non_empty_charts(journal: Path, tmp_path: Path):
    out = tmp_path / "report.html"
    assert main(["report", "--db", str(journal), "--html", str(out), "--json"]) == 0
    p = _Svg()
    p.feed(out.read_text())
    assert p.svgs["equity"]["path"] >= 1 and p.svgs["drawdown"]["path"] >= 2
    assert p.svgs["r-hist"]["rect"] == 3  # bins -1.0, +0.5, +2.0
    assert p.svgs["slippage"]["rect"] == 2  # two setups
    for tid in ("t1", "t2", "t3"):
        chart = p.svgs[f"trade-{tid}"]
        assert chart["circle"] == 2 and chart["line"] >= 4  # exit mark + signal price; axes + target


def _chromium() -> str | None:
    """A Chromium binary (`make test` installs Debian's chromium first where it can: root and apt)."""
    for name in ("chromium", "chromium-browser", "google-chrome", "headless_shell"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def _headless(browser: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.slow
def test_html_report_renders_in_headless_chromium(journal: Path, tmp_path: Path):
    browser = _chromium()
    if browser is None:
        pytest.skip("no Chromium binary on this machine (`make test` installs it where it is root with apt)")
    out = tmp_path / "report.html"
    assert main(["report", "--db", str(journal), "--html", str(out), "--json"]) == 0
    dom = _headless(browser, "--virtual-time-budget=2000", "--window-size=1400,900", "--dump-dom", out.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    # The page's script wrote the geometry Chromium laid out for each chart.
    laid = dict(re.findall(r'<svg id="([^"]+)"[^>]*data-bbox="([^"]+)"', dom.stdout))
    marks = dict(re.findall(r'<svg id="([^"]+)"[^>]*data-marks="(\d+)"', dom.stdout))
    for cid in ("equity", "drawdown", "daily", "r-hist", "mae-mfe", "slippage", "latency", "trade-t1", "trade-t2",
                "trade-t3"):
        w, h = (float(v) for v in laid[cid].split("x"))
        assert w > 100 and h > 50, (cid, laid[cid])
        assert int(marks[cid]) >= 1, (cid, marks[cid])
    assert int(marks["mae-mfe"]) == 3 and int(marks["equity"]) >= 4  # a point per trade; the line + 3 points
    # nothing wider than a 1,400 px window (the tables used to overflow it)
    width = int(re.search(r'data-scroll-width="(\d+)"', dom.stdout).group(1))
    assert width <= 1400, width
    # time axes: the equity and per-trade charts carry UTC time labels
    assert re.search(r'<svg id="equity".*?class="tlabel"[^>]*>0[4-6]:\d\d<', dom.stdout, re.S)
    assert re.search(r'<svg id="trade-t1".*?class="tlabel"[^>]*>04:40:\d\d', dom.stdout, re.S)
    # Screenshot: the report's pixels carry far more information than a blank page of the same size.
    blank = tmp_path / "blank.html"
    blank.write_text("<!doctype html><html><body></body></html>")
    shots = []
    for page in (out, blank):
        shot = tmp_path / f"{page.stem}.png"
        r = _headless(browser, f"--screenshot={shot}", "--window-size=900,1400", page.as_uri())
        assert r.returncode == 0 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", r.stderr[-2000:]
        shots.append(len(zlib.compress(shot.read_bytes())))
    assert shots[0] > 5 * shots[1], shots


def test_html_plain_numbers_zero_baselines_and_verdict_first(journal: Path, tmp_path: Path):
    """No number in scientific notation; every value axis spans 0 and draws its zero line; a negative bar
    hangs below it; the page's first line is the verdict."""
    from bot.journal.report import build_report, load_journal
    from bot.journal.report_html import render_html

    rep = build_report(load_journal(str(journal)))
    # one setup with favourable (negative) mean slippage: its bar must hang below the zero line
    rep["slippage"]["by_setup"]["absorption"]["ticks"]["mean"] = -1.5
    page = render_html(rep)
    assert not re.search(r"\d\.?\d*e[+-]\d", page), re.search(r".{40}\d\.?\d*e[+-]\d.{20}", page)
    assert "60000.2" in page and "60540" in page  # prices as written, not 6.000e+04
    # per trade: cost at entry, gross/fees/net and the liquidity of each fill (counted per direction)
    trades = re.search(r'<table id="trades">.*?</table>', page, re.S).group(0)
    assert trades.count("in 1 taker; out 1 taker") == 3 and "cost R" in trades and "fees" in trades
    body = page[page.index("<body>") + len("<body>"):]
    assert body.startswith('<p id="verdict">') and rep["verdict"] in body[:400]
    svg = re.search(r'<svg id="slippage".*?</svg>', page, re.S).group(0)
    zero = float(re.search(r'class="zero"[^>]*y1="([\d.]+)"', svg).group(1))
    bars = re.findall(r'<rect class="bar" x="[\d.]+" y="([\d.]+)" width="[\d.]+" height="([\d.]+)"[^>]*><title>'
                      r'([^:]+): ([-\d.]+)', svg)
    assert {b[2] for b in bars} == {"absorption", "momentum"}
    for top, height, _name, value in bars:
        if float(value) < 0:
            assert float(top) == pytest.approx(zero, abs=0.2), (top, zero)  # starts at 0, grows down
        else:
            assert float(top) + float(height) == pytest.approx(zero, abs=0.6)  # ends at 0
    # MAE/MFE are in the text report too, not only in --json
    assert "MAE / MFE" in _text(journal)


def _text(journal: Path) -> str:
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["report", "--db", str(journal)]) == 0
    return buf.getvalue()
