"""`scalper status|halt|resume|flatten|reset-limits`: talk to the running bot's ops endpoint (bot.ops.server).

    scalper status [--json]                  positions, open orders, trading state, halted symbols,
                                             reconciliation, last errors, feeds, order transport
    scalper halt [--reason TEXT]             no new entries (open trades keep their stops)
    scalper halt --symbol BTCUSDT            no new entries on that symbol only
    scalper resume [--reason TEXT]           trading ACTIVE: lifts every halt, symbol halts included; refused
                                             while reconciling and while a loss limit holds (baselines kept)
    scalper resume --symbol BTCUSDT          lift only that symbol's halt (state and baseline untouched)
    scalper flatten --yes [--reason TEXT]    close every position at market
    scalper reset-limits --yes [--reason T]  fresh daily-loss and drawdown baselines (journaled); lifts a
                                             halt by those limits

The endpoint is http://127.0.0.1:9310 unless --url, $SCALPER__OPS__PORT (with $SCALPER__OPS__HOST, as the
bot reads them), $SCALPER_OPS_URL or -c CONFIG ([ops] host/port) says otherwise, in that order. The bearer
token (always needed for status and control) comes from $SCALPER__OPS__TOKEN, else -c CONFIG (its
environment/secrets file, else the token file the bot created in its app.state_dir), else
`<$SCALPER__APP__STATE_DIR or var>/ops.token`; never from the command line (shell history, `ps`).

Exit status: 0 ok; 1 status says degraded/halted or a control action failed; 3 no bot answering;
4 unauthorised. Plain urllib: starts fast and needs no event loop.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from datetime import UTC, datetime
from typing import Any

__all__ = ["add_arguments", "fetch", "run"]

DEFAULT_URL = "http://127.0.0.1:9310"
TOKEN_ENV = "SCALPER__OPS__TOKEN"
DEFAULT_STATE_DIR = "var"  # AppSection.state_dir's default


class _Unreachable(Exception):
    pass


class _Unauthorised(Exception):
    pass


def add_arguments(p: argparse.ArgumentParser, name: str) -> None:
    p.add_argument("--url", default=None,
                   help=f"ops endpoint (default: from $SCALPER__OPS__PORT, else $SCALPER_OPS_URL, else {DEFAULT_URL})")
    p.add_argument("-c", "--config", metavar="FILE", help="take host/port/token from this config's [ops]")
    p.add_argument("--timeout-s", type=float, default=35.0, help="give up after this many seconds")
    if name == "status":
        p.add_argument("--json", action="store_true", help="print the raw /status JSON")
    else:
        p.add_argument("--reason", default="", help="why (journaled and shown in /status)")
        p.add_argument("--json", action="store_true", help="print the endpoint's JSON answer")
    if name in ("halt", "resume"):
        p.add_argument("--symbol", default=None,
                       help=f"{name} entries on this symbol only (e.g. BTCUSDT); the trading state is untouched")
    if name == "flatten":
        p.add_argument("--yes", action="store_true", help="really close every position at market")
    if name == "reset-limits":
        p.add_argument("--yes", action="store_true",
                       help="really start fresh daily-loss and drawdown baselines from the current equity")


def _endpoint(args: argparse.Namespace) -> tuple[str, str]:
    from bot.ops.token import read_token

    # --url, then the bot's own override of its port (SCALPER__OPS__PORT, with SCALPER__OPS__HOST), then
    # $SCALPER_OPS_URL, then -c CONFIG's [ops], then the default: the variable that moved the bot's port moves
    # this command too.
    url = args.url or _env_url() or os.environ.get("SCALPER_OPS_URL") or ""
    token = os.environ.get(TOKEN_ENV, "")
    state_dir = os.environ.get("SCALPER__APP__STATE_DIR") or DEFAULT_STATE_DIR
    if args.config:
        from bot.settings import load_settings

        settings = load_settings(args.config)
        ops = settings.ops
        # A wildcard bind is reachable on loopback.
        host = "127.0.0.1" if ops.host in ("0.0.0.0", "::") else ops.host
        host = f"[{host}]" if ":" in host else host
        url = url or f"http://{host}:{ops.port}"
        token = token or ops.token.get_secret_value()
        state_dir = settings.app.state_dir
    return (url or DEFAULT_URL).rstrip("/"), token or read_token(state_dir)


def _env_url() -> str:
    port = os.environ.get("SCALPER__OPS__PORT", "").strip()
    if not port:
        return ""
    if not port.isdigit():
        from bot.errors import ConfigError

        raise ConfigError(f"SCALPER__OPS__PORT = {port!r}: not a port number")
    host = os.environ.get("SCALPER__OPS__HOST", "").strip() or "127.0.0.1"
    host = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # a wildcard bind is reachable on loopback
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{port}"


def fetch(url: str, path: str, token: str = "", body: dict[str, Any] | None = None,
          timeout_s: float = 35.0) -> tuple[int, Any]:
    """GET (body None) or POST JSON; returns (HTTP status, decoded JSON). 5xx answers are returned too."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url + path, data=data, method="GET" if body is None else "POST")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        if e.code == 401:
            raise _Unauthorised() from None
        raw = e.read()
        try:
            return e.code, json.loads(raw)
        except ValueError:
            return e.code, {"error": raw.decode(errors="replace").strip()}
    except (urllib.error.URLError, ConnectionError, TimeoutError) as e:
        reason = getattr(e, "reason", e)
        raise _Unreachable(str(reason)) from None


def _ts(ns: int | None) -> str:
    if not ns:
        return "-"
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S")


def order_transport_line(venue: str, t: dict[str, Any]) -> str:
    """One line per venue: how orders travel now; a websocket's state since when, its reconnects, requests over
    it and by REST while it was not up, its last error."""
    if t.get("configured") != "ws":
        return f"order transport {venue}: REST"
    state = str(t.get("state"))
    line = (f"order transport {venue}: ws {state.upper() if state == 'down' else state} since "
            f"{_ts(t.get('since_ns'))} UTC  reconnects={t.get('reconnects')} ws_requests={t.get('ws_requests')} "
            f"rest_fallbacks={t.get('rest_fallbacks')}")
    return line + (f"  last error: {t['last_error']}" if t.get("last_error") else "")


def _print_status(st: dict[str, Any]) -> None:
    h, tr = st.get("health", {}), st.get("trading", {})
    info = st.get("info") or {}
    who = " ".join(f"{k}={v}" for k, v in info.items())
    print(f"health: {h.get('status', '?').upper()}" + (f"   ({who})" if who else ""))
    for r in h.get("reasons", []):
        print(f"  - {r}")
    print(f"trading: {tr.get('state')} since {_ts(tr.get('since_ns'))} UTC: {tr.get('reason')}")
    halted = st.get("halted_symbols") or {}
    print(f"halted symbols: {len(halted)}" + ("  (`scalper resume --symbol SYM` lifts one)" if halted else ""))
    for sym, hs in halted.items():
        print(f"  {sym:<12} since {_ts(hs.get('since_ns'))} UTC: {hs.get('reason')}")
    for sym, q in (st.get("quarantined_symbols") or {}).items():  # an entry of unknown fate: no new entry there
        print(f"quarantined {sym:<12} until {_ts(q.get('until_ns'))} UTC: {', '.join(q.get('entries') or [])}"
              " may still execute (final look-up then)")
    rec = st.get("reconcile")
    if rec:
        acts = " ".join(f"{k}={v}" for k, v in (rec.get("actions") or {}).items())
        print(f"reconciliation: {rec.get('state')} runs={rec.get('runs')} last ok {_ts(rec.get('last_ok_ns'))} UTC"
              f"  failures={rec.get('failures_total')} ({rec.get('failures')} in a row)  {acts}")
        if rec.get("state") == "failed":
            print(f"  last error {_ts(rec.get('last_failed_ns'))} UTC: {rec.get('last_error')}")
    pnl = st.get("pnl", {})
    print(f"pnl: realised {pnl.get('realized_quote', 0):+.2f}"
          f"  unrealised {pnl.get('unrealized_quote', 0):+.2f}  fees {pnl.get('fees_quote', 0):.2f}")
    print("feeds:")
    for sym, f in (st.get("feeds") or {}).items():
        rates = " ".join(f"{c}={n}/s" for c, n in (f.get("rates_per_s") or {}).items())
        print(f"  {sym:<12} {f.get('status', '-'):<8} resyncs={f.get('resyncs', 0)} {rates}"
              f"  {f.get('reason', '')}")
    us = st.get("user_stream")
    if us:
        print(f"user stream: {'up' if us.get('ok') else 'DOWN'} ({us.get('reason')})")
    for venue, t in (st.get("order_transport") or {}).items():  # REST or the order websocket (and why)
        print(order_transport_line(venue, t))
    positions = st.get("positions") or []
    print(f"positions: {len(positions)}")
    for p in positions:
        print(f"  {p.get('symbol'):<12} {p.get('side'):<5} qty={p.get('qty')} entry={p.get('entry_price')} "
              f"stop={p.get('stop_price')} upnl={p.get('unrealized_pnl_quote')}")
    orders = st.get("open_orders") or []
    print(f"open orders: {len(orders)}")
    for o in orders:
        print("  " + " ".join(f"{k}={v}" for k, v in o.items()))
    errors = st.get("last_errors") or []
    print(f"last errors: {len(errors)}")
    for e in errors[-10:]:
        print(f"  {_ts(e.get('ts_ns'))} [{e.get('source')}] {e.get('message')}")


def run(args: argparse.Namespace) -> int:

    url, token = _endpoint(args)
    action = args.command
    if action == "flatten" and not args.yes:
        print("error: flatten closes every position at market; add --yes to confirm", file=sys.stderr)
        return 2
    if action == "reset-limits" and not args.yes:
        print("error: reset-limits starts fresh daily-loss and drawdown baselines (the day's losses so far no "
              "longer count); add --yes to confirm", file=sys.stderr)
        return 2
    try:
        if action == "status":
            code, body = fetch(url, "/status", token, timeout_s=args.timeout_s)
        else:
            payload: dict[str, Any] = {"reason": args.reason} if args.reason else {}
            if action == "reset-limits":
                payload["confirm"] = True
            if getattr(args, "symbol", None):
                payload["symbol"] = args.symbol
            code, body = fetch(url, f"/control/{action}", token, payload, timeout_s=args.timeout_s)
    except _Unreachable as e:
        print(f"error: no bot is answering at {url} ({e}). Is it running (`scalper run -c CONFIG`)? "
              "For another host/port pass --url or -c CONFIG.", file=sys.stderr)
        return 3
    except _Unauthorised:
        print(f"error: {url} refused the bearer token: set {TOKEN_ENV}, or pass -c CONFIG (its secrets file or "
              "the ops.token file in its app.state_dir)", file=sys.stderr)
        return 4
    if args.json:
        print(json.dumps(body, indent=2, sort_keys=True))
    if action == "status":
        if code != 200:
            print(f"error: {url}/status answered HTTP {code}: {body}", file=sys.stderr)
            return 1
        if not args.json:
            _print_status(body)
        return 0 if body.get("health", {}).get("status") == "ok" else 1
    ok = code == 200 and bool(body and body.get("ok"))
    if not args.json:
        if ok:
            tr = body.get("trading", {})
            result = body.get("result")
            what = f"{action} {args.symbol.upper()}" if getattr(args, "symbol", None) else action
            halted = body.get("halted_symbols") or {}
            print(f"{what}: done; trading {tr.get('state')} ({tr.get('reason')})"
                  + (f"; halted symbols: {', '.join(halted)}" if halted else "")
                  + (f"; result: {json.dumps(result)}" if result is not None else ""))
        else:
            err = body.get("error") if isinstance(body, dict) else body
            print(f"error: {action} failed (HTTP {code}): {err}", file=sys.stderr)
    return 0 if ok else 1
