"""`scalper research signals FILE.feather…`: the bar rules on candles (bot.research.candles), with the same
JSON keys as on recorded sessions (per setup and horizon: n, hit_rate, mean_bps, ci_low, ci_high, ...) plus
`trades` per setup (the bar-fill model's win rate and net expectancy) and `fill_rule`."""

from __future__ import annotations

import json
import sys
from typing import Any

from bot.errors import ConfigError

__all__ = ["CANDLE_HORIZONS", "FILL_RULE", "is_candle_file", "run_candle_signals"]

CANDLE_HORIZONS = "1m,5m,15m,30m,60m"
FILL_RULE = ("entry at the signal candle's close; a later candle touching the stop exits at the stop (at its open "
             "when it opens beyond), even if it also touches the first target (stop first, pessimistic); else "
             "touching the first target exits there; else the time exit at the close of the first candle ending "
             "at or after entry + time_limit_s; order-flow confirmations off; net = move - round-trip fees - funding")


def is_candle_file(path: str) -> bool:
    return path.endswith(".feather")


def run_candle_signals(args: Any, settings: Any, horizons_ns: list[int], labels: list[str]) -> int:
    from bot.research.candle_data import read_candles
    from bot.research.candles import candle_intents, score_horizons, score_trades

    data: dict[str, Any] = {}
    for p in args.files:
        cd = read_candles(p)
        if cd.symbol in data:
            raise ConfigError(f"{p}: a second candle file for {cd.symbol} ({data[cd.symbol].path}); "
                              "give one per symbol")
        bad = [lb for h, lb in zip(horizons_ns, labels, strict=True) if h % cd.interval_ns]
        if bad:
            raise ConfigError(f"--horizons {','.join(bad)}: on {cd.interval_ns // 1_000_000_000} s candles each "
                              f"horizon must be a multiple of the candle, e.g. {CANDLE_HORIZONS}")
        data[cd.symbol] = cd
    cost_bps = settings.risk.maker_fee_bps + settings.risk.taker_fee_bps
    intents: list[Any] = []
    vetoes: dict[str, int] = {}
    for cd in data.values():
        got, v = candle_intents(cd, settings.signals)
        intents += got
        for k, n in v.items():
            vetoes[k] = vetoes.get(k, 0) + n
    setups = score_horizons(intents, data, horizons_ns, labels, cost_bps, seed=args.seed)
    trades = score_trades(intents, data, cost_bps, seed=args.seed)
    for name, s in setups.items():
        t = trades.get(name, {})
        # the target-before-stop rate comes from the candles' highs and lows (the fill rule), not the closes
        s.update(hits=t.get("hits", 0), stops=t.get("stops", 0), timeouts=t.get("timeouts", 0),
                 hit_rate=t.get("hit_rate"), hit_ci=t.get("hit_ci"), trades=t)
        for row in s["horizons"].values():
            row["hit_rate"] = t.get("hit_rate")
    res = {"horizons": labels, "cost_bps": cost_bps, "setups": setups, "features": [], "problems": [],
           "candles": {sym: {"file": cd.path, "bars": len(cd), "from_ns": cd.t_ns[0],
                             "to_ns": cd.t_ns[-1] + cd.interval_ns, "funding_file": cd.funding_path}
                       for sym, cd in data.items()},
           "vetoes": vetoes, "fill_rule": FILL_RULE}
    if args.html:
        from bot.research.signals_cli import _html

        with open(args.html, "w") as fh:
            fh.write(_html(res))
    if args.json:
        sys.stdout.write(json.dumps(res, indent=1) + "\n")
    else:
        _text(res)
    return 0


def _v(x: Any, fmt: str = "+.2f") -> str:
    return "-" if x is None else format(x, fmt)


def _text(res: dict[str, Any]) -> None:
    from bot.research.signals_cli import _text as sessions_text

    for sym, c in res["candles"].items():
        print(f"{sym}: {c['bars']} candles from {c['file']}" + (f", funding {c['funding_file']}"
                                                              if c["funding_file"] else ", no funding file"))
    sessions_text(res)
    print(f"\nfills from the bar: {res['fill_rule']}")
    print(f"{'setup':<14}{'trades':>7}{'win rate':>10}{'95 % CI':>18}{'hit rate':>10}{'net bps':>9}"
          f"{'95 % CI':>20}{'mean R':>8}")
    for name, s in res["setups"].items():
        t = s["trades"]
        wci = "-" if t.get("win_ci") is None else f"[{t['win_ci'][0]:.3f}, {t['win_ci'][1]:.3f}]"
        print(f"{name:<14}{t.get('trades', 0):>7}{_v(t.get('win_rate'), '.3f'):>10}{wci:>18}"
              f"{_v(t.get('hit_rate'), '.3f'):>10}{_v(t.get('mean_net_bps')):>9}"
              f"{'[' + _v(t.get('ci_low')) + ', ' + _v(t.get('ci_high')) + ']':>20}{_v(t.get('mean_r')):>8}")
    if res["vetoes"]:
        print("vetoed: " + ", ".join(f"{k} {n}" for k, n in sorted(res["vetoes"].items())))
