"""`scalper record --venue binance-usdm|bybit --symbols BTCUSDT,ETHUSDT --out FILE.gz ...`

Records every raw public market message of the venue (depth, best bid/ask, trades, mark price /
tickers) as `<receive time ns> <raw JSON>` per line, with Binance REST depth snapshots inline as
received. The book syncs run while recording, so gaps trigger the same resyncs (and snapshots in the
file) as live trading. SIGINT/SIGTERM stop cleanly: every received line is written and the gzip
file is closed properly. Endpoints come from the config's [venue] section (environment and overrides).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import Any


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--venue", required=True, choices=["binance-usdm", "bybit"])
    p.add_argument("--symbols", required=True, help="comma-separated, e.g. BTCUSDT,ETHUSDT")
    p.add_argument("--out", required=True, metavar="FILE.gz",
                   help="output; with --rotate-* the parts are FILE-0001.gz, FILE-0002.gz, ... (a glob lists "
                        "them in order; give them to check-data in that order)")
    p.add_argument("--duration-s", type=float, default=0.0, help="stop after this many seconds (0: until signalled)")
    p.add_argument("--rotate-mb", type=float, default=0.0, help="start a new part after this many MB (compressed)")
    p.add_argument("--rotate-minutes", type=float, default=0.0, help="start a new part after this many minutes")
    p.add_argument("-c", "--config", metavar="FILE", help="TOML config (venue environment/URLs, market settings)")


def run(args: argparse.Namespace) -> int:
    from bot.logging import configure_logging
    from bot.settings import load_settings

    symbols = [s.strip().upper() for s in args.symbols.split(",") if s.strip()]
    settings = load_settings(args.config, overrides={"venue": {"name": args.venue, "symbols": symbols}})
    configure_logging(settings.log.level, settings.log.format)
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
        runner = asyncio.run
    return int(runner(_record(args, settings)))


async def _record(args: argparse.Namespace, settings: Any) -> int:
    from bot.replay.recorder import Recorder

    rec = Recorder(args.out, rotate_bytes=int(args.rotate_mb * 1024 * 1024), rotate_s=args.rotate_minutes * 60)
    feed = _make_feed(args.venue, settings, rec.write)
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    stop_reason = "duration reached"
    signalled: list[str] = []

    def on_signal(name: str) -> None:
        signalled.append(name)
        task.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig.name)
    try:
        async with asyncio.timeout(args.duration_s or None):
            await feed.run()
    except TimeoutError:
        pass
    except asyncio.CancelledError:
        if not signalled:
            raise
        task.uncancel()
        stop_reason = f"{signalled[0]} received"
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        rec.close()  # drains the queue: every received line is on disk
    print(f"recorded {rec.lines} messages to {', '.join(rec.paths)} ({stop_reason})", file=sys.stderr)
    return 0


def _make_feed(venue: str, settings: Any, on_raw: Any) -> Any:
    if venue == "binance-usdm":
        from bot.venues.binance_usdm.feed import BinanceMarketFeed

        return BinanceMarketFeed(settings.venue, settings.market, {}, lambda ev: None, on_raw=on_raw)
    from bot.venues.bybit.feed import BybitMarketFeed

    return BybitMarketFeed(settings.venue, settings.market, {}, lambda ev: None, on_raw=on_raw)
