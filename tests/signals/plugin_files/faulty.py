"""Test plug-ins that misbehave: one raises on its n-th call, one returns garbage, one refuses keys."""

from __future__ import annotations

from bot.strategy import Candidate, MarketView


class RaiseOnCall:
    trigger = "any"

    def __init__(self, n: int = 3) -> None:
        self.n = n
        self.calls = 0

    def propose(self, view: MarketView) -> Candidate | None:
        self.calls += 1
        if self.calls >= self.n:
            raise RuntimeError(f"boom on call {self.calls}")
        return None


class ReturnsGarbage:
    def propose(self, view: MarketView) -> object:
        return {"side": "long"}


class Picky:
    def __init__(self, level: int) -> None:
        if level < 0:
            raise ValueError("level must be >= 0")
        self.level = level

    def propose(self, view: MarketView) -> Candidate | None:
        return None


NOT_A_CLASS = 42
