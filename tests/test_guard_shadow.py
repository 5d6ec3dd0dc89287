"""The live-money guard in shadow mode (bot/guard.py): [venue] takes the orders, so it is judged like any mode
that sends orders (never mainnet, never a production host, --live refused); [shadow]'s data venue is judged
by paper mode's rules (public data only: mainnet allowed, overrides only to loopback with exchange-sim)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from bot.errors import ConfigError
from bot.guard import check
from bot.settings import Settings

VENUES = ("binance-usdm", "bybit")
ENVS = ("mainnet", "demo", "testnet", "exchange-sim")
LOOP = "http://127.0.0.1:18081"


def _s(venue: str, env: str, data_env: str = "mainnet", **shadow: Any) -> Settings:
    v: dict[str, Any] = {"name": venue, "environment": env}
    if env == "exchange-sim":
        v["rest_url"] = "http://127.0.0.1:18080"
    return Settings(app={"mode": "shadow"}, venue=v, shadow={"data_environment": data_env, **shadow})


def _refused(s: Settings, live: bool = False) -> str | None:
    try:
        check(s, live)
    except ConfigError as e:
        return str(e)
    return None


@pytest.mark.parametrize(("venue", "env", "data_env", "live"),
                         list(itertools.product(VENUES, ENVS, ENVS, (False, True))))
def test_orders_never_to_mainnet_data_from_anywhere(venue: str, env: str, data_env: str, live: bool) -> None:
    shadow = {"data_rest_url": LOOP} if data_env == "exchange-sim" else {}
    why = _refused(_s(venue, env, data_env, **shadow), live)
    if live:
        assert why and "--live given" in why
    elif env == "mainnet":
        assert why and "mainnet" in why and "venue.environment" in why
    else:
        assert why is None, why


@pytest.mark.parametrize("venue", VENUES)
@pytest.mark.parametrize(("data_env", "url", "refused_for"), [
    ("exchange-sim", "ws://127.0.0.1:18081/public", None),
    ("exchange-sim", "wss://fstream.binance.com/public", "not a loopback host"),
    ("exchange-sim", "wss://stream.bybit.com/v5/public/linear", "not a loopback host"),
    ("exchange-sim", "ws://192.168.1.20:18081/public", "not a loopback host"),
    ("mainnet", "ws://127.0.0.1:18081/public", 'accepted only for environment "exchange-sim"'),
])
def test_data_venue_overrides(venue: str, data_env: str, url: str, refused_for: str | None) -> None:
    rest = {"data_rest_url": LOOP} if data_env == "exchange-sim" else {}
    why = _refused(_s(venue, "exchange-sim", data_env, data_ws_public_url=url, **rest))
    if refused_for is None:
        assert why is None, why
    else:
        assert why and refused_for in why and "shadow.data_ws_public_url" in why
        assert why.startswith("shadow mode's data venue")


def test_an_exchange_sim_data_venue_needs_its_urls() -> None:
    why = _refused(_s("binance-usdm", "exchange-sim", "exchange-sim"))
    assert why and why.startswith("shadow mode's data venue: shadow.data_rest_url: not set")


def test_the_data_venue_carries_no_key_and_no_private_url() -> None:
    s = Settings(app={"mode": "shadow"}, venue={"name": "binance-usdm", "environment": "exchange-sim",
                                                "rest_url": "http://127.0.0.1:18080",
                                                "ws_private_url": "ws://127.0.0.1:18080/private"},
                 shadow={"data_environment": "mainnet"})
    assert s.venue.api_key.get_secret_value() == "sim-key"  # the orders' account has its keys
    data = s.shadow.data_venue(s.venue)
    assert data.environment == "mainnet" and data.ws_private_url == "" and data.rest_url == ""
    assert data.api_key.get_secret_value() == "" and data.api_secret.get_secret_value() == ""
    assert data.secrets_file == "" and data.symbols == s.venue.symbols and data.name == s.venue.name
