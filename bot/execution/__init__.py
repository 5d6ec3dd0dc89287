"""Execution: the trade lifecycle as a pure state machine (actions, planner, trade) and its async driver
(engine). Only `engine.py` awaits."""

from bot.execution.actions import TRANSITIONS, Leg, LegRole, Timer, TradeState
from bot.execution.planner import EntryTerms, TradePlan, entry_terms, plan_trade, slice_lots
from bot.execution.trade import IllegalTransition, TradeMachine

__all__ = [
    "TRANSITIONS",
    "EntryTerms",
    "IllegalTransition",
    "Leg",
    "LegRole",
    "Timer",
    "TradeMachine",
    "TradePlan",
    "TradeState",
    "entry_terms",
    "plan_trade",
    "slice_lots",
]
