"""Generate the documented example configs in config/ from the settings models themselves.

Every key of every section is written with its comment (taken from the model: `description=`, the
comment lines above the field and its inline comment), its allowed values or range, and either the
value this example sets or, commented out, the model's default. Secrets are never written: their
comment names the environment variable instead. So the examples cannot drift from the models:

    .venv/bin/python -m bot.ops.configdoc config/        # rewrite the example files
    .venv/bin/python -m bot.ops.configdoc --check config/   # exit 1 when a file is out of date

tests/ops/test_configs.py fails (with that command in its message) when a section gained a key the
examples do not show yet. config/default.toml is not generated (the lead owns it).
"""

from __future__ import annotations

import argparse
import ast
import inspect
import io
import json
import sys
import tokenize
import typing
from pathlib import Path
from typing import Any, TypeGuard

import annotated_types
from pydantic import BaseModel, SecretStr

__all__ = ["EXAMPLES", "field_paths", "main", "render"]

_SIM_URL = "127.0.0.1:18080"
_DATA_URL = "127.0.0.1:18081"  # shadow-exchange-sim.toml: the loopback exchange playing mainnet

# file -> (header, overrides {section: {key: value}}); nested sections as "ops.alerts".
EXAMPLES: dict[str, tuple[str, dict[str, dict[str, Any]]]] = {
    "exchange-sim.toml": (
        "The real Binance venue code (ccxt + websockets) against the loopback exchange simulator.\n"
        "Start the simulator first:   scalper exchange-sim            (serves 127.0.0.1:18080)\n"
        "Its default key pair, from the environment (never in this file):\n"
        "  export SCALPER__VENUE__API_KEY=sim-key SCALPER__VENUE__API_SECRET=sim-secret\n"
        "Then:                        scalper run -c config/exchange-sim.toml",
        {"app": {"mode": "exchange-sim", "name": "scalper-exchange-sim"},
         "venue": {"name": "binance-usdm", "environment": "exchange-sim",
                   "rest_url": f"http://{_SIM_URL}", "ws_public_url": f"ws://{_SIM_URL}/public",
                   "ws_market_url": f"ws://{_SIM_URL}/market", "ws_private_url": f"ws://{_SIM_URL}/private"},
         "journal": {"path": "journal-exchange-sim.sqlite"}},
    ),
    "exchange-sim-bybit.toml": (
        "The real Bybit v5 venue code (ccxt + websockets) against the loopback exchange simulator's Bybit\n"
        "protocol (same process and port as the Binance one: /v5/..., ws /v5/public/linear, /v5/private).\n"
        "Start the simulator first:   scalper exchange-sim --protocol bybit   (serves 127.0.0.1:18080)\n"
        "Its default key pair, from the environment (never in this file):\n"
        "  export SCALPER__VENUE__API_KEY=sim-key SCALPER__VENUE__API_SECRET=sim-secret\n"
        "Then:                        scalper run -c config/exchange-sim-bybit.toml",
        {"app": {"mode": "exchange-sim", "name": "scalper-exchange-sim-bybit"},
         "venue": {"name": "bybit", "environment": "exchange-sim",
                   "rest_url": f"http://{_SIM_URL}", "ws_public_url": f"ws://{_SIM_URL}/v5/public/linear",
                   "ws_private_url": f"ws://{_SIM_URL}/v5/private"},
         "journal": {"path": "journal-exchange-sim-bybit.sqlite"}},
    ),
    "binance-demo.toml": (
        "Binance USD-M demo trading (keys from demo.binance.com; REST demo-fapi.binance.com).\n"
        "  export SCALPER__VENUE__API_KEY=... SCALPER__VENUE__API_SECRET=...   (or venue.secrets_file)\n"
        "  scalper run -c config/binance-demo.toml",
        {"app": {"mode": "demo", "name": "scalper-binance-demo"},
         "venue": {"name": "binance-usdm", "environment": "demo"},
         "journal": {"path": "journal-binance-demo.sqlite"}},
    ),
    "binance-testnet.toml": (
        "Binance USD-M legacy futures testnet (testnet.binancefuture.com; keys from that site).\n"
        "ccxt has deprecated this sandbox in favour of demo trading; prefer binance-demo.toml.\n"
        "  export SCALPER__VENUE__API_KEY=... SCALPER__VENUE__API_SECRET=...   (or venue.secrets_file)\n"
        "  scalper run -c config/binance-testnet.toml",
        {"app": {"mode": "testnet", "name": "scalper-binance-testnet"},
         "venue": {"name": "binance-usdm", "environment": "testnet"},
         "journal": {"path": "journal-binance-testnet.sqlite"}},
    ),
    "bybit-testnet.toml": (
        "Bybit v5 linear on testnet (api-testnet.bybit.com; keys from testnet.bybit.com).\n"
        "  export SCALPER__VENUE__API_KEY=... SCALPER__VENUE__API_SECRET=...   (or venue.secrets_file)\n"
        "  scalper run -c config/bybit-testnet.toml",
        {"app": {"mode": "testnet", "name": "scalper-bybit-testnet"},
         "venue": {"name": "bybit", "environment": "testnet"},
         "journal": {"path": "journal-bybit-testnet.sqlite"}},
    ),
    "bybit-demo.toml": (
        "Bybit v5 linear demo trading (api-demo.bybit.com for orders; public data from mainnet, as\n"
        "Bybit requires). Demo keys are created inside the mainnet account's demo-trading mode.\n"
        "  export SCALPER__VENUE__API_KEY=... SCALPER__VENUE__API_SECRET=...   (or venue.secrets_file)\n"
        "  scalper run -c config/bybit-demo.toml",
        {"app": {"mode": "demo", "name": "scalper-bybit-demo"},
         "venue": {"name": "bybit", "environment": "demo"},
         "journal": {"path": "journal-bybit-demo.sqlite"}},
    ),
    "paper-binance.toml": (
        "Paper trading on Binance USD-M MAINNET public data (order book, trades, mark price and funding),\n"
        "orders filled by the bot's own matching engine in process: queue position, order latency, fees,\n"
        "balance and leverage from the [sim] section. No API key, no private endpoint, no --live: paper\n"
        "mode has no way to send an order to the venue. Journal and reports exactly as live.\n"
        "  scalper run -c config/paper-binance.toml",
        {"app": {"mode": "paper", "name": "scalper-paper-binance"},
         "venue": {"name": "binance-usdm", "environment": "mainnet"},
         "journal": {"path": "journal-paper-binance.sqlite"}},
    ),
    "paper-bybit.toml": (
        "Paper trading on Bybit v5 linear MAINNET public data (orderbook, publicTrade, tickers), orders\n"
        "filled by the bot's own matching engine in process (queue position, latency, fees: [sim]).\n"
        "No API key, no private endpoint, no --live. Journal and reports exactly as live.\n"
        "  scalper run -c config/paper-bybit.toml",
        {"app": {"mode": "paper", "name": "scalper-paper-bybit"},
         "venue": {"name": "bybit", "environment": "mainnet"},
         "journal": {"path": "journal-paper-bybit.sqlite"}},
    ),
    "shadow-binance-demo.toml": (
        "Shadow mode: Binance USD-M MAINNET public data drive the bot, its orders go to the Binance DEMO\n"
        "account (demo-fapi.binance.com, demo keys), and the bot's own matching engine paper-fills the same\n"
        "orders on the same mainnet data. `scalper report --shadow` compares the two per trade: fill price,\n"
        "slippage, missed fills, latency, fees, PnL (docs/shadow.md). No order ever reaches mainnet.\n"
        "  export SCALPER__VENUE__API_KEY=... SCALPER__VENUE__API_SECRET=...   (demo keys; or venue.secrets_file)\n"
        "  scalper run -c config/shadow-binance-demo.toml",
        {"app": {"mode": "shadow", "name": "scalper-shadow-binance"},
         "venue": {"name": "binance-usdm", "environment": "demo"},
         "shadow": {"data_environment": "mainnet"},
         "journal": {"path": "journal-shadow-binance.sqlite"}},
    ),
    "shadow-exchange-sim.toml": (
        "Shadow mode on two loopback exchanges: one plays mainnet (its public data drive the bot), the\n"
        "other the demo account the orders go to (docs/shadow.md). Same seed: two markets close in price.\n"
        "  scalper exchange-sim --port 18081 --seed 7        # \"mainnet\": public data only\n"
        "  scalper exchange-sim --port 18080 --seed 7        # \"demo\": the account (keys sim-key/sim-secret)\n"
        "  scalper run -c config/shadow-exchange-sim.toml\n"
        "  scalper report -c config/shadow-exchange-sim.toml --shadow",
        {"app": {"mode": "shadow", "name": "scalper-shadow-exchange-sim"},
         "venue": {"name": "binance-usdm", "environment": "exchange-sim",
                   "rest_url": f"http://{_SIM_URL}", "ws_public_url": f"ws://{_SIM_URL}/public",
                   "ws_market_url": f"ws://{_SIM_URL}/market", "ws_private_url": f"ws://{_SIM_URL}/private"},
         "shadow": {"data_environment": "exchange-sim", "data_rest_url": f"http://{_DATA_URL}",
                    "data_ws_public_url": f"ws://{_DATA_URL}/public", "data_ws_market_url": f"ws://{_DATA_URL}/market"},
         "journal": {"path": "journal-shadow-exchange-sim.sqlite"}},
    ),
    "live.example.toml": (
        "LIVE TRADING WITH REAL MONEY on Binance USD-M mainnet. Copy this file, review every key.\n"
        "The bot refuses to trade live unless this file says mode = \"live\" AND you pass --live:\n"
        "  scalper run -c config/live.toml --live\n"
        "API key: futures enabled, withdrawals DISABLED, IP allow-list set (deploy/VPS.md). Secrets only\n"
        "from the environment or a secrets file readable by its owner only (chmod 600):\n"
        "  venue.secrets_file = \"/etc/scalper/secrets.toml\"  with  [venue] api_key/api_secret,\n"
        "  [ops] token, [ops.alerts] bot_token/webhook_url.",
        {"app": {"mode": "live", "name": "scalper-live", "state_dir": "/var/lib/scalper"},
         "log": {"format": "json"},
         "venue": {"name": "binance-usdm", "environment": "mainnet"},
         "risk": {"risk_per_trade_pct": 0.25, "max_open_positions": 1},
         "journal": {"path": "journal-live.sqlite", "synchronous": "FULL"}},
    ),
}


# Comments for keys whose model carries none (used only then; a comment in the model wins).
_FALLBACK: dict[str, str] = {
    "app.name": "name of this bot in logs, alerts, metrics (scalper_info) and the journal",
    "log.level": "minimum level written",
    "venue.name": "which venue code trades: the in-process simulator, Binance USD-M or Bybit v5 linear",
    "venue.environment": "which endpoints of that venue (ignored by the in-process simulator)",
    "venue.symbols": "symbols traded (the venue's spelling, letters and digits only)",
    "venue.ws_private_url": "user data stream (Binance: .../private; Bybit: .../v5/private)",
    "venue.secrets_file": ("TOML file with [venue] api_key/api_secret, [ops] token, [ops.alerts] "
                           "bot_token/webhook_url; chmod 600 (a warning is logged otherwise)"),
    "venue.recv_window_ms": "signed requests are valid this long after their timestamp (Binance recvWindow)",
    "venue.request_timeout_ms": "REST request timeout; a timed-out order is looked up by client id, never resent",
    "market.binance_trade_stream": "aggTrade (aggregated prints) or trade (every print)",
    "market.bybit_depth": "orderbook.<depth> topic of Bybit v5 linear",
    "market.bybit_resync_on_gap": "resubscribe for a fresh snapshot when Bybit's update ids skip",
    "market.reconnect_min_ms": "first reconnect delay; doubled with jitter up to reconnect_max_ms",
    "market.reconnect_max_ms": "cap of the reconnect backoff",
    "market.bybit_ping_interval_s": "application ping on Bybit sockets (Bybit drops idle sockets)",
    "signals.ema_fast_bars": "fast EMA period, bars",
    "signals.ema_slow_bars": "slow EMA period, bars (> ema_fast_bars)",
    "signals.momentum.enabled": "run this setup",
    "signals.breakout_fade.enabled": "run this setup",
    "signals.absorption.enabled": "run this setup",
    "signals.rsi_snapback.enabled": "run this setup",
    "risk.max_notional_per_symbol_usd": "open notional per symbol at most this (USD)",
    "risk.max_total_notional_usd": "open notional over all symbols at most this (USD)",
    "risk.max_orders_per_min": "our own order pacing per minute",
    "risk.loss_streak_cooldown_s": "no entries for this long after max_consecutive_losses",
}


def _comments_by_line(src: str) -> dict[int, str]:
    out = {}
    for tok in tokenize.generate_tokens(io.StringIO(src).readline):
        if tok.type == tokenize.COMMENT:
            out[tok.start[0]] = tok.string.lstrip("#").strip()
    return out


def _source_comments(cls: type) -> dict[str, list[str]]:
    """field -> comment lines written next to it in the class source (base classes first)."""
    found: dict[str, list[str]] = {}
    for klass in reversed(cls.__mro__):
        if not (isinstance(klass, type) and issubclass(klass, BaseModel)) or klass.__module__.startswith("pydantic"):
            continue
        try:
            src = inspect.getsource(klass)
        except (OSError, TypeError):
            continue
        src = inspect.cleandoc("\n" + src) if src.startswith(" ") else src
        comments = _comments_by_line(src)
        lines = src.splitlines()
        tree = ast.parse(src)
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node in body:
            if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
                continue
            above: list[str] = []
            ln = node.lineno - 1
            while ln >= 1 and lines[ln - 1].strip().startswith("#"):
                above.insert(0, comments.get(ln, ""))
                ln -= 1
            inline = [comments[i] for i in range(node.lineno, (node.end_lineno or node.lineno) + 1)
                      if i in comments]
            found[node.target.id] = [c for c in above + inline if c]
    return found


def _constraints(info: Any) -> str:
    parts = []
    ann = info.annotation
    if typing.get_origin(ann) is typing.Literal:
        parts.append("one of: " + ", ".join(_toml(a) for a in typing.get_args(ann)))
    for m in info.metadata:
        for cls, attr, sym in ((annotated_types.Ge, "ge", ">="), (annotated_types.Gt, "gt", ">"),
                               (annotated_types.Le, "le", "<="), (annotated_types.Lt, "lt", "<")):
            if isinstance(m, cls):
                parts.append(f"{sym} {getattr(m, attr)}")
    return "; ".join(parts)


def _toml(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, tuple | list):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k if str(k).replace('_', '').isalnum() else json.dumps(str(k))} = {_toml(x)}"
                               for k, x in v.items()) + "}"
    if v is None:
        return '""  # none'
    raise TypeError(f"cannot render {v!r} as TOML")


def _is_model(ann: Any) -> TypeGuard[type[BaseModel]]:
    return isinstance(ann, type) and issubclass(ann, BaseModel)


def field_paths(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every leaf key as 'section.key' / 'section.sub.key'."""
    out = []
    for name, info in model.model_fields.items():
        path = f"{prefix}.{name}" if prefix else name
        out += field_paths(info.annotation, path) if _is_model(info.annotation) else [path]
    return out


def _section(model: type[BaseModel], table: str, overrides: dict[str, dict[str, Any]], out: list[str]) -> None:
    comments = _source_comments(model)
    doc = (model.__doc__ or "").strip().splitlines()
    out.append("")
    if doc and not doc[0].startswith("["):
        out.append(f"# {doc[0]}")
    out.append(f"[{table}]")
    section_over = overrides.get(table, {})
    nested: list[tuple[str, type[BaseModel]]] = []
    if not model.model_fields:
        out.append("# (this section has no keys yet)")
    for name, info in model.model_fields.items():
        if _is_model(info.annotation):
            nested.append((name, info.annotation))
            continue
        lines = ([info.description] if info.description else []) + comments.get(name, [])
        if not lines and f"{table}.{name}" in _FALLBACK:
            lines = [_FALLBACK[f"{table}.{name}"]]
        cons = _constraints(info)
        for c in lines:
            out.append(f"# {c}")
        if cons:
            out.append(f"# ({cons})")
        if info.annotation is SecretStr:
            env = "SCALPER__" + "__".join(p.upper() for p in (*table.split("."), name))
            out.append(f"# {name}: SECRET, never in this file: set {env} or put it in the secrets file")
            continue
        if not lines:
            out.append(f"# {name}: (no comment in the model yet; see bot/settings/{table.split('.')[0]}.py)")
        if name in section_over:
            out.append(f"{name} = {_toml(section_over[name])}")
        else:
            # "#key" without a space: a commented-out default, never confused with a comment line.
            out.append(f"#{name} = {_toml(info.get_default(call_default_factory=True))}")
    for name, sub in nested:
        _section(sub, f"{table}.{name}", overrides, out)


def render(header: str, overrides: dict[str, dict[str, Any]]) -> str:
    from bot.settings import Settings

    out = [f"# {line}".rstrip() for line in header.splitlines()]
    out += [
        "#",
        "# Generated by `python -m bot.ops.configdoc config/` from the settings models: every key is listed",
        "# with its comment. Lines `#key = value` show the default; uncommented keys are what this example",
        "# sets. Any key can also be set from the environment: SCALPER__SECTION__KEY (e.g.",
        "# SCALPER__RISK__RISK_PER_TRADE_PCT=0.25). Check the effective values: scalper check-config -c FILE",
    ]
    for name, info in Settings.model_fields.items():
        assert _is_model(info.annotation), name  # every top-level key is a section model
        _section(info.annotation, name, overrides, out)
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bot.ops.configdoc")
    p.add_argument("directory", type=Path)
    p.add_argument("--check", action="store_true", help="exit 1 when a file differs from the models")
    args = p.parse_args(argv)
    stale = []
    for fname, (header, overrides) in EXAMPLES.items():
        path = args.directory / fname
        text = render(header, overrides)
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
        else:
            path.write_text(text)
            print(f"wrote {path}")
    if stale:
        print("out of date: " + ", ".join(stale) + "; run: python -m bot.ops.configdoc config/", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
