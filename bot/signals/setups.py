"""The scalping setups. Each reads one symbol's `SymbolFeatures` and proposes a `Candidate`
(side, structural stop level, optional structural target, the values that triggered it); the engine
turns candidates into `EntryIntent`s (`build_intent`) after the common gates. Never a quantity.

Reference entry price: the touch a taker would hit (best ask for a long, best bid for a short).
Stops come from market structure on the losing side plus `stop_buffer_bps`, widened to
`min_stop_bps`; a candidate whose structural stop is farther than `max_stop_bps` is dropped. Take-profit
tiers are `tp_r_multiples` of the risk R = |entry - stop|; a structural target (prior high, range,
POC) replaces the first tier when it lies at least 0.5 R away on the winning side (tiers are then
ordered nearest first).

- momentum: on `bar_ms` bars, EMAs stacked (fast > slow, close above the fast one), higher highs and
  higher lows (last `swing_bars` bars vs the `swing_bars` before), a pullback that touched the fast EMA
  within `pullback_bars` bars and held (close back above it, rising), 1 s OFI and trade flow turned back
  with the trend -> with the trend; stop beyond the pullback extreme; target the prior high.
- breakout_fade: a tight range (`range_bars` bars, width <= `range_max_bps`), broken by
  >= `break_min_bps` within the last `break_bars` bars on volume >= `break_volume_mult` x the range's,
  then a stall: a rejection wick >= `wick_min_frac` of the last bar, the close back off the extreme,
  and the 1 s OFI flipped against the break or the extreme's touch absorbing -> against the break;
  stop beyond the break extreme; target the range middle.
- absorption: aggressive selling absorbed by a best bid that holds (notional >= `min_absorbed_quote`,
  absorbed/peak displayed >= `min_absorption_ratio`, held >= `min_hold_ms`) with the top-N imbalance
  >= `min_imbalance` -> long; stop beyond the absorbing level. Mirror for asks -> short.
- rsi_snapback: Wilder RSI on `bar_ms` bars crosses back up through `oversold` (down through
  `overbought`) while the price sits at a volume-profile support (VAL or a high-volume node within
  `level_tolerance_bps`) below the POC (resistance: VAH/HVN above the POC) -> long (short); stop beyond
  the last `swing_bars` bars' extreme; target the POC.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from bot.domain.types import EntryIntent, TakeProfitTier
from bot.signals.bars import Bar, BarSeries
from bot.signals.view import Candidate

if TYPE_CHECKING:  # settings (pydantic) stay out of the core's imports
    from bot.settings.signals import (
        AbsorptionSetup,
        BreakoutFadeSetup,
        MomentumSetup,
        RsiSnapbackSetup,
        SetupCommon,
    )
    from bot.signals.features import SymbolFeatures
    from bot.signals.view import MarketView

__all__ = ["BUILTINS", "Absorption", "BreakoutFade", "Candidate", "Momentum", "RsiSnapback", "absorption",
           "breakout_fade", "build_intent", "momentum", "rsi_snapback"]


def _cand(f: SymbolFeatures, side: str, stop_ticks: float, target_ticks: float | None,
          features: dict[str, float]) -> Candidate:
    """A built-in's candidate: exact tick levels (stop_ticks/target_ticks), the quote prices beside them."""
    t = f.instrument.tick
    return Candidate(side, stop_ticks * t, target_ticks * t if target_ticks is not None else None, "", features,
                     stop_ticks, target_ticks)


def _last(bars: BarSeries, n: int) -> list[Bar] | None:
    b = bars.bars
    if len(b) < n:
        return None
    return [b[i] for i in range(len(b) - n, len(b))]


def _flow(f: SymbolFeatures, now_ns: int) -> tuple[int, float]:
    return f.book.ofi(0, now_ns), f.flow.window(0, now_ns).imbalance


def momentum(f: SymbolFeatures, cfg: MomentumSetup, now_ns: int) -> Candidate | None:
    s = f.bars[cfg.bar_ms].series
    k = cfg.swing_bars
    ef, es = s.ema_fast.value, s.ema_slow.value
    if ef is None or es is None or s.closed < max(2 * k, s.ema_slow.n):
        return None
    bars = _last(s, 2 * k)
    if bars is None:
        return None
    prev, last = bars[:k], bars[k:]
    cur = last[-1]
    tol = f.bps_to_ticks(cfg.pullback_tolerance_bps)
    pb = last[-cfg.pullback_bars:]
    ofi, imb = _flow(f, now_ns)
    feats = {"ema_fast": ef, "ema_slow": es, "ofi_1s_lots": float(ofi), "flow_imb_1s": imb}
    hh = max(b.high for b in last) > max(b.high for b in prev)
    hl = min(b.low for b in last) > min(b.low for b in prev)
    ll = min(b.low for b in last) < min(b.low for b in prev)
    lh = max(b.high for b in last) < max(b.high for b in prev)
    if (ef > es and cur.close > ef and hh and hl and any(b.low <= ef + tol for b in pb)
            and cur.close > bars[-2].close and ofi > 0 and imb >= cfg.min_flow_imbalance):
        return _cand(f, "long", min(b.low for b in pb), max(b.high for b in bars), feats)
    if (ef < es and cur.close < ef and ll and lh and any(b.high >= ef - tol for b in pb)
            and cur.close < bars[-2].close and ofi < 0 and imb <= -cfg.min_flow_imbalance):
        return _cand(f, "short", max(b.high for b in pb), min(b.low for b in bars), feats)
    return None


def breakout_fade(f: SymbolFeatures, cfg: BreakoutFadeSetup, now_ns: int) -> Candidate | None:
    s = f.bars[cfg.bar_ms].series
    nb = cfg.break_bars
    bars = _last(s, cfg.range_bars + nb)
    if bars is None:
        return None
    rng, brk = bars[:-nb], bars[-nb:]
    hi = max(b.high for b in rng)
    lo = min(b.low for b in rng)
    if hi - lo > f.bps_to_ticks(cfg.range_max_bps):
        return None
    rng_vol = sum(b.volume for b in rng) / len(rng)
    brk_vol = sum(b.volume for b in brk) / nb
    if brk_vol < cfg.break_volume_mult * rng_vol or brk_vol == 0:
        return None
    last = brk[-1]
    span = last.high - last.low
    if span <= 0:
        return None
    min_break = f.bps_to_ticks(cfg.break_min_bps)
    ofi, imb = _flow(f, now_ns)
    mid_range = (hi + lo) / 2.0
    top = max(b.high for b in brk)
    bot = min(b.low for b in brk)
    feats = {"range_high_ticks": float(hi), "range_low_ticks": float(lo), "break_volume_ratio":
             brk_vol / rng_vol if rng_vol else 99.0, "ofi_1s_lots": float(ofi), "flow_imb_1s": imb}
    if top >= hi + min_break and top - bot > 0:
        wick = last.high - max(last.open, last.close)
        stalled = last.close < top and wick >= cfg.wick_min_frac * span
        flip = ofi < 0 or f.ask_touch.absorption_ratio >= 1.0
        if stalled and flip and f.book.bid_ticks > mid_range:
            feats["extreme_ticks"] = float(top)
            return _cand(f, "short", top, mid_range, feats)
    if bot <= lo - min_break and top - bot > 0:
        wick = min(last.open, last.close) - last.low
        stalled = last.close > bot and wick >= cfg.wick_min_frac * span
        flip = ofi > 0 or f.bid_touch.absorption_ratio >= 1.0
        if stalled and flip and f.book.ask_ticks < mid_range:
            feats["extreme_ticks"] = float(bot)
            return _cand(f, "long", bot, mid_range, feats)
    return None


def absorption(f: SymbolFeatures, cfg: AbsorptionSetup, ts_ns: int, min_lots: float) -> Candidate | None:
    """Checked on every depth event: O(1)."""
    imb = f.book.imbalance
    hold = cfg.min_hold_ms * 1_000_000
    t = f.bid_touch
    if (t.hit_lots >= min_lots and t.absorption_ratio >= cfg.min_absorption_ratio
            and ts_ns - t.since_ns >= hold and imb >= cfg.min_imbalance):
        return _cand(f, "long", t.price_ticks, None, {
            "absorbed_lots": float(t.hit_lots), "absorption_ratio": t.absorption_ratio,
            "refills": float(t.refills), "held_ms": (ts_ns - t.since_ns) / 1e6, "imbalance": imb,
            "iceberg": float(t.is_iceberg), "level_ticks": float(t.price_ticks)})
    t = f.ask_touch
    if (t.hit_lots >= min_lots and t.absorption_ratio >= cfg.min_absorption_ratio
            and ts_ns - t.since_ns >= hold and imb <= -cfg.min_imbalance):
        return _cand(f, "short", t.price_ticks, None, {
            "absorbed_lots": float(t.hit_lots), "absorption_ratio": t.absorption_ratio,
            "refills": float(t.refills), "held_ms": (ts_ns - t.since_ns) / 1e6, "imbalance": imb,
            "iceberg": float(t.is_iceberg), "level_ticks": float(t.price_ticks)})
    return None


def rsi_snapback(f: SymbolFeatures, cfg: RsiSnapbackSetup, now_ns: int) -> Candidate | None:
    s = f.bars[cfg.bar_ms].series
    rsi, prev = s.rsi.value, s.prev_rsi
    if rsi is None or prev is None or f.profile is None:
        return None
    up = prev < cfg.oversold <= rsi
    down = prev > cfg.overbought >= rsi
    if not (up or down):
        return None
    lv = f.profile.levels()
    bars = _last(s, cfg.swing_bars)
    if lv is None or bars is None:
        return None
    close = bars[-1].close
    tol = f.bps_to_ticks(cfg.level_tolerance_bps)
    feats = {"rsi": rsi, "rsi_prev": prev, "poc_ticks": float(lv.poc_ticks), "val_ticks": float(lv.val_ticks),
             "vah_ticks": float(lv.vah_ticks)}
    if up and close < lv.poc_ticks:
        supports = [lv.val_ticks, *(h for h in lv.hvn_ticks if h < lv.poc_ticks)]
        if any(abs(close - x) <= tol for x in supports):
            return _cand(f, "long", min(b.low for b in bars), float(lv.poc_ticks), feats)
    if down and close > lv.poc_ticks:
        res = [lv.vah_ticks, *(h for h in lv.hvn_ticks if h > lv.poc_ticks)]
        if any(abs(close - x) <= tol for x in res):
            return _cand(f, "short", max(b.high for b in bars), float(lv.poc_ticks), feats)
    return None


def build_intent(setup: str, cfg: SetupCommon, f: SymbolFeatures, side: str, stop_level_ticks: float,
                 target_ticks: float | None, features: dict[str, float], now_ns: int, tag: str = "",
                 ) -> EntryIntent | None:
    """Entry at the touch, stop from the structure (+buffer, >= min, <= max), TP tiers in R.
    `features` is the intent's own dict (the book's state at the decision is added to it)."""
    bf = f.book
    buf = round(f.bps_to_ticks(cfg.stop_buffer_bps))
    min_stop = max(1, round(f.bps_to_ticks(cfg.min_stop_bps)))
    max_stop = f.bps_to_ticks(cfg.max_stop_bps)
    long = side == "long"
    entry = bf.ask_ticks if long else bf.bid_ticks
    if long:
        stop = math.floor(stop_level_ticks) - buf
        stop = min(stop, entry - min_stop)
        risk = entry - stop
    else:
        stop = math.ceil(stop_level_ticks) + buf
        stop = max(stop, entry + min_stop)
        risk = stop - entry
    if risk > max_stop:
        return None
    sign = 1 if long else -1
    prices = [entry + sign * max(1, round(r * risk)) for r in cfg.tp_r_multiples]
    tgt = target_ticks
    if tgt is not None and sign * (tgt - entry) >= 0.5 * risk:
        prices[0] = round(tgt)
        prices = sorted(prices, reverse=not long)
    targets = tuple(TakeProfitTier(p, fr) for p, fr in zip(prices, cfg.tp_fractions, strict=True))
    features.update(spread_ticks=float(bf.spread_ticks), imbalance=bf.imbalance, microprice_ticks=bf.microprice_ticks)
    return EntryIntent(f.symbol, side, setup, now_ns, entry, stop, targets, cfg.time_limit_s, features, tag=tag)


# ---------------------------------------------------------------------------------------------------
# The four setups as built-in plug-ins: the same `propose(view)` protocol as a user's strategy
# (docs/strategies.md). They read the raw feature objects (`view.features`, ticks and lots) and
# return candidates with exact tick levels, so their intents are bit-for-bit those of the functions.


class Momentum:
    def __init__(self, cfg: MomentumSetup) -> None:
        self.cfg = cfg
        self.bar_s = cfg.bar_ms / 1000

    def propose(self, view: MarketView) -> Candidate | None:
        return momentum(view._f, self.cfg, view._now)  # the view's own fields: no property calls


class BreakoutFade:
    def __init__(self, cfg: BreakoutFadeSetup) -> None:
        self.cfg = cfg
        self.bar_s = cfg.bar_ms / 1000

    def propose(self, view: MarketView) -> Candidate | None:
        return breakout_fade(view._f, self.cfg, view._now)  # the view's own fields: no property calls


class RsiSnapback:
    def __init__(self, cfg: RsiSnapbackSetup) -> None:
        self.cfg = cfg
        self.bar_s = cfg.bar_ms / 1000

    def propose(self, view: MarketView) -> Candidate | None:
        return rsi_snapback(view._f, self.cfg, view._now)  # the view's own fields: no property calls


class Absorption:
    """Checked after every applied depth event (O(1)); the notional threshold is turned into lots once per
    symbol, at the first call that finds a price."""

    trigger = "book"

    def __init__(self, cfg: AbsorptionSetup) -> None:
        self.cfg = cfg
        self._lots: dict[str, float] = {}

    def propose(self, view: MarketView) -> Candidate | None:
        f = view._f
        lots = self._lots.get(f.symbol)
        if not lots:
            lots = self._lots[f.symbol] = f.quote_to_lots(self.cfg.min_absorbed_quote)
        return absorption(f, self.cfg, view._now, lots)


# name -> class, in the order the engine evaluates them (bar setups first, as they always were)
BUILTINS: dict[str, type] = {"momentum": Momentum, "breakout_fade": BreakoutFade, "rsi_snapback": RsiSnapback,
                             "absorption": Absorption}
