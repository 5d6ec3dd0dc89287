"""bot/app_fees.py: the venue's rates per symbol, the config's as fallback with a warning line (milliseconds)."""

from __future__ import annotations

import asyncio

from bot.app_fees import describe, load_fee_rates
from bot.risk.costs import FeeRates

CFG = FeeRates(2.0, 5.0, "config")


class _Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, dict]] = []

    def warning(self, event: str, **kw: object) -> None:
        self.lines.append((event, kw))


class _Gw:
    def __init__(self, fail: dict[str, BaseException]) -> None:
        self.fail, self.asked = fail, []

    async def fee_rates(self, symbol: str) -> tuple[str, str]:
        self.asked.append(symbol)
        if symbol in self.fail:
            raise self.fail[symbol]
        return "0.000150", "0.000450"


def test_venue_rates_and_fallbacks() -> None:
    log, gw = _Log(), _Gw({"ETHUSDT": ConnectionError("refused")})
    rates = asyncio.run(load_fee_rates(gw, ["BTCUSDT", "ETHUSDT"], CFG, log))
    assert rates == {"BTCUSDT": FeeRates(1.5, 4.5, "venue"), "ETHUSDT": CFG}
    assert [(e, kw["symbol"]) for e, kw in log.lines] == [("fee_rates_from_config", "ETHUSDT")]
    assert describe(rates) == "BTCUSDT 1.5/4.5 bps (venue); ETHUSDT 2/5 bps (config)"


def test_a_timeout_is_not_waited_for_again_and_no_endpoint_warns_once() -> None:
    log, gw = _Log(), _Gw({"BTCUSDT": TimeoutError()})
    rates = asyncio.run(load_fee_rates(gw, ["BTCUSDT", "ETHUSDT", "SOLUSDT"], CFG, log))
    assert gw.asked == ["BTCUSDT"] and set(rates.values()) == {CFG}
    log = _Log()
    assert asyncio.run(load_fee_rates(object(), ["BTCUSDT"], CFG, log)) == {"BTCUSDT": CFG}
    assert [e for e, _ in log.lines] == ["fee_rates_from_config"]
