"""Bybit v5 linear public messages -> domain events. Pure functions of the raw message.

Wire formats (exchange-facts B1; docs/v5/websocket/public/*.mdx):
orderbook.{1,50,200,1000}.{symbol}
    {"topic","type":"snapshot"|"delta","ts" ms,"data":{"s","b":[[p,q]..],"a":[[p,q]..],"u","seq"},"cts" ms}
publicTrade.{symbol}
    {"topic","type":"snapshot","ts","data":[{"T" ms,"s","S":"Buy"|"Sell" taker side,"v","p","L","i" id,"BT"}..]}
tickers.{symbol}  (snapshot + delta; a delta carries only changed fields)
    {"topic","type","ts","cs","data":{"symbol","markPrice","indexPrice","fundingRate","nextFundingTime"...}}
Control frames: {"success":true,"ret_msg":"pong","op":"ping"}, {"success":true,"op":"subscribe",...}.
"""

from __future__ import annotations

from typing import Any

import orjson

from bot.domain.events import DepthDiff, FundingInfo, Levels, MarketEvent, Trade
from bot.errors import MalformedMessage
from bot.market.values import as_id, as_ms, as_price, as_size, as_str, opt_finite

__all__ = ["parse_message", "parse_payload"]

_MS = 1_000_000


def _levels(v: Any) -> Levels:
    # The levels themselves are checked where the book converts them (market/book.py), once.
    if type(v) is not list:
        raise TypeError(f"levels must be a list, got {type(v).__name__}")
    return v


def _orderbook(msg: dict[str, Any], ts_recv_ns: int) -> list[MarketEvent]:
    d = msg["data"]
    u = as_id(d["u"])
    kind = msg["type"]
    if kind not in ("snapshot", "delta"):
        raise ValueError(f"unknown orderbook type {kind!r:.20}")
    seq = d.get("seq", 0)
    return [
        DepthDiff(
            as_str(d["s"]),
            u,
            u,
            -1,
            _levels(d["b"]),
            _levels(d["a"]),
            as_ms(msg["ts"]) * _MS,
            ts_recv_ns,
            is_snapshot=kind == "snapshot",
            seq=as_id(seq),
        )
    ]


_TAKER = {"Buy": False, "Sell": True}  # "S" is the taker's side: a Buy taker means the buyer was NOT the maker


def _trades(msg: dict[str, Any], ts_recv_ns: int) -> list[MarketEvent]:
    out: list[MarketEvent] = []
    for t in msg["data"]:
        tid = as_str(t["i"])
        out.append(
            Trade(
                as_str(t["s"]),
                int(tid) if tid.isdigit() else abs(hash(tid)),
                as_price(t["p"]),
                as_size(t["v"]),
                _TAKER[t["S"]],  # KeyError on an unknown side: malformed
                as_ms(t["T"]) * _MS,
                ts_recv_ns,
            )
        )
    return out


def _f(v: Any) -> float | None:
    return float(as_price(v)) if v not in (None, "") else None


def _tickers(msg: dict[str, Any], ts_recv_ns: int) -> list[MarketEvent]:
    d = msg["data"]
    nxt = d.get("nextFundingTime")
    return [
        FundingInfo(
            as_str(d["symbol"]),
            _f(d.get("markPrice")),
            _f(d.get("indexPrice")),
            opt_finite(d.get("fundingRate")),
            as_ms(int(nxt)) * _MS if nxt not in (None, "") else None,
            as_ms(msg["ts"]) * _MS,
            ts_recv_ns,
        )
    ]


_DISPATCH = {"orderbook": _orderbook, "publicTrade": _trades, "tickers": _tickers}


def parse_payload(msg: Any, ts_recv_ns: int) -> list[MarketEvent]:
    if not isinstance(msg, dict):
        raise MalformedMessage(f"expected a JSON object, got {type(msg).__name__}")
    topic = msg.get("topic")
    if topic is None:
        return []  # pong, subscribe ack
    if type(topic) is not str:
        raise MalformedMessage(f"topic is not a string: {type(topic).__name__}")
    fn = _DISPATCH.get(topic.split(".", 1)[0])
    if fn is None:
        return []
    try:
        return fn(msg, ts_recv_ns)
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as err:
        raise MalformedMessage(f"{topic}: bad or missing field {err}") from err


def parse_message(raw: bytes | str, ts_recv_ns: int) -> list[MarketEvent]:
    try:
        msg = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise MalformedMessage(f"invalid JSON: {e}") from e
    return parse_payload(msg, ts_recv_ns)
