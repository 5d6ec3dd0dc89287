"""Binance USD-M words <-> the bot's order types (pure; exchange-facts A3, A4, C2, C3).

- `create_args`: OrderRequest -> the arguments of ccxt `create_order`. Entries go to `/fapi/v1/order`;
  STOP_MARKET / TAKE_PROFIT_MARKET / TRAILING_STOP_MARKET go to `/fapi/v1/algoOrder` through
  `stopLossPrice` / `takeProfitPrice` / `callbackRate` (ccxt routes them, C2). NEVER the unified
  `stopLoss` dict: binanceusdm forwards it verbatim to /fapi/v1/order as junk (Flags 9).
- `trigger_ticks_away`: a trigger price rounded to the tick AWAY from the market (ccxt's
  price_to_precision rounds to nearest, which can pull a stop closer or make it fire at once: -2021).
- `order_update_from_rest` / `algo_update_from_rest`: `GET /fapi/v1/order` / `GET /fapi/v1/algoOrder`
  (and the open-orders lists) -> OrderUpdate.
- `status_of` / `algo_status_of`: the venue's status words -> OrderStatus.
"""

from __future__ import annotations

import math
import re
from typing import Any

from bot.domain.instrument import Instrument
from bot.domain.types import OrderKind, OrderStatus, Side, TimeInForce
from bot.venues.ports import OrderRequest, OrderUpdate

__all__ = [
    "CLIENT_ID_RE",
    "algo_status_of",
    "algo_update_from_rest",
    "create_args",
    "is_protective",
    "kind_of",
    "order_update_from_rest",
    "status_of",
    "trigger_ticks_away",
]

# newClientOrderId / clientAlgoId: ^[.A-Z:/a-z0-9_-]{1,36}$ (A3).
CLIENT_ID_RE = re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$")

_STATUS = {
    "NEW": OrderStatus.NEW,
    "PARTIALLY_FILLED": OrderStatus.PARTIALLY_FILLED,
    "FILLED": OrderStatus.FILLED,
    "CANCELED": OrderStatus.CANCELED,
    "EXPIRED": OrderStatus.EXPIRED,
    "EXPIRED_IN_MATCH": OrderStatus.EXPIRED,  # self-trade prevention
    "REJECTED": OrderStatus.REJECTED,
}

_KIND = {
    "LIMIT": OrderKind.LIMIT,
    "MARKET": OrderKind.MARKET,
    "STOP_MARKET": OrderKind.STOP_MARKET,
    "TAKE_PROFIT_MARKET": OrderKind.TAKE_PROFIT_MARKET,
    "TRAILING_STOP_MARKET": OrderKind.TRAILING_STOP_MARKET,
}


def status_of(word: str) -> OrderStatus:
    return _STATUS.get(word, OrderStatus.NEW)


def algo_status_of(word: str, filled_lots: int) -> OrderStatus:
    """ALGO_UPDATE / algoOrder statuses (A3): NEW, TRIGGERING, TRIGGERED, FINISHED, CANCELED, REJECTED,
    EXPIRED. FINISHED = the child order ended in the matching engine: FILLED when it filled anything."""
    if word in ("TRIGGERING", "TRIGGERED"):
        return OrderStatus.TRIGGERED
    if word == "FINISHED":
        return OrderStatus.FILLED if filled_lots > 0 else OrderStatus.EXPIRED
    return _STATUS.get(word, OrderStatus.NEW)


def kind_of(word: str) -> OrderKind:
    return _KIND.get(word, OrderKind.MARKET)


def is_protective(req: OrderRequest) -> bool:
    """Orders that only reduce risk: they may use the limiter's headroom and a skewed-but-offset clock."""
    return req.reduce_only or req.close_position or req.kind.is_conditional


def trigger_ticks_away(price: float, side: Side, kind: OrderKind, inst: Instrument) -> int:
    """Round a trigger price to the tick away from the market.

    STOP_MARKET: a SELL (protecting a long) fires at or below its trigger -> round down; a BUY up.
    TAKE_PROFIT_MARKET: the reverse (a SELL take-profit sits above the market -> round up).
    """
    x = price / inst.tick
    near = round(x)
    if abs(x - near) < 1e-9:  # already on the grid (float noise)
        return int(near)
    down = (kind is OrderKind.STOP_MARKET) == (side is Side.SELL)
    return math.floor(x) if down else math.ceil(x)


def create_args(req: OrderRequest, inst: Instrument, ccxt_symbol: str) -> tuple[str, str, str, float | None,
                                                                                  float | None, dict[str, Any]]:
    """(symbol, type, side, amount, price, params) for ccxt `create_order`.

    Prices and quantities are passed as exact decimal strings from integer ticks/lots, so ccxt's
    precision rounding is a no-op on them.
    """
    if not CLIENT_ID_RE.match(req.client_id):
        raise ValueError(f"client id {req.client_id!r} does not match {CLIENT_ID_RE.pattern}")
    side = req.side.value.lower()
    qty: Any = None if req.close_position else inst.lots_to_str(req.qty_lots)
    params: dict[str, Any] = {}
    if req.kind is OrderKind.LIMIT:
        if req.price_ticks is None:
            raise ValueError("LIMIT needs price_ticks")
        params["timeInForce"] = req.time_in_force.value  # GTC / IOC / FOK / GTX (post-only)
        params["newClientOrderId"] = req.client_id
        if req.reduce_only:
            params["reduceOnly"] = True
        return ccxt_symbol, "limit", side, qty, inst.ticks_to_str(req.price_ticks), params  # type: ignore[return-value]
    if req.kind is OrderKind.MARKET:
        params["newClientOrderId"] = req.client_id
        if req.reduce_only:
            params["reduceOnly"] = True
        return ccxt_symbol, "market", side, qty, None, params
    # Conditional: an algo order on /fapi/v1/algoOrder (algoType=CONDITIONAL added by ccxt).
    params["clientAlgoId"] = req.client_id
    params["workingType"] = req.working_type.value
    if req.close_position:
        params["closePosition"] = True  # not with quantity or reduceOnly (A3)
    elif req.reduce_only:
        params["reduceOnly"] = True
    if req.kind is OrderKind.TRAILING_STOP_MARKET:
        if req.callback_rate_bps is None:
            raise ValueError("TRAILING_STOP_MARKET needs callback_rate_bps")
        params["callbackRate"] = f"{req.callback_rate_bps / 100:g}"  # percent, 0.1 .. 20
        if req.trigger_ticks is not None:
            params["activationPrice"] = inst.ticks_to_str(req.trigger_ticks)  # -> activatePrice on algo
        return ccxt_symbol, "market", side, qty, None, params
    if req.trigger_ticks is None:
        raise ValueError(f"{req.kind.value} needs trigger_ticks")
    key = "stopLossPrice" if req.kind is OrderKind.STOP_MARKET else "takeProfitPrice"
    params[key] = inst.ticks_to_str(req.trigger_ticks)
    return ccxt_symbol, "market", side, qty, None, params


def _f(v: Any) -> float:
    try:
        return float(v) if v not in (None, "") else 0.0
    except (TypeError, ValueError):
        return 0.0


def order_update_from_rest(o: dict[str, Any], inst: Instrument, ts_recv_ns: int = 0) -> OrderUpdate:
    """A regular order as `GET /fapi/v1/order` / `openOrders` / the create response return it."""
    filled = inst.qty_to_lots(o.get("executedQty") or "0")
    return OrderUpdate(
        client_id=str(o.get("clientOrderId", "")),
        venue_order_id=str(o.get("orderId", "")),
        symbol=str(o.get("symbol", inst.symbol)),
        side=Side(o.get("side", "BUY")),
        kind=kind_of(str(o.get("origType") or o.get("type", "MARKET"))),
        status=status_of(str(o.get("status", "NEW"))),
        qty_lots=inst.qty_to_lots(o.get("origQty") or "0"),
        filled_lots=filled,
        avg_price=_f(o.get("avgPrice")),
        reduce_only=bool(o.get("reduceOnly", False)) or bool(o.get("closePosition", False)),
        ts_event_ns=int(o.get("updateTime") or o.get("time") or 0) * 1_000_000,
        ts_recv_ns=ts_recv_ns,
    )


def algo_update_from_rest(o: dict[str, Any], inst: Instrument, ts_recv_ns: int = 0) -> OrderUpdate:
    """An algo order as `GET /fapi/v1/algoOrder` / `openAlgoOrders` / the create response return it."""
    filled_str = o.get("executedQty") or o.get("actualQty") or "0"
    filled = inst.qty_to_lots(filled_str)
    return OrderUpdate(
        client_id=str(o.get("clientAlgoId", "")),
        venue_order_id=str(o.get("algoId", "")),
        symbol=str(o.get("symbol", inst.symbol)),
        side=Side(o.get("side", "BUY")),
        kind=kind_of(str(o.get("orderType") or o.get("type", "STOP_MARKET"))),
        status=algo_status_of(str(o.get("algoStatus", "NEW")), filled),
        qty_lots=inst.qty_to_lots(o.get("quantity") or "0"),
        filled_lots=filled,
        avg_price=_f(o.get("actualPrice") or o.get("avgPrice")),
        reduce_only=_truthy(o.get("reduceOnly")) or _truthy(o.get("closePosition")),
        ts_event_ns=int(o.get("updateTime") or o.get("createTime") or 0) * 1_000_000,
        ts_recv_ns=ts_recv_ns,
    )


def _truthy(v: Any) -> bool:
    return v is True or (isinstance(v, str) and v.lower() == "true")


def tif_of(word: str) -> TimeInForce:
    try:
        return TimeInForce(word)
    except ValueError:
        return TimeInForce.GTC
