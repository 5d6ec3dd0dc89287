"""Instrument rules the bot uses with no network: the embedded table (the simulator, paper mode, recorded
sessions without an exchangeInfo file) and inference from a sample price/size. Venue-neutral on purpose:
the market session, the journal report and every venue use it (issue 12: no generic module imports a venue);
bot/venues/binance_usdm/instruments.py re-exports it beside its exchangeInfo parser."""

from __future__ import annotations

from bot.domain.instrument import Instrument

__all__ = ["KNOWN", "instrument_for"]

VENUE = "binance-usdm"  # the embedded rules are Binance USD-M's (exchange-facts A5)

# PRICE_FILTER.tickSize, LOT_SIZE.stepSize/minQty/maxQty, MARKET_LOT_SIZE.maxQty, MIN_NOTIONAL.notional
# as published by fapi/v1/exchangeInfo for the two symbols the default config trades.
KNOWN: dict[str, Instrument] = {
    "BTCUSDT": Instrument(VENUE, "BTCUSDT", "0.10", "0.001", "0.001", "1000", "120", "100", "BTC", "USDT"),
    "ETHUSDT": Instrument(VENUE, "ETHUSDT", "0.01", "0.001", "0.001", "10000", "2000", "20", "ETH", "USDT"),
}


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
