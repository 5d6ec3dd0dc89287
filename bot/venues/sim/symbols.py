"""Instruments for any list of symbols on the simulators (the in-process sim venue, `scalper exchange-sim`).

The two symbols whose real rules are embedded (bot/venues/binance_usdm/instruments.py KNOWN) keep them. Any
other symbol gets rules *derived* from a reference price, shaped like Binance USD-M's exchangeInfo filters
(exchange-facts A5: PRICE_FILTER tickSize, LOT_SIZE stepSize/minQty/maxQty, MARKET_LOT_SIZE maxQty,
MIN_NOTIONAL notional):
- reference price: `[sim] gen_start_prices` if set, else a table of realistic prices for the most traded
  USD-M perpetuals, else a deterministic price from a hash of the name (0.01 .. 1000 USDT, 4 digits), so the
  same name always gives the same market;
- tickSize: the largest 1/2/5 x 10^k at or below 1e-4 of the price (about 1 bps, as the alts' real ticks
  are 0.2-1.7 bps);
- stepSize = minQty: the largest 10^k with step x price <= 5 USDT, and MIN_NOTIONAL 5 USDT (Binance's
  default for alts);
- LOT_SIZE maxQty: about 10 M USDT of notional, MARKET_LOT_SIZE maxQty: about 2 M USDT.
`--symbols N` (a number) means the first N symbols of the table.
"""

from __future__ import annotations

import hashlib
import math
from decimal import Decimal

from bot.domain.instrument import Instrument
from bot.venues.binance_usdm.instruments import KNOWN, VENUE

__all__ = ["TOP_PRICES", "derive_instrument", "parse_symbols", "reference_price", "sim_instruments"]

# Rough USDT prices of the most traded USD-M perpetuals (order: by volume, roughly). Only the order of
# magnitude matters: it sets the tick, the lot and the generator's level sizes.
TOP_PRICES: dict[str, float] = {
    "BTCUSDT": 60_000.0, "ETHUSDT": 3_000.0, "SOLUSDT": 150.0, "BNBUSDT": 600.0, "XRPUSDT": 0.6,
    "DOGEUSDT": 0.15, "ADAUSDT": 0.45, "AVAXUSDT": 30.0, "LINKUSDT": 15.0, "SUIUSDT": 1.5,
    "LTCUSDT": 80.0, "DOTUSDT": 6.0, "BCHUSDT": 400.0, "TRXUSDT": 0.15, "NEARUSDT": 5.0,
    "1000PEPEUSDT": 0.01, "WIFUSDT": 2.0, "APTUSDT": 9.0, "ARBUSDT": 0.8, "OPUSDT": 2.0,
    "UNIUSDT": 8.0, "ATOMUSDT": 7.0, "FILUSDT": 5.0, "ETCUSDT": 25.0,
}
_MIN_NOTIONAL_USDT = 5.0
_MAX_NOTIONAL_USDT = 10_000_000.0
_MARKET_MAX_NOTIONAL_USDT = 2_000_000.0


def reference_price(symbol: str, prices: dict[str, float] | None = None) -> float:
    """The symbol's starting/reference price: config, else the table, else from a hash of the name."""
    if prices and prices.get(symbol):
        return float(prices[symbol])
    if symbol in TOP_PRICES:
        return TOP_PRICES[symbol]
    h = int.from_bytes(hashlib.sha256(symbol.encode()).digest()[:8], "big")
    exp = -2 + 5 * (h % 1_000_003) / 1_000_003  # 10^-2 .. 10^3 USDT
    p = 10**exp
    return float(f"{p:.4g}")


def _dec(x: Decimal) -> str:
    s = format(x.normalize(), "f")
    return s


def _grid_125(x: float) -> Decimal:
    """The largest 1/2/5 x 10^k <= x."""
    k = math.floor(math.log10(x))
    for m in (5, 2, 1):
        v = Decimal(m) * Decimal(10) ** k
        if v <= Decimal(repr(x)):
            return v
    return Decimal(10) ** (k - 1) * 5


def derive_instrument(symbol: str, price: float) -> Instrument:
    """Binance-shaped rules for `symbol` at `price` (see the module doc)."""
    if not price > 0 or not math.isfinite(price):
        raise ValueError(f"{symbol}: reference price must be > 0, got {price!r}")
    tick = _grid_125(price * 1e-4)
    step = Decimal(10) ** math.floor(math.log10(_MIN_NOTIONAL_USDT / price))
    max_lots = max(1, int(_MAX_NOTIONAL_USDT / price / float(step)))
    mkt_lots = max(1, int(_MARKET_MAX_NOTIONAL_USDT / price / float(step)))
    quote = "USDC" if symbol.endswith("USDC") else "USDT"
    base = symbol[: -len(quote)] if symbol.endswith(quote) and len(symbol) > len(quote) else symbol
    return Instrument(VENUE, symbol, _dec(tick), _dec(step), _dec(step), _dec(step * max_lots),
                      _dec(step * mkt_lots), _dec(Decimal(repr(_MIN_NOTIONAL_USDT))), base, quote)


def sim_instruments(symbols: tuple[str, ...] | list[str],
                    prices: dict[str, float] | None = None) -> dict[str, Instrument]:
    """{symbol: Instrument}: the embedded rules where known, derived ones for any other symbol."""
    return {s: KNOWN[s] if s in KNOWN else derive_instrument(s, reference_price(s, prices)) for s in symbols}


def reference_prices(symbols: tuple[str, ...] | list[str], prices: dict[str, float] | None = None) -> dict[str, float]:
    return {s: reference_price(s, prices) for s in symbols}


def parse_symbols(text: str) -> tuple[str, ...]:
    """`A,B,C` -> ("A", "B", "C"); a number N -> the first N symbols of TOP_PRICES (at most its length)."""
    t = text.strip()
    if t.isdigit():
        n = int(t)
        if not 1 <= n <= len(TOP_PRICES):
            raise ValueError(f"--symbols {n}: a count must be 1..{len(TOP_PRICES)} (or name the symbols)")
        return tuple(list(TOP_PRICES)[:n])
    out = tuple(s.strip().upper() for s in t.split(",") if s.strip())
    bad = [s for s in out if not s.isalnum()]
    if bad:
        raise ValueError(f"--symbols: {', '.join(bad)} is not a symbol name (letters and digits only)")
    if len(set(out)) != len(out):
        raise ValueError("--symbols: a symbol is listed twice")
    return out
