"""RiskManager: the gate, then the sizing, for one entry intent. Pure (explicit now_ns)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.domain.instrument import Instrument
from bot.domain.types import EntryIntent
from bot.risk.brackets import LeverageBrackets, brackets_for
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
            gate.denials[sized.reason.value] += 1
            gate.last_denial = sized
            return sized
        denial = gate.check_notional(intent.symbol, sized.notional)
        return sized if denial is None else denial
