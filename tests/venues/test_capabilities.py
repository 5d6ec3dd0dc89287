"""Venue differences are a declared record (`ExecutionGateway.capabilities`), not `getattr` probing: each
gateway's flags match the methods it really has, so a flag can neither promise a missing method nor hide
one the reconciliation needs."""

from __future__ import annotations

import pytest

from bot.venues.binance_usdm.gateway import BinanceGateway
from bot.venues.bybit.gateway import BybitGateway
from bot.venues.gateway_common import LiveGateway
from bot.venues.paper.gateway import PaperGateway
from bot.venues.ports import GatewayCapabilities
from bot.venues.sim.gateway import SimGateway

# flag -> the methods it promises (bot/venues/ports.py protocols)
PROMISES = {
    "account_trades": ("user_trades",),
    "raw_order_lookup": ("fetch_order_raw",),
    "position_level_stop": ("is_position_level", "adopt_stop"),
    "funding": ("funding_updates",),
    "retry_after": ("blocked_for_s",),
    "order_transport": ("order_transport_state",),
}


@pytest.mark.parametrize("cls", [BinanceGateway, BybitGateway, SimGateway, PaperGateway, LiveGateway])
def test_declared_capabilities_match_the_methods(cls: type) -> None:
    caps = cls.capabilities
    assert isinstance(caps, GatewayCapabilities)
    for flag, methods in PROMISES.items():
        has = all(callable(getattr(cls, m, None)) for m in methods)
        assert getattr(caps, flag) == has, f"{cls.__name__}.capabilities.{flag}={getattr(caps, flag)}, methods {has}"


def test_the_venues_differ_where_the_exchanges_do() -> None:
    assert BybitGateway.capabilities.position_level_stop  # Bybit: one stopLoss per position
    assert not BinanceGateway.capabilities.position_level_stop  # Binance: a STOP_MARKET order per leg
    assert BinanceGateway.capabilities.funding and not BybitGateway.capabilities.funding
    assert BinanceGateway.capabilities.stream_missed_hook and BybitGateway.capabilities.stream_missed_hook
    assert not SimGateway.capabilities.account_trades  # the simulator has no userTrades look-up
    # both live venues start an entry eagerly (its record follows the send: tests/sim/test_bybit_eager.py);
    # the in-process venues do not (their matching would run inside the decision step)
    assert BinanceGateway.capabilities.eager_submit and BybitGateway.capabilities.eager_submit
    assert not SimGateway.capabilities.eager_submit and not PaperGateway.capabilities.eager_submit
    assert BybitGateway.capabilities.cancel_by_venue_id  # a hand-placed Bybit order has no orderLinkId
