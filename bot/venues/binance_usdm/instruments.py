"""Instruments from Binance USD-M `GET /fapi/v1/exchangeInfo` (exchange-facts A5), plus the embedded
rules the bot uses with no network (the simulator, recorded sessions without an exchangeInfo file)."""

from __future__ import annotations

from typing import Any

import orjson

from bot.domain.instrument import Instrument

__all__ = ["KNOWN", "instrument_for", "load_exchange_info", "parse_exchange_info"]

VENUE = "binance-usdm"

# PRICE_FILTER.tickSize, LOT_SIZE.stepSize/minQty/maxQty, MARKET_LOT_SIZE.maxQty, MIN_NOTIONAL.notional
# as published by fapi/v1/exchangeInfo for the two symbols the default config trades.
KNOWN: dict[str, Instrument] = {
    "BTCUSDT": Instrument(VENUE, "BTCUSDT", "0.10", "0.001", "0.001", "1000", "120", "100", "BTC", "USDT"),
    "ETHUSDT": Instrument(VENUE, "ETHUSDT", "0.01", "0.001", "0.001", "10000", "2000", "20", "ETH", "USDT"),
}


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


def _decimals(s: str) -> int:
    return len(s.split(".", 1)[1]) if "." in s else 0


def instrument_for(
    symbol: str,
    sample_price: str | None = None,
    sample_qty: str | None = None,
    table: dict[str, Instrument] | None = None,
) -> Instrument:
    """The instrument for `symbol`: from `table`, else the embedded rules, else inferred from the
    decimals of a sample price/size (exact for book keeping: Binance prints prices with the tick's
    decimals, so the inferred grid is the tick or finer)."""
    if table and symbol in table:
        return table[symbol]
    if symbol in KNOWN:
        return KNOWN[symbol]
    if sample_price is None:
        raise KeyError(f"no instrument rules for {symbol}; pass an exchangeInfo file")
    pd = _decimals(sample_price)
    qd = _decimals(sample_qty or "1")
    tick = "1" if pd == 0 else "0." + "0" * (pd - 1) + "1"
    step = "1" if qd == 0 else "0." + "0" * (qd - 1) + "1"
    return Instrument(VENUE, symbol, tick, step)
