"""Bybit v5 order routes of the loopback exchange: create / amend / cancel / realtime / history / executions.

exchange-facts B3 rules kept here:
- `orderLinkId` is unique per account (110072 on reuse, even of a closed order's id);
- an entry's attached `stopLoss` / `takeProfit` (tpslMode Full) become the POSITION's TP/SL when it fills
  (bybit_desk.py); a reduce-only order cannot carry them (10001);
- a conditional order is `triggerPrice` + `triggerDirection` (1: fires on a rise, 2: on a fall) on a
  Market order; `reduceOnly` + `closeOnTrigger` make it close;
- PostOnly that would take is accepted and then cancelled (`rejectReason` EC_PostOnlyWillTakeLiquidity),
  not refused;
- GET /v5/order/realtime lists open orders of every kind (the position's TP/SL system orders too);
  with an orderId / orderLinkId it also finds a closed one, as the unified account does;
- /v5/order/history lists ended ones.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from bot.domain.orders import OrderRequest
from bot.domain.types import OrderKind, Side, TimeInForce
from bot.venues.sim import bybit_wire as bw
from bot.venues.sim.bybit_desk import Ambiguous, BybitDesk, BybitError, bybit_error, trigger_type
from bot.venues.sim.orders import AlgoOrder, SimError, SimOrder

if TYPE_CHECKING:
    from bot.venues.sim.server import SimServer

__all__ = ["BybitOrders"]

Params = dict[str, Any]
_TIF = {"GTC": TimeInForce.GTC, "IOC": TimeInForce.IOC, "FOK": TimeInForce.FOK, "PostOnly": TimeInForce.GTX}
_LINK_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"  # orderLinkId (B3)


def _truthy(v: Any) -> bool:
    return v is True or (isinstance(v, str) and v.lower() == "true")


def _need(p: Params, name: str) -> str:
    v = p.get(name)
    if v in (None, ""):
        raise BybitError(10001, f"params error: {name} is required")
    return str(v)


class BybitOrders:
    def __init__(self, s: SimServer, desk: BybitDesk) -> None:
        self.s = s
        self.ex = s.ex
        self.desk = desk

    # ------------------------------------------------------------------ rows
    def order_row(self, o: SimOrder) -> dict[str, Any]:
        a = self.ex.algos.get(o.parent_algo_id) if o.parent_algo_id else None
        return bw.order_row(self.ex, o, self.desk.order_meta.get(o.order_id), a,
                            self.desk.algo_meta.get(a.algo_id) if a else None)

    def algo_row(self, a: AlgoOrder) -> dict[str, Any]:
        return bw.algo_row(self.ex, a, self.desk.algo_meta.get(a.algo_id))

    def all_rows(self, symbol: str | None) -> list[dict[str, Any]]:
        """Every order, newest first: algo orders until they trigger, then the order they became."""
        rows = [(o.created_ns, self.order_row(o)) for o in self.ex.orders.values()
                if symbol in (None, o.symbol)]
        rows += [(a.created_ns, self.algo_row(a)) for a in self.ex.algos.values()
                 if symbol in (None, a.symbol) and not a.child_order_id]
        return [r for _, r in sorted(rows, key=lambda t: -t[0])]

    # ------------------------------------------------------------------ create
    def _symbol(self, p: Params) -> str:
        if p.get("category") != "linear":
            raise BybitError(10001, "params error: category only support linear")
        sym = str(p.get("symbol") or "").upper()
        if sym not in self.ex.markets:
            raise BybitError(10001, "params error: symbol invalid")
        return sym

    async def create(self, p: Params) -> Any:
        sym = self._symbol(p)
        inst = self.ex.markets[sym].inst
        side_w, typ = _need(p, "side"), _need(p, "orderType")
        if side_w not in ("Buy", "Sell") or typ not in ("Market", "Limit"):
            raise BybitError(10001, "params error: side / orderType")
        if int(p.get("positionIdx") or 0) != 0:
            raise BybitError(10001, "position idx not match position mode")
        side = Side.BUY if side_w == "Buy" else Side.SELL
        link = str(p.get("orderLinkId") or "")
        if len(link) > 36:
            raise BybitError(10001, "params error: orderLinkId too long")
        if link.strip(_LINK_CHARS):  # what Bybit documents (B3): a client id with '.' is refused here
            raise BybitError(10001, "params error: orderLinkId takes letters, digits, '-' and '_' only")
        if link and ((sym, link) in self.ex.by_client or (sym, link) in self.ex.algo_by_client):
            raise BybitError(110072, "OrderLinkedID is duplicate")
        cid = link or self.desk.auto_id()
        try:
            lots = inst.qty_to_lots(_need(p, "qty"))
            price = inst.price_to_ticks(str(p["price"])) if typ == "Limit" else None
        except ValueError as e:
            raise BybitError(10001, f"params error: {e}") from e
        reduce = _truthy(p.get("reduceOnly")) or _truthy(p.get("closeOnTrigger"))
        tif_w = str(p.get("timeInForce") or "GTC")
        if tif_w not in _TIF:
            raise BybitError(10001, "params error: timeInForce")
        meta = bw.Meta(tif=tif_w if typ == "Limit" else "IOC")
        sl, tp = str(p.get("stopLoss") or ""), str(p.get("takeProfit") or "")
        if (sl or tp) and reduce:
            raise BybitError(10001, "When reduceOnly=true, TP/SL cannot be set")
        if sl or tp:
            if str(p.get("tpslMode") or "Full") != "Full":
                raise BybitError(10001, "params error: only tpslMode Full is simulated")
            meta.stop_loss, meta.take_profit = sl, tp
            meta.sl_trigger_by = str(p.get("slTriggerBy") or "LastPrice") if sl else ""
            meta.tp_trigger_by = str(p.get("tpTriggerBy") or "LastPrice") if tp else ""
            self._check_attached(sym, side, meta)
        await self._delay()
        now = self.s.engine_now_ns()
        if p.get("triggerPrice") not in (None, ""):
            return self._create_conditional(p, sym, side, typ, lots, cid, link, reduce, now)
        req = OrderRequest(cid, sym, side, OrderKind.LIMIT if typ == "Limit" else OrderKind.MARKET, lots, price,
                           time_in_force=_TIF[tif_w], reduce_only=reduce)
        late_ms = self.s.faults.take_late_execute(opening=not reduce) if self.s.faults.late_execute else None
        if late_ms is not None:  # late_execute: "status unknown" now, the order reaches the book `late_ms` later
            self._place_late(req, meta, bool(sl or tp), late_ms)
            raise Ambiguous(503)
        if sl or tp:  # registered BEFORE placement: a fill inside place_order arms them in the same call
            self.desk.attached[(sym, cid)] = meta
        try:
            o = self.ex.place_order(req, now_ns=now)
        except SimError as e:
            if e.code != -5022:
                self.desk.attached.pop((sym, cid), None)
                raise bybit_error(e) from e
            o = self._post_only_cancelled(req, now)
        self.desk.order_meta[o.order_id] = meta
        if not o.is_open:
            self.desk.attached.pop((sym, cid), None)
        self._after_execute(opening=not reduce)
        return {"orderId": str(o.order_id), "orderLinkId": link}

    def _place_late(self, req: OrderRequest, meta: bw.Meta, attached: bool, late_ms: int) -> None:
        """late_execute on Bybit: look-ups by orderLinkId find nothing until the order is placed; then it
        carries its attached TP/SL and Bybit words like one placed at once."""
        key = (req.symbol, req.client_id)

        def before() -> None:
            if attached:
                self.desk.attached.setdefault(key, meta)

        def after(o: SimOrder) -> None:
            self.desk.order_meta[o.order_id] = meta
            if not o.is_open:
                self.desk.attached.pop(key, None)

        self.s.faults.place_late(req, late_ms, before, after)

    def _check_attached(self, sym: str, side: Side, meta: bw.Meta) -> None:
        """B3: a Buy's stopLoss below the market, takeProfit above (a Sell: the other way)."""
        inst = self.ex.markets[sym].inst
        m = self.ex.markets[sym]
        for price, by, is_sl in ((meta.stop_loss, meta.sl_trigger_by, True), (meta.take_profit, meta.tp_trigger_by,
                                                                                False)):
            if not price:
                continue
            ref = m.reference_ticks(trigger_type(by).value)
            t = inst.price_to_ticks(price)
            below = (side is Side.BUY) == is_sl
            if ref and (t >= ref if below else t <= ref):
                word = "StopLoss" if is_sl else "TakeProfit"
                rel = "lower" if below else "higher"
                raise BybitError(10001, f"{word}:{price} set for {side.value.title()} position should {rel} than "
                                        f"base_price:{inst.ticks_to_str(int(ref))}??LastPrice")

    def _post_only_cancelled(self, req: OrderRequest, now: int) -> SimOrder:
        """B3: a PostOnly order that would take is created and cancelled at once (not refused)."""
        ex = self.ex
        m = ex.markets[req.symbol]
        o = ex._new_order(req.symbol, req.client_id, req.side.sign, "LIMIT", "GTX", req.qty_lots,
                          req.price_ticks or 0, req.reduce_only, now)
        ex._finish(o, m, "EXPIRED", now, "EC_PostOnlyWillTakeLiquidity")
        return o

    def _create_conditional(self, p: Params, sym: str, side: Side, typ: str, lots: int, cid: str, link: str,
                            reduce: bool, now: int) -> Any:
        if typ != "Market":
            raise BybitError(10001, "params error: conditional Limit orders are not simulated")
        inst = self.ex.markets[sym].inst
        direction = int(p.get("triggerDirection") or 0)
        if direction not in (1, 2):
            raise BybitError(10001, "params error: triggerDirection must be 1 or 2")
        rising = direction == 1
        # a Buy that fires on a rise is a stop, on a fall a take-profit (engine words)
        kind = OrderKind.STOP_MARKET if rising == (side is Side.BUY) else OrderKind.TAKE_PROFIT_MARKET
        by = str(p.get("triggerBy") or "LastPrice")
        req = OrderRequest(cid, sym, side, kind, lots, trigger_ticks=inst.price_to_ticks(str(p["triggerPrice"])),
                           reduce_only=reduce, working_type=trigger_type(by))
        rejection = self.s.faults.take_stop_rejection()
        if rejection is not None:
            raise bybit_error(SimError(*rejection))
        try:
            a = self.ex.place_algo(req, now_ns=now)
        except SimError as e:
            if e.code == -2021:
                word = "Rising" if rising else "Falling"
                raise BybitError(110092 if rising else 110093,  # ccxt bybit: 110092 Rising, 110093 Falling
                                 f"expect {word}, but trigger_price[{p['triggerPrice']}] is on the other side "
                                 "of the current price") from e
            raise bybit_error(e) from e
        self.desk.algo_meta[a.algo_id] = bw.Meta(stop_order_type="Stop", trigger_by=by, trigger_direction=direction)
        self._after_execute(opening=not reduce)
        return {"orderId": str(a.algo_id), "orderLinkId": link}

    def _after_execute(self, opening: bool) -> None:
        """error_after_execute: the order stands, the answer is an HTTP error (status unknown to the client)."""
        status = self.s.faults.take_error_after_execute(opening)
        if status is not None:
            raise Ambiguous(status)

    async def _delay(self) -> None:
        if self.s.faults.delay_orders_ms:
            await asyncio.sleep(self.s.faults.delay_orders_ms / 1000)

    # ------------------------------------------------------------------ amend / cancel
    def _find(self, p: Params, sym: str) -> SimOrder | AlgoOrder | None:
        oid, link = str(p.get("orderId") or ""), str(p.get("orderLinkId") or "")
        if not oid and not link:
            raise BybitError(10001, "params error: orderId or orderLinkId is required")
        if oid:
            n = int(oid) if oid.isdigit() else 0
            a = self.ex.algos.get(n)
            if a is not None and a.symbol == sym:
                return self.ex.orders.get(a.child_order_id) if a.child_order_id else a
            o = self.ex.orders.get(n)
            return o if o is not None and o.symbol == sym else None
        a = self.ex.algo_by_client.get((sym, link))
        if a is not None:
            return self.ex.orders.get(a.child_order_id) if a.child_order_id else a
        return self.ex.by_client.get((sym, link))

    async def cancel(self, p: Params) -> Any:
        sym = self._symbol(p)
        x = self._find(p, sym)
        now = self.s.engine_now_ns()
        if isinstance(x, AlgoOrder) and x.is_open:
            if x.algo_id in (self.desk.pos_sl.get(sym), self.desk.pos_tp.get(sym)):
                raise BybitError(110001, "order not exists or too late to cancel")  # trading-stop only
            self.ex.cancel_algo(sym, algo_id=x.algo_id, now_ns=now)
            return {"orderId": str(x.algo_id), "orderLinkId": bw.link_of(x.client_algo_id)}
        if isinstance(x, SimOrder) and x.is_open:
            self.ex.cancel(sym, order_id=x.order_id, now_ns=now)
            return {"orderId": str(x.order_id), "orderLinkId": bw.link_of(x.client_id)}
        raise BybitError(110001, "order not exists or too late to cancel")

    async def cancel_all(self, p: Params) -> Any:
        sym = self._symbol(p)
        now = self.s.engine_now_ns()
        out = [{"orderId": str(o.order_id), "orderLinkId": bw.link_of(o.client_id)}
               for o in self.ex.cancel_all(sym, now_ns=now)]
        for a in list(self.ex.open_algos[sym]):
            if a.algo_id not in (self.desk.pos_sl.get(sym), self.desk.pos_tp.get(sym)):
                self.ex.cancel_algo(sym, algo_id=a.algo_id, now_ns=now)
                out.append({"orderId": str(a.algo_id), "orderLinkId": bw.link_of(a.client_algo_id)})
        return {"list": out, "success": "1"}

    async def amend(self, p: Params) -> Any:
        """A resting Limit order's price/qty (it re-queues at a new price, keeps its place for a smaller qty),
        or a conditional order's triggerPrice."""
        sym = self._symbol(p)
        x = self._find(p, sym)
        inst = self.ex.markets[sym].inst
        now = self.s.engine_now_ns()
        if isinstance(x, AlgoOrder) and x.is_open:
            if p.get("triggerPrice") in (None, ""):
                raise BybitError(10001, "params error: nothing to amend")
            t = inst.price_to_ticks(str(p["triggerPrice"]))
            if t == x.trigger_ticks:
                raise BybitError(10001, "The order remains unchanged as the parameters entered match the "
                                        "existing ones.")
            live = self.ex.algos[x.algo_id]
            old = live.trigger_ticks
            live.trigger_ticks = t
            px = self.ex.markets[sym].reference_ticks(live.working_type)
            from bot.venues.sim.triggers import _fires
            if px and _fires(live, px):
                live.trigger_ticks = old
                raise BybitError(110093, "expect the trigger price on the other side of the current price")
            live.updated_ns = now
            return {"orderId": str(x.algo_id), "orderLinkId": bw.link_of(x.client_algo_id)}
        if not (isinstance(x, SimOrder) and x.is_open and x.type == "LIMIT"):
            raise BybitError(110001, "order not exists or too late to amend")
        o = self.ex.orders[x.order_id]
        m = self.ex.markets[sym]
        new_px = inst.price_to_ticks(str(p["price"])) if p.get("price") not in (None, "") else o.price_ticks
        new_qty = inst.qty_to_lots(str(p["qty"])) if p.get("qty") not in (None, "") else o.qty_lots
        if new_px == o.price_ticks and new_qty == o.qty_lots:
            raise BybitError(10001, "The order remains unchanged as the parameters entered match the existing ones.")
        if new_qty <= o.filled_lots:
            raise BybitError(110001, "order not exists or too late to amend")
        meta = self.desk.order_meta.get(o.order_id)
        if meta is not None and meta.tif == "PostOnly" and m.crosses(o.side_sign, new_px):
            raise BybitError(110079, "The order is processing and can not be operated, please try again later")
        o.qty_lots = new_qty
        o.updated_ns = now
        if new_px != o.price_ticks:  # a new price loses the queue place
            m.remove(o)
            o.price_ticks = new_px
            self.ex._emit(self.ex_order_report(o, now))
            self.ex._execute(o, m, now)
        else:
            self.ex._emit(self.ex_order_report(o, now))
        return {"orderId": str(o.order_id), "orderLinkId": bw.link_of(o.client_id)}

    @staticmethod
    def ex_order_report(o: SimOrder, now: int) -> Any:
        from bot.venues.sim.orders import OrderReport
        return OrderReport(now, o.copy(), "AMENDMENT")

    # ------------------------------------------------------------------ queries
    def _filter(self, p: Params, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if p.get("orderId"):
            rows = [r for r in rows if r["orderId"] == str(p["orderId"])]
        if p.get("orderLinkId"):
            rows = [r for r in rows if r["orderLinkId"] == str(p["orderLinkId"])]
        f = p.get("orderFilter")
        if f == "Order":
            rows = [r for r in rows if not r["stopOrderType"]]
        elif f == "StopOrder":
            rows = [r for r in rows if r["stopOrderType"] == "Stop"]
        elif f == "tpslOrder":
            rows = [r for r in rows if r["stopOrderType"] in ("StopLoss", "TakeProfit")]
        limit = min(50, int(p.get("limit") or 20))
        return rows[:limit]

    async def realtime(self, p: Params) -> Any:
        if p.get("category") != "linear":
            raise BybitError(10001, "params error: category only support linear")
        sym = self._symbol(p) if p.get("symbol") else None
        if sym is None and not p.get("settleCoin") and not p.get("baseCoin"):
            raise BybitError(10001, "params error: symbol, settleCoin or baseCoin is required")
        rows = self.all_rows(sym)
        by_id = bool(p.get("orderId") or p.get("orderLinkId"))
        if not by_id or str(p.get("openOnly", "0")) != "0":
            rows = [r for r in rows if r["orderStatus"] in ("New", "PartiallyFilled", "Untriggered")]
        return {"category": "linear", "list": self._filter(p, rows), "nextPageCursor": ""}

    async def history(self, p: Params) -> Any:
        sym = self._symbol(p) if p.get("symbol") else None
        rows = [r for r in self.all_rows(sym) if r["orderStatus"] not in ("New", "PartiallyFilled", "Untriggered")]
        return {"category": "linear", "list": self._filter(p, rows), "nextPageCursor": ""}

    async def executions(self, p: Params) -> Any:
        sym = self._symbol(p) if p.get("symbol") else None
        since = int(p.get("startTime") or 0)
        until = int(p.get("endTime") or 0)
        out = []
        for f in self.ex.fills:
            o = f[1]
            if sym not in (None, o.symbol):
                continue
            ms = f[7] // 1_000_000
            if ms < since or (until and ms > until):
                continue
            row = bw.exec_row(self.ex, f, self.order_row(o), f[0])
            if p.get("orderId") and row["orderId"] != str(p["orderId"]):
                continue
            if p.get("orderLinkId") and row["orderLinkId"] != str(p["orderLinkId"]):
                continue
            out.append(row)
        out.reverse()  # newest first, as the venue pages them
        limit = min(100, int(p.get("limit") or 50))
        return {"category": "linear", "list": out[:limit], "nextPageCursor": ""}
