"""RiskManager: the gate, then the sizing, then the costs, for one entry intent. Pure (explicit now_ns).

Costs (bot.risk.costs): after sizing, the round trip at the planned size (fees of this symbol: the
venue's when `set_fees` was called at start-up, else the config's; slippage: the config's or the book's
measured impact, MarketView.impact_bps; funding when the intent's time limit crosses the next funding
time) must be <= risk.max_cost_r of the trade's R, and the nearest target must net >= risk.min_target_net_r.
The estimate is on the returned Sized (`cost`) for the planner and the journal."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.domain.instrument import Instrument
from bot.domain.types import EntryIntent
from bot.risk.brackets import LeverageBrackets, brackets_for
from bot.risk.costs import (
    CostEstimate,
    FeeRates,
    book_impact_bps,
    estimate_round_trip,
    funding_cost_bps,
    target_net_quote,
)
from bot.risk.gate import MarketView, RiskGate
from bot.risk.reasons import Denial
from bot.risk.sizing import Sized, size_entry

if TYPE_CHECKING:
    from bot.settings.risk import RiskSection

__all__ = ["RiskManager"]


class RiskManager:
    def __init__(self, cfg: RiskSection, equity: float, now_ns: int,
                 brackets: dict[str, LeverageBrackets] | None = None) -> None:
        self.cfg = cfg
        self.gate = RiskGate(cfg, equity, now_ns)
        self._brackets = brackets or {}
        self._fees: dict[str, FeeRates] = {}
        # the config's rates, made once per config (a reload replaces `cfg`): not a new FeeRates per call
        self._cfg_fees = (cfg, FeeRates.from_config(cfg))

    def set_fees(self, symbol: str, fees: FeeRates) -> None:
        """The venue's fee rates for `symbol` (read at start-up); the config's apply to any other."""
        self._fees[symbol] = fees

    def fees(self, symbol: str) -> FeeRates:
        fees = self._fees.get(symbol)
        if fees is not None:
            return fees
        cfg, fees = self._cfg_fees
        if cfg is not self.cfg:
            self._cfg_fees = (self.cfg, fees := FeeRates.from_config(self.cfg))
        return fees

    def estimate(self, intent: EntryIntent, market: MarketView, sized: Sized, *, entry_is_maker: bool,
                 now_ns: int) -> tuple[CostEstimate, float | None]:
        """The round trip of `sized` and the nearest target's net in R (None: no target)."""
        side = 1 if intent.side == "long" else -1
        # no time limit of its own: the execution's max_hold_s applies, unknown here; a day is the safe side
        hold_ns = int(intent.time_limit_s * 1e9) if intent.time_limit_s > 0 else 86_400 * 10**9
        funding = funding_cost_bps(side, market.funding_rate_bps, market.next_funding_ns, now_ns, hold_ns)
        impact = market.impact_bps
        if market.book is not None and sized.qty_lots > 0:
            # the exit (a STOP_MARKET or a market exit) crosses the book against the position: a long sells
            # into the bids. The book's depth now stands in for the depth then; a book that cannot fill the
            # size at all is priced at the sizing's own worst case (the config's slippage, or more).
            swept = book_impact_bps(market.book, side < 0, sized.qty_lots)
            if swept is not None:
                impact = max(impact, swept)
        est = estimate_round_trip(self.cfg, qty=sized.qty, entry_price=sized.price, risk_budget=sized.risk_budget,
                                  entry_is_maker=entry_is_maker, fees=self.fees(intent.symbol),
                                  impact_bps=impact, funding_bps=funding)
        if not intent.targets or not sized.entry_ticks or sized.risk_budget <= 0:
            return est, None
        tick = sized.price / sized.entry_ticks
        # the nearest target from the sizing price (one behind it nets less than nothing: denied)
        nearest = min((t.price_ticks for t in intent.targets), key=lambda p: side * (p - sized.entry_ticks))
        net = target_net_quote(side, sized.qty, sized.price, nearest * tick, est)
        return est, net / sized.risk_budget

    def brackets(self, symbol: str) -> LeverageBrackets:
        return brackets_for(symbol, self._brackets)

    def assess(self, intent: EntryIntent, inst: Instrument, market: MarketView, *, equity: float,
               free_margin: float, now_ns: int, entry_ticks: int | None = None, entry_is_maker: bool = False,
               market_entry: bool = False) -> Sized | Denial:
        """Gate, size, notional limits. `entry_ticks` is the price the entry order will carry (the
        intent's reference price by default); the stop distance is measured from it."""
        gate = self.gate
        denial = gate.check_entry(intent.symbol, intent.setup, market, now_ns)
        if denial is not None:
            return denial
        side = 1 if intent.side == "long" else -1
        sized = size_entry(
            inst, self.brackets(intent.symbol), self.cfg, equity=equity, free_margin=free_margin, side=side,
            entry_ticks=intent.price_ticks if entry_ticks is None else entry_ticks,
            stop_ticks=intent.stop_ticks, entry_is_maker=entry_is_maker, market_entry=market_entry,
        )
        if isinstance(sized, Denial):
            if not gate.dry:  # a warm-up's (bot/execution/warm.py) is not counted
                gate.denials[sized.reason.value] += 1
                gate.last_denial = sized
            return sized
        est, target_r = self.estimate(intent, market, sized, entry_is_maker=entry_is_maker, now_ns=now_ns)
        denial = gate.check_costs(intent.symbol, est.r, est.bps, target_r)
        if denial is not None:
            return denial
        denial = gate.check_notional(intent.symbol, sized.notional)
        if denial is not None:
            return denial
        # a new Sized with the estimate, positionally (dataclasses.replace introspects the fields: ~5 us)
        return Sized(sized.qty_lots, sized.qty, sized.price, sized.notional, sized.leverage, sized.margin,
                     sized.liq_price, sized.risk_budget, sized.loss_at_stop, sized.per_unit_loss, sized.entry_ticks,
                     est)
