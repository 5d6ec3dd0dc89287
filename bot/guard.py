"""The live-money guard: decided from the endpoints the bot will actually use, not from labels.

`check(settings, live_flag)` runs before anything connects (`scalper run` in bot.app.run_app, and
`scalper check-config`); a refusal is a ConfigError (one line, exit 2). The rules:

1. Labels agree: `app.mode = "live"` needs `--live`, `--live` needs `app.mode = "live"`.
2. A production host (real money: the hosts of exchange-facts A2 and B2 and every other host of the
   exchanges' production domains that is not a demo/testnet host) is refused unless `app.mode = "live"`
   and `--live`. The one exception is public market data an environment reads from mainnet by design:
   Bybit demo trading takes its public data from mainnet (exchange-facts B2: "use mainnet public"), and
   neither carries keys nor places orders. Paper mode (`app.mode = "paper"`) is the other: it reads
   public market data only (any environment, mainnet included) and cannot place an order. Shadow mode
   (`app.mode = "shadow"`) sends orders to [venue], checked like any mode that sends orders (never a
   production host, never mainnet), and reads its market data from [shadow]'s venue by paper mode's rules.
3. URL overrides (`venue.rest_url`, `ws_public_url`, `ws_market_url`, `ws_private_url`) are accepted only
   with `venue.environment = "exchange-sim"` and only to loopback hosts (127.0.0.0/8, ::1, localhost):
   an override is how a test exchange is reached; a demo/testnet/mainnet config uses the venue's own
   hosts, so an override there can only be a mistake (or a production host under another label).

`endpoints(settings)` lists what the venue code will connect to, after every override and environment
default, from the same tables the venue code reads (bot/venues/endpoints.py; the REST roots ccxt uses per
environment, exchange-facts C1).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import urlsplit

from bot.errors import ConfigError
from bot.settings.ops import is_loopback_host
from bot.venues.endpoints import BINANCE_USDM, BINANCE_USDM_PRIVATE_WS, BYBIT_PRIVATE_WS, BYBIT_PUBLIC_LINEAR

if TYPE_CHECKING:
    from bot.settings import Settings
    from bot.settings.core import VenueSection

__all__ = ["PRODUCTION_DOMAINS", "PRODUCTION_HOSTS", "Endpoint", "check", "endpoints", "is_loopback_url",
           "is_production_host"]

# exchange-facts A2 (Binance USD-M: REST, WS streams, WS API; ccxt's sapi/api roots on the same keys) and
# B2 (Bybit: REST with its alternate host, public/private/trade streams). Listed for the reader and the
# tests; the domain rule below also catches every other production host of these exchanges.
PRODUCTION_HOSTS = frozenset({
    "fapi.binance.com", "fstream.binance.com", "ws-fapi.binance.com", "api.binance.com", "dapi.binance.com",
    "papi.binance.com", "eapi.binance.com", "dstream.binance.com", "stream.binance.com", "ws-api.binance.com",
    "api.bybit.com", "api.bytick.com", "stream.bybit.com", "stream.bytick.com",
})
# Any host under these domains is production unless it is one of the demo/testnet hosts below
# (Bybit's regional hosts too: exchange-facts B2 "Regional hosts exist: .nl, .tr, .kz, .eu").
PRODUCTION_DOMAINS = ("binance.com", "bybit.com", "bytick.com", "bybit.nl", "bybit.eu", "bybit.tr",
                      "bybit.kz", "bybit-tr.com", "bybitglobal.com")
# Demo / testnet hosts under those domains (exchange-facts A2, B2, C1): not real money.
_TEST_HOSTS = frozenset({
    "demo-fapi.binance.com", "demo-fstream.binance.com", "demo-dapi.binance.com", "demo-api.binance.com",
    "api-testnet.bybit.com", "stream-testnet.bybit.com", "api-demo.bybit.com", "stream-demo.bybit.com",
})

# The REST roots ccxt uses per venue and environment (bot/venues/*/exchange.py; Bybit demo keeps
# mainnet's public REST); the websocket roots come from bot/venues/endpoints.py. tests/test_guard.py checks
# each against what the feed / user stream / ccxt instance really uses.
_BINANCE_REST = {"mainnet": "https://fapi.binance.com", "demo": "https://demo-fapi.binance.com",
                 "testnet": "https://testnet.binancefuture.com", "exchange-sim": ""}
_BYBIT_REST = {"mainnet": "https://api.bybit.com", "demo": "https://api-demo.bybit.com",
               "testnet": "https://api-testnet.bybit.com", "exchange-sim": ""}


class Endpoint(NamedTuple):
    role: str  # "rest" | "ws_public" | "ws_market" | "ws_private" | "rest_public"
    url: str
    overridden: bool  # from a venue.*_url key (config or environment), not the environment's default
    keys: bool  # carries API keys / places orders (False: public market data only)


def _binance(v: VenueSection) -> list[Endpoint]:
    env = v.environment
    _rest, pub, mkt = BINANCE_USDM[env]
    rest = _BINANCE_REST[env]
    return [
        Endpoint("rest", v.rest_url or rest, bool(v.rest_url), True),
        Endpoint("ws_public", v.ws_public_url or pub, bool(v.ws_public_url), False),
        Endpoint("ws_market", v.ws_market_url or mkt, bool(v.ws_market_url), False),
        Endpoint("ws_private", v.ws_private_url or BINANCE_USDM_PRIVATE_WS[env],
                 bool(v.ws_private_url), True),
    ]


def _bybit(v: VenueSection) -> list[Endpoint]:
    env = v.environment
    out = [
        Endpoint("rest", v.rest_url or _BYBIT_REST[env], bool(v.rest_url), True),
        Endpoint("ws_public", v.ws_public_url or BYBIT_PUBLIC_LINEAR[env],
                 bool(v.ws_public_url), False),
        Endpoint("ws_private", v.ws_private_url or BYBIT_PRIVATE_WS[env],
                 bool(v.ws_private_url), True),
    ]
    if env == "demo" and not v.rest_url:
        # bot/venues/bybit/exchange.py: demo keeps mainnet's public REST (instruments, time; B2)
        out.append(Endpoint("rest_public", _BYBIT_REST["mainnet"], False, False))
    return out


def _paper(v: VenueSection, eps: list[Endpoint]) -> list[Endpoint]:
    """Paper mode (bot/venues/paper) connects to public market data only: the public streams and, on
    Binance, the REST root for GET /fapi/v1/depth without a key; never the private stream or an order
    endpoint (its gateway has no network client)."""
    out = []
    for ep in eps:
        if ep.role == "rest" and v.name == "binance-usdm":
            out.append(ep._replace(role="rest_public", keys=False))
        elif not ep.keys and ep.role != "rest_public":
            out.append(ep)
    return out


def endpoints(settings: Settings) -> list[Endpoint]:
    """Every endpoint the configured venue connects to (empty for the in-process simulator)."""
    v = settings.venue
    eps = _binance(v) if v.name == "binance-usdm" else _bybit(v) if v.name == "bybit" else []
    return _paper(v, eps) if settings.app.mode == "paper" else eps


def _host(url: str) -> str:
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return ""
    return host.lower().rstrip(".")


def is_loopback_url(url: str) -> bool:
    return is_loopback_host(_host(url))


def is_production_host(host: str) -> bool:
    host = host.lower().rstrip(".")
    if host in PRODUCTION_HOSTS:
        return True
    if host in _TEST_HOSTS:
        return False
    return any(host == d or host.endswith("." + d) for d in PRODUCTION_DOMAINS)


def _public_by_design(settings: Settings, ep: Endpoint) -> bool:
    """Bybit demo reads mainnet's public data by design (exchange-facts B2): no keys, no orders."""
    v = settings.venue
    if settings.app.mode == "paper":  # public data only (endpoints(): _paper), no key, no order
        return not ep.keys and not ep.overridden
    return v.name == "bybit" and v.environment == "demo" and not ep.keys and not ep.overridden


def check(settings: Settings, live_flag: bool) -> None:
    """Refuse (ConfigError) any configuration that could reach real money without `app.mode = "live"`
    and `--live`, or that points a venue anywhere but its own hosts or the loopback test exchange."""
    mode = settings.app.mode
    v = settings.venue
    if mode == "live" and not live_flag:
        raise ConfigError('app.mode = "live": refusing to trade real money without --live on the command line')
    if live_flag and mode != "live":
        raise ConfigError(f'--live given but app.mode = {mode!r}; set app.mode = "live" in the config')
    if v.name != "sim" and v.environment == "mainnet" and mode not in ("live", "paper"):
        raise ConfigError(f'venue.environment = "mainnet" with app.mode = {mode!r}: mainnet is live trading; '
                          'use environment "demo"/"testnet"/"exchange-sim", or mode "live" with --live')
    for ep in endpoints(settings):
        host = _host(ep.url)
        key = f"venue.{ep.role}_url" if ep.role != "rest_public" else "venue.rest_url"
        if not host:
            raise ConfigError(f"{key}: not set or not a URL with a host; venue.environment = "
                              f"{v.environment!r} needs it, e.g. http://127.0.0.1:18080")
        if ep.overridden and v.environment != "exchange-sim":
            raise ConfigError(f"{key} is set with venue.environment = {v.environment!r}: URL overrides are "
                              'accepted only for environment "exchange-sim" (to a loopback host); remove it')
        if ep.overridden and not is_loopback_url(ep.url):
            raise ConfigError(f"{key} points at {host or ep.url[:40]!r}, not a loopback host: the exchange-sim "
                              "environment connects only to 127.0.0.1/::1/localhost")
        if is_production_host(host) and not (mode == "live" and live_flag) and not _public_by_design(settings, ep):
            raise ConfigError(f"{key} = {host!r} is a production (real-money) host: refused unless "
                              'app.mode = "live" and --live')
    if mode == "shadow":
        _check_shadow_data(settings)


# what a [venue] key is called for shadow mode's data venue ([shadow], bot/settings/shadow.py)
_SHADOW_KEYS = (("venue.environment", "shadow.data_environment"), ("venue.rest_url", "shadow.data_rest_url"),
                ("venue.ws_public_url", "shadow.data_ws_public_url"),
                ("venue.ws_market_url", "shadow.data_ws_market_url"))


def _check_shadow_data(settings: Settings) -> None:
    """Shadow mode: [venue] (the orders) was checked above like any mode that sends orders (no production host,
    no mainnet); its data venue is checked by paper mode's rules: public market data only, mainnet included,
    URL overrides only to loopback with data_environment = "exchange-sim"."""
    data = settings.model_copy(update={"app": settings.app.model_copy(update={"mode": "paper"}),
                                       "venue": settings.shadow.data_venue(settings.venue)})
    try:
        check(data, False)
    except ConfigError as e:
        msg = str(e)
        for old, new in _SHADOW_KEYS:
            msg = msg.replace(old, new)
        raise ConfigError(f"shadow mode's data venue: {msg}") from None
