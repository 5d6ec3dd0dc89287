"""Building paper mode: the venue's public feed tapped into a `PaperGateway` (no keys, no private URL).

    gw, feed_factory = paper_venue(settings)
    feed = feed_factory(venue, market, instruments, on_event)   # what App._run_venue does with it
    await feed.run()                                            # public streams + the exchange clock

The data source is `venue.name` (binance-usdm or bybit) in `venue.environment` (mainnet, demo, testnet or
exchange-sim; overrides of the public URLs as for the venue itself). The matching engine takes the
account, fee, leverage, funding-fallback and order-latency keys of the [sim] section; instrument rules are
the embedded ones (bot/market/instruments.py KNOWN), as for the in-process simulator.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from bot.domain.instrument import Instrument
from bot.errors import ConfigError
from bot.market.instruments import KNOWN
from bot.market.sync import BybitBookSync
from bot.settings import Settings
from bot.settings.core import MarketSection, VenueSection
from bot.venues.paper.gateway import PaperGateway
from bot.venues.sim.exchange import SimExchange
from bot.venues.sim.latency import Latency

__all__ = ["PaperFeed", "paper_exchange", "paper_venue", "public_venue"]

SOURCES = ("binance-usdm", "bybit")


def public_venue(venue: VenueSection) -> VenueSection:
    """The venue settings the paper feed gets: keys, secrets file and private URL blanked, so nothing in
    paper mode holds a credential even when the environment carries one."""
    blank = type(venue.api_key)("")  # SecretStr (settings is the one package that imports pydantic)
    return venue.model_copy(update={"api_key": blank, "api_secret": blank, "secrets_file": "",
                                    "ws_private_url": ""})


def _instruments(symbols: tuple[str, ...]) -> dict[str, Instrument]:
    missing = [s for s in symbols if s not in KNOWN]
    if missing:
        raise ConfigError(f"venue.symbols: {', '.join(missing)} have no embedded instrument rules; paper mode "
                          f"trades {', '.join(sorted(KNOWN))}")
    return {s: KNOWN[s] for s in symbols}


def paper_exchange(settings: Settings, instruments: dict[str, Instrument]) -> SimExchange:
    """The matching engine: [sim] account/fees/latency; its books keep `market.depth_bps` like the feed's.
    A Bybit source re-sequences its matching books with Bybit's rules (snapshot + deltas, u + 1)."""
    cfg = settings.sim
    ex = SimExchange(
        instruments, balance=cfg.starting_balance_usdt, maker_fee_bps=cfg.maker_fee_bps,
        taker_fee_bps=cfg.taker_fee_bps, default_leverage=cfg.default_leverage,
        isolated=cfg.margin_type == "isolated", funding_rate_bps=cfg.funding_rate_bps,
        funding_interval_s=cfg.funding_interval_s, liquidation_fee_bps=cfg.liquidation_fee_bps,
        order_latency=Latency.from_ms(cfg.order_latency_ms, cfg.order_latency_jitter_ms, cfg.latency_kind,
                                      cfg.seed),
        keep_reports=False, queue_model=cfg.queue_model, funding_source=cfg.funding_source,
        # Bybit's ticker ids are not its depth stream's: the matching top stays the depth book's there
        book_ticker_top=cfg.book_ticker_top and settings.venue.name != "bybit",
    )
    if settings.venue.name == "bybit":
        for m in ex.markets.values():
            # SymbolMarket only calls on_diff/on_snapshot and reads stats: the sync interface both share
            # (bot/market/sync.py); its annotation names the Binance one because the simulator speaks Binance.
            m.sync = BybitBookSync(m.book, resync_on_gap=settings.market.bybit_resync_on_gap)  # type: ignore[assignment]
    return ex


class PaperFeed:
    """The venue's own public feed; each parsed event reaches the matching engine, then the bot."""

    def __init__(self, feed_cls: Any, gateway: PaperGateway, venue: VenueSection, market: MarketSection,
                 instruments: dict[str, Instrument], on_event: Callable[[Any], None]) -> None:
        self.gateway = gateway
        self._on_event = on_event
        self.inner = feed_cls(public_venue(venue), market, instruments, self._tap)
        self.syncs = self.inner.syncs

    def _tap(self, ev: Any) -> None:
        self.gateway.on_market_event(ev)
        self._on_event(ev)

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.inner.run())
            tg.create_task(self.gateway.run_clock())


def paper_venue(settings: Settings) -> tuple[PaperGateway, Callable[..., PaperFeed]]:
    """(gateway, feed factory) for App._run_venue. Refuses a venue with no public feed (the in-process
    simulator is already paper trading on generated data: mode "sim")."""
    v = settings.venue
    feed_cls: Any
    if v.name == "binance-usdm":
        from bot.venues.binance_usdm.feed import BinanceMarketFeed

        feed_cls = BinanceMarketFeed
    elif v.name == "bybit":
        from bot.venues.bybit.feed import BybitMarketFeed

        feed_cls = BybitMarketFeed
    else:
        raise ConfigError(f'app.mode = "paper" reads a venue\'s public market data: venue.name must be one of '
                          f'{", ".join(SOURCES)}, not {v.name!r} (the generated market is mode "sim")')
    instruments = _instruments(v.symbols)
    gw = PaperGateway(paper_exchange(settings, instruments))

    def factory(venue: VenueSection, market: MarketSection, instruments: dict[str, Instrument],
                on_event: Callable[[Any], None]) -> PaperFeed:
        return PaperFeed(feed_cls, gw, venue, market, instruments, on_event)

    return gw, factory
