"""Binance USD-M market-data messages -> domain events. Pure functions of the raw message.

Venue field names live only in this module (architecture.md habit 2). Wire formats, from
exchange-facts.md A1 and the official SDK models:

depthUpdate  {"e","E" event ms,"T" transaction ms,"s","U" first id,"u" final id,"pu" previous final id,
              "b":[[p,q]...],"a":[[p,q]...]}  (+ optional "ps","st": ignored)
bookTicker   {"e","u" book update id (same id space as depth),"s","b","B","a","A","T","E"}
aggTrade     {"e","E","s","a" agg id,"p","q","nq","f","l","T" trade ms,"m" buyer is maker}
trade        {"e","E","T","s","t","p","q","X" MARKET|INSURANCE_FUND|ADL|NA,"m"}
markPriceUpdate {"e","E","s","p" mark,"i" index,"P","r" funding rate,"T" next funding ms}
REST snapshot {"lastUpdateId","E","T","bids","asks"}  (GET /fapi/v1/depth)

Combined streams wrap payloads as {"stream": "<name>", "data": {...}}; ws-mode streams do not.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from bot.domain.events import BookTicker, DepthDiff, DepthSnapshot, FundingInfo, Levels, MarketEvent, Trade
from bot.errors import MalformedMessage
from bot.market.values import as_bool, as_id, as_ms, as_price, as_size, as_str, opt_finite

__all__ = ["SNAPSHOT_STREAM_SUFFIX", "parse_message", "parse_payload", "parse_snapshot"]

_MS = 1_000_000
# Our recorder writes REST snapshots inline wrapped as {"stream": "<symbol>@depthSnapshot", "data": <raw>}
# so a multi-symbol recording says whose snapshot it is; bare snapshots (hftbacktest files) are read too.
SNAPSHOT_STREAM_SUFFIX = "@depthSnapshot"


def _levels(v: Any) -> Levels:
    # The levels themselves are checked where the book converts them (market/book.py), once.
    if type(v) is not list:
        raise TypeError(f"levels must be a list, got {type(v).__name__}")
    return v


def _depth(d: dict[str, Any], ts_recv_ns: int) -> DepthDiff:
    # The hot path: the checks of market/values.py inlined (one chained test instead of seven calls).
    s, U, u, pu, b, a, E = d["s"], d["U"], d["u"], d["pu"], d["b"], d["a"], d["E"]
    if not (type(U) is int and type(u) is int and type(pu) is int and type(E) is int and E >= 0
            and type(s) is str and type(b) is list and type(a) is list):
        raise TypeError("depthUpdate: ids and E must be integers, s a string, b/a lists")
    return DepthDiff(s, U, u, pu, b, a, E * _MS, ts_recv_ns)


def _book_ticker(d: dict[str, Any], ts_recv_ns: int) -> BookTicker:
    return BookTicker(as_str(d["s"]), as_id(d["u"]), as_price(d["b"]), as_size(d["B"]), as_price(d["a"]),
                      as_size(d["A"]), as_ms(d["E"]) * _MS, ts_recv_ns)


def _agg_trade(d: dict[str, Any], ts_recv_ns: int) -> Trade:
    return Trade(as_str(d["s"]), as_id(d["a"]), as_price(d["p"]), as_size(d["q"]), as_bool(d["m"]),
                 as_ms(d["T"]) * _MS, ts_recv_ns)


def _trade(d: dict[str, Any], ts_recv_ns: int) -> Trade | None:
    if d.get("X", "MARKET") != "MARKET":
        return None  # insurance-fund and ADL prints are not market trades
    return Trade(as_str(d["s"]), as_id(d["t"]), as_price(d["p"]), as_size(d["q"]), as_bool(d["m"]),
                 as_ms(d["T"]) * _MS, ts_recv_ns)


def _mark_price(d: dict[str, Any], ts_recv_ns: int) -> FundingInfo:
    i = d.get("i")
    nxt = d.get("T")
    return FundingInfo(
        as_str(d["s"]),
        float(as_price(d["p"])),
        float(as_price(i)) if i not in (None, "") else None,
        opt_finite(d.get("r")),
        as_ms(nxt) * _MS if nxt else None,
        as_ms(d["E"]) * _MS,
        ts_recv_ns,
    )


_DISPATCH: dict[str, Callable[[dict[str, Any], int], MarketEvent | None]] = {
    "depthUpdate": _depth,
    "bookTicker": _book_ticker,
    "aggTrade": _agg_trade,
    "trade": _trade,
    "markPriceUpdate": _mark_price,
}


def parse_snapshot(d: dict[str, Any], symbol: str, ts_recv_ns: int) -> DepthSnapshot:
    try:
        return DepthSnapshot(symbol, as_id(d["lastUpdateId"]), _levels(d["bids"]), _levels(d["asks"]),
                             as_ms(d.get("E", 0)) * _MS, ts_recv_ns)
    except (KeyError, TypeError, ValueError) as e:
        raise MalformedMessage(f"depth snapshot: bad or missing field {e}") from e


def parse_payload(msg: Any, ts_recv_ns: int) -> MarketEvent | None:
    """Decode one already-loaded message. Unknown event types (and subscription acks) give None.

    A bare REST snapshot gives a DepthSnapshot with symbol "" (the caller knows whose it is)."""
    if not isinstance(msg, dict):
        raise MalformedMessage(f"expected a JSON object, got {type(msg).__name__}")
    data = msg.get("data")
    if data is None:
        data = msg
    elif not isinstance(data, dict):
        raise MalformedMessage("'data' is not an object")
    e = data.get("e")
    if e is None:
        if "lastUpdateId" in data:
            stream = msg.get("stream", "")
            sym = (
                stream[: -len(SNAPSHOT_STREAM_SUFFIX)].upper()
                if type(stream) is str and stream.endswith(SNAPSHOT_STREAM_SUFFIX)
                else ""
            )
            return parse_snapshot(data, sym, ts_recv_ns)
        return None  # {"result": null, "id": 1} and the like
    fn = _DISPATCH.get(e) if type(e) is str else None
    if fn is None:
        return None
    try:
        return fn(data, ts_recv_ns)
    except (KeyError, TypeError, ValueError, OverflowError) as err:
        raise MalformedMessage(f"{e}: bad or missing field {err}") from err


def parse_message(raw: bytes | str, ts_recv_ns: int) -> MarketEvent | None:
    """Decode one raw websocket (or recorded) message; MalformedMessage on invalid JSON/fields."""
    try:
        msg = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise MalformedMessage(f"invalid JSON: {e}") from e
    return parse_payload(msg, ts_recv_ns)
