"""`scalper check-config -c FILE [--json] [--live]`: validate and print the effective config, secrets redacted.

Also runs the live-money guard (bot/guard.py) that `scalper run` runs before connecting: a production host
without `app.mode = "live"`, or a URL override that is not the loopback exchange-sim, fails here too.
Without --live the check assumes `scalper run` gets --live exactly when the config says mode "live"."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import orjson


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", required=True, metavar="FILE", help="TOML config file")
    p.add_argument("--json", action="store_true", help="print the effective config as JSON")
    p.add_argument("--live", action="store_true", help="check as `scalper run --live` would")
    p.add_argument("--venue-fees", action="store_true",
                   help="ask the venue for the account's maker/taker fee rates per symbol (needs keys and network)")


def _fees(settings: object, ask_venue: bool) -> tuple[dict[str, object], str]:
    """The fee rates the cost model will use: the venue's when asked and it answered, else the config's,
    with a line saying which (bot/app_fees.py does the same at `scalper run`)."""
    import asyncio

    from bot.app_fees import describe, load_fee_rates
    from bot.risk.costs import FeeRates

    s: Any = settings
    cfg = FeeRates.from_config(s.risk)
    symbols = list(s.venue.symbols)
    if not ask_venue or s.venue.name not in ("binance-usdm", "bybit"):
        why = "not asked: --venue-fees reads the account's rates" if not ask_venue else f"{s.venue.name}: no endpoint"
        rates = dict.fromkeys(symbols, cfg)
        return {k: vars_of(v) for k, v in rates.items()}, f"fees: {describe(rates)} (venue {why})"

    class _Log:
        def __init__(self) -> None:
            self.errors: list[str] = []

        def warning(self, event: str, **kw: Any) -> None:
            self.errors.append(str(kw.get("error", event)))

    async def ask() -> dict[str, FeeRates]:
        if s.venue.name == "bybit":
            from bot.venues.bybit.gateway import BybitGateway as Gw
        else:
            from bot.venues.binance_usdm.gateway import BinanceGateway as Gw  # type: ignore[assignment]
        gw = Gw(s.venue)
        try:
            await asyncio.wait_for(gw.start(autorun=False), 8)
            return await load_fee_rates(gw, symbols, cfg, log)
        finally:
            await gw.close()

    log = _Log()
    try:
        rates = asyncio.run(ask())
    except Exception as e:  # unreachable venue, bad keys: say so, the config's rates apply
        rates = dict.fromkeys(symbols, cfg)
        log.errors.append(f"{type(e).__name__}: {e}"[:200])
    line = f"fees: {describe(rates)}"
    if log.errors:
        line += f" (venue not reached: {log.errors[0]})"
    return {k: vars_of(v) for k, v in rates.items()}, line


def vars_of(r: Any) -> dict[str, object]:
    return {"maker_bps": r.maker_bps, "taker_bps": r.taker_bps, "source": r.source}


def run(args: argparse.Namespace) -> int:
    from bot.cli.preflight import check_instruments
    from bot.guard import check
    from bot.settings import load_settings, redacted
    from bot.signals.plugins import describe, load_plugins

    settings = load_settings(args.config)
    live = settings.app.mode == "live"
    check(settings, live_flag=args.live or live)
    check_instruments(settings)  # the same symbol check `scalper run` makes before it connects
    eff = redacted(settings)
    # strategy plug-ins ([signals.plugins.NAME]) are imported, instantiated and listed: a bad one -> exit 2
    plugins = [describe(p) for p in load_plugins(settings.signals)]
    fees, fees_line = _fees(settings, getattr(args, "venue_fees", False))
    if args.json:
        sys.stdout.write(orjson.dumps({"ok": True, "config": eff, "plugins": plugins, "fees": fees},
                                      option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    print(f"{args.config}: OK" + ("  (real money: `scalper run` needs --live)" if live else ""))
    for section, values in eff.items():
        print(f"[{section}]")
        for k, v in values.items():
            print(f"  {k} = {orjson.dumps(v).decode()}")
    if plugins:
        print("strategy plug-ins (loaded):")
    for d in plugins:
        print(f"  {d['name']}: {d['source']}, called on {d['called']}; cooldown {d['cooldown_s']:g} s, time limit "
              f"{d['time_limit_s']:g} s, stop +{d['stop_buffer_bps']:g} bps in [{d['min_stop_bps']:g}, "
              f"{d['max_stop_bps']:g}] bps, TP {d['tp_r_multiples']} R x {d['tp_fractions']}")
    print(fees_line)
    return 0
