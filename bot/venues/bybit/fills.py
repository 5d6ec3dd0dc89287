"""Bybit executions read back by REST for reconciliation (GET /v5/execution/list; exchange-facts B3).

- `execution_rows`: the account's fills on a symbol, of one order (`orderId`) or from a time on
  (`startTime`), oldest first, following `nextPageCursor` (100 rows a page, a bounded number of pages).
  Bybit answers `[startTime, startTime + 7 days]` when only startTime is given: a trade is never held that
  long (execution.max_hold_s), so one window covers it.
- `trade_row`: one execution in the words bot.execution.reconcile reads (Binance `userTrades`: id, orderId,
  side BUY|SELL, price, qty, commission, time ms, maker), so `leg_fills` / `outside_fills` work unchanged.
- `stop_fill`: the position's stop firing while we were not listening: the fills of the last system
  stop order (no orderLinkId, stopOrderType StopLoss/PartialStopLoss/TrailingStop) on the closing side
  since a time, summed into one update of the stop leg that owned it (reported as the stream would: the
  leg's client id as client_id and parent_id, the system order's id as venue_order_id).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from bot.domain.instrument import Instrument
from bot.domain.orders import OrderRequest, OrderUpdate
from bot.domain.types import OrderStatus
from bot.venues.bybit.orders import POSITION_STOP_TYPES, num

__all__ = ["EXECUTIONS", "FILL_TYPES", "execution_rows", "stop_fill", "trade_row"]

EXECUTIONS = "/v5/execution/list"
FILL_TYPES = frozenset({"Trade", "AdlTrade", "BustTrade"})  # funding / settlement rows are no order's fills
_MAX_PAGES = 10


def _ms(r: dict[str, Any]) -> int:
    return int(num(r.get("execTime")))


async def execution_rows(call: Callable[[dict[str, Any]], Awaitable[Any]], symbol: str, *, order_id: str = "",
                         start_ms: int = 0) -> list[dict[str, Any]]:
    """Fills (execType Trade/AdlTrade/BustTrade) of `order_id`, or of the symbol since `start_ms`, oldest
    first. `call(params)` sends one signed GET (the gateway's limiter and error translation)."""
    params: dict[str, Any] = {"category": "linear", "symbol": symbol, "limit": 100}
    if order_id:
        params["orderId"] = order_id
    elif start_ms:
        params["startTime"] = start_ms
    rows: list[dict[str, Any]] = []
    for _ in range(_MAX_PAGES):
        res = (await call(dict(params)) or {}).get("result") or {}
        rows.extend(res.get("list") or [])
        cursor = str(res.get("nextPageCursor") or "")
        if not cursor or not res.get("list"):
            break
        params["cursor"] = cursor
    seen: set[str] = set()
    out = []
    for r in sorted(rows[::-1], key=lambda r: (_ms(r), int(num(r.get("seq"))))):  # pages come newest first
        eid = str(r.get("execId", ""))
        if eid in seen or r.get("execType", "Trade") not in FILL_TYPES:
            continue
        seen.add(eid)
        out.append(r)
    return out


def trade_row(r: dict[str, Any]) -> dict[str, Any]:
    """A Bybit execution as reconcile reads an account trade."""
    return {"id": str(r.get("execId", "")), "orderId": str(r.get("orderId", "")),
            "side": "BUY" if r.get("side") == "Buy" else "SELL", "price": str(r.get("execPrice") or "0"),
            "qty": str(r.get("execQty") or "0"), "commission": str(r.get("execFee") or "0"), "time": _ms(r),
            "maker": r.get("isMaker") is True, "seq": int(num(r.get("seq")))}


def stop_fill(rows: Sequence[dict[str, Any]], req: OrderRequest, inst: Instrument, since_ms: int,
              ts_recv_ns: int) -> OrderUpdate | None:
    """The last position-stop order that executed on `req`'s side at or after `since_ms`, as one update of
    the leg `req` (None when the stop did not fire)."""
    side = "Buy" if req.side.value == "BUY" else "Sell"
    mine = [r for r in rows if not r.get("orderLinkId") and str(r.get("stopOrderType") or "") in POSITION_STOP_TYPES
            and r.get("side") == side and _ms(r) >= since_ms]
    if not mine:
        return None
    oid = str(mine[-1].get("orderId", ""))
    execs = [r for r in mine if str(r.get("orderId", "")) == oid]
    lots = [inst.qty_to_lots(r.get("execQty") or "0") for r in execs]
    filled = sum(lots)
    if filled <= 0:
        return None
    notional = sum(n * num(r.get("execPrice")) for n, r in zip(lots, execs, strict=True))
    last = execs[-1]
    done = num(last.get("leavesQty")) == 0.0
    qty = filled if done else max(filled, inst.qty_to_lots(last.get("orderQty") or "0"))
    status = OrderStatus.FILLED if done else OrderStatus.PARTIALLY_FILLED
    # `fee`: all of them (this one update stands for every fill of the order when no exact fills follow)
    return OrderUpdate(
        req.client_id, oid, req.symbol, req.side, req.kind, status, qty, filled, notional / filled,
        last_fill_lots=lots[-1], last_fill_price=num(last.get("execPrice")),
        fee=sum(num(r.get("execFee")) for r in execs), is_maker=last.get("isMaker") is True, reduce_only=True,
        trade_id=str(last.get("execId", "")) if len(execs) == 1 else "", reason="position stop fired",
        ts_event_ns=_ms(last) * 1_000_000, ts_recv_ns=ts_recv_ns, parent_id=req.client_id)
