"""Binance USD-M words <-> the bot's order types (pure; exchange-facts A3, A4, C2, C3).

- `order_params`: OrderRequest -> (path, the Binance parameters) of POST /fapi/v1/order or
  /fapi/v1/algoOrder, exactly what ccxt's `create_order(*create_args(...))` sends (same keys, same order,
  same strings; tests/venues/test_binance_fastpath.py compares the bytes). What the gateway sends (signer.py).
- `create_args`: OrderRequest -> the arguments of ccxt `create_order`: the reference `order_params` is
  tested against (and the bench's create_order mode); not on the order path. Entries go to `/fapi/v1/order`;
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

import re
from decimal import Decimal
from typing import Any

from bot.domain.instrument import Instrument, decimals_of, trigger_ticks_away
from bot.domain.orders import OrderRequest, OrderUpdate
from bot.domain.types import OrderKind, OrderStatus, Side, TimeInForce

__all__ = [
    "ALGO_OPTIONAL",
    "CLIENT_ID_RE",
    "ORDER_OPTIONAL",
    "OrderGrid",
    "algo_status_of",
    "algo_update_from_rest",
    "create_args",
    "is_protective",
    "kind_of",
    "order_params",
    "order_update_from_rest",
    "status_of",
    "trigger_ticks_away",
]

# Fields order_update_from_rest / algo_update_from_rest read when present and do without on purpose (their
# absence has a meaning); every other field they read is one the bot relies on (`scalper conformance`
# checks the venue sends it: bot/conformance/fields.py). `time`: updateTime's fallback in GET answers. An
# algo order's placement answer carries no fill fields (A3): executedQty / actualQty / actualPrice /
# avgPrice appear once it triggered.
ORDER_OPTIONAL = frozenset({"time"})
ALGO_OPTIONAL = frozenset({"executedQty", "actualQty", "actualPrice", "avgPrice", "createTime"})

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


def _decimal(units: int, scale: int) -> str:
    """units * 10**-scale as a plain decimal string without trailing zeros (what ccxt's decimal_to_precision
    prints for an on-grid value under NO_PADDING: '65000', '59999.5', '0.005'; never an exponent)."""
    if scale == 0:
        return str(units)
    sign, units = ("-", -units) if units < 0 else ("", units)
    digits = str(units).rjust(scale + 1, "0")
    frac = digits[-scale:].rstrip("0")
    return sign + digits[:-scale] + ("." + frac if frac else "")


class OrderGrid:
    """One instrument's price and quantity grids as integers, built once: ticks/lots -> the exchange
    strings of an order without Decimal arithmetic on the hot path."""

    __slots__ = ("_step_scale", "_step_units", "_tick_scale", "_tick_units", "order_types")

    def __init__(self, inst: Instrument, order_types: frozenset[str] | None = None) -> None:
        self._tick_scale = decimals_of(inst.tick_size)
        self._tick_units = int(Decimal(inst.tick_size).scaleb(self._tick_scale))
        self._step_scale = decimals_of(inst.step_size)
        self._step_units = int(Decimal(inst.step_size).scaleb(self._step_scale))
        # exchangeInfo `orderTypes` of the symbol (None: not checked); ccxt refuses other types before sending
        self.order_types = order_types

    def price(self, ticks: int) -> str:
        return _decimal(ticks * self._tick_units, self._tick_scale)

    def qty(self, lots: int) -> str:
        return _decimal(lots * self._step_units, self._step_scale)


def order_params(req: OrderRequest, grid: OrderGrid, market_id: str) -> tuple[str, dict[str, str]]:
    """(path, parameters) of the order: ("order", ...) for entries and exits on /fapi/v1/order,
    ("algoOrder", ...) for STOP_MARKET / TAKE_PROFIT_MARKET / TRAILING_STOP_MARKET on /fapi/v1/algoOrder.

    The keys, their order and their strings are those of ccxt's `create_order(*create_args(req, ...))`
    (binance.create_order_request, then `algoType=CONDITIONAL` for a linear conditional order, C2): the
    request dict ccxt builds (symbol, side, [callbackRate, activatePrice], the client id, newOrderRespType,
    type, quantity, price / triggerPrice) extended by the caller's remaining params (timeInForce,
    workingType, reduceOnly / closePosition as 'true'). `signer.OrderSigner` adds timestamp and recvWindow.
    """
    if not CLIENT_ID_RE.match(req.client_id):
        raise ValueError(f"client id {req.client_id!r} does not match {CLIENT_ID_RE.pattern}")
    kind = req.kind
    if not kind.is_conditional:
        if req.close_position:
            raise ValueError(f"close_position needs a conditional order, not {kind.value}")
        p = {"symbol": market_id, "side": req.side.value, "newClientOrderId": req.client_id,
             "newOrderRespType": "RESULT", "type": kind.value, "quantity": grid.qty(req.qty_lots)}
        if kind is OrderKind.LIMIT:
            if req.price_ticks is None:
                raise ValueError("LIMIT needs price_ticks")
            p["price"] = grid.price(req.price_ticks)
            p["timeInForce"] = req.time_in_force.value  # GTC / IOC / FOK / GTX (post-only)
        if req.reduce_only:
            p["reduceOnly"] = "true"
        return "order", p
    p = {"symbol": market_id, "side": req.side.value}
    trailing = kind is OrderKind.TRAILING_STOP_MARKET
    if trailing:
        if req.callback_rate_bps is None:
            raise ValueError("TRAILING_STOP_MARKET needs callback_rate_bps")
        p["callbackRate"] = f"{req.callback_rate_bps / 100:g}"  # percent, 0.1 .. 20
        if req.trigger_ticks is not None:
            p["activatePrice"] = grid.price(req.trigger_ticks)  # `activationPrice` on the old endpoint
    elif req.trigger_ticks is None:
        raise ValueError(f"{kind.value} needs trigger_ticks")
    p["clientAlgoId"] = req.client_id
    p["newOrderRespType"] = "RESULT"
    p["type"] = kind.value
    if not req.close_position:
        p["quantity"] = grid.qty(req.qty_lots)
    if not trailing:
        p["triggerPrice"] = grid.price(req.trigger_ticks)  # type: ignore[arg-type]
    p["workingType"] = req.working_type.value
    if req.close_position:
        p["closePosition"] = "true"  # not with quantity or reduceOnly (A3)
    elif req.reduce_only:
        p["reduceOnly"] = "true"
    p["algoType"] = "CONDITIONAL"
    return "algoOrder", p


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
