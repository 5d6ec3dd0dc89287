"""`scalper research signals`: every entry intent of every setup (built-in and plug-in) scored on the
recorded mid, and the order-flow features' power to predict the next move.

Per intent (the signal layer replayed as in `scalper signals`, mid = the book's (bid + ask) / 2 after each
depth event, on the exchange-time axis the intents carry):
- forward return at each horizon h, in bps, signed by side: ±(mid(t + h) − mid(t)) / mid(t) · 10⁴, where
  mid(x) is the last mid at or before x; an intent whose t + h lies past the symbol's last update is left
  out of that horizon (censored, not zero);
- first target before the stop: walking the mid from t until the intent's time limit, "hit" when the mid
  reaches the first target, "stop" when it reaches the stop, "timeout" when neither; hit_rate =
  hits / (hits + stops) with a Wilson 95 % interval (timeouts counted apart);
- mean and median with percentile-bootstrap 95 % intervals (seeded), and net = mean − the round trip at the
  configured fees (risk.maker_fee_bps for a passive entry + risk.taker_fee_bps for the exit; no slippage).

Features (bot.cli.features rows at the shortest horizon, summed/last-valued to each horizon, windows aligned
to exchange time): OFI (sum), trade flow (buy − sell volume, sum), depth imbalance (last), microprice − mid
(last, bps). Against the next window's mid change: R² of the least-squares line and the sign hit rate
(Wilson 95 %); against the same window's change: R² (explaining, not predicting).
"""

from __future__ import annotations

import bisect
import statistics
from typing import Any

from bot.research.stats import bootstrap_ci, r_squared, wilson_ci

__all__ = ["FEATURES", "feature_table", "score_intents", "study_intents"]

FEATURES = ("ofi", "trade_flow", "imbalance", "microprice_minus_mid_bps")


def study_intents(paths: list[str], signals: Any, instruments: dict[str, Any] | None = None,
                  stats: dict[str, Any] | None = None) -> tuple[list[Any], dict[str, tuple[list[int], list[float]]]]:
    """(intents, mids): one replay through the signal layer, the mid path of each symbol on the side."""
    from bot.cli.features import replay_events
    from bot.market.health import BookStatus
    from bot.signals.engine import SignalEngine

    engine = SignalEngine(signals, instruments or {})
    intents: list[Any] = []
    mids: dict[str, tuple[list[int], list[float]]] = {}
    for ev in replay_events(paths, instruments, stats=stats):
        kind = ev[0]
        if kind == "depth":
            _, sym, book, status, ts, now = ev
            if status is BookStatus.LIVE:
                m = book.mid_ticks()
                if m is not None:
                    t, v = mids.setdefault(sym, ([], []))
                    # events interleave a few ms out of order: keep the axis monotonic for bisect
                    t.append(max(ts, t[-1]) if t else ts)
                    v.append(m)
            intents += engine.on_depth(sym, book, status, ts, now)
        elif kind == "trade":
            intents += engine.on_trade(ev[1], ev[2])
        else:
            intents += engine.on_funding(ev[1], ev[2])
    return intents, mids


def _outcome(intent: Any, times: list[int], mids: list[float], i0: int) -> str:
    if not intent.targets:
        return "timeout"
    sign = 1 if intent.side == "long" else -1
    target, stop = intent.targets[0].price_ticks, intent.stop_ticks
    end = intent.ts_ns + int(intent.time_limit_s * 1e9)
    for i in range(i0 + 1, len(times)):
        if times[i] > end:
            break
        m = mids[i]
        if sign * (m - target) >= 0:
            return "hit"
        if sign * (m - stop) <= 0:
            return "stop"
    return "timeout"


def _ci_dict(x: list[float], prefix: str, stat: Any, seed: int) -> dict[str, Any]:
    ci = bootstrap_ci(x, stat, seed=seed)
    return {f"{prefix}ci_low": None if ci is None else round(ci[0], 4),
            f"{prefix}ci_high": None if ci is None else round(ci[1], 4)}


def score_intents(intents: list[Any], mids: dict[str, tuple[list[int], list[float]]], horizons_ns: list[int],
                  labels: list[str], cost_bps: float, seed: int = 0) -> dict[str, Any]:
    """{setup: {intents, hits, stops, timeouts, hit_rate, hit_ci, horizons: {label: {n, hit_rate, mean_bps,
    ci_low, ci_high, median_bps, median_ci_low, median_ci_high, cost_bps, net_mean_bps}}}}."""
    per: dict[str, dict[str, Any]] = {}
    for it in intents:
        s = per.setdefault(it.setup, {"n": 0, "out": {"hit": 0, "stop": 0, "timeout": 0},
                                      "ret": {lb: [] for lb in labels}})
        s["n"] += 1
        times, vals = mids.get(it.symbol, ([], []))
        i0 = bisect.bisect_right(times, it.ts_ns) - 1
        if i0 < 0:
            continue
        m0 = vals[i0]
        sign = 1 if it.side == "long" else -1
        s["out"][_outcome(it, times, vals, i0)] += 1
        for h, lb in zip(horizons_ns, labels):
            if it.ts_ns + h > times[-1]:
                continue  # censored: the data ends before the horizon
            mh = vals[bisect.bisect_right(times, it.ts_ns + h) - 1]
            s["ret"][lb].append(sign * (mh - m0) / m0 * 1e4)
    out: dict[str, Any] = {}
    for setup, s in sorted(per.items()):
        hits, stops = s["out"]["hit"], s["out"]["stop"]
        hr = round(hits / (hits + stops), 4) if hits + stops else None
        hci = wilson_ci(hits, hits + stops)
        rows = {}
        for lb in labels:
            x = s["ret"][lb]
            mean = statistics.fmean(x) if x else None
            rows[lb] = {"n": len(x), "hit_rate": hr,
                        "mean_bps": None if mean is None else round(mean, 4), **_ci_dict(x, "", statistics.fmean, seed),
                        "median_bps": round(statistics.median(x), 4) if x else None,
                        **_ci_dict(x, "median_", statistics.median, seed),
                        "cost_bps": round(cost_bps, 4),
                        "net_mean_bps": None if mean is None else round(mean - cost_bps, 4)}
        out[setup] = {"intents": s["n"], "hits": hits, "stops": stops, "timeouts": s["out"]["timeout"],
                      "hit_rate": hr, "hit_ci": None if hci is None else [round(hci[0], 4), round(hci[1], 4)],
                      "horizons": rows}
    return out


def _windows(rows: list[dict[str, Any]], m: int) -> list[dict[str, float]]:
    out = []
    for i in range(0, len(rows) - m + 1, m):
        w = rows[i:i + m]
        last = w[-1]
        mid = last["mid"]
        out.append({"mid": mid, "active": any(r.get("depth_events", 1) for r in w),
                    "ofi": sum(r["ofi"] for r in w),
                    "trade_flow": sum(r["buy_volume"] - r["sell_volume"] for r in w),
                    "imbalance": last["imbalance"],
                    "microprice_minus_mid_bps": (last["microprice"] - mid) / mid * 1e4 if mid else 0.0})
    return out


def feature_table(rows_by_symbol: dict[str, list[dict[str, Any]]], base_ns: int, horizons_ns: list[int],
                  labels: list[str]) -> list[dict[str, Any]]:
    """One row per symbol × horizon × feature: n, r2_next, r2_same, sign_hit_rate, ci_low, ci_high."""
    out = []
    for sym, rows in sorted(rows_by_symbol.items()):
        for h, lb in zip(horizons_ns, labels):
            w = _windows(rows, h // base_ns)
            # pairs of consecutive windows that both saw depth events: the empty rows that bridge two
            # recorded sessions (days apart) are neither features nor moves
            idx = [i for i in range(len(w) - 1) if w[i]["active"] and w[i + 1]["active"]]
            if len(idx) < 3:
                continue
            chg = [(w[i + 1]["mid"] - w[i]["mid"]) / w[i]["mid"] * 1e4 for i in idx]
            # next: window i's feature vs the change over window i+1; same: window i+1's own feature vs
            # that same change (explaining the move it is part of, not predicting it)
            nxt_f = [w[i] for i in idx]
            same = [(w[i + 1], c) for i, c in zip(idx, chg)]
            for f in FEATURES:
                x_next = [r[f] for r in nxt_f]
                pairs = [(a, b) for a, b in zip(x_next, chg) if a != 0 and b != 0]
                k = sum(1 for a, b in pairs if (a > 0) == (b > 0))
                ci = wilson_ci(k, len(pairs))
                r2n, r2s = r_squared(x_next, chg), r_squared([r[f] for r, _ in same], [c for _, c in same])
                out.append({"symbol": sym, "horizon": lb, "feature": f, "n": len(chg),
                            "r2_next": None if r2n is None else round(r2n, 4),
                            "r2_same": None if r2s is None else round(r2s, 4),
                            "sign_n": len(pairs),
                            "sign_hit_rate": round(k / len(pairs), 4) if pairs else None,
                            "ci_low": None if ci is None else round(ci[0], 4),
                            "ci_high": None if ci is None else round(ci[1], 4)})
    return out
