"""Config section: the exchange simulator (matching, latency, fees, market generator)."""

from __future__ import annotations

from bot.settings.core import FrozenModel

__all__ = ["SimSection"]


class SimSection(FrozenModel):
    """[sim] keys. Owned by the sim layer; every key has a unit in its name and a comment."""
