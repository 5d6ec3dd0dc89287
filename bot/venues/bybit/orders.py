"""Bybit v5 linear words <-> the bot's order types (pure; exchange-facts B2, B3, C2, C3).

Where each OrderRequest goes (why: B3, C2):
- MARKET / LIMIT (entries, adds, exits, take-profit limits): `POST /v5/order/create` through ccxt
  `create_order`, `category=linear`, `positionIdx=0` (one-way), `orderLinkId` = our client id. An entry
  that carries `attached_stop_ticks` gets its protective stop ATTACHED (`stopLoss` + `slTriggerBy` +
  `tpslMode=Full`): the venue arms it the moment the position opens, so there is no unprotected gap
  between the fill and our own stop request. Reduce-only orders never carry one (B3: "When
  reduceOnly=true, TP/SL cannot be set").
- STOP_MARKET reduce-only / close-position (the trade machine's "place stop"): the POSITION's stop,
  `POST /v5/position/trading-stop` with `tpslMode=Full`, `slOrderType=Market`. Not an amend of the
  entry and not a separate conditional order:
  * Full = one stop over the whole position, which Bybit resizes with the position and cancels when
    the position closes (B3 trading-stop tip). The machine always sizes its stop to the whole position
    (it re-sends it on every fill), so Full is exactly its meaning, and a move is an atomic
    modification of that one stop: never two stops, never none.
  * Partial (slSize) was rejected: trading-stop in Partial mode only ADDS stops (a move would need the
    system order's id to cancel the old one, which has no orderLinkId), a partial stop does not grow
    with scale-ins, and Bybit caps partial TP/SL at 20 and conditional orders at 10 per symbol.
  So the stop's size in the request is not sent; Full covers whatever the position is.
- STOP_MARKET without reduce-only (a stop ENTRY) and TAKE_PROFIT_MARKET: a conditional order on
  /v5/order/create (`triggerPrice`, `triggerDirection`, `triggerBy`).
- TRAILING_STOP_MARKET: refused (Bybit trails by a price distance at position level; nothing uses it).

Prices and quantities are exact decimal strings from integer ticks/lots of Bybit's own grid
(instruments-info), so ccxt's price_to_precision (ROUND) and amount_to_precision (TRUNCATE) are
no-ops on them; stops computed from floats are rounded away from the market before they become ticks
(bot.domain.instrument.trigger_ticks_away, the rule both venues share).
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from bot.domain.instrument import Instrument
from bot.domain.orders import OrderRequest, OrderUpdate, PositionSnapshot
from bot.domain.types import OrderKind, OrderStatus, Side, TimeInForce, TriggerPrice
from bot.venues.errors import OrderRejected

__all__ = [
    "CLIENT_ID_RE",
    "POSITION_LEVEL_TYPES",
    "POSITION_STOP_TYPES",
    "VENUE",
    "clear_stop_body",
    "client_id_of",
    "create_args",
    "create_body",
    "is_position_stop",
    "is_protective",
    "kind_of",
    "link_id",
    "order_update_from_rest",
    "parse_instruments",
    "position_from_rest",
    "price_str",
    "status_of",
    "trading_stop_body",
    "trigger_by",
]

VENUE = "bybit"
# orderLinkId: up to 36 characters (B3); letters, digits, '-' and '_' are what Bybit documents.
CLIENT_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,36}$")
# A re-sent leg is numbered "t5-tp1.2" (execution/trade.py _cid; Binance takes '.'), which Bybit's orderLinkId
# does not: the version dot travels as '_' ("t5-tp1_2") and is read back as '.' for ids of that shape only.
_OUR_LINK_RE = re.compile(r"^(t\d+-[a-z]+\d*)_(\d+)$")


def link_id(client_id: str) -> str:
    """The orderLinkId our client id travels as."""
    return client_id.replace(".", "_")


def client_id_of(link: str) -> str:
    """Our client id of an orderLinkId (the inverse of link_id; any other id unchanged)."""
    m = _OUR_LINK_RE.match(link)
    return f"{m[1]}.{m[2]}" if m else link

# stopOrderType of the system orders behind a position's TP/SL (B3): their orderLinkId is empty.
POSITION_STOP_TYPES = frozenset({"StopLoss", "PartialStopLoss", "TrailingStop"})
# ... and every system order of a position's TP/SL: removed by the venue with the position, changed only by
# trading-stop (no orderLinkId to cancel it by): never an orphan order to cancel (reconcile)
POSITION_LEVEL_TYPES = POSITION_STOP_TYPES | {"TakeProfit", "PartialTakeProfit"}

# B3 order statuses. Untriggered = a conditional order waiting (live, NEW for the machine); Triggered =
# fired, its market order follows; Deactivated = a conditional order cancelled before it fired.
_STATUS = {
    "New": OrderStatus.NEW,
    "PartiallyFilled": OrderStatus.PARTIALLY_FILLED,
    "Untriggered": OrderStatus.NEW,
    "Triggered": OrderStatus.TRIGGERED,
    "Filled": OrderStatus.FILLED,
    "Cancelled": OrderStatus.CANCELED,
    "PartiallyFilledCanceled": OrderStatus.CANCELED,
    "Rejected": OrderStatus.REJECTED,
    "Deactivated": OrderStatus.CANCELED,
}

_TIF = {TimeInForce.GTC: "GTC", TimeInForce.IOC: "IOC", TimeInForce.FOK: "FOK", TimeInForce.GTX: "PostOnly"}


def status_of(word: str) -> OrderStatus:
    return _STATUS.get(word, OrderStatus.NEW)


def trigger_by(working_type: TriggerPrice) -> str:
    return "MarkPrice" if working_type is TriggerPrice.MARK else "LastPrice"


def is_position_stop(req: OrderRequest) -> bool:
    return req.kind is OrderKind.STOP_MARKET and (req.reduce_only or req.close_position)


def is_protective(req: OrderRequest) -> bool:
    """Orders that only reduce risk: they may use the limiter's headroom and a skewed-but-offset clock."""
    return req.reduce_only or req.close_position or req.kind.is_conditional


def kind_of(d: dict[str, Any]) -> OrderKind:
    """An order's kind from `orderType` + `stopOrderType` (+ `triggerPrice`)."""
    sot = str(d.get("stopOrderType") or "")
    if sot == "TrailingStop":
        return OrderKind.TRAILING_STOP_MARKET
    if sot in ("StopLoss", "PartialStopLoss", "Stop"):
        return OrderKind.STOP_MARKET
    if sot in ("TakeProfit", "PartialTakeProfit"):
        return OrderKind.TAKE_PROFIT_MARKET
    if d.get("orderType") != "Limit" and num(d.get("triggerPrice")) > 0:
        return OrderKind.STOP_MARKET  # a conditional market order (callers know our own kinds better)
    return OrderKind.LIMIT if d.get("orderType") == "Limit" else OrderKind.MARKET


def create_args(req: OrderRequest, inst: Instrument, ccxt_symbol: str, position_idx: int = 0
                ) -> tuple[str, str, str, str | None, str | None, dict[str, Any]]:
    """(symbol, type, side, amount, price, params) for ccxt `create_order` -> POST /v5/order/create."""
    if not CLIENT_ID_RE.match(link_id(req.client_id)):
        raise OrderRejected(f"client id {req.client_id!r} does not match {CLIENT_ID_RE.pattern}", code="invalid")
    if is_position_stop(req):
        raise ValueError("a reduce-only STOP_MARKET is the position's stop: trading_stop_body, not create_order")
    side = req.side.value.lower()
    qty = inst.lots_to_str(req.qty_lots)
    # clientOrderId -> orderLinkId; positionIdx is forwarded verbatim by ccxt (create_order_request).
    params: dict[str, Any] = {"clientOrderId": link_id(req.client_id), "positionIdx": position_idx}
    if req.reduce_only or req.close_position:
        params["reduceOnly"] = True  # B3: reduce-only cannot carry TP/SL, so no attached stop below
    elif req.attached_stop_ticks is not None and req.kind in (OrderKind.MARKET, OrderKind.LIMIT):
        # ccxt turns {'stopLoss': {'triggerPrice': p}} into stopLoss="p" on the create body (C2 [E]); the
        # trigger type and mode are Bybit's raw words, forwarded as given (unified ones are ignored, C2).
        params["stopLoss"] = {"triggerPrice": inst.ticks_to_str(req.attached_stop_ticks)}
        params["slTriggerBy"] = trigger_by(req.working_type)
        params["tpslMode"] = "Full"
    if req.kind is OrderKind.LIMIT:
        if req.price_ticks is None:
            raise ValueError("LIMIT needs price_ticks")
        params["timeInForce"] = _TIF[req.time_in_force]
        return ccxt_symbol, "limit", side, qty, inst.ticks_to_str(req.price_ticks), params
    if req.kind is OrderKind.MARKET:
        return ccxt_symbol, "market", side, qty, None, params
    if req.kind is OrderKind.TRAILING_STOP_MARKET:
        raise OrderRejected("TRAILING_STOP_MARKET is not supported on Bybit (position-level trailing by "
                            "price distance only)", code="unsupported")
    if req.trigger_ticks is None:
        raise ValueError(f"{req.kind.value} needs trigger_ticks")
    trigger = inst.ticks_to_str(req.trigger_ticks)
    params["triggerBy"] = trigger_by(req.working_type)
    if req.kind is OrderKind.TAKE_PROFIT_MARKET:
        # ccxt: takeProfitPrice alone -> a conditional order with triggerDirection from the side and
        # reduceOnly=True (C2 [E]).
        params["takeProfitPrice"] = trigger
    else:  # a stop entry: a BUY stop fires on a rise, a SELL stop on a fall
        params["triggerPrice"] = trigger
        params["triggerDirection"] = "ascending" if req.side is Side.BUY else "descending"
    return ccxt_symbol, "market", side, qty, None, params


def create_body(req: OrderRequest, inst: Instrument, position_idx: int = 0) -> dict[str, Any]:
    """The raw POST /v5/order/create body of `req`, for the /v5/trade socket's `order.create` (its args are the
    REST body, B2). Built from create_args, so the two transports send the same order with the same
    orderLinkId; equal to what ccxt's create_order_request makes of those args (a test compares them)."""
    _sym, typ, side, qty_s, price, params = create_args(req, inst, req.symbol, position_idx)
    body: dict[str, Any] = {"category": "linear", "symbol": req.symbol, "side": side.title(),
                            "orderType": typ.title(), "qty": _plain(qty_s), "orderLinkId": params["clientOrderId"],
                            "positionIdx": position_idx}
    if price is not None:
        body["price"] = _plain(price)
        body["timeInForce"] = params["timeInForce"]
    if params.get("reduceOnly"):
        body["reduceOnly"] = True
    if "stopLoss" in params:
        body.update(stopLoss=_plain(params["stopLoss"]["triggerPrice"]), slTriggerBy=params["slTriggerBy"],
                    tpslMode=params["tpslMode"])
    if "takeProfitPrice" in params:  # what ccxt makes of it: a reduce-only conditional toward the profit side
        body.update(triggerPrice=_plain(params["takeProfitPrice"]), triggerDirection=1 if side == "sell" else 2,
                    reduceOnly=True, triggerBy=params["triggerBy"])
    elif "triggerPrice" in params:
        body.update(triggerPrice=_plain(params["triggerPrice"]), triggerBy=params["triggerBy"],
                    triggerDirection=1 if params["triggerDirection"] == "ascending" else 2)
    return body


def _plain(s: str | None) -> str:
    """A decimal as Bybit (and ccxt's *_to_precision) prints it: no trailing zeros ("0.010" -> "0.01")."""
    return format(Decimal(str(s)).normalize(), "f")


def price_str(inst: Instrument, ticks: int) -> str:
    """A price in ticks as Bybit prints it: plain decimal, no trailing zeros ("59500", "59000.1")."""
    return format((Decimal(ticks) * Decimal(inst.tick_size)).normalize(), "f")


def trading_stop_body(symbol: str, stop_price: str, working_type: TriggerPrice, position_idx: int = 0
                      ) -> dict[str, Any]:
    """POST /v5/position/trading-stop: the position's one stop (tpslMode Full, market on trigger)."""
    return {"category": "linear", "symbol": symbol, "tpslMode": "Full", "positionIdx": position_idx,
            "stopLoss": stop_price, "slTriggerBy": trigger_by(working_type), "slOrderType": "Market"}


def clear_stop_body(symbol: str, position_idx: int = 0) -> dict[str, Any]:
    """`stopLoss: "0"` cancels the position's stop (trading-stop docs)."""
    return {"category": "linear", "symbol": symbol, "tpslMode": "Full", "positionIdx": position_idx,
            "stopLoss": "0"}


def num(v: Any) -> float:
    """A Bybit number field ("" or absent -> 0.0: the venue leaves unset numbers empty)."""
    try:
        return float(v) if v not in (None, "") else 0.0
    except (TypeError, ValueError):
        return 0.0


def _truthy(v: Any) -> bool:
    return v is True or (isinstance(v, str) and v.lower() == "true")


def order_update_from_rest(d: dict[str, Any], inst: Instrument, ts_recv_ns: int = 0, client_id: str | None = None,
                           parent_id: str = "") -> OrderUpdate:
    """An order as `GET /v5/order/realtime` / `history` (and the `order` topic) describe it. No fill details:
    those come from executions (userevents)."""
    cid = client_id_of(str(d.get("orderLinkId") or "")) if client_id is None else client_id
    return OrderUpdate(
        client_id=cid,
        venue_order_id=str(d.get("orderId", "")),
        symbol=str(d.get("symbol", inst.symbol)),
        side=Side.BUY if d.get("side") == "Buy" else Side.SELL,
        kind=kind_of(d),
        status=status_of(str(d.get("orderStatus", "New"))),
        qty_lots=inst.qty_to_lots(d.get("qty") or "0"),
        filled_lots=inst.qty_to_lots(d.get("cumExecQty") or "0"),
        avg_price=num(d.get("avgPrice")),
        reduce_only=_truthy(d.get("reduceOnly")) or _truthy(d.get("closeOnTrigger")),
        reason=_reason(d),
        ts_event_ns=int(num(d.get("updatedTime") or d.get("createdTime"))) * 1_000_000,
        ts_recv_ns=ts_recv_ns,
        parent_id=parent_id,
    )


def _reason(d: dict[str, Any]) -> str:
    rr = str(d.get("rejectReason") or "")
    if rr and rr != "EC_NoError":
        return rr
    ct = str(d.get("cancelType") or "")
    return ct if ct not in ("", "UNKNOWN", "CancelByUser") else ""


def position_from_rest(p: dict[str, Any], inst: Instrument) -> PositionSnapshot:
    """A position as `GET /v5/position/list` (avgPrice) or the `position` topic (entryPrice) describe it."""
    lots = inst.qty_to_lots(p.get("size") or "0")
    if p.get("side") == "Sell":
        lots = -lots
    return PositionSnapshot(
        symbol=str(p.get("symbol", inst.symbol)), qty_lots=lots,
        entry_price=num(p.get("entryPrice") or p.get("avgPrice")) if lots else 0.0,
        unrealized_pnl=num(p.get("unrealisedPnl")), liquidation_price=num(p.get("liqPrice")),
        leverage=int(num(p.get("leverage"))), isolated=str(p.get("tradeMode", "0")) == "1")


def parse_instruments(rows: list[dict[str, Any]]) -> dict[str, Instrument]:
    """`GET /v5/market/instruments-info?category=linear` rows -> Instruments (B3 instrument filters)."""
    out: dict[str, Instrument] = {}
    for r in rows:
        price, lot = r.get("priceFilter") or {}, r.get("lotSizeFilter") or {}
        if not price.get("tickSize") or not lot.get("qtyStep"):
            continue
        out[r["symbol"]] = Instrument(
            venue=VENUE, symbol=r["symbol"], tick_size=price["tickSize"], step_size=lot["qtyStep"],
            min_qty=lot.get("minOrderQty", "0"), max_qty=lot.get("maxOrderQty", "0"),
            market_max_qty=lot.get("maxMktOrderQty", "0"), min_notional=lot.get("minNotionalValue", "0"),
            base_asset=r.get("baseCoin", ""), quote_asset=r.get("quoteCoin", ""))
    return out
