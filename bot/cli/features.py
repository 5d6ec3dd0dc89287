"""`scalper features FILE [FILE ...] [--symbol S] [--interval 1s] (--csv OUT | --parquet OUT)`.

One row per interval of exchange event time (`E`), intervals aligned to multiples of the interval:

  t_end_ns      interval end (exclusive), exchange time, ns
  mid, microprice, best_bid, best_ask  at the interval end (book after the last depth event before it)
  spread_ticks, imbalance              idem; imbalance over the top 10 levels of each side
  ofi           sum of the Cont-Kukanov-Stoikov e_n of the depth events whose E falls in the interval,
                best-level sizes in base-asset units (e.g. BTC)
  buy_volume, sell_volume, trades      aggressor buy/sell volume (base units) and prints in the interval
  cvd           cumulative (buy - sell) volume since the first row, base units
  depth_events  depth events applied in the interval

Rows start at the first interval in which the book is LIVE. Empty intervals carry zero flow and the
last book values. An event whose E is earlier than the open interval (streams interleave a few ms out
of order) is counted in the open interval.

Replay runs the live path: `read_session` (files merged by receive time) -> the market session
(bot.market.session: parse -> BinanceBookSync -> OrderBook). `replay_events()` here is that driver,
shared by `scalper signals` and the bench. Exit 1 with one line each for a file with no market message,
a snapshot no diff bridged, or a book that never went LIVE; exit 2 for a missing file.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from collections.abc import Iterable, Iterator
from typing import Any

from bot.domain.events import FundingInfo, Trade
from bot.domain.instrument import Instrument
from bot.market.health import BookStatus
from bot.market.session import DepthUpdate, MarketSession
from bot.replay.reader import read_session

__all__ = ["COLUMNS", "Event", "add_arguments", "feature_rows", "parse_interval_ns", "replay_events", "run"]

COLUMNS = ("t_end_ns", "mid", "microprice", "best_bid", "best_ask", "spread_ticks", "imbalance", "ofi",
           "buy_volume", "sell_volume", "trades", "cvd", "depth_events")

# ("depth", symbol, book, status, ts_event_ns, now_ns) | ("trade", Trade, now_ns)
# | ("funding", FundingInfo, now_ns)
Event = tuple[Any, ...]


def replay_events(paths: Iterable[str], instruments: dict[str, Instrument] | None = None,
                  depth_bps: float = 200.0, stats: dict[str, Any] | None = None,
                  progress: bool | None = False, label: str = "replay") -> Iterator[Event]:
    """Replay recorded files (several symbols and days, merged by receive time) through the market
    session (bot.market.session: parse -> sync -> book, as live).

    Yields one "depth" event after every depth message that changed the book (a snapshot counts once,
    with the buffered diffs it applied), and every trade and funding update (bookTickers are skipped
    undecoded: nothing here uses them). At the end `stats` holds "errors" (bad lines, counted and
    skipped), "error_lines" (the first of them, with file and line) and "problems" (files with no
    market message, snapshots no diff bridged, books that never went LIVE: see MarketSession.finish).
    `progress`: a bar on stderr (None: on a terminal only; bot.progress.replay_progress)."""
    from bot.progress import replay_progress

    paths = list(paths)
    ses = MarketSession(dict(instruments or {}), depth_bps, book_tickers=False)
    st = stats if stats is not None else {}
    for rec in replay_progress(read_session(paths), paths, label, progress):
        for out in ses.feed_record(rec):
            t = type(out)
            if t is DepthUpdate:
                sync = out.sync
                yield ("depth", out.symbol, sync.book, sync.health.status, out.ts_event_ns, out.recv_ns)
            elif t is Trade:
                yield ("trade", out, out.ts_recv_ns)
            elif t is FundingInfo:
                yield ("funding", out, out.ts_recv_ns)
    st["errors"] = ses.malformed
    st["error_lines"] = list(ses.errors)
    st["problems"] = ses.finish(paths)
    st["damage"] = ses.damage(paths)


def parse_interval_ns(text: str) -> int:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min)\s*", text)
    if not m:
        raise ValueError(f"interval {text!r}: use e.g. 100ms, 1s, 10s, 1m")
    mult = {"ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000, "min": 60_000_000_000}[m.group(2)]
    ns = int(float(m.group(1)) * mult)
    if ns <= 0:
        raise ValueError(f"interval {text!r} must be > 0")
    return ns


def feature_rows(paths: Iterable[str], interval_ns: int, symbol: str | None = None,
                 instruments: dict[str, Instrument] | None = None,
                 stats: dict[str, Any] | None = None, progress: bool | None = False) -> Iterator[dict[str, Any]]:
    """The rows of `scalper features` (see the module docstring), as dicts."""
    from bot.signals.book_features import BookFeatures

    sym = symbol.upper() if symbol else None
    bf = BookFeatures(imbalance_levels=10, ofi_windows_ns=(interval_ns,))
    inst: Instrument | None = None
    end = 0  # end of the open interval; 0 until the book is live
    ofi = buy = sell = trades = depth_n = cvd = 0
    tick = step = 0.0
    pdec = 8

    def row() -> dict[str, Any]:
        return {"t_end_ns": end, "mid": round(bf.mid_ticks * tick, pdec + 1),
                "microprice": round(bf.microprice_ticks * tick, pdec + 4),
                "best_bid": round(bf.bid_ticks * tick, pdec), "best_ask": round(bf.ask_ticks * tick, pdec),
                "spread_ticks": bf.spread_ticks, "imbalance": round(bf.imbalance, 6),
                "ofi": round(ofi * step, 8), "buy_volume": round(buy * step, 8),
                "sell_volume": round(sell * step, 8), "trades": trades, "cvd": round(cvd * step, 8),
                "depth_events": depth_n}

    for ev in replay_events(paths, instruments, stats=stats, progress=progress, label="features"):
        kind = ev[0]
        if kind == "depth":
            _, s, book, status, ts, _now = ev
            if sym is None:
                sym = s
            if s != sym:
                continue
            if status is not BookStatus.LIVE:
                bf.reset()
                continue
            if inst is None:
                inst = book.instrument
                tick, step, pdec = inst.tick, inst.step, inst.price_decimals
            if end == 0:
                bf.update(book, ts)
                end = ts - ts % interval_ns + interval_ns
                continue
            while ts >= end:
                yield row()
                end += interval_ns
                ofi = buy = sell = trades = depth_n = 0
            e_before = bf.ofi_cum
            bf.update(book, ts)
            ofi += bf.ofi_cum - e_before
            depth_n += 1
        elif kind == "trade":
            tr: Trade = ev[1]
            if end == 0 or (sym is not None and tr.symbol != sym):
                continue
            ts = tr.ts_event_ns
            while ts >= end:
                yield row()
                end += interval_ns
                ofi = buy = sell = trades = depth_n = 0
            lots = int(float(tr.qty) / step + 0.5)
            trades += 1
            if tr.buyer_is_maker:
                sell += lots
                cvd -= lots
            else:
                buy += lots
                cvd += lots
    if end:
        yield row()


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="+", metavar="FILE", help="recorded files (a day pair in order)")
    p.add_argument("--symbol", help="symbol to export (default: the first one with depth)")
    p.add_argument("--interval", default="1s", help="exchange-time interval: 100ms, 1s, 10s, 1m")
    out = p.add_mutually_exclusive_group(required=True)
    out.add_argument("--csv", metavar="OUT", help="write CSV ('-' for stdout)")
    out.add_argument("--parquet", metavar="OUT", help="write Parquet (needs pyarrow)")
    p.add_argument("--exchange-info", metavar="FILE", help="fapi/v1/exchangeInfo JSON for tick/step sizes")


def run(args: argparse.Namespace) -> int:
    try:
        interval_ns = parse_interval_ns(args.interval)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.parquet:
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            print("error: --parquet needs pyarrow, which is not installed (pip install pyarrow); use --csv",
                  file=sys.stderr)
            return 2
    from bot.replay.reader import report_unreadable

    if report_unreadable(args.files):
        return 2
    instruments = None
    if args.exchange_info:
        from bot.venues.binance_usdm.instruments import load_exchange_info

        instruments = load_exchange_info(args.exchange_info)
    stats: dict[str, Any] = {}
    rows = feature_rows(args.files, interval_ns, args.symbol, instruments, stats, progress=None)  # tty only
    n = 0
    if args.csv:
        fh = sys.stdout if args.csv == "-" else open(args.csv, "w", newline="")  # noqa: SIM115
        try:
            w = csv.DictWriter(fh, fieldnames=COLUMNS)
            w.writeheader()
            for r in rows:
                w.writerow(r)
                n += 1
        finally:
            if fh is not sys.stdout:
                fh.close()
    else:
        cols: dict[str, list[Any]] = {c: [] for c in COLUMNS}
        for r in rows:
            for c in COLUMNS:
                cols[c].append(r[c])
            n += 1
        pq.write_table(pa.table(cols), args.parquet)
    if not stats.get("problems"):
        print(f"{n} rows", file=sys.stderr)
    for line in stats.get("damage", ()):
        print(f"warning: {line}", file=sys.stderr)
    for line in stats.get("problems", ()):
        print(f"error: {line}", file=sys.stderr)
    if stats.get("problems"):
        return 1
    if n == 0:
        print("error: no rows (no live book for that symbol in these files)", file=sys.stderr)
        return 1
    return 0
