"""Config section: features and setups."""

from __future__ import annotations

from bot.settings.core import FrozenModel

__all__ = ["SignalsSection"]


class SignalsSection(FrozenModel):
    """[signals] keys. Owned by the signals layer; every key has a unit in its name and a comment."""
