"""Config section: sizing, leverage, limits and the risk gate."""

from __future__ import annotations

from bot.settings.core import FrozenModel

__all__ = ["RiskSection"]


class RiskSection(FrozenModel):
    """[risk] keys. Owned by the risk layer; every key has a unit in its name and a comment."""
