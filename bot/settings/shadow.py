"""Config section: shadow mode (`app.mode = "shadow"`, bot/venues/shadow, docs/shadow.md).

In shadow mode `[venue]` is the account orders go to (a demo/testnet account, or the loopback exchange
playing one, with its keys) and these keys name where the PUBLIC market data come from: the same venue
(`venue.name`) in `data_environment`, mainnet by default. That stream drives the trading core and, in
process, the project's own matching engine ([sim] account, fees, latency, queue model), which paper-fills
the very orders sent to the account; `scalper report --shadow` compares the two per trade.
"""

from __future__ import annotations

from typing import Literal

from bot.settings.core import FrozenModel, VenueSection

__all__ = ["ShadowSection"]


class ShadowSection(FrozenModel):
    """[shadow] keys: the data venue of shadow mode (its orders venue is [venue])."""

    # Which endpoints of venue.name the market data come from. Public streams only: no key is sent there
    # and no order, whatever the environment (mainnet included).
    data_environment: Literal["mainnet", "demo", "testnet", "exchange-sim"] = "mainnet"
    # Overrides of that environment's public endpoints; accepted only with data_environment = "exchange-sim"
    # and loopback hosts (the live-money guard, bot/guard.py), like the venue's own overrides.
    data_rest_url: str = ""  # Binance: GET /fapi/v1/depth snapshots (no key)
    data_ws_public_url: str = ""  # Binance: .../public (depth, bookTicker); Bybit: .../v5/public/linear
    data_ws_market_url: str = ""  # Binance: .../market (aggTrade, markPrice)

    def data_venue(self, venue: VenueSection) -> VenueSection:
        """The venue settings the data feed gets: `venue` moved to the data environment and URLs, with every
        credential and the private URL blanked (public market data only)."""
        blank = type(venue.api_key)("")
        return venue.model_copy(update={
            "environment": self.data_environment, "rest_url": self.data_rest_url,
            "ws_public_url": self.data_ws_public_url, "ws_market_url": self.data_ws_market_url,
            "ws_private_url": "", "api_key": blank, "api_secret": blank, "secrets_file": ""})
