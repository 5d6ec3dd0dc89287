"""`scalper conformance -c CONFIG [--json] [--live]`: check the configured venue against what the bot relies on.

Binance USD-M (bot/conformance/binance.py) or Bybit v5 (bybit.py), by venue.name. A minimum-size lifecycle
(server time and skew, instrument filters, leverage, a post-only limit and a stop far from the market placed,
looked up and cancelled, their user-stream events, the "would trigger" code, rate-limit headers), each step
pass/fail with the deviation in words (docs/conformance.md).
Exit 0 when every step passes, 1 on any failure, 2 for a refused config (mainnet without `--live`: the
live-money guard, bot/guard.py, as for `scalper run`). Meant for a daily timer (deploy/).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TYPE_CHECKING

import orjson

if TYPE_CHECKING:
    from bot.conformance.report import Report
    from bot.settings import Settings

_RUN_TIMEOUT_S = 120.0  # the whole run; each event wait is 10 s, so this only stops a hung venue


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", metavar="CONFIG", required=True, help="TOML config of the venue to check")
    p.add_argument("--json", action="store_true", help="one JSON object: venue, environment, passed, steps")
    p.add_argument("--live", action="store_true",
                   help="allow mainnet (real money: places and cancels minimum-size orders far from the market)")


def run(args: argparse.Namespace) -> int:
    from bot.errors import ConfigError
    from bot.guard import check as check_live_guard
    from bot.logging import configure_logging
    from bot.settings import load_settings

    settings = load_settings(args.config)
    venue = settings.venue
    if venue.name not in ("binance-usdm", "bybit"):
        raise ConfigError(f"conformance checks venue.name = 'binance-usdm' or 'bybit' (this config: {venue.name!r})")
    if venue.environment == "mainnet" and not args.live:
        raise ConfigError("conformance against mainnet places real orders: pass --live (and app.mode = 'live')")
    check_live_guard(settings, args.live)  # production hosts, loopback-only URL overrides (exit 2)
    configure_logging("WARNING", "json")  # the venue code's own log lines to stderr; the verdict to stdout
    from bot.conformance.report import Report, Step

    if venue.name == "bybit":
        from bot.conformance.bybit import run_bybit as run_venue
    else:
        from bot.conformance.binance import run_binance as run_venue

    async def go() -> Report:
        try:
            report = await asyncio.wait_for(run_venue(settings), timeout=_RUN_TIMEOUT_S)
        except TimeoutError:
            report = Report(venue.name, venue.environment, [Step(
                "run", False, f"no verdict within {_RUN_TIMEOUT_S:.0f} s (the venue hung)", _RUN_TIMEOUT_S * 1000)])
        if not report.passed:
            await _alert(settings, report)
        return report

    report = asyncio.run(go())
    if args.json:
        sys.stdout.write(orjson.dumps(report.as_json()).decode() + "\n")
    else:
        print(report.as_text())
    return 0 if report.passed else 1


async def _alert(settings: Settings, report: Report) -> None:
    """A failed run alerts through the bot's own channels (ops.alerts: webhook / Telegram, kind `error`), so
    a daily timer needs nothing else to tell the operator; the exit status 1 stays for systemd's OnFailure."""
    from bot.ops.alerts import Alerts

    alerts = Alerts(settings.ops.alerts, name=settings.app.name)
    if not alerts.has_sinks:
        return
    failed = [s for s in report.steps if not s.passed]
    text = f"{report.venue} ({report.environment}): {len(failed)} step(s) failed: " + "; ".join(
        f"{s.name}: {s.detail}" for s in failed)
    alerts.error("conformance", text[:3000], failed=[s.name for s in failed])
    task = asyncio.get_running_loop().create_task(alerts.run())
    try:
        await alerts.flush(settings.ops.alerts.send_timeout_ms / 1000 + 1.0)
    finally:
        task.cancel()
