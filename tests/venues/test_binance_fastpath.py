"""The gateway's order fast path (orders.order_params + signer.OrderSigner) sends byte for byte what ccxt's
`create_order(*create_args(...))` sends: same method, path, headers and signed body (timestamp frozen, so
the signatures match too), for entries, exits and algo orders on three grids."""

from __future__ import annotations

import asyncio
import copy
import hashlib
import hmac
import time
from typing import Any
from urllib.parse import parse_qsl

import ccxt.async_support as ccxt_async
import pytest
from aiohttp import web

from bot.domain.types import OrderKind, Side, TimeInForce, TriggerPrice
from bot.venues.binance_usdm.gateway import BinanceGateway
from bot.venues.binance_usdm.orders import OrderGrid, create_args, order_params
from bot.venues.binance_usdm.signer import OrderSigner, encode_query
from bot.venues.errors import OrderRejected
from bot.venues.ports import OrderRequest
from tests.venues.fake_binance import FakeBinance, exchange_info
from tests.venues.test_binance_gateway import venue

# a third grid unlike BTC's and ETH's: 7-decimal tick, whole-unit step; and one without trailing stops
_PEPE = {"symbol": "1000PEPEUSDT", "baseAsset": "1000PEPE", "tick": "0.0000001", "step": "1"}
_NOTRAIL = {"symbol": "XYZUSDT", "baseAsset": "XYZ", "tick": "0.001", "step": "0.1"}


def _info() -> dict[str, Any]:
    info = exchange_info()
    btc = info["symbols"][0]
    for extra in (_PEPE, _NOTRAIL):
        s = copy.deepcopy(btc)
        s.update(symbol=extra["symbol"], pair=extra["symbol"], baseAsset=extra["baseAsset"])
        s["filters"][0]["tickSize"] = extra["tick"]
        s["filters"][1]["stepSize"] = s["filters"][1]["minQty"] = extra["step"]
        s["filters"][2]["stepSize"] = s["filters"][2]["minQty"] = extra["step"]
        if extra is _NOTRAIL:
            s["orderTypes"] = [t for t in s["orderTypes"] if t != "TRAILING_STOP_MARKET"]
        info["symbols"].append(s)
    return info


class _ReadRequest:
    """The request with its body already read (aiohttp caches it); FakeBinance asks can_read_body first."""

    can_read_body = True

    def __init__(self, request: web.Request) -> None:
        self._r = request

    def __getattr__(self, name: str) -> Any:
        return getattr(self._r, name)


class RawFake(FakeBinance):
    """FakeBinance that also records each request's raw query string, body and headers, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.raw: list[dict[str, Any]] = []

    async def _handle(self, request: web.Request) -> web.Response:
        has_body = request.can_read_body
        body = await request.text() if has_body else ""  # cached: post() parses the same bytes
        self.raw.append({"method": request.method, "path": request.path, "query": request.query_string,
                         "body": body, "headers": dict(request.headers)})
        return await super()._handle(_ReadRequest(request) if has_body else request)  # type: ignore[arg-type]

    async def _route(self, method: str, path: str, p: dict[str, str]) -> web.Response:
        if (method, path) == ("GET", "/fapi/v1/exchangeInfo"):
            return self._reply(_info())
        return await super()._route(method, path, p)


@pytest.fixture
async def fake():
    f = await RawFake().start()
    yield f
    await f.stop()


@pytest.fixture
async def gw(fake: RawFake):
    g = BinanceGateway(venue(fake.url, symbols=("BTCUSDT", "ETHUSDT", "1000PEPEUSDT", "XYZUSDT")))
    await asyncio.wait_for(g.start(autorun=False), 10)
    yield g
    await g.close()


def req(cid: str, symbol: str = "BTCUSDT", **kw: Any) -> OrderRequest:
    base: dict[str, Any] = dict(client_id=cid, symbol=symbol, side=Side.BUY, kind=OrderKind.MARKET, qty_lots=5)
    base.update(kw)
    return OrderRequest(**base)


L, S = OrderKind.LIMIT, OrderKind.STOP_MARKET
TP, TR = OrderKind.TAKE_PROFIT_MARKET, OrderKind.TRAILING_STOP_MARKET
MATRIX = [
    # entries: market and limit IOC / GTX / GTC / FOK, prices with and without trailing zeros on the grid
    req("t1-entry"),
    req("t2-entry", side=Side.SELL, qty_lots=1000),
    req("t3-entry", kind=L, price_ticks=599_995, time_in_force=TimeInForce.IOC),
    req("t4-entry", kind=L, price_ticks=650_000, time_in_force=TimeInForce.GTX, qty_lots=120),
    req("t5-entry", kind=L, price_ticks=600_001, time_in_force=TimeInForce.GTC, side=Side.SELL),
    req("t6-entry", kind=L, price_ticks=600_010, time_in_force=TimeInForce.FOK),
    req("t7-entry", "ETHUSDT", kind=L, price_ticks=345_678, time_in_force=TimeInForce.IOC, qty_lots=1234),
    req("t8-entry", "ETHUSDT", kind=L, price_ticks=300_000, time_in_force=TimeInForce.GTX, qty_lots=100),
    req("t9-entry", "1000PEPEUSDT", kind=L, price_ticks=12_345, time_in_force=TimeInForce.IOC, qty_lots=1_000_000),
    req("t10-entry", "1000PEPEUSDT", qty_lots=7),
    req("t11-entry", "XYZUSDT", kind=L, price_ticks=1_500, time_in_force=TimeInForce.GTC, qty_lots=35),
    # exits: reduce-only market and limit
    req("t1-exit", side=Side.SELL, reduce_only=True),
    req("t3-exit", side=Side.SELL, kind=L, price_ticks=610_000, reduce_only=True, time_in_force=TimeInForce.GTX),
    # protective algo orders: stops and take-profits, reduce-only or close-position, both working types
    req("t1-sl", side=Side.SELL, kind=S, trigger_ticks=590_001, reduce_only=True, working_type=TriggerPrice.MARK),
    req("t2-sl", kind=S, trigger_ticks=610_000, reduce_only=True, working_type=TriggerPrice.LAST),
    req("t3-sl", side=Side.SELL, kind=S, trigger_ticks=590_000, qty_lots=0, close_position=True),
    req("t1-tp1", side=Side.SELL, kind=TP, trigger_ticks=610_005, reduce_only=True, qty_lots=2),
    req("t1-tp2", side=Side.SELL, kind=TP, trigger_ticks=620_000, qty_lots=0, close_position=True,
        working_type=TriggerPrice.LAST),
    req("t7-sl", "ETHUSDT", side=Side.SELL, kind=S, trigger_ticks=339_990, reduce_only=True, qty_lots=1234),
    req("t9-sl", "1000PEPEUSDT", side=Side.SELL, kind=S, trigger_ticks=12_000, reduce_only=True,
        qty_lots=1_000_000),
    # trailing stops: with and without an activation price, close-position
    req("t1-trail", side=Side.SELL, kind=TR, callback_rate_bps=50, trigger_ticks=605_000, reduce_only=True),
    req("t2-trail", kind=TR, callback_rate_bps=125, reduce_only=True),
    req("t3-trail", side=Side.SELL, kind=TR, callback_rate_bps=2000, qty_lots=0, close_position=True),
    # client ids with the characters urlencode escapes (':' and '/') or keeps ('.', '_', '-')
    req("bot:t12/entry.a_b", kind=L, price_ticks=599_990, time_in_force=TimeInForce.IOC),
    req("bot:t12/sl", side=Side.SELL, kind=S, trigger_ticks=590_000, reduce_only=True),
]


def _freeze(gw: BinanceGateway) -> None:
    """Both paths sign with ccxt's nonce(); a fixed clock makes the timestamps (and signatures) equal."""
    assert gw.ex is not None
    now_ms = int(time.time() * 1000)
    gw.ex.milliseconds = lambda: now_ms  # type: ignore[method-assign]


async def _ccxt_create(gw: BinanceGateway, r: OrderRequest) -> None:
    assert gw.ex is not None
    await gw.ex.create_order(*create_args(r, gw.instrument(r.symbol), gw._ccxt_symbol[r.symbol]))


def _clear(fake: RawFake) -> None:
    fake.orders.clear()
    fake.algos.clear()


async def test_fast_path_sends_the_bytes_ccxt_create_order_sends(gw: BinanceGateway, fake: RawFake):
    # one gateway for the whole matrix (a fake + gateway start per case would cost ~0.35 s each)
    _freeze(gw)
    for r in MATRIX:
        n = len(fake.raw)
        await gw.submit(r)
        _clear(fake)
        await _ccxt_create(gw, r)
        _clear(fake)
        ours, theirs = fake.raw[n:]
        assert ours == theirs, r.client_id  # method, path, query, body, every header
        path = "/fapi/v1/algoOrder" if r.kind.is_conditional else "/fapi/v1/order"
        assert ours["method"] == "POST" and ours["path"] == path and ours["query"] == "", r.client_id
        # the body is what Binance verifies: HMAC-SHA256 of everything before &signature=, with the secret
        query, sig = ours["body"].rsplit("&signature=", 1)
        assert sig == hmac.new(b"s", query.encode(), hashlib.sha256).hexdigest()
        assert ours["headers"]["X-MBX-APIKEY"] == "k"
        keys = [k for k, _ in parse_qsl(query)]
        assert keys[0] == "timestamp" and keys[-1] == "recvWindow", r.client_id
        assert dict(parse_qsl(query))["recvWindow"] == str(gw.venue.recv_window_ms)
    assert {r["path"] for r in fake.raw} >= {"/fapi/v1/order", "/fapi/v1/algoOrder"}


async def test_fast_path_does_not_go_through_ccxt_create_order_or_sign(gw: BinanceGateway, fake: RawFake):
    assert gw.ex is not None

    def refuse(*a: Any, **kw: Any) -> Any:
        raise AssertionError("ccxt's request builder ran")

    gw.ex.create_order = refuse  # type: ignore[method-assign]
    gw.ex.sign = refuse  # type: ignore[method-assign]
    ack = await gw.submit(req("t1-entry", kind=L, price_ticks=599_995, time_in_force=TimeInForce.IOC))
    assert ack.venue_order_id and fake.orders["t1-entry"]["price"] == "59999.5"
    ack = await gw.submit(req("t1-sl", side=Side.SELL, kind=S, trigger_ticks=590_001, reduce_only=True))
    assert ack.venue_order_id and fake.algos["t1-sl"]["triggerPrice"] == "59000.1"


async def test_orders_ccxt_refuses_before_sending_are_refused_alike(gw: BinanceGateway, fake: RawFake):
    """ccxt raises InvalidOrder (-> OrderRejected 'invalid') for a zero quantity and for an order type the
    symbol's exchangeInfo does not list; the fast path refuses the same orders, and nothing is sent."""
    n = len(fake.raw)
    for r in (req("t1-entry", qty_lots=0), req("t1-trail", "XYZUSDT", kind=TR, callback_rate_bps=50)):
        with pytest.raises(OrderRejected) as ours:
            await gw.submit(r)
        assert ours.value.code == "invalid"
        with pytest.raises(ccxt_async.InvalidOrder):
            await _ccxt_create(gw, r)
    assert fake.raw[n:] == []


def test_encode_query_is_ccxt_urlencode():
    plain: dict[str, Any] = {"timestamp": 1700000000123, "symbol": "BTCUSDT", "quantity": "0.005", "c": "~._-AZaz09",
                             "d": True, "e": False, "g": "", "price": 1.5, "tif": TimeInForce.IOC, "recvWindow": 5000}
    odd: list[dict[str, Any]] = [{"a": "x:y/z"}, {"b": "sp ace+plus"}, {"f": "ünï"}, {"h": "a&b=c"}, {"i": "a=b"},
                                 {"j": "a&b"}, {"k=x": "1"}, {"l&": "1"}, {"m n": "1"}, {}]
    for extra in [{}, *odd]:
        params = {**plain, **extra}
        assert encode_query(params) == ccxt_async.binanceusdm.urlencode(params), extra


def test_order_params_strings_on_the_grid():
    from bot.venues.binance_usdm.instruments import KNOWN

    g = OrderGrid(KNOWN["BTCUSDT"])
    assert (g.price(650_000), g.price(599_995), g.price(1), g.price(0)) == ("65000", "59999.5", "0.1", "0")
    assert (g.qty(5), g.qty(100), g.qty(1000), g.qty(123_456)) == ("0.005", "0.1", "1", "123.456")
    path, p = order_params(req("t1-entry"), g, "BTCUSDT")
    assert path == "order" and list(p) == ["symbol", "side", "newClientOrderId", "newOrderRespType", "type",
                                           "quantity"]
    with pytest.raises(ValueError, match="client id"):
        order_params(req("bad id"), g, "BTCUSDT")
    with pytest.raises(ValueError, match="trigger_ticks"):
        order_params(req("t1-sl", kind=S), g, "BTCUSDT")


async def test_non_hmac_keys_are_signed_by_ccxt_with_the_same_request(fake: RawFake):
    """An Ed25519 key (ccxt signs it itself, deterministically): the fast path hands the same parameters to
    ccxt's implicit endpoint, so the bytes still equal create_order's."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519
    from pydantic import SecretStr

    pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    g = BinanceGateway(venue(fake.url, api_secret=SecretStr(pem)))
    await asyncio.wait_for(g.start(autorun=False), 10)
    try:
        assert g._signer is not None and not g._signer.hmac
        _freeze(g)
        r = req("t1-entry", kind=L, price_ticks=599_995, time_in_force=TimeInForce.IOC)
        n = len(fake.raw)
        await g.submit(r)
        _clear(fake)
        await _ccxt_create(g, r)
        ours, theirs = fake.raw[n:]
        assert ours == theirs and ours["path"] == "/fapi/v1/order"
    finally:
        await g.close()


def test_signer_body_is_fresh_per_call_and_leaves_params_alone():
    class Ex:
        secret, apiKey = "s", "k"

        def __init__(self) -> None:
            self.options = {"recvWindow": 5000}
            self.t = 1000

        def nonce(self) -> int:
            self.t += 1
            return self.t

    s = OrderSigner(Ex())
    params = {"symbol": "BTCUSDT", "side": "BUY"}
    b1, b2 = s.body(params), s.body(params)
    assert b1.startswith("timestamp=1001&symbol=BTCUSDT&side=BUY&recvWindow=5000&signature=")
    assert b2.startswith("timestamp=1002&") and params == {"symbol": "BTCUSDT", "side": "BUY"}
