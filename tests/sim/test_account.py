"""Conditional orders (mark vs last), PnL with fees and funding, liquidation at the computed price."""

from __future__ import annotations

import pytest

from bot.domain.types import OrderKind, Side, TriggerPrice
from bot.venues.ports import OrderRequest
from bot.venues.sim.brackets import BRACKETS, isolated_liquidation_price
from bot.venues.sim.orders import AccountReport, AlgoReport, OrderReport, SimError
from tests.sim.helpers import BTC, Feed, limit, market, new_exchange, px, standard_book, stop


def _long(ex, f, lots=5):  # type: ignore[no-untyped-def]
    standard_book(f)
    ex.place(market("entry", Side.BUY, lots))
    ex.drain()


def test_stop_on_mark_ignores_last_and_stop_on_last_ignores_mark() -> None:
    ex = new_exchange()
    f = Feed(ex)
    _long(ex, f)
    f.mark(60000.0)
    ex.place(stop("sl-mark", Side.SELL, 5, "59990.0", TriggerPrice.MARK))
    ex.place(stop("sl-last", Side.SELL, 5, "59980.0", TriggerPrice.LAST))
    ex.drain()
    f.trade("59985.0", "0.001", seller_aggressor=True)  # last below the mark stop's trigger: no effect
    assert ex.query_algo("BTCUSDT", "sl-mark").status == "NEW"
    f.mark(59979.0)  # mark below the last stop's trigger: no effect on it
    assert ex.query_algo("BTCUSDT", "sl-mark").status == "FINISHED"
    assert ex.query_algo("BTCUSDT", "sl-last").status == "NEW"
    reports = ex.drain()
    algo = [r.algo.status for r in reports if isinstance(r, AlgoReport)]
    assert algo == ["TRIGGERED", "FINISHED"]
    child = [r for r in reports if isinstance(r, OrderReport) and r.exec_type == "TRADE"]
    trig = ex.query_algo("BTCUSDT", "sl-mark")
    assert child and child[0].order.order_id == trig.child_order_id
    assert child[0].order.orig_type == "STOP_MARKET" and child[0].order.parent_client_id == "sl-mark"
    assert ex.position_lots("BTCUSDT") == 0
    # the last-price stop now has nothing to reduce when the last trade crosses it
    f.trade("59979.0", "0.001", seller_aggressor=True)
    a = ex.query_algo("BTCUSDT", "sl-last")
    assert a.status == "REJECTED" and "ReduceOnly" in a.reason


def test_stop_placement_rules() -> None:
    ex = new_exchange()
    f = Feed(ex)
    _long(ex, f)
    f.mark(60000.0)
    with pytest.raises(SimError) as e:  # a sell stop above the mark would fire at once
        ex.place(stop("bad", Side.SELL, 5, "60010.0"))
    assert e.value.code == -2021
    with pytest.raises(SimError) as e:  # a stop type on the regular order endpoint
        ex.place_order(stop("x", Side.SELL, 5, "59000.0"))
    assert e.value.code == -4120
    with pytest.raises(SimError) as e:
        ex.place(stop("short-sl", Side.BUY, 5, "60100.0"))  # reduce-only on the wrong side
    assert e.value.code == -2022
    ex.place(stop("tp", Side.SELL, 0, "60050.0", TriggerPrice.LAST, OrderKind.TAKE_PROFIT_MARKET,
                  close_position=True))
    ex.place(market("add", Side.BUY, 3))  # closePosition closes what is there when it fires
    f.trade("60050.0", "0.001", seller_aggressor=False)
    tp = ex.query_algo("BTCUSDT", "tp")
    assert tp.status == "FINISHED" and tp.fill_lots == 8
    assert ex.position_lots("BTCUSDT") == 0
    assert ex.cancel_all_algos("BTCUSDT") == []
    with pytest.raises(SimError) as e:
        ex.cancel_algo("BTCUSDT", "tp")
    assert e.value.code == -2011


def test_trailing_stop_fires_on_the_callback_from_the_high() -> None:
    ex = new_exchange()
    f = Feed(ex)
    _long(ex, f)
    f.trade("60000.0", "0.001", seller_aggressor=True)
    req = OrderRequest("trail", "BTCUSDT", Side.SELL, OrderKind.TRAILING_STOP_MARKET, 5,
                       trigger_ticks=px("60100.0"), working_type=TriggerPrice.LAST, reduce_only=True,
                       callback_rate_bps=50)  # 0.5 %
    ex.place(req)
    f.trade("60050.0", "0.001", seller_aggressor=False)
    f.trade("59000.0", "0.001", seller_aggressor=True)  # not active yet: no fire below activation
    assert ex.query_algo("BTCUSDT", "trail").status == "NEW"
    for p in ("60100.0", "60400.0", "60200.0"):  # activated at 60100, high 60400
        f.trade(p, "0.001", seller_aggressor=False)
    assert ex.query_algo("BTCUSDT", "trail").status == "NEW"
    f.trade("60098.1", "0.001", seller_aggressor=True)  # 60400 * 0.995 = 60098.0: not yet
    assert ex.query_algo("BTCUSDT", "trail").status == "NEW"
    f.trade("60098.0", "0.001", seller_aggressor=True)
    assert ex.query_algo("BTCUSDT", "trail").status == "FINISHED"


def test_fees_funding_and_realised_pnl_add_up() -> None:
    ex = new_exchange(balance=10_000.0, maker_fee_bps=2.0, taker_fee_bps=5.0)
    f = Feed(ex)
    standard_book(f)
    funding_at = f.t + 1_000_000_000
    f.mark(60000.0, rate=0.0001, next_funding_ns=funding_at)
    ex.place(market("e", Side.BUY, 5))  # 0.002 @ 60000.1 + 0.003 @ 60000.2, taker
    fee_in = (0.002 * 60000.1 + 0.003 * 60000.2) * 0.0005
    assert ex.account.wallet == pytest.approx(10_000.0 - fee_in)
    f.mark(60010.0, rate=0.0001, next_funding_ns=funding_at)
    ex.drain()
    f.step(1500)
    f.mark(60020.0, rate=0.0001, next_funding_ns=funding_at + 8 * 3600 * 10**9)  # past the funding time
    funding = [r for r in ex.drain() if isinstance(r, AccountReport) and r.reason == "FUNDING_FEE"]
    assert len(funding) == 1
    # the long pays, at the mark of the funding time (60010: the 60020 update came after it)
    assert funding[0].balance_change == pytest.approx(-0.005 * 60010.0 * 0.0001)
    # close as maker at 60030.0: a resting sell hit by a buy print through it
    ex.place(limit("x", Side.SELL, 5, "60030.0", reduce_only=True))
    f.trade("60030.5", "0.010", seller_aggressor=False)
    entry = (0.002 * 60000.1 + 0.003 * 60000.2) / 0.005
    realised = 0.005 * (60030.0 - entry)
    fee_out = 0.005 * 60030.0 * 0.0002
    expected = 10_000.0 - fee_in + funding[0].balance_change + realised - fee_out
    assert ex.position_lots("BTCUSDT") == 0
    assert ex.account.wallet == pytest.approx(expected, abs=1e-9)
    assert ex.account.positions["BTCUSDT"].realized_pnl == pytest.approx(realised)


@pytest.mark.parametrize("side", [Side.BUY, Side.SELL])
def test_isolated_liquidation_happens_at_the_computed_price(side: Side) -> None:
    ex = new_exchange(balance=1_000.0)
    f = Feed(ex)
    standard_book(f)
    ex.set_margin_type("BTCUSDT", True)
    ex.set_leverage("BTCUSDT", 100)
    f.mark(60000.0)
    ex.place(market("e", side, 10))
    pos = ex.account.positions["BTCUSDT"]
    q = 0.010
    entry = pos.entry_ticks * BTC.tick
    wallet = pos.isolated_wallet
    # exchange-facts A5: LP = (WB + cum - side*Q*EP) / (Q*MMR - side*Q), first bracket (mmr 0.4 %, cum 0)
    s = side.sign
    lp = (wallet + 0.0 - s * q * entry) / (q * 0.004 - s * q)
    assert lp == pytest.approx(isolated_liquidation_price(BRACKETS["BTCUSDT"], s, q, entry, wallet))
    assert ex.account.liquidation_price_ticks(pos, ex.marks()) * BTC.tick == pytest.approx(lp)
    # about 0.6 % away at 100x with 0.4 % maintenance margin
    assert 0.004 < abs(entry - lp) / entry < 0.007
    ex.drain()
    f.mark(lp + s * 0.05)  # just on the safe side
    assert ex.position_lots("BTCUSDT") == 10 * s
    f.mark(lp - s * 0.05)
    assert ex.position_lots("BTCUSDT") == 0
    liq = [r for r in ex.drain() if isinstance(r, OrderReport) and r.exec_type == "CALCULATED"]
    assert len(liq) == 1 and liq[0].order.client_id.startswith("autoclose-")
    assert liq[0].last_ticks * BTC.tick == pytest.approx(lp - s * 0.05)
    # the isolated margin is gone (loss up to maintenance, then the clearance fee takes the rest)
    assert ex.account.wallet == pytest.approx(1_000.0 - wallet - 0.010 * 60000.1 * 0.0005, abs=0.05)


def test_cross_liquidation_uses_the_whole_wallet() -> None:
    ex = new_exchange(balance=100.0, default_leverage=50)
    f = Feed(ex)
    standard_book(f)
    f.mark(60000.0)
    ex.place(market("e", Side.BUY, 50))  # 0.05 BTC ~ 3000 USDT at 50x: 60 USDT margin
    pos = ex.account.positions["BTCUSDT"]
    lp = ex.account.liquidation_price_ticks(pos, ex.marks()) * BTC.tick
    # equity = wallet + Q*(P-EP) = Q*P*mmr  ->  P = (Q*EP - wallet) / (Q*(1-mmr))
    q = 0.05
    assert lp == pytest.approx((q * pos.entry_ticks * BTC.tick - ex.account.wallet) / (q * (1 - 0.004)))
    f.mark(lp + 0.1)
    assert ex.position_lots("BTCUSDT") == 50
    f.mark(lp - 0.1)
    assert ex.position_lots("BTCUSDT") == 0
