"""Building shadow mode: the demo account's gateway, the data venue's public feed, the paper mirror.

    gw, feed_factory = shadow_venue(settings, sink_factory, open_trades)
    feed = feed_factory(venue, market, instruments, on_event)   # what App._run_venue does with it
    await feed.run()                              # public streams + the paper clock + the mirror

[venue] is the orders' account (binance-usdm or bybit, demo/testnet/exchange-sim: the live-money guard
refuses a production host); [shadow] names the environment (and loopback overrides) of the SAME venue
whose public data drive the bot. The paper exchange takes the demo account's instrument rules (so lots mean
the same on both sides) and the [sim] section's account, fees, latency and queue model.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from bot.domain.instrument import Instrument
from bot.errors import ConfigError
from bot.settings import Settings
from bot.settings.core import MarketSection, VenueSection
from bot.venues.paper.gateway import PaperGateway
from bot.venues.paper.venue import PaperFeed, paper_exchange
from bot.venues.shadow.mirror import ShadowMirror, ShadowSink

__all__ = ["ShadowFeed", "shadow_venue"]


class ShadowFeed(PaperFeed):
    """The data venue's public feed into the paper engine and the bot, with the mirror running beside it."""

    def __init__(self, feed_cls: Any, gateway: PaperGateway, venue: VenueSection, market: MarketSection,
                 instruments: dict[str, Instrument], on_event: Callable[[Any], None], mirror: ShadowMirror) -> None:
        super().__init__(feed_cls, gateway, venue, market, instruments, on_event)
        self.mirror = mirror

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(super().run())
            tg.create_task(self.mirror.run())


def shadow_venue(settings: Settings, sink_factory: Callable[[], ShadowSink],
                 open_trades: Callable[[], dict[str, str]]) -> tuple[Any, Callable[..., ShadowFeed]]:
    """(demo gateway, feed factory) for App._run_venue. `sink_factory` is called once the journal exists
    (when the feed is built), `open_trades` gives the engine's open trades (id -> symbol)."""
    v = settings.venue
    transport = settings.execution.order_transport  # the demo account's orders: REST or its order websocket
    gw: Any
    feed_cls: Any
    if v.name == "binance-usdm":
        from bot.venues.binance_usdm.feed import BinanceMarketFeed
        from bot.venues.binance_usdm.gateway import BinanceGateway

        gw, feed_cls = BinanceGateway(v, order_transport=transport), BinanceMarketFeed
    elif v.name == "bybit":
        from bot.venues.bybit.feed import BybitMarketFeed
        from bot.venues.bybit.gateway import BybitGateway

        gw, feed_cls = BybitGateway(v, order_transport=transport), BybitMarketFeed
    else:
        raise ConfigError(f'app.mode = "shadow" sends orders to a venue account and reads that venue\'s public data: '
                          f'venue.name must be binance-usdm or bybit, not {v.name!r}')
    data = settings.shadow.data_venue(v)

    def factory(venue: VenueSection, market: MarketSection, instruments: dict[str, Instrument],
                on_event: Callable[[Any], None]) -> ShadowFeed:
        paper = PaperGateway(paper_exchange(settings, instruments))
        mirror = ShadowMirror(gw, paper, sink_factory(), open_trades,
                              drive_clock=lambda: paper.ex.advance_to(paper.clock()))
        mirror.install()  # before any order: the first ones leave after the start-up reconciliation
        return ShadowFeed(feed_cls, paper, data, market, instruments, on_event, mirror)

    return gw, factory
