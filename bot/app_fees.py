"""Fee rates at start-up (issue 13 item 5): the venue's own maker/taker rates per symbol feed the cost model
(RiskManager.set_fees); where the venue cannot tell (no such endpoint, an error, a timeout) the config's
risk.maker_fee_bps / taker_fee_bps stay in use and a warning line says so. Binance: GET /fapi/v1/commissionRate,
Bybit: GET /v5/account/fee-rate (the gateways' `fee_rates`). Shown in /status (info.fees)."""

from __future__ import annotations

import asyncio
from typing import Any

from bot.risk.costs import FeeRates

__all__ = ["describe", "load_fee_rates"]


def describe(rates: dict[str, FeeRates]) -> str:
    """One line: 'BTCUSDT 2/5 bps (venue); ETHUSDT 2/5 bps (config)'."""
    return "; ".join(f"{s} {r.maker_bps:g}/{r.taker_bps:g} bps ({r.source})" for s, r in sorted(rates.items()))


async def load_fee_rates(gw: Any, symbols: list[str] | tuple[str, ...], fallback: FeeRates, log: Any,
                         timeout_s: float = 5.0) -> dict[str, FeeRates]:
    """{symbol: FeeRates} from the venue, the fallback (config) for each symbol it could not give."""
    out: dict[str, FeeRates] = {}
    ask = getattr(gw, "fee_rates", None)
    if ask is None:
        log.warning("fee_rates_from_config", symbols=list(symbols), error="the venue has no fee-rate endpoint",
                    maker_bps=fallback.maker_bps, taker_bps=fallback.taker_bps)
    for sym in symbols:
        if ask is None:
            out[sym] = fallback
            continue
        try:
            maker, taker = await asyncio.wait_for(ask(sym), timeout_s)
            out[sym] = FeeRates.from_rates(maker, taker)
        except Exception as e:  # a fee read must never stop the start: the config's rates are the fallback
            log.warning("fee_rates_from_config", symbol=sym, error=f"{type(e).__name__}: {e}"[:200],
                        maker_bps=fallback.maker_bps, taker_bps=fallback.taker_bps)
            out[sym] = fallback
            if isinstance(e, TimeoutError):
                ask = None  # a venue that did not answer in time is not waited for again, symbol by symbol
    return out
