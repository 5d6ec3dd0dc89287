"""`scalper` command line (also `python -m bot`).

Sub-commands are imported lazily from bot/cli/<module>.py so that `scalper --help` and the data
tools start fast and never import ccxt unless the sub-command needs it. Each module exposes
`add_arguments(parser)` and `run(args) -> int`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from types import ModuleType

# name -> (module under bot.cli, one-line help). Keep alphabetical within each group.
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("run", "run the bot with a config (default: the embedded simulator, no keys, no network)"),
    "record": ("record", "record raw venue messages to a gzip file (<recv ns> <json> per line)"),
    "check-data": ("check_data", "replay recorded files through parse->sync->DOM and audit gaps/crossed/BBO"),
    "features": ("features", "export per-interval order-flow features of a recorded session (CSV/Parquet)"),
    "signals": ("signals", "replay a recorded session through the signal layer and list entry intents"),
    "backtest": ("backtest", "run the whole bot on a recorded session with the simulator"),
    "research": ("research", "signal studies, parameter sweeps (Optuna; local pool or Ray), validation"),
    "trades": ("trades", "list the trades in a journal"),
    "report": ("report", "journal review: stats, slippage, stops, latency; table/JSON/CSV/HTML"),
    "status": ("control", "print the running bot's state from its health endpoint"),
    "halt": ("control", "halt new entries in the running bot"),
    "resume": ("control", "resume trading in the running bot"),
    "flatten": ("control", "flatten every position of the running bot"),
    "reset-limits": ("control", "start fresh daily-loss and drawdown baselines in the running bot (--yes)"),
    "check-config": (
        "check_config",
        "validate a config file and print the effective config (secrets redacted)",
    ),
    "bench": ("bench", "benchmarks: book, sim, signals, latency"),
    "exchange-sim": ("exchange_sim", "serve the Binance-compatible loopback exchange simulator"),
    "conformance": ("conformance", "check the configured venue answers as the bot relies on (exit 1 on a deviation)"),
    "drill": ("drill", "fault drills against the loopback exchange (real processes): naked time, journal, survival"),
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scalper", description="Low-latency crypto-futures scalping bot.")
    parser.add_argument("--version", action="version", version=f"scalper {version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (mod, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        if name == only:
            module = importlib.import_module(f"bot.cli.{mod}")
            module.add_arguments(p, name) if _takes_name(module) else module.add_arguments(p)
    return parser


def version() -> str:
    """The installed package's version (pyproject.toml); a source tree that is not installed says so."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("scalper")
    except PackageNotFoundError:
        return "unknown (not installed: pip install -e .)"


def _takes_name(module: ModuleType) -> bool:
    fn = module.add_arguments
    return fn.__code__.co_argcount == 2


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    if command not in COMMANDS or "--version" in argv[: argv.index(command)]:
        build_parser().parse_args(argv or ["--help"])
        return 2
    parser = build_parser(only=command)
    args = parser.parse_args(argv)
    module = importlib.import_module(f"bot.cli.{COMMANDS[command][0]}")
    from bot.errors import ConfigError

    try:
        return int(module.run(args) or 0)
    except ConfigError as e:  # a bad config or flag, whichever command met it: one line, exit 2
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `scalper ... | head`: the reader left; not an error of ours
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
