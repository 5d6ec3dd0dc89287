"""`scalper exchange-sim`: the Binance USD-M (and Bybit v5 linear) compatible exchange simulator on 127.0.0.1
(one port for REST and websockets of both protocols). Routes, fault injection and the state endpoint:
docs/exchange-sim.md."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

import orjson

__all__ = ["add_arguments", "run"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", type=int, default=18080, help="TCP port on 127.0.0.1 (0: any free port)")
    p.add_argument("--source", nargs="+", default=["generated"], metavar="generated|FILE",
                   help="'generated' (seeded market generator) or recorded session files, in order")
    p.add_argument("--api-key", default="sim-key", help="the API key clients must send (X-MBX-APIKEY)")
    p.add_argument("--api-secret", default="sim-secret", help="the HMAC secret requests are signed with")
    p.add_argument("--seed", type=int, default=None, help="generator seed (default: [sim] seed)")
    p.add_argument("--speed", type=float, default=1.0, help="replay speed of a recorded session (x real time)")
    p.add_argument("--symbols", default="",
                   help="generated symbols, comma-separated, or a count N (the N most traded USD-M perps); "
                   "instruments of unknown symbols are derived (docs/exchange-sim.md) (default: [venue] symbols)")
    p.add_argument("--fault", action="append", default=[], metavar="JSON",
                   help='a fault active from the start, e.g. \'{"kind": "clock_skew_ms", "ms": 1500}\'')
    p.add_argument("--config", default=None, help="config file (the [sim] section is used)")
    p.add_argument("--protocol", choices=("both", "binance", "bybit"), default="both",
                   help="which venue's API to serve (default both, on the same port and engine)")
    p.add_argument("--unlimited", action="store_true",
                   help="lift the request-rate limits (weight/min, orders/10 s, orders/min): benchmarks only")


async def _serve(args: argparse.Namespace) -> int:
    from bot.settings import load_settings
    from bot.venues.sim.server import build_server
    from bot.venues.sim.symbols import parse_symbols

    settings = load_settings(args.config)
    symbols = parse_symbols(args.symbols) or settings.venue.symbols
    faults = [orjson.loads(f) for f in (*settings.sim.server_faults, *args.fault)]
    server = build_server(args.source, cfg=settings.sim, symbols=symbols, seed=args.seed, port=args.port,
                          api_key=args.api_key, api_secret=args.api_secret, speed=args.speed, faults=faults)
    if args.unlimited:  # `bench latency --venue exchange-sim` sends more than 300 orders in 10 s
        lim = server.limits
        lim.WEIGHT_1M = lim.ORDERS_10S = lim.ORDERS_1M = 10**9
    server.protocols = ("binance", "bybit") if args.protocol == "both" else (args.protocol,)
    port = await server.start()
    if args.unlimited and getattr(server, "bybit", None) is not None:  # Bybit's per-UID limits too
        server.bybit.uid_limits.unlimited = True
    served = []
    if "binance" in server.protocols:
        served.append("REST /fapi/v1, ws /public /market /private")
    if "bybit" in server.protocols:
        served.append("Bybit REST /v5, ws /v5/public/linear /v5/private")
    print(f"exchange-sim ready on http://127.0.0.1:{port}  ({'; '.join(served)}; "
          f"control /_sim/fault /_sim/state)", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop()
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        import uvloop

        return uvloop.run(_serve(args))
    except ImportError:
        return asyncio.run(_serve(args))
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
