"""Config section: health/metrics endpoint, control, alerts."""

from __future__ import annotations

from bot.settings.core import FrozenModel

__all__ = ["OpsSection"]


class OpsSection(FrozenModel):
    """[ops] keys. Owned by the ops layer; every key has a unit in its name and a comment."""
