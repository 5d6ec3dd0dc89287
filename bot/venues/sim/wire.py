"""Binance USD-M JSON of the simulator's state: REST bodies and user-data events.

Field names and layouts follow the venue (exchange-facts A2-A5; the exchangeInfo symbol entry is laid
out like a real one): REST orders (`/fapi/v1/order`), algo orders (`/fapi/v1/algoOrder`),
positionRisk v2/v3, account/balance v2/v3, leverageBracket, and the user stream's
ORDER_TRADE_UPDATE / ALGO_UPDATE / ACCOUNT_UPDATE. Numbers are strings where Binance sends strings.
"""

from __future__ import annotations

from typing import Any, ClassVar

from bot.domain.instrument import Instrument
from bot.venues.sim.brackets import brackets_for
from bot.venues.sim.exchange import SimExchange
from bot.venues.sim.generator import PriceFormat
from bot.venues.sim.orders import AccountReport, AlgoOrder, AlgoReport, OrderReport, SimOrder

__all__ = [
    "account_body",
    "account_update",
    "algo_body",
    "algo_update",
    "balance_body",
    "exchange_info",
    "leverage_brackets",
    "order_body",
    "order_update",
    "position_risk",
    "user_trades",
]

_MS = 1_000_000


def _f(x: float, d: int = 8) -> str:
    return f"{x:.{d}f}"


class Fmt:
    """Per-symbol strings (prices with the tick's decimals, quantities with the step's)."""

    _cache: ClassVar[dict[str, PriceFormat]] = {}

    @classmethod
    def of(cls, inst: Instrument) -> PriceFormat:
        f = cls._cache.get(inst.symbol)
        if f is None:
            f = cls._cache[inst.symbol] = PriceFormat(inst)
        return f


def _px(inst: Instrument, ticks: float) -> str:
    if ticks == int(ticks):
        return Fmt.of(inst).price(int(ticks))
    return _f(ticks * inst.tick, inst.price_decimals + 4)


# ====================================================================== public
def exchange_info(ex: SimExchange, server_ms: int) -> dict[str, Any]:
    symbols = []
    for sym, m in ex.markets.items():
        inst = m.inst
        pd = len(inst.tick_size.split(".")[1]) if "." in inst.tick_size else 0
        qd = len(inst.step_size.split(".")[1]) if "." in inst.step_size else 0
        symbols.append({
            "symbol": sym, "pair": sym, "contractType": "PERPETUAL", "deliveryDate": 4133404800000,
            "onboardDate": 1569398400000, "status": "TRADING", "maintMarginPercent": "2.5000",
            "requiredMarginPercent": "5.0000", "baseAsset": inst.base_asset, "quoteAsset": inst.quote_asset,
            "marginAsset": inst.quote_asset, "pricePrecision": pd, "quantityPrecision": qd,
            "baseAssetPrecision": 8, "quotePrecision": 8, "underlyingType": "COIN", "underlyingSubType": [],
            "settlePlan": 0, "triggerProtect": "0.0500", "liquidationFee": f"{ex.liquidation_fee:.6f}",
            "marketTakeBound": "0.05",
            "filters": [
                {"minPrice": inst.tick_size, "maxPrice": "4529764", "filterType": "PRICE_FILTER",
                 "tickSize": inst.tick_size},
                {"stepSize": inst.step_size, "filterType": "LOT_SIZE", "maxQty": inst.max_qty or "1000",
                 "minQty": inst.min_qty or inst.step_size},
                {"stepSize": inst.step_size, "filterType": "MARKET_LOT_SIZE",
                 "maxQty": inst.market_max_qty or inst.max_qty or "1000", "minQty": inst.min_qty or inst.step_size},
                {"limit": 200, "filterType": "MAX_NUM_ORDERS"},
                {"notional": inst.min_notional or "5", "filterType": "MIN_NOTIONAL"},
                {"multiplierDown": "0.9500", "multiplierUp": "1.0500", "multiplierDecimal": "4",
                 "filterType": "PERCENT_PRICE"},
            ],
            "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET",
                           "TRAILING_STOP_MARKET"],
            "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"],
            "permissionSets": ["GRID", "COPY"],
        })
    return {
        "timezone": "UTC", "serverTime": server_ms, "futuresType": "U_MARGINED",
        "rateLimits": [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 2400},
            {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 300},
        ],
        "exchangeFilters": [],
        "assets": [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"}],
        "symbols": symbols,
    }


def leverage_brackets(symbols: list[str]) -> list[dict[str, Any]]:
    return [{"symbol": s, "notionalCoef": 1.0, "brackets": [
        {"bracket": b.bracket, "initialLeverage": b.initial_leverage, "notionalCap": b.notional_cap,
         "notionalFloor": b.notional_floor, "maintMarginRatio": b.maint_margin_ratio, "cum": b.cum}
        for b in brackets_for(s)]} for s in symbols]


# ====================================================================== orders
def order_body(ex: SimExchange, o: SimOrder) -> dict[str, Any]:
    inst = ex.markets[o.symbol].inst
    fmt = Fmt.of(inst)
    avg = o.avg_ticks()
    return {
        "orderId": o.order_id, "symbol": o.symbol, "status": o.status, "clientOrderId": o.client_id,
        "price": fmt.price(o.price_ticks), "avgPrice": _px(inst, avg) if avg else "0.00",
        "origQty": fmt.qty(o.qty_lots), "executedQty": fmt.qty(o.filled_lots), "cumQty": fmt.qty(o.filled_lots),
        "cumQuote": _f(o.avg_notional_tl * inst.tick * inst.step, 5), "timeInForce": o.tif, "type": o.type,
        "reduceOnly": o.reduce_only, "closePosition": o.close_position, "side": o.side, "positionSide": "BOTH",
        "stopPrice": fmt.price(o.stop_ticks), "workingType": o.working_type, "priceProtect": False,
        "origType": o.orig_type, "priceMatch": "NONE", "selfTradePreventionMode": "EXPIRE_MAKER",
        "goodTillDate": 0, "time": o.created_ns // _MS, "updateTime": o.updated_ns // _MS,
    }


def algo_body(ex: SimExchange, a: AlgoOrder) -> dict[str, Any]:
    inst = ex.markets[a.symbol].inst
    fmt = Fmt.of(inst)
    return {
        "algoId": a.algo_id, "clientAlgoId": a.client_algo_id, "algoType": "CONDITIONAL", "orderType": a.type,
        "symbol": a.symbol, "side": a.side, "positionSide": "BOTH", "timeInForce": "GTC",
        "quantity": fmt.qty(a.qty_lots), "algoStatus": a.status, "actualOrderId": str(a.child_order_id or ""),
        "actualPrice": _px(inst, a.fill_notional_tl / a.fill_lots) if a.fill_lots else "0.00",
        "triggerPrice": fmt.price(a.trigger_ticks), "price": "0.00", "icebergQuantity": None,
        "tpTriggerPrice": "0.00", "tpPrice": "0.00", "slTriggerPrice": "0.00", "slPrice": "0.00",
        "tpOrderType": "", "selfTradePreventionMode": "EXPIRE_MAKER", "workingType": a.working_type,
        "priceMatch": "NONE", "closePosition": a.close_position, "priceProtect": a.price_protect,
        "reduceOnly": a.reduce_only,
        "activatePrice": fmt.price(a.activate_ticks) if a.type == "TRAILING_STOP_MARKET" else "",
        "callbackRate": f"{a.callback_rate_bps / 100:.2f}" if a.type == "TRAILING_STOP_MARKET" else "",
        "createTime": a.created_ns // _MS, "updateTime": a.updated_ns // _MS, "triggerTime": a.trigger_ns // _MS,
        "goodTillDate": 0,
    }


def user_trades(ex: SimExchange, symbol: str, order_id: int | None, limit: int) -> list[dict[str, Any]]:
    """GET /fapi/v1/userTrades rows (oldest first)."""
    inst = ex.markets[symbol].inst
    fmt = Fmt.of(inst)
    k = inst.tick * inst.step
    rows = [f for f in ex.fills if f[1].symbol == symbol and (order_id is None or f[1].order_id == order_id)]
    return [{"buyer": o.side_sign > 0, "commission": _f(fee), "commissionAsset": "USDT", "id": tid, "maker": maker,
             "orderId": o.order_id, "price": _px(inst, px), "qty": fmt.qty(lots), "quoteQty": _f(lots * px * k),
             "realizedPnl": _f(rp), "side": o.side, "positionSide": "BOTH", "symbol": symbol, "time": ts // _MS}
            for tid, o, lots, px, fee, rp, maker, ts in rows[-limit:]]


# ====================================================================== account
def _position_rows(ex: SimExchange, symbol: str | None) -> list[dict[str, Any]]:
    marks = ex.marks()
    acct = ex.account
    rows = []
    for sym, m in ex.markets.items():
        if symbol and sym != symbol:
            continue
        inst = m.inst
        p = acct.positions.get(sym)
        lev = ex.leverage.get(sym, ex.default_leverage)
        mark = marks[sym]
        qty = p.qty_lots if p else 0
        k = inst.tick * inst.step
        notional = qty * mark * k
        upnl = p.upnl(mark) if p and qty else 0.0
        liq = acct.liquidation_price_ticks(p, marks) * inst.tick if p and qty else 0.0
        iso = ex.isolated[sym]
        iw = p.isolated_wallet if p and iso else 0.0
        rows.append({
            "symbol": sym, "positionSide": "BOTH", "positionAmt": Fmt.of(inst).qty(qty) if qty >= 0
            else "-" + Fmt.of(inst).qty(-qty),
            "entryPrice": _f(p.entry_ticks * inst.tick if p and qty else 0.0, 8),
            "breakEvenPrice": _f(p.entry_ticks * inst.tick if p and qty else 0.0, 8),
            "markPrice": _f(mark * inst.tick, 8), "unRealizedProfit": _f(upnl), "liquidationPrice": _f(liq),
            "isolatedMargin": _f(iw + upnl if iso and qty else 0.0), "notional": _f(notional),
            "marginAsset": "USDT", "isolatedWallet": _f(iw), "initialMargin": _f(abs(notional) / lev),
            "maintMargin": _f(p.maint(mark) if p and qty else 0.0), "positionInitialMargin": _f(abs(notional) / lev),
            "openOrderInitialMargin": "0", "adl": 0, "bidNotional": "0", "askNotional": "0",
            "updateTime": (p.updated_ns // _MS) if p else 0,
            # v2 fields
            "leverage": str(lev), "maxNotionalValue": _f(_max_notional(sym, lev), 0),
            "marginType": "isolated" if iso else "cross", "isAutoAddMargin": "false",
        })
    return rows


def _max_notional(symbol: str, lev: int) -> float:
    cap = 0.0
    for b in brackets_for(symbol):
        if b.initial_leverage >= lev:
            cap = b.notional_cap
    return cap


def position_risk(ex: SimExchange, symbol: str | None, v3: bool) -> list[dict[str, Any]]:
    rows = _position_rows(ex, symbol)
    if v3:  # v3 lists only symbols with a position or open orders, without the v2-only fields
        keep = {s for s in ex.markets if ex.position_lots(s)}
        rows = [{k: v for k, v in r.items() if k not in ("leverage", "maxNotionalValue", "marginType",
                                                          "isAutoAddMargin")}
                for r in rows if r["symbol"] in keep]
    return rows


def _totals(ex: SimExchange) -> dict[str, str]:
    marks = ex.marks()
    acct = ex.account
    upnl = acct.total_upnl(marks)
    im = sum(abs(p.qty_lots) * marks[s] * p.k / p.leverage for s, p in acct.positions.items() if p.qty_lots)
    mm = sum(p.maint(marks[s]) for s, p in acct.positions.items() if p.qty_lots)
    oim = ex.open_order_margin()
    avail = ex.available_balance()
    return {
        "totalInitialMargin": _f(im + oim), "totalMaintMargin": _f(mm), "totalWalletBalance": _f(acct.wallet),
        "totalUnrealizedProfit": _f(upnl), "totalMarginBalance": _f(acct.wallet + upnl),
        "totalPositionInitialMargin": _f(im), "totalOpenOrderInitialMargin": _f(oim),
        "totalCrossWalletBalance": _f(acct.cross_wallet), "totalCrossUnPnl": _f(acct.cross_upnl(marks)),
        "availableBalance": _f(avail), "maxWithdrawAmount": _f(max(0.0, avail)),
    }


def account_body(ex: SimExchange, v3: bool, now_ms: int) -> dict[str, Any]:
    t = _totals(ex)
    asset = {"asset": "USDT", "walletBalance": t["totalWalletBalance"], "unrealizedProfit": t["totalUnrealizedProfit"],
             "marginBalance": t["totalMarginBalance"], "maintMargin": t["totalMaintMargin"],
             "initialMargin": t["totalInitialMargin"], "positionInitialMargin": t["totalPositionInitialMargin"],
             "openOrderInitialMargin": t["totalOpenOrderInitialMargin"],
             "crossWalletBalance": t["totalCrossWalletBalance"], "crossUnPnl": t["totalCrossUnPnl"],
             "availableBalance": t["availableBalance"], "maxWithdrawAmount": t["maxWithdrawAmount"],
             "marginAvailable": True, "updateTime": now_ms}
    body: dict[str, Any] = dict(t)
    body["assets"] = [asset]
    rows = _position_rows(ex, None)
    if v3:
        body["positions"] = [{k: r[k] for k in ("symbol", "positionSide", "positionAmt", "unRealizedProfit",
                                                "isolatedMargin", "notional", "isolatedWallet", "initialMargin",
                                                "maintMargin", "updateTime")} for r in rows if float(r["positionAmt"])]
    else:
        body.update({"feeTier": 0, "canTrade": True, "canDeposit": True, "canWithdraw": True, "updateTime": 0,
                     "multiAssetsMargin": False, "tradeGroupId": -1})
        body["positions"] = [{
            "symbol": r["symbol"], "initialMargin": r["initialMargin"], "maintMargin": r["maintMargin"],
            "unrealizedProfit": r["unRealizedProfit"], "positionInitialMargin": r["positionInitialMargin"],
            "openOrderInitialMargin": "0", "leverage": r["leverage"], "isolated": r["marginType"] == "isolated",
            "entryPrice": r["entryPrice"], "breakEvenPrice": r["breakEvenPrice"],
            "maxNotional": r["maxNotionalValue"], "positionSide": "BOTH", "positionAmt": r["positionAmt"],
            "notional": r["notional"], "isolatedWallet": r["isolatedWallet"], "updateTime": r["updateTime"],
            "bidNotional": "0", "askNotional": "0"} for r in rows]
    return body


def balance_body(ex: SimExchange, now_ms: int) -> list[dict[str, Any]]:
    t = _totals(ex)
    return [{"accountAlias": "SgsR", "asset": "USDT", "balance": t["totalWalletBalance"],
             "crossWalletBalance": t["totalCrossWalletBalance"], "crossUnPnl": t["totalCrossUnPnl"],
             "availableBalance": t["availableBalance"], "maxWithdrawAmount": t["maxWithdrawAmount"],
             "marginAvailable": True, "updateTime": now_ms}]


# ====================================================================== user stream
def order_update(ex: SimExchange, r: OrderReport) -> dict[str, Any]:
    o = r.order
    inst = ex.markets[o.symbol].inst
    fmt = Fmt.of(inst)
    ms = r.ts_ns // _MS
    avg = o.avg_ticks()
    return {"e": "ORDER_TRADE_UPDATE", "E": ms, "T": ms, "o": {
        "s": o.symbol, "c": o.client_id, "S": o.side, "o": o.type, "f": o.tif, "q": fmt.qty(o.qty_lots),
        "p": fmt.price(o.price_ticks), "ap": _px(inst, avg) if avg else "0", "sp": fmt.price(o.stop_ticks),
        "x": r.exec_type if r.exec_type != "REJECTED" else "REJECTED", "X": o.status, "i": o.order_id,
        "l": fmt.qty(r.last_lots), "z": fmt.qty(o.filled_lots), "L": _px(inst, r.last_ticks) if r.last_lots else "0",
        "N": "USDT", "n": _f(r.fee), "T": ms, "t": r.trade_id, "b": "0", "a": "0", "m": r.is_maker,
        "R": o.reduce_only, "wt": o.working_type, "ot": o.orig_type, "ps": "BOTH", "cp": o.close_position,
        "rp": _f(r.realized_pnl), "pP": False, "si": 0, "ss": 0, "V": "EXPIRE_MAKER", "pm": "NONE", "gtd": 0,
        "er": "0" if not r.reason else r.reason,
    }}


def algo_update(ex: SimExchange, r: AlgoReport) -> dict[str, Any]:
    a = r.algo
    inst = ex.markets[a.symbol].inst
    fmt = Fmt.of(inst)
    ms = r.ts_ns // _MS
    o: dict[str, Any] = {
        "caid": a.client_algo_id, "aid": a.algo_id, "at": "CONDITIONAL", "o": a.type, "s": a.symbol, "S": a.side,
        "ps": "BOTH", "f": "GTC", "q": fmt.qty(a.qty_lots), "X": a.status,
        "ai": str(a.child_order_id) if a.child_order_id else "",
        "ap": _px(inst, a.fill_notional_tl / a.fill_lots) if a.fill_lots else "0", "aq": fmt.qty(a.fill_lots),
        "act": "MARKET" if a.child_order_id else "", "tp": fmt.price(a.trigger_ticks), "p": "0",
        "V": "EXPIRE_MAKER", "wt": a.working_type, "pm": "NONE", "cp": a.close_position, "pP": a.price_protect,
        "R": a.reduce_only, "tt": a.trigger_ns // _MS, "gtd": 0,
    }
    if a.reason:
        o["rm"] = a.reason
    if a.type == "TRAILING_STOP_MARKET":
        o["ia"] = a.activated
    return {"e": "ALGO_UPDATE", "T": ms, "E": ms, "o": o}


def account_update(ex: SimExchange, r: AccountReport) -> dict[str, Any]:
    """ACCOUNT_UPDATE as Binance sends it (A4). A FUNDING_FEE of a cross-margin position carries the
    balance only, no P (so no symbol); of an isolated one, the balance and that one position."""
    ms = r.ts_ns // _MS
    marks = ex.marks()
    acct = ex.account
    positions = []
    symbols = r.symbols
    if r.reason == "FUNDING_FEE":
        symbols = tuple(sym for sym in symbols if (p := acct.positions.get(sym)) is not None and p.isolated)
    for sym in symbols:
        inst = ex.markets[sym].inst
        p = acct.positions.get(sym)
        qty = p.qty_lots if p else 0
        fmt = Fmt.of(inst)
        positions.append({
            "s": sym, "pa": fmt.qty(qty) if qty >= 0 else "-" + fmt.qty(-qty),
            "ep": _f(p.entry_ticks * inst.tick if p and qty else 0.0, 8),
            "bep": _f(p.entry_ticks * inst.tick if p and qty else 0.0, 8),
            "cr": _f(p.realized_pnl if p else 0.0), "up": _f(p.upnl(marks[sym]) if p and qty else 0.0),
            "mt": "isolated" if ex.isolated[sym] else "cross",
            "iw": _f(p.isolated_wallet if p and ex.isolated[sym] else 0.0), "ps": "BOTH"})
    a: dict[str, Any] = {"m": r.reason, "B": [{"a": "USDT", "wb": _f(acct.wallet), "cw": _f(acct.cross_wallet),
                                                "bc": _f(r.balance_change)}], "P": positions}
    return {"e": "ACCOUNT_UPDATE", "E": ms, "T": ms, "a": a}
