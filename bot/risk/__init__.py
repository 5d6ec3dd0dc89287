"""Risk (pure): sizing from the money at risk, exchange filters, leverage brackets, liquidation
price, the cost model, and the gate with the trading state every order passes. No I/O, explicit `now_ns`."""

from bot.risk.brackets import EMBEDDED, Bracket, LeverageBrackets, brackets_for, parse_leverage_brackets
from bot.risk.costs import CostEstimate, FeeRates
from bot.risk.gate import MarketView, RiskGate, TradingState
from bot.risk.liquidation import liquidation_price_cross, liquidation_price_isolated
from bot.risk.manager import RiskManager
from bot.risk.reasons import Denial, DenyReason
from bot.risk.sizing import Sized, floor_lots, risk_budget, size_entry

__all__ = [
    "EMBEDDED",
    "Bracket",
    "CostEstimate",
    "Denial",
    "DenyReason",
    "FeeRates",
    "LeverageBrackets",
    "MarketView",
    "RiskGate",
    "RiskManager",
    "Sized",
    "TradingState",
    "brackets_for",
    "floor_lots",
    "liquidation_price_cross",
    "liquidation_price_isolated",
    "parse_leverage_brackets",
    "risk_budget",
    "size_entry",
]
