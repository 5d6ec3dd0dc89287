"""Instruments from Binance USD-M `GET /fapi/v1/exchangeInfo` (exchange-facts A5), and the embedded
rules the bot uses with no network (bot/market/instruments.py, re-exported here)."""

from __future__ import annotations

from typing import Any

import orjson

from bot.domain.instrument import Instrument
from bot.market.instruments import KNOWN, VENUE, instrument_for

__all__ = ["KNOWN", "instrument_for", "load_exchange_info", "parse_exchange_info"]


def parse_exchange_info(info: dict[str, Any]) -> dict[str, Instrument]:
    out: dict[str, Instrument] = {}
    for s in info.get("symbols", []):
        f = {flt["filterType"]: flt for flt in s.get("filters", [])}
        price, lot = f.get("PRICE_FILTER"), f.get("LOT_SIZE")
        if not price or not lot:
            continue
        out[s["symbol"]] = Instrument(
            venue=VENUE,
            symbol=s["symbol"],
            tick_size=price["tickSize"],
            step_size=lot["stepSize"],
            min_qty=lot.get("minQty", "0"),
            max_qty=lot.get("maxQty", "0"),
            market_max_qty=f.get("MARKET_LOT_SIZE", {}).get("maxQty", "0"),
            min_notional=f.get("MIN_NOTIONAL", {}).get("notional", "0"),
            base_asset=s.get("baseAsset", ""),
            quote_asset=s.get("quoteAsset", ""),
        )
    return out


def load_exchange_info(path: str) -> dict[str, Instrument]:
    """Read an exchangeInfo JSON file: plain JSON, or a cryptofeed `.0` capture (`<url> -> <ts>: <json>`)."""
    with open(path, "rb") as fh:
        raw = fh.read()
    if not raw.lstrip().startswith(b"{"):
        # cryptofeed capture: the answer is the first line's JSON; later lines hold the capture's own
        # `configuration: {...}`, not exchange data.
        first = raw.split(b"\n", 1)[0]
        raw = first[first.index(b": {") + 2 :]
    return parse_exchange_info(orjson.loads(raw))
