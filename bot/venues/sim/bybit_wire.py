"""Bybit v5 (linear) JSON of the simulator's state: REST rows and private-topic payloads.

The same engine objects the Binance protocol writes (wire.py), in Bybit's words (exchange-facts B2/B3,
docs/v5): `orderStatus` New / PartiallyFilled / Filled / Cancelled / PartiallyFilledCanceled /
Untriggered / Triggered / Deactivated, sides Buy/Sell, numbers as strings, "" for unset ones.

Ids: a regular order's `orderId` is the engine order id; a conditional order's is the engine algo id,
and the market order a triggered one becomes keeps that id (Bybit keeps the orderId through the
trigger), so a fired position stop is ONE Bybit order: Untriggered -> Triggered -> Filled.
Orders placed without an `orderLinkId` (and the position's own TP/SL, and orders "placed by hand"
through the `outside_order` fault) show `orderLinkId` "" as on the venue.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bot.venues.sim.exchange import SimExchange
from bot.venues.sim.orders import AlgoOrder, SimOrder
from bot.venues.sim.wire import Fmt, _f, _px

__all__ = ["AUTO_PREFIX", "Meta", "algo_row", "exec_row", "instruments", "link_of", "order_row", "position_row",
           "wallet"]

_MS = 1_000_000
AUTO_PREFIX = "bybit-auto-"  # engine client ids of orders sent without an orderLinkId
_HAND_PREFIXES = (AUTO_PREFIX, "web_manual_")


@dataclass
class Meta:
    """What Bybit knows of an order that the engine does not: its words, its attached TP/SL."""

    tif: str = "GTC"  # GTC | IOC | FOK | PostOnly
    stop_order_type: str = ""  # "" | Stop | StopLoss | TakeProfit (conditional and position orders)
    stop_loss: str = ""
    take_profit: str = ""
    sl_trigger_by: str = ""
    tp_trigger_by: str = ""
    trigger_by: str = "LastPrice"
    trigger_direction: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def link_of(client_id: str) -> str:
    return "" if client_id.startswith(_HAND_PREFIXES) else client_id


def _side(sign: int) -> str:
    return "Buy" if sign > 0 else "Sell"


def instruments(ex: SimExchange) -> list[dict[str, Any]]:
    rows = []
    for sym, m in ex.markets.items():
        i = m.inst
        rows.append({
            "symbol": sym, "contractType": "LinearPerpetual", "status": "Trading", "baseCoin": i.base_asset or
            sym.removesuffix("USDT"), "quoteCoin": "USDT", "settleCoin": "USDT", "launchTime": "1585526400000",
            "deliveryTime": "0", "deliveryFeeRate": "", "priceScale": str(i.price_decimals),
            "leverageFilter": {"minLeverage": "1", "maxLeverage": "100.00", "leverageStep": "0.01"},
            "priceFilter": {"minPrice": i.tick_size, "maxPrice": "1999999.80", "tickSize": i.tick_size},
            "lotSizeFilter": {"maxOrderQty": i.max_qty, "maxMktOrderQty": i.market_max_qty or i.max_qty,
                              "minOrderQty": i.min_qty, "qtyStep": i.step_size, "postOnlyMaxOrderQty": i.max_qty,
                              "minNotionalValue": i.min_notional or "5"},
            "unifiedMarginTrade": True, "fundingInterval": ex.funding_interval_ns // 60_000_000_000,
            "settleCoinType": "USDT", "copyTrading": "both", "upperFundingRate": "0.005",
            "lowerFundingRate": "-0.005", "isPreListing": False, "preListingInfo": None,
        })
    return rows


_ORDER_STATUS = {"NEW": "New", "PARTIALLY_FILLED": "PartiallyFilled", "FILLED": "Filled"}


def order_status(o: SimOrder) -> str:
    if o.status in _ORDER_STATUS:
        return _ORDER_STATUS[o.status]
    if o.status == "REJECTED":
        return "Rejected"
    return "PartiallyFilledCanceled" if o.filled_lots and o.type == "LIMIT" else "Cancelled"


def order_row(ex: SimExchange, o: SimOrder, meta: Meta | None, algo: AlgoOrder | None = None,
              algo_meta: Meta | None = None) -> dict[str, Any]:
    """An order as GET /v5/order/realtime|history and the `order` topic show it. `algo`: the conditional
    order this market order was triggered from (its id, link and stopOrderType are kept)."""
    inst = ex.markets[o.symbol].inst
    fmt = Fmt.of(inst)
    meta = meta or Meta()
    avg = o.avg_ticks()
    k = inst.tick * inst.step
    oid, link, sot = str(o.order_id), link_of(o.client_id), meta.stop_order_type
    trig, tby, tdir = "", "", 0
    if algo is not None:
        am = algo_meta or Meta()
        oid, link, sot = str(algo.algo_id), link_of(algo.client_algo_id), am.stop_order_type
        trig, tby, tdir = fmt.price(algo.trigger_ticks), am.trigger_by, am.trigger_direction
    status = order_status(o)
    cancel = "UNKNOWN"
    if status in ("Cancelled", "PartiallyFilledCanceled") and o.status == "CANCELED":
        cancel = "CancelByUser"
    elif o.status == "EXPIRED" and o.reduce_only:
        cancel = "CancelByReduceOnly"
    reject = "EC_PostOnlyWillTakeLiquidity" if o.status == "EXPIRED" and o.tif == "GTX" else "EC_NoError"
    return {
        "category": "linear", "orderId": oid, "orderLinkId": link, "blockTradeId": "", "symbol": o.symbol,
        "price": fmt.price(o.price_ticks) if o.type == "LIMIT" else "0", "qty": fmt.qty(o.qty_lots),
        "side": _side(o.side_sign), "isLeverage": "", "positionIdx": 0, "orderStatus": status,
        "cancelType": cancel, "rejectReason": reject, "avgPrice": _px(inst, avg) if avg else "",
        "leavesQty": fmt.qty(o.remaining_lots if o.is_open else 0), "leavesValue": "0",
        "cumExecQty": fmt.qty(o.filled_lots), "cumExecValue": _f(o.avg_notional_tl * k),
        "cumExecFee": "0", "timeInForce": "IOC" if o.type == "MARKET" else meta.tif,
        "orderType": "Limit" if o.type == "LIMIT" else "Market", "stopOrderType": sot,
        "orderIv": "", "triggerPrice": trig, "takeProfit": meta.take_profit, "stopLoss": meta.stop_loss,
        "tpTriggerBy": meta.tp_trigger_by, "slTriggerBy": meta.sl_trigger_by, "triggerDirection": tdir,
        "triggerBy": tby, "lastPriceOnCreated": "", "reduceOnly": o.reduce_only or (algo is not None and
        (algo.reduce_only or algo.close_position)), "closeOnTrigger": algo is not None and algo.close_position,
        "smpType": "None", "smpGroup": 0, "smpOrderId": "", "tpslMode": "Full" if meta.stop_loss or
        meta.take_profit or sot in ("StopLoss", "TakeProfit") else "", "tpLimitPrice": "", "slLimitPrice": "",
        "placeType": "", "createType": "CreateByUser" if not sot or sot == "Stop" else f"CreateBy{sot}",
        "createdTime": str(o.created_ns // _MS), "updatedTime": str(o.updated_ns // _MS),
    }


_ALGO_STATUS = {"NEW": "Untriggered", "TRIGGERED": "Triggered", "FINISHED": "Triggered", "CANCELED": "Deactivated",
                "EXPIRED": "Deactivated", "REJECTED": "Rejected"}


def algo_row(ex: SimExchange, a: AlgoOrder, meta: Meta | None) -> dict[str, Any]:
    """A conditional order not (yet) triggered: Untriggered, or Deactivated when cancelled. Full-mode
    position TP/SL have qty "0" (they cover whatever the position is, B3)."""
    inst = ex.markets[a.symbol].inst
    fmt = Fmt.of(inst)
    meta = meta or Meta()
    sot = meta.stop_order_type or "Stop"
    cancel = "UNKNOWN"
    if a.status in ("CANCELED", "EXPIRED"):
        cancel = "CancelByTpSlTsClear" if sot in ("StopLoss", "TakeProfit") else "CancelByUser"
    return {
        "category": "linear", "orderId": str(a.algo_id), "orderLinkId": link_of(a.client_algo_id),
        "blockTradeId": "", "symbol": a.symbol, "price": "0", "qty": fmt.qty(a.qty_lots),
        "side": _side(a.side_sign), "isLeverage": "", "positionIdx": 0,
        "orderStatus": _ALGO_STATUS.get(a.status, "New"),
        "cancelType": cancel, "rejectReason": "EC_NoError", "avgPrice": "", "leavesQty": fmt.qty(a.qty_lots),
        "leavesValue": "0", "cumExecQty": "0", "cumExecValue": "0", "cumExecFee": "0", "timeInForce": "IOC",
        "orderType": "Market", "stopOrderType": sot, "orderIv": "", "triggerPrice": fmt.price(a.trigger_ticks),
        "takeProfit": "", "stopLoss": "", "tpTriggerBy": "", "slTriggerBy": "",
        "triggerDirection": meta.trigger_direction, "triggerBy": meta.trigger_by, "lastPriceOnCreated": "",
        "reduceOnly": a.reduce_only or a.close_position, "closeOnTrigger": a.close_position, "smpType": "None",
        "smpGroup": 0, "smpOrderId": "", "tpslMode": "Full" if sot in ("StopLoss", "TakeProfit") else "",
        "tpLimitPrice": "", "slLimitPrice": "", "placeType": "",
        "createType": "CreateByUser" if sot == "Stop" else f"CreateBy{sot}",
        "createdTime": str(a.created_ns // _MS), "updatedTime": str(a.updated_ns // _MS),
    }


def exec_row(ex: SimExchange, fill: tuple[Any, ...], order: dict[str, Any], seq: int) -> dict[str, Any]:
    """One fill (engine `fills` entry) as GET /v5/execution/list and the `execution` topic show it;
    `order` is the order's row (ids, words)."""
    tid, o, lots, px, fee, _rp, maker, ts = fill
    inst = ex.markets[o.symbol].inst
    fmt = Fmt.of(inst)
    k = inst.tick * inst.step
    m = ex.markets[o.symbol]
    value = lots * px * k
    return {
        "category": "linear", "symbol": o.symbol, "orderId": order["orderId"], "orderLinkId": order["orderLinkId"],
        "side": order["side"], "orderPrice": order["price"], "orderQty": order["qty"],
        "leavesQty": order["leavesQty"], "createType": order["createType"], "orderType": order["orderType"],
        "stopOrderType": order["stopOrderType"] or "UNKNOWN", "execFee": _f(fee), "execId": str(tid),
        "execPrice": _px(inst, px), "execQty": fmt.qty(lots), "execType": "Trade", "execValue": _f(value),
        "execTime": str(ts // _MS), "feeCurrency": "", "isMaker": bool(maker),
        "feeRate": _f(fee / value if value else 0.0), "tradeIv": "", "markIv": "",
        "markPrice": _px(inst, m.mark_ticks()), "indexPrice": "", "underlyingPrice": "", "blockTradeId": "",
        "closedSize": "0", "seq": seq,
    }


def position_row(ex: SimExchange, symbol: str, stop: tuple[str, str], tp: tuple[str, str], seq: int,
                 topic: bool = False) -> dict[str, Any]:
    """GET /v5/position/list (avgPrice) / the `position` topic (entryPrice too). `stop`, `tp`:
    (price, triggerBy) of the position's TP/SL, ("", "") when none."""
    m = ex.markets[symbol]
    inst = m.inst
    fmt = Fmt.of(inst)
    p = ex.account.positions.get(symbol)
    q = p.qty_lots if p else 0
    lev = ex.leverage.get(symbol, ex.default_leverage)
    mark = m.mark_ticks()
    k = inst.tick * inst.step
    entry = p.entry_ticks * inst.tick if p and q else 0.0
    liq = ex.account.liquidation_price_ticks(p, ex.marks()) * inst.tick if p and q else 0.0
    notional = abs(q) * entry / inst.tick * k if q else 0.0
    row: dict[str, Any] = {
        "positionIdx": 0, "riskId": 1, "riskLimitValue": "2000000", "symbol": symbol,
        "side": "" if not q else _side(q), "size": fmt.qty(abs(q)), "avgPrice": _f(entry, inst.price_decimals + 4)
        if q else "0", "positionValue": _f(notional), "tradeMode": 1 if ex.isolated[symbol] else 0,
        "positionStatus": "Normal", "autoAddMargin": 0, "adlRankIndicator": 2 if q else 0,
        "leverage": str(lev), "positionBalance": _f(notional / lev), "markPrice": _px(inst, mark),
        "liqPrice": _f(liq, inst.price_decimals) if liq > 0 else "", "bustPrice": "",
        "positionMM": _f(p.maint(mark) if p and q else 0.0), "positionIM": _f(notional / lev),
        "tpslMode": "Full", "takeProfit": tp[0] or "0", "stopLoss": stop[0] or "0", "trailingStop": "0",
        "unrealisedPnl": _f(p.upnl(mark) if p and q else 0.0), "curRealisedPnl": "0",
        "cumRealisedPnl": _f(p.realized_pnl if p else 0.0), "sessionAvgPrice": "", "isReduceOnly": False,
        "mmrSysUpdatedTime": "", "leverageSysUpdatedTime": "", "createdTime": "0",
        "updatedTime": str((p.updated_ns if p else 0) // _MS), "seq": seq,
    }
    if stop[0]:
        row["slTriggerBy"] = stop[1]
    if tp[0]:
        row["tpTriggerBy"] = tp[1]
    if topic:
        row["entryPrice"] = row["avgPrice"]
        row["category"] = "linear"
    return row


def wallet(ex: SimExchange) -> dict[str, Any]:
    """GET /v5/account/wallet-balance?accountType=UNIFIED and the `wallet` topic: one USDT coin."""
    marks = ex.marks()
    acct = ex.account
    upnl = acct.total_upnl(marks)
    im = sum(abs(p.qty_lots) * marks[s] * p.k / p.leverage for s, p in acct.positions.items() if p.qty_lots)
    mm = sum(p.maint(marks[s]) for s, p in acct.positions.items() if p.qty_lots)
    oim = ex.open_order_margin()
    avail = max(0.0, ex.available_balance())
    equity = acct.wallet + upnl
    coin = {"coin": "USDT", "equity": _f(equity), "usdValue": _f(equity), "walletBalance": _f(acct.wallet),
            "free": "", "locked": "0", "spotHedgingQty": "0", "borrowAmount": "0", "availableToWithdraw": "",
            "availableToBorrow": "", "accruedInterest": "0", "totalOrderIM": _f(oim), "totalPositionIM": _f(im),
            "totalPositionMM": _f(mm), "unrealisedPnl": _f(upnl),
            "cumRealisedPnl": _f(sum(p.realized_pnl for p in acct.positions.values())), "bonus": "0",
            "marginCollateral": True, "collateralSwitch": True}
    return {"accountType": "UNIFIED", "accountIMRate": _f(((im + oim) / equity) if equity else 0.0, 4),
            "accountMMRate": _f((mm / equity) if equity else 0.0, 4), "accountLTV": "0",
            "totalEquity": _f(equity), "totalWalletBalance": _f(acct.wallet), "totalMarginBalance": _f(equity),
            "totalAvailableBalance": _f(avail), "totalPerpUPL": _f(upnl), "totalInitialMargin": _f(im + oim),
            "totalMaintenanceMargin": _f(mm), "coin": [coin]}
