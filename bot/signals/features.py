"""All features of one symbol, fed by depth events and prints: `SymbolFeatures`.

Wires the feature objects together and converts the config's notional/bps thresholds into this
instrument's lots/ticks once, at construction. Per depth event: the top of book + OFI, both touch
trackers (absorption, iceberg, depletion), the wall watchers (O(1), rescan amortised) and the BTC link
sample. Per print: the trade flow, bars of every kind, the volume profile, the touch trackers and walls.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from bot.domain.instrument import Instrument
from bot.market.book import OrderBook
from bot.signals.absorption import TouchTracker
from bot.signals.bars import BarSeries, TickBars, TimeBars, VolumeBars
from bot.signals.book_features import BookFeatures
from bot.signals.clock import EventClock
from bot.signals.context import BtcLink, FundingState
from bot.signals.liquidity import WallTracker, round_step_ticks_for
from bot.signals.profile import VolumeProfile
from bot.signals.trade_flow import LargeTrade, TradeFlow

if TYPE_CHECKING:  # settings (pydantic) stay out of the core's imports
    from bot.settings.signals import SignalsSection

__all__ = ["SymbolFeatures"]

_MS = 1_000_000
_S = 1_000_000_000


class SymbolFeatures:
    """Feature state of one symbol. Everything is keyed by exchange event time."""

    __slots__ = ("_inv_step", "_inv_tick", "_print_bars", "_ref_price", "ask_touch", "ask_walls", "bars", "bid_touch",
                 "bid_walls", "book", "btc", "cfg", "clock", "flow", "funding", "instrument", "last_depth_ns",
                 "last_trade_ns", "profile", "round_step_ticks", "symbol", "tick_bars", "volume_bars")

    def __init__(self, cfg: SignalsSection, instrument: Instrument, ref_price: float | None = None) -> None:
        self.cfg = cfg
        self.instrument = instrument
        self.symbol = instrument.symbol
        self._inv_tick = float(1 / Decimal(instrument.tick_size))
        self._inv_step = float(1 / Decimal(instrument.step_size))
        self.book = BookFeatures(cfg.imbalance_levels, cfg.imbalance_decay,
                                 tuple(w * _MS for w in cfg.ofi_windows_ms))
        self.flow = TradeFlow(tuple(w * _MS for w in cfg.flow_windows_ms))
        self.bid_touch = TouchTracker(cfg.iceberg_min_refills)
        self.ask_touch = TouchTracker(cfg.iceberg_min_refills)
        self.bid_walls = WallTracker(True, cfg.wall_levels, cfg.wall_mult, 1, cfg.wall_pull_frac,
                                     cfg.wall_scan_ms * _MS)
        self.ask_walls = WallTracker(False, cfg.wall_levels, cfg.wall_mult, 1, cfg.wall_pull_frac,
                                     cfg.wall_scan_ms * _MS)
        self.bars = {ms: TimeBars(ms * _MS, self._series()) for ms in sorted(cfg.bar_intervals_ms)}
        # Prints feed the shortest bars; each longer interval that it divides is merged from them.
        ivs = sorted(cfg.bar_intervals_ms)
        self._print_bars = [self.bars[ivs[0]]]
        for ms in ivs[1:]:
            if ms % ivs[0] == 0:
                self.bars[ivs[0]].series.children.append(self.bars[ms])
            else:
                self._print_bars.append(self.bars[ms])
        self.tick_bars = TickBars(cfg.tick_bar_trades, self._series())
        self.volume_bars: VolumeBars | None = None  # needs a price to turn notional into lots
        self.profile: VolumeProfile | None = None
        self.btc = BtcLink(cfg.corr_sample_ms * _MS, cfg.corr_samples, int(cfg.btc_veto_window_s * _S))
        self.funding = FundingState()
        self.clock = EventClock()  # every event time goes through it: a clock going back (clock.py)
        self.round_step_ticks = 0
        self.last_depth_ns = 0
        self.last_trade_ns = 0
        self._ref_price = 0.0
        if ref_price:
            self._calibrate(ref_price)

    def _series(self) -> BarSeries:
        c = self.cfg
        return BarSeries(c.bars_kept, c.ema_fast_bars, c.ema_slow_bars, c.rsi_bars, c.atr_bars)

    def _calibrate(self, price: float) -> None:
        """Turn the notional/bps thresholds into lots/ticks at the first price seen."""
        c = self.cfg
        self._ref_price = price
        tick = self.instrument.tick
        step = self.instrument.step
        self.flow.large_lots = max(1, int(c.large_trade_quote / price / step))
        wall_lots = max(1, int(c.wall_min_quote / price / step))
        self.bid_walls.min_lots = self.ask_walls.min_lots = wall_lots
        self.volume_bars = VolumeBars(max(1, int(c.volume_bar_quote / price / step)), self._series())
        bucket = max(1, round(price * c.profile_bucket_bps / 1e4 / tick))
        self.profile = VolumeProfile(int(c.profile_window_s * _S), bucket, c.value_area_frac, c.hvn_mult,
                                     slot_ns=c.profile_slot_ms * 1_000_000)
        self.round_step_ticks = round_step_ticks_for(price, tick)

    # ------------------------------------------------------------------ conversions
    def bps_to_ticks(self, bps: float) -> float:
        """bps of the current price in (fractional) ticks."""
        return self._ref_price * bps / 1e4 * self._inv_tick if self._ref_price else 0.0

    def quote_to_lots(self, quote: float) -> float:
        return quote / self._ref_price * self._inv_step if self._ref_price else float("inf")

    # ------------------------------------------------------------------ updates
    @property
    def now_ns(self) -> int:
        """The clock's time of the latest event (what the windows and bars are keyed on: clock.py)."""
        return self.clock.last_ns

    def on_depth(self, book: OrderBook, ts_event_ns: int, btc_mid: float | None = None) -> None:
        ts_event_ns = self.clock.at(ts_event_ns)
        bf = self.book
        bf.update(book, ts_event_ns)
        if not bf.valid:
            return
        self.last_depth_ns = ts_event_ns
        if not self._ref_price:
            self._calibrate(bf.mid_ticks / self._inv_tick)
        self.bid_touch.on_touch(bf.bid_ticks, bf.bid_lots, ts_event_ns)
        self.ask_touch.on_touch(bf.ask_ticks, bf.ask_lots, ts_event_ns)
        self.bid_walls.on_depth(book, ts_event_ns)
        self.ask_walls.on_depth(book, ts_event_ns)
        if btc_mid is not None:
            self.btc.sample(ts_event_ns, bf.mid_ticks, btc_mid)

    def on_trade(self, ts_event_ns: int, price: str, qty: str,
                 aggressor_buy: bool) -> tuple[int, LargeTrade | None]:
        """Add one print (decimal strings as the venue sent them). Returns (bars closed on the
        setups' series, large trade just detected)."""
        p = int(float(price) * self._inv_tick + 0.5)
        q = int(float(qty) * self._inv_step + 0.5)
        return self.on_trade_ticks(ts_event_ns, p, q, aggressor_buy)

    def on_trade_ticks(self, ts_ns: int, p: int, q: int, buy: bool) -> tuple[int, LargeTrade | None]:
        ts_ns = self.clock.at(ts_ns)
        self.last_trade_ns = ts_ns
        if not self._ref_price:
            self._calibrate(p / self._inv_tick)
        large = self.flow.on_trade(ts_ns, p, q, buy)
        closed = 0
        for tb in self._print_bars:
            closed += tb.on_trade(ts_ns, p, q, buy)
        self.tick_bars.on_trade(ts_ns, p, q, buy)
        if self.volume_bars is not None:
            self.volume_bars.on_trade(ts_ns, p, q, buy)
        if self.profile is not None:
            self.profile.add(ts_ns, p, q)
        if buy:  # a buyer lifts the ask
            self.ask_touch.on_hit(p, q)
            self.ask_walls.on_trade_at(p, q)
        else:
            self.bid_touch.on_hit(p, q)
            self.bid_walls.on_trade_at(p, q)
        return closed, large

    def on_funding(self, mark_price: float | None, index_price: float | None, funding_rate: float | None,
                   next_funding_ns: int | None, ts_ns: int) -> None:
        ts_ns = self.clock.at(ts_ns)
        self.funding.update(mark_price, index_price, funding_rate, next_funding_ns, ts_ns)

    # ------------------------------------------------------------------ reads
    def round_levels(self) -> tuple[int, int]:
        """(nearest round price at/below the mid, nearest above), in ticks."""
        step = self.round_step_ticks or 1
        mid = int(self.book.mid_ticks)
        below = mid - mid % step
        return below, below + step

    def snapshot(self, now_ns: int) -> dict[str, float]:
        """Every scalar feature (floats, prices in ticks) for journals, exports and debugging. `now_ns` is
        venue time: windows are read at the clock's time for it, funding at the venue's own (clock.py)."""
        raw_now = now_ns
        now_ns = self.clock.peek(now_ns)
        bf, fl = self.book, self.flow
        out: dict[str, float] = {
            "spread_ticks": float(bf.spread_ticks), "mid_ticks": bf.mid_ticks,
            "microprice_ticks": bf.microprice_ticks, "imbalance": bf.imbalance,
            "cvd_lots": float(fl.cvd_lots),
            "bid_absorbed_lots": float(self.bid_touch.hit_lots),
            "ask_absorbed_lots": float(self.ask_touch.hit_lots),
            "bid_refills": float(self.bid_touch.refills), "ask_refills": float(self.ask_touch.refills),
            "bid_iceberg": float(self.bid_touch.is_iceberg), "ask_iceberg": float(self.ask_touch.is_iceberg),
            "bid_depletion": self.bid_touch.depletion, "ask_depletion": self.ask_touch.depletion,
            "bid_wall_pulls": float(self.bid_walls.pulls), "ask_wall_pulls": float(self.ask_walls.pulls),
        }
        for i, ms in enumerate(self.cfg.ofi_windows_ms):
            out[f"ofi_{ms}ms_lots"] = float(bf.ofi(i, now_ns))
        for i, ms in enumerate(self.cfg.flow_windows_ms):
            w = fl.window(i, now_ns)
            out[f"flow_imb_{ms}ms"] = w.imbalance
            out[f"buy_{ms}ms_lots"] = float(w.buy_lots)
            out[f"sell_{ms}ms_lots"] = float(w.sell_lots)
            out[f"trade_rate_{ms}ms_per_s"] = w.rate_per_s()
        lo, hi = self.round_levels()
        out["round_below_ticks"] = float(lo)
        out["round_above_ticks"] = float(hi)
        for name, wall in (("bid_wall", self.bid_walls.wall), ("ask_wall", self.ask_walls.wall)):
            if wall is not None:
                out[f"{name}_ticks"] = float(wall.price_ticks)
                out[f"{name}_lots"] = float(wall.lots)
        for ms, tb in self.bars.items():
            s = tb.series
            for k, v in (("ema_fast", s.ema_fast.value), ("ema_slow", s.ema_slow.value), ("rsi", s.rsi.value),
                         ("atr_ticks", s.atr.value)):
                if v is not None:
                    out[f"{k}_{ms}ms"] = v
        if self.profile is not None:
            lv = self.profile.levels()
            if lv is not None:
                out.update(poc_ticks=float(lv.poc_ticks), vah_ticks=float(lv.vah_ticks),
                           val_ticks=float(lv.val_ticks))
        f = self.funding
        if f.funding_rate is not None:
            out["funding_rate"] = f.funding_rate
        ttf = f.seconds_to_funding(raw_now)
        if ttf is not None:
            out["funding_in_s"] = ttf
        basis = f.basis_bps(self.instrument.tick * fl.last_price_ticks) if fl.last_price_ticks else None
        if basis is not None:
            out["basis_bps"] = basis
        for k, v in (("btc_beta", self.btc.beta), ("btc_corr", self.btc.corr)):
            if v is not None:
                out[k] = v
        return out
