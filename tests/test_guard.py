"""The live-money guard decides from the endpoints the bot will use (bot/guard.py), before any connection."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest

from bot.errors import ConfigError
from bot.guard import PRODUCTION_HOSTS, check, endpoints, is_production_host
from bot.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
VENUES = ("binance-usdm", "bybit")
ENVS = ("mainnet", "demo", "testnet", "exchange-sim")
MODES = ("sim", "paper", "exchange-sim", "demo", "testnet", "live")
URL_KEYS = ("rest_url", "ws_public_url", "ws_market_url", "ws_private_url")
LOOP = {"rest_url": "http://127.0.0.1:18080", "ws_public_url": "ws://127.0.0.1:18080/public",
        "ws_market_url": "ws://[::1]:18080/market", "ws_private_url": "ws://localhost:18080/private"}


def _s(venue: str = "binance-usdm", env: str = "exchange-sim", mode: str = "exchange-sim", **urls: str) -> Settings:
    if env == "exchange-sim":
        urls = {"rest_url": LOOP["rest_url"], **urls}
    return Settings(app={"mode": mode}, venue={"name": venue, "environment": env, **urls})


def _refused(s: Settings, live: bool) -> str | None:
    try:
        check(s, live)
    except ConfigError as e:
        return str(e)
    return None


# ---- the production hosts of exchange-facts A2/B2 ---------------------------------------------------------
def test_production_hosts_from_the_docs_and_their_domains() -> None:
    for host in ("fapi.binance.com", "fstream.binance.com", "ws-fapi.binance.com", "api.bybit.com",
                 "stream.bybit.com", "api.bytick.com", "FAPI.Binance.com.", "fapi-mm.binance.com",
                 "api.bybit.nl", "stream.bybit.eu"):
        assert is_production_host(host), host
    for host in ("demo-fapi.binance.com", "demo-fstream.binance.com", "testnet.binancefuture.com",
                 "fstream.binancefuture.com", "api-testnet.bybit.com", "stream-testnet.bybit.com",
                 "api-demo.bybit.com", "stream-demo.bybit.com", "127.0.0.1", "localhost", "binance.com.evil.org"):
        assert not is_production_host(host), host
    assert {"fapi.binance.com", "fstream.binance.com", "ws-fapi.binance.com", "api.bybit.com",
            "api.bytick.com", "stream.bybit.com"} <= PRODUCTION_HOSTS


# ---- the endpoints are the ones the venue code connects to ------------------------------------------------
@pytest.mark.parametrize(("venue", "env"), list(itertools.product(VENUES, ENVS)))
def test_endpoints_mirror_the_venue_code(venue: str, env: str) -> None:
    """Each endpoint the guard judges is the URL the feed / user stream / ccxt instance really uses."""
    import aiohttp

    from bot.settings.core import MarketSection
    from bot.venues.binance_usdm.instruments import KNOWN

    urls = {"rest_url": LOOP["rest_url"]} if env == "exchange-sim" else {}
    s = Settings(app={"mode": "live" if env == "mainnet" else "demo"},
                 venue={"name": venue, "environment": env, "symbols": ["BTCUSDT"], **urls})
    got = {e.role: e.url for e in endpoints(s)}
    if venue == "binance-usdm":
        from bot.venues.binance_usdm.feed import BinanceMarketFeed
        from bot.venues.binance_usdm.gateway import BinanceUsdm
        from bot.venues.binance_usdm.userstream import BinanceUserStream

        feed = BinanceMarketFeed(s.venue, MarketSection(), KNOWN, lambda ev: None)
        assert feed.public_url.startswith(got["ws_public"] + "/stream?")
        assert feed.market_url.startswith(got["ws_market"] + "/stream?")
        assert BinanceUserStream(SimpleNamespace(venue=s.venue)).base_url == got["ws_private"]
        if env == "exchange-sim":
            assert feed.rest_url == got["rest"]
        else:  # the gateway's ccxt roots per environment (gateway.start: demo / sandbox / mainnet)
            ex = BinanceUsdm()
            api = {"demo": ex.urls["demo"], "testnet": ex.urls["test"]}.get(env, ex.urls["api"])
            assert urlsplit(api["fapiPrivate"]).hostname == urlsplit(got["rest"]).hostname
            assert urlsplit(feed.rest_url).hostname == urlsplit(got["rest"]).hostname
    else:
        from bot.venues.bybit.exchange import make_exchange
        from bot.venues.bybit.feed import BybitMarketFeed
        from bot.venues.bybit.userstream import BybitUserStream

        feed = BybitMarketFeed(s.venue, MarketSection(), {}, lambda ev: None)
        assert feed.url == got["ws_public"]
        assert BybitUserStream(SimpleNamespace(venue=s.venue)).url == got["ws_private"]

        async def roots() -> set[str]:
            async with aiohttp.ClientSession() as session:
                ex = make_exchange(s.venue, session)
                return {ex.implode_hostname(u) for u in ex.urls["api"].values()}

        import asyncio

        hosts = {urlsplit(u).hostname for u in asyncio.run(roots())}
        assert hosts == {urlsplit(e.url).hostname for e in endpoints(s) if e.role.startswith("rest")}


# ---- every combination ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("venue", "env", "mode", "live"),
                         list(itertools.product(VENUES, ENVS, MODES, (False, True))))
def test_every_mode_environment_and_flag(venue: str, env: str, mode: str, live: bool) -> None:
    why = _refused(_s(venue, env, mode), live)
    if mode == "live" and not live:
        assert why and "without --live" in why
    elif live and mode != "live":
        assert why and "--live given" in why
    elif env == "mainnet" and mode not in ("live", "paper"):
        assert why and "mainnet" in why
    else:  # labels agree; only mainnet reaches production hosts, with mode live + --live (or mode paper:
        # public market data only, no key, no order endpoint: bot/venues/paper)
        assert why is None, why


@pytest.mark.parametrize(("venue", "env", "key", "target"), [c for c in itertools.product(
    VENUES, ENVS, URL_KEYS, ("loopback", "production", "demo-host", "lan"))
    if not (c[0] == "bybit" and c[2] == "ws_market_url")])  # Bybit has no separate market stream
@pytest.mark.parametrize("live", [False, True])
def test_every_url_override(venue: str, env: str, key: str, target: str, live: bool) -> None:
    scheme = "http" if key == "rest_url" else "ws"
    url = {"loopback": LOOP[key], "production": f"{scheme}s://fapi.binance.com" if venue == "binance-usdm"
           else f"{scheme}s://api.bybit.com", "demo-host": f"{scheme}s://demo-fapi.binance.com",
           "lan": f"{scheme}://192.168.1.20:18080"}[target]
    mode = "live" if live else ("exchange-sim" if env == "exchange-sim" else
                                "demo" if env in ("demo", "mainnet") else "testnet")
    why = _refused(_s(venue, env, mode, **{key: url}), live)
    if env == "exchange-sim" and target == "loopback":
        assert why is None, why
    else:  # never: not outside exchange-sim, not to anything but loopback, not even with --live
        assert why is not None
        assert key in why or (env == "mainnet" and not live), why


def test_the_reported_case_and_its_message() -> None:
    """mode exchange-sim + SCALPER__VENUE__REST_URL at Binance's production host: refused, one line."""
    why = _refused(_s(rest_url="https://fapi.binance.com"), False)
    assert why == ("venue.rest_url points at 'fapi.binance.com', not a loopback host: the exchange-sim "
                   "environment connects only to 127.0.0.1/::1/localhost")
    assert _refused(_s(ws_private_url="wss://fstream.binance.com/private"), False)
    assert _refused(_s(env="demo", mode="demo", rest_url="http://127.0.0.1:18080"), False).startswith(
        "venue.rest_url is set with venue.environment = 'demo'")
    # exchange-sim needs its loopback REST root (the gateway cannot start without it)
    s = Settings(app={"mode": "exchange-sim"}, venue={"name": "binance-usdm", "environment": "exchange-sim"})
    assert "venue.rest_url: not set" in _refused(s, False)


def test_bybit_demo_reads_mainnet_public_data_but_trades_on_demo_hosts() -> None:
    s = _s("bybit", "demo", "demo")
    assert _refused(s, False) is None
    by_role = {e.role: (urlsplit(e.url).hostname, e.keys) for e in endpoints(s)}
    assert by_role["ws_public"] == ("stream.bybit.com", False)  # exchange-facts B2: demo uses mainnet public
    assert by_role["rest_public"] == ("api.bybit.com", False)
    assert by_role["rest"] == ("api-demo.bybit.com", True)
    assert by_role["ws_private"] == ("stream-demo.bybit.com", True)
    # but the same production host as an override is refused
    assert _refused(_s("bybit", "demo", "demo", ws_public_url="wss://stream.bybit.com/v5/public/linear"), False)


def test_sim_venue_has_no_endpoints_and_only_the_labels_count() -> None:
    s = Settings(venue={"name": "sim", "rest_url": "https://fapi.binance.com"})
    assert endpoints(s) == [] and _refused(s, False) is None  # the simulator connects nowhere


# ---- real process: `scalper run` refuses before it connects -----------------------------------------------
_NO_NET = """
import os, socket
_LOG = os.environ["GUARD_NET_LOG"]
def _note(what, *a):
    with open(_LOG, "a") as fh:
        fh.write(f"{what} {a[:1]!r}\\n")
_connect, _getaddrinfo = socket.socket.connect, socket.getaddrinfo
def connect(self, *a):
    _note("connect", *a)
    return _connect(self, *a)
def connect_ex(self, *a):
    _note("connect", *a)
    return socket.socket.__mro__[1].connect_ex(self, *a)
def getaddrinfo(*a, **k):
    _note("getaddrinfo", *a)
    return _getaddrinfo(*a, **k)
socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = connect, connect_ex, getaddrinfo
"""


def _run_bot(tmp_path: Path, env_extra: dict[str, str], timeout_s: float = 60.0,
             seen: str = "") -> tuple[int | None, str, str, str]:
    """The bot's exit code (None: killed at `timeout_s`, or once `seen` is in its network log), its stdout,
    stderr and network log."""
    hook = tmp_path / "hook"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(_NO_NET)
    netlog = tmp_path / "net.log"
    state = tmp_path / "state"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCALPER__")}
    env.update({"PYTHONPATH": f"{hook}{os.pathsep}{ROOT}", "GUARD_NET_LOG": str(netlog),
                "SCALPER__APP__STATE_DIR": str(state), "SCALPER__OPS__PORT": "0", **env_extra})
    proc = subprocess.Popen([sys.executable, "-m", "bot", "run", "-c", str(ROOT / "config" / "exchange-sim.toml"),
                             "--no-view", "--for", "20"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        if seen:  # what the caller waits for happened: no need to sit out the rest of the run
            deadline = time.monotonic() + timeout_s
            while proc.poll() is None and time.monotonic() < deadline and not (
                    netlog.exists() and seen in netlog.read_text()):
                time.sleep(0.05)
            if proc.poll() is None:
                raise subprocess.TimeoutExpired(proc.args, timeout_s)
        out, err = proc.communicate(timeout=timeout_s)
        rc: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        rc = None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return rc, out, err, netlog.read_text() if netlog.exists() else ""


def test_run_with_a_production_url_exits_2_before_any_connection(tmp_path: Path) -> None:
    rc, out, err, net = _run_bot(tmp_path, {"SCALPER__VENUE__REST_URL": "https://fapi.binance.com",
                                            "SCALPER__VENUE__WS_PUBLIC_URL": "wss://fstream.binance.com/public"})
    assert rc == 2, (rc, out, err)
    lines = err.strip().splitlines()
    assert lines == ["error: venue.rest_url points at 'fapi.binance.com', not a loopback host: the exchange-sim "
                     "environment connects only to 127.0.0.1/::1/localhost"], err
    assert out == ""
    assert net == ""  # not one connect() nor one DNS look-up
    assert not (tmp_path / "state").exists()  # no journal, no log file, no token: nothing was built


def test_the_socket_hook_does_see_a_connection_attempt(tmp_path: Path) -> None:
    """Control for the test above: the same process with a loopback override does try to connect."""
    import socket

    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base = f"127.0.0.1:{port}"
    env = {"SCALPER__VENUE__REST_URL": f"http://{base}", "SCALPER__VENUE__WS_PUBLIC_URL": f"ws://{base}/public",
           "SCALPER__VENUE__WS_MARKET_URL": f"ws://{base}/market",
           "SCALPER__VENUE__WS_PRIVATE_URL": f"ws://{base}/private"}
    rc, _out, err, net = _run_bot(tmp_path, env, timeout_s=30, seen=f"connect (('127.0.0.1', {port}),)")
    assert f"connect (('127.0.0.1', {port}),)" in net, (rc, net, err[-2000:])
