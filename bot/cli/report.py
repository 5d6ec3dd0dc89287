"""`scalper report`: journal review (bot.journal.report) as a table, JSON, CSV and/or one HTML file.

    scalper report [-c CONFIG | --db PATH] [--run ID|all] [--since 2026-11-01] [--until 2026-11-21T12:00]
                   [--setup momentum] [--symbol BTCUSDT] [--json] [--csv trades.csv] [--html report.html]
    scalper report --shadow [--json] [--run ID|all] [-c CONFIG | --db PATH]

One run by default: the journal's latest `scalper run` / `scalper backtest` (--run ID for another, --run all
for every run together; the runs are listed in the text report and in JSON "run").

The first line (text, HTML; the first key in JSON, "verdict") says so when the net expectancy is negative;
"costs" gives gross and net expectancy with 95 % t intervals and break-even win rates (bot.journal.costs).
--json prints {"verdict", "costs", "overall", "by_setup", "by_symbol", "by_hour", "slippage", "stops",
"latency", "funding", "filters", "run", "performance", "trades"}. "performance": Sharpe/Sortino/Calmar
(annualisation stated in it: bot.journal.report_stats), daily breakdown, streaks, best/worst trades, MAE/MFE.
A shadow-mode run adds "shadow" (the divergence report; --shadow prints it alone, docs/shadow.md).
Dates are ISO 8601, UTC unless they carry an offset; --until
is exclusive. Funding is signed as the venue reports it (negative = paid); "net" = PnL (net of fees) + funding.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from datetime import UTC, datetime
from typing import Any

__all__ = ["add_arguments", "run"]

CSV_FIELDS = ("trade_id", "setup", "symbol", "side", "entry_ts_ns", "entry_price", "qty", "stop_price",
              "stop_confirm_ms", "exit_ts_ns", "exit_price", "exit_reason", "pnl", "fees", "r_multiple",
              "hold_s", "signal_slip_ticks", "signal_slip_bps", "stop_slip_ticks", "order_to_ack_ms",
              "funding_quote", "net_pnl", "exchange_event_to_receive_ms", "receive_to_signal_ms",
              "signal_to_order_ms", "cost_bps", "cost_r", "gross_pnl_quote", "fees_quote", "net_pnl_quote", "r_net")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", metavar="CONFIG", help="config file (for journal.path and app.state_dir)")
    p.add_argument("--db", metavar="PATH", help="journal file (default: <app.state_dir>/<journal.path>)")
    p.add_argument("--run", default="latest", metavar="ID|all",
                   help="the run to report (default: the journal's latest run; 'all': every run together)")
    p.add_argument("--since", help="only trades entered at or after this time (ISO 8601, UTC)")
    p.add_argument("--until", help="only trades entered before this time (ISO 8601, UTC)")
    p.add_argument("--setup", help="only this setup")
    p.add_argument("--symbol", help="only this symbol")
    p.add_argument("--stop-deadline-ms", type=float, default=2000.0,
                   help="a stop confirmed later than this counts as 'not confirmed in time'")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--csv", metavar="FILE", help="write one row per trade to FILE")
    p.add_argument("--html", metavar="FILE", help="write a one-file HTML report with charts to FILE")
    p.add_argument("--shadow", action="store_true",
                   help="shadow mode's divergence report: the demo account's fills against the paper fills of the "
                        "same orders, per trade (docs/shadow.md); with --json as JSON")


def _ts_ns(text: str | None) -> int | None:
    if not text:
        return None
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1e9)


def _db_path(args: argparse.Namespace) -> str:
    if args.db:
        return str(args.db)
    from bot.settings import load_settings

    s = load_settings(args.config)
    return s.journal.path if os.path.isabs(s.journal.path) else os.path.join(s.app.state_dir, s.journal.path)


def _csv_row(t: dict[str, Any]) -> dict[str, Any]:
    sig, stop = t["signal_slippage"] or {}, t["stop_slippage"] or {}
    row = {k: t.get(k) for k in CSV_FIELDS}
    lat = t["latency_ms"]
    row.update(signal_slip_ticks=sig.get("ticks"), signal_slip_bps=sig.get("bps"),
               stop_slip_ticks=stop.get("ticks"), order_to_ack_ms=lat["order_to_ack_ms"],
               exchange_event_to_receive_ms=lat["exchange_event_to_receive_ms"],
               receive_to_signal_ms=lat["receive_to_signal_ms"], signal_to_order_ms=lat["signal_to_order_ms"])
    return row


def _f(v: Any, nd: int = 3) -> str:
    if v is None:
        return "-"
    return f"{v:.{nd}f}" if isinstance(v, float) else str(v)


def _print_costs(costs: dict[str, Any]) -> None:
    def ci(e: dict[str, Any]) -> str:
        lo, hi = e["ci95"]
        return f"{_f(e['mean'])}" + ("" if lo is None else f" [{lo:+.3f}, {hi:+.3f}]")

    fc = costs["fee_config"]
    print(f"\ncosts (fees maker {fc['maker_bps']:g} / taker {fc['taker_bps']:g} bps, slippage "
          f"{fc['slippage_bps']:g} bps; {costs['interval']}):")
    print(f"{'':<22}{'n':>5}{'gross exp R [95% CI]':>28}{'net exp R [95% CI]':>28}{'cost R':>8}{'win%':>7}"
          f"{'b/e win%':>9}")
    for name, v in {"OVERALL": costs["overall"], **costs["by_setup"]}.items():
        win, be = v["win_rate_net"], v["breakeven_win_rate"]
        print(f"{name[:22]:<22}{v['trades']:>5}{ci(v['gross_expectancy_r']):>28}{ci(v['net_expectancy_r']):>28}"
              f"{_f(v['mean_cost_r'], 3):>8}{_f(None if win is None else win * 100, 1):>7}"
              f"{_f(None if be is None else be * 100, 1):>9}")


def _print_table(rep: dict[str, Any]) -> None:
    print(rep["verdict"])  # first line: says so when the net expectancy is negative
    cols = ("trades", "win_rate", "avg_win_quote", "avg_loss_quote", "expectancy_quote", "expectancy_r",
            "profit_factor", "total_pnl_quote", "max_drawdown_quote", "fees_quote", "funding_quote",
            "net_pnl_quote")
    short = ("n", "win%", "avg win", "avg loss", "exp", "exp R", "PF", "total", "max DD", "fees", "funding",
             "net")
    print(f"{'':<22}" + "".join(f"{h:>10}" for h in short))

    def line(name: str, s: dict[str, Any]) -> None:
        vals = [s[c] * 100 if c == "win_rate" and s[c] is not None else s[c] for c in cols]
        print(f"{name[:22]:<22}" + "".join(f"{_f(v, 2):>10}" for v in vals))

    line("OVERALL", rep["overall"])
    for title, key in (("setup", "by_setup"), ("symbol", "by_symbol"), ("hour UTC", "by_hour")):
        for name, s in rep[key].items():
            line(f"{title} {name}", s)
    _print_costs(rep["costs"])
    _print_performance(rep)
    _print_trade_costs(rep["trades"])
    hold = rep["overall"]["hold_s"]
    print(f"\nhold time s: mean {_f(hold['mean'], 1)} median {_f(hold['median'], 1)} p90 {_f(hold['p90'], 1)}")
    print("slippage (adverse +), ticks:")
    for role, s in rep["slippage"]["by_role"].items():
        print(f"  {role:<8} n={s['ticks']['n']:<4} mean {_f(s['ticks']['mean'], 2)} max {_f(s['ticks']['max'], 2)}"
              f"  ({_f(s['bps']['mean'], 2)} bps)")
    sig = rep["slippage"]["signal_to_entry_fill"]
    print(f"  signal->entry fill mean {_f(sig['ticks']['mean'], 2)} ticks ({_f(sig['bps']['mean'], 2)} bps)")
    st = rep["stops"]
    print(f"stops: {st['stop_exits']} stop-loss exits, all respected: {st['all_stops_respected']}, "
          f"slippage mean {_f(st['slippage_ticks']['mean'], 2)} ticks over {st['slippage_ticks']['n']} filled "
          f"stops, not confirmed within {st['stop_deadline_ms']:g} ms: {st['not_confirmed_in_time']}")
    print(f"  stop slippage = {st.get('slippage_definition', '')}")
    fu = rep["funding"]
    print(f"funding: {fu['payments']} payments, total {_f(fu['total_quote'], 4)} (on trades "
          f"{_f(fu['attributed_quote'], 4)}, unattributed {_f(fu['unattributed_quote'], 4)})")
    print("latency ms (median / p90 / max); " + str(rep["latency"].get("clock", "")) + ":")
    for k, s in rep["latency"].items():
        if isinstance(s, dict):
            print(f"  {k:<26} {_f(s['median'])} / {_f(s['p90'])} / {_f(s['max'])}")


def _print_performance(rep: dict[str, Any]) -> None:
    perf, o = rep.get("performance"), rep["overall"]
    print("\nMAE / MFE (from the first entry fill; median / p90 / max): "
          f"MAE {_f(o['mae_r']['median'], 2)} / {_f(o['mae_r']['p90'], 2)} / {_f(o['mae_r']['max'], 2)} R "
          f"({_f(o['mae_ticks']['median'], 1)} / {_f(o['mae_ticks']['p90'], 1)} / {_f(o['mae_ticks']['max'], 1)} "
          f"ticks), MFE {_f(o['mfe_r']['median'], 2)} / {_f(o['mfe_r']['p90'], 2)} / {_f(o['mfe_r']['max'], 2)} R "
          f"({_f(o['mfe_ticks']['median'], 1)} / {_f(o['mfe_ticks']['p90'], 1)} / {_f(o['mfe_ticks']['max'], 1)} "
          "ticks)")
    if not perf:
        return
    ra, st = perf["ratios"], perf["streaks"]
    print(f"ratios over {ra['days']} day(s): Sharpe {_f(ra['sharpe'], 2)}, Sortino {_f(ra['sortino'], 2)}, "
          f"Calmar {_f(ra['calmar'], 2)}, per-trade mean/stdev of net R {_f(ra['per_trade'], 3)}")
    print(f"  annualisation: {ra['annualisation']}")
    print(f"streaks: longest win {st['longest_win']}, longest loss {st['longest_loss']}, current {st['current']:+d}")
    for title in ("best", "worst"):
        print(f"{title}: " + ", ".join(f"{b['trade_id']} {b['setup']} {_f(b['r_net'], 2)} R "
                                       f"{_f(b['net_pnl_quote'], 2)}" for b in perf[title]))
    idle = sum(1 for d in perf["daily"] if not d["trades"])
    print("daily (UTC): " + "; ".join(f"{d['date']} n={d['trades']} net {d['net_pnl_quote']:+.2f}"
                                      for d in perf["daily"] if d["trades"])
          + (f"; {idle} day(s) without trades" if idle else ""))


def _print_trade_costs(trades: list[dict[str, Any]], limit: int = 50) -> None:
    """Per trade: cost at entry (bps, R), gross, fees, net (quote), net R and each fill's liquidity."""
    if not trades:
        return
    print(f"\nper trade costs (last {min(limit, len(trades))} of {len(trades)}; cost at entry, quote PnL):")
    print(f"  {'id':<8}{'setup':<16}{'cost bps':>9}{'cost R':>8}{'gross':>10}{'fees':>9}{'net':>10}{'net R':>8}"
          "  fills (in/out liquidity)")
    for t in trades[-limit:]:
        liq = " ".join(f"{'in' if f['role'] in ('entry', 'add') else 'out'}:{f['liquidity']}" for f in t["fills"])
        print(f"  {t['trade_id']:<8}{t['setup'][:15]:<16}{_f(t.get('cost_bps'), 2):>9}{_f(t.get('cost_r'), 3):>8}"
              f"{_f(t.get('gross_pnl_quote'), 2):>10}{_f(t.get('fees_quote'), 2):>9}{_f(t.get('net_pnl_quote'), 2):>10}"
              f"{_f(t.get('r_net'), 3):>8}  {liq}")


def _print_runs(rep: dict[str, Any]) -> None:
    info = rep.get("run") or {}
    runs = info.get("runs") or []
    if not runs:
        return
    shown = info.get("run_id")
    print(f"run: {shown} (of {len(runs)}: " + ", ".join(
        f"{r['run_id'] if r['run_id'] is not None else '-'} {r['mode']} {r['trades']} trades" for r in runs)
        + "; --run ID|all)")


def run(args: argparse.Namespace) -> int:
    import orjson

    from bot.errors import ConfigError
    from bot.journal.report import build_report, load_journal

    try:
        path = _db_path(args)
        since, until = _ts_ns(args.since), _ts_ns(args.until)
    except (ConfigError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not os.path.exists(path):
        print(f"error: no journal at {path} (pass --db PATH or -c CONFIG)", file=sys.stderr)
        return 2
    run_arg = getattr(args, "run", "latest")
    if run_arg not in ("latest", "all") and not str(run_arg).isdigit():
        print(f"error: --run takes a run id, 'latest' or 'all', not {run_arg!r}", file=sys.stderr)
        return 2
    if getattr(args, "shadow", False):
        from bot.cli.report_shadow import print_shadow

        return print_shadow(path, run_arg, as_json=args.json)
    try:
        rep = build_report(load_journal(path), since_ns=since, until_ns=until, setup=args.setup,
                           symbol=args.symbol, stop_deadline_ms=args.stop_deadline_ms, run=run_arg)
    except ValueError as e:  # a run the journal does not hold: the message lists the ones it does
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.json or args.html:
        from bot.cli.report_shadow import shadow_section

        shadow = shadow_section(path, (rep.get("run") or {}).get("run_id") if run_arg == "latest" else run_arg)
        if shadow is not None:  # a shadow-mode run: its divergence report beside the usual keys
            rep["shadow"] = shadow
    if args.csv:
        with open(args.csv, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
            w.writeheader()
            for t in rep["trades"]:
                w.writerow(_csv_row(t))
    if args.html:
        from bot.journal.report_html import render_html

        with open(args.html, "w") as fh:
            fh.write(render_html(rep, title=f"scalper report: {os.path.basename(path)}"))
    if args.json:
        sys.stdout.write(orjson.dumps(rep, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode() + "\n")
    else:
        _print_table(rep)
        _print_runs(rep)
        for what, f in (("CSV", args.csv), ("HTML", args.html)):
            if f:
                print(f"{what}: {f}")
    return 0
