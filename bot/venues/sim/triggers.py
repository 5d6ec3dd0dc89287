"""Conditional (algo) orders, their triggers, and liquidation: the part of `SimExchange` that watches
prices (a mixin; `exchange.py` holds the state).

Trigger rules (exchange-facts A3, `POST /fapi/v1/algoOrder`):
- STOP_MARKET: a BUY fires when price >= triggerPrice, a SELL when price <= triggerPrice;
  TAKE_PROFIT_MARKET the reverse; price is the mark (workingType MARK_PRICE) or the last trade
  (CONTRACT_PRICE, the default). Placing one that would fire at once: -2021.
- TRAILING_STOP_MARKET: active once the price reaches `activatePrice` (at once without one); then a
  SELL fires when the price falls `callbackRate` % from the highest price since activation, a BUY
  when it rises that much from the lowest.
- When one fires: ALGO_UPDATE TRIGGERED (with `ai`, the child order id), a MARKET child order on
  /fapi/v1/order (its ORDER_TRADE_UPDATEs), then ALGO_UPDATE FINISHED. closePosition closes the
  whole position there is at that moment (nothing there: EXPIRED); reduce-only is cut to it
  (nothing to reduce: REJECTED, reason in `rm`).

Liquidation: when the margin balance falls to the maintenance margin (account.py), the symbol's open
orders are cancelled and the position is closed at the mark price by an `autoclose-` order
(execution type CALCULATED), charging the clearance fee (capped at what margin is left).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.domain.orders import OrderRequest
from bot.venues.sim.orders import AlgoOrder, AlgoReport, SimError, SimOrder

if TYPE_CHECKING:
    from bot.venues.sim.matching import SymbolMarket

__all__ = ["TriggerBook"]

_TYPES = ("STOP_MARKET", "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET")


def _fires(a: AlgoOrder, px: float) -> bool:
    if a.type == "STOP_MARKET":
        return px >= a.trigger_ticks if a.side_sign > 0 else px <= a.trigger_ticks
    if a.type == "TAKE_PROFIT_MARKET":
        return px <= a.trigger_ticks if a.side_sign > 0 else px >= a.trigger_ticks
    return False


class TriggerBook:
    # State owned by SimExchange (declared for type checkers).
    markets: dict[str, SymbolMarket]
    algos: dict[int, AlgoOrder]
    algo_by_client: dict[tuple[str, str], AlgoOrder]
    open_algos: dict[str, list[AlgoOrder]]
    orders: dict[int, SimOrder]
    now_ns: int
    liquidation_fee: float
    account: Any
    _watch: set[str]
    _liq_cache: dict[str, tuple[int, float]]
    _next_algo_id: int
    _next_order_id: int

    if TYPE_CHECKING:
        def _emit(self, r: Any) -> None: ...
        def market(self, symbol: str) -> SymbolMarket: ...
        def position_lots(self, symbol: str) -> int: ...
        def _refresh_watch(self, symbol: str) -> None: ...
        def _new_order(self, symbol: str, cid: str, side: int, kind: str, tif: str, qty: int, price: int,
                       reduce_only: bool, now: int) -> SimOrder: ...
        def _execute(self, o: SimOrder, m: SymbolMarket, now: int) -> None: ...
        def _finish(self, o: SimOrder, m: SymbolMarket, status: str, now: int, reason: str = "") -> None: ...
        def _fill(self, o: SimOrder, lots: int, px: float, maker: bool, now: int, exec_type: str = "TRADE",
                  fee_rate: float | None = None) -> None: ...
        def marks(self) -> dict[str, float]: ...

    # ================================================================== placement
    def place_algo(self, req: OrderRequest, now_ns: int | None = None, activate_ticks: int = 0,
                   price_protect: bool = False) -> AlgoOrder:
        """POST /fapi/v1/algoOrder (algoType=CONDITIONAL). For trailing stops the activation price is
        `activate_ticks` (or `req.trigger_ticks`), the callback `req.callback_rate_bps` (100 = 1 %)."""
        now = self.now_ns if now_ns is None else now_ns
        m = self.market(req.symbol)
        kind = req.kind.value
        if kind not in _TYPES:
            raise SimError(-1116, "Invalid orderType.")
        if req.close_position and (req.qty_lots or req.reduce_only):
            raise SimError(-1106, "Parameter 'closePosition' sent when not required.")
        if not req.close_position and req.qty_lots <= 0:
            raise SimError(-4003, "Quantity less than or equal to zero.")
        if sum(len(v) for v in self.open_algos.values()) >= 200:
            raise SimError(-4045, "Reach max stop order limit.")
        cid = req.client_id or f"simalgo{self._next_algo_id}"
        prev = self.algo_by_client.get((req.symbol, cid))
        if prev is not None and prev.is_open:
            raise SimError(-4116, "ClientOrderId is duplicated.")
        side = req.side.sign
        q = self.position_lots(req.symbol)
        if req.reduce_only and (q == 0 or (q > 0) == (side > 0)):
            # exchange-facts A3 [?]: reduce-only with no position to reduce is refused at placement.
            raise SimError(-2022, "ReduceOnly Order is rejected.")
        wt = req.working_type.value
        px = m.reference_ticks(wt)
        trig = req.trigger_ticks or 0
        if kind == "TRAILING_STOP_MARKET":
            cb = req.callback_rate_bps or 0
            if not 10 <= cb <= 2000:  # callbackRate 0.1 .. 20 % (changelog 2026-10-23)
                raise SimError(-1102, "Mandatory parameter 'callbackRate' was not sent, was empty/null, or "
                                      "malformed.")
            act = activate_ticks or trig
            if act and px and (px <= act if side > 0 else px >= act):
                raise SimError(-2021, "Order would immediately trigger.")
        else:
            if trig <= 0:
                raise SimError(-1102, "Mandatory parameter 'triggerPrice' was not sent, was empty/null, or "
                                      "malformed.")
        aid = self._next_algo_id
        self._next_algo_id += 1
        a = AlgoOrder(aid, cid, req.symbol, side, kind, req.qty_lots, trig, wt, req.reduce_only,
                      req.close_position, now)
        a.price_protect = price_protect
        if kind == "TRAILING_STOP_MARKET":
            a.activate_ticks = activate_ticks or trig
            a.trigger_ticks = 0
            a.callback_rate_bps = req.callback_rate_bps or 0
            if not a.activate_ticks:
                a.activated = True
                a.extreme_ticks = px
        elif px and _fires(a, px):
            raise SimError(-2021, "Order would immediately trigger.")
        self.algos[aid] = a
        self.algo_by_client[(req.symbol, cid)] = a
        self.open_algos[req.symbol].append(a)
        self._watch.add(req.symbol)
        self._emit(AlgoReport(now, a.copy()))
        return a.copy()

    def _find_algo(self, symbol: str, client_algo_id: str | None, algo_id: int | None) -> AlgoOrder | None:
        if algo_id:
            a = self.algos.get(int(algo_id))
            return a if a is not None and a.symbol == symbol else None
        if client_algo_id:
            return self.algo_by_client.get((symbol, client_algo_id))
        raise SimError(-1102, "Mandatory parameter 'algoId' or 'clientAlgoId' was not sent.")

    def cancel_algo(self, symbol: str, client_algo_id: str | None = None, algo_id: int | None = None,
                    now_ns: int | None = None) -> AlgoOrder:
        now = self.now_ns if now_ns is None else now_ns
        self.market(symbol)
        a = self._find_algo(symbol, client_algo_id, algo_id)
        if a is None or not a.is_open:
            raise SimError(-2011, "Unknown order sent.")
        self._close_algo(a, "CANCELED", now)
        return a.copy()

    def cancel_all_algos(self, symbol: str, now_ns: int | None = None) -> list[AlgoOrder]:
        now = self.now_ns if now_ns is None else now_ns
        self.market(symbol)
        out = []
        for a in list(self.open_algos[symbol]):
            self._close_algo(a, "CANCELED", now)
            out.append(a.copy())
        return out

    def query_algo(self, symbol: str, client_algo_id: str | None = None, algo_id: int | None = None) -> AlgoOrder:
        self.market(symbol)
        a = self._find_algo(symbol, client_algo_id, algo_id)
        if a is None:
            raise SimError(-2013, "Order does not exist.")
        return a.copy()

    def open_algo_orders(self, symbol: str | None = None) -> list[AlgoOrder]:
        syms = [symbol] if symbol else list(self.open_algos)
        if symbol:
            self.market(symbol)
        return [a.copy() for s in syms for a in self.open_algos[s]]

    def _close_algo(self, a: AlgoOrder, status: str, now: int, reason: str = "") -> None:
        a.status = status
        a.updated_ns = now
        a.reason = reason
        lst = self.open_algos[a.symbol]
        if a in lst:
            lst.remove(a)
        self._refresh_watch(a.symbol)
        self._emit(AlgoReport(now, a.copy()))

    # ================================================================== price watch
    def _on_prices(self, m: SymbolMarket, mark: bool, last: bool) -> None:
        now = self.now_ns
        algos = self.open_algos[m.symbol]
        if algos:
            for a in list(algos):
                if a.working_type == "MARK_PRICE":
                    if not mark:
                        continue
                    px = m.mark_ticks()
                else:
                    if not last:
                        continue
                    px = float(m.last_ticks) if m.last_ticks else m.mark_ticks()
                if not px or a.status != "NEW":
                    continue
                if a.type == "TRAILING_STOP_MARKET":
                    if not self._trail(a, px):
                        continue
                elif not _fires(a, px):
                    continue
                self._trigger(a, m, now)
        if mark and self.position_lots(m.symbol):
            self._maybe_liquidate(m, now)

    def _maybe_liquidate(self, m: SymbolMarket, now: int) -> None:
        """Compare the mark with the cached liquidation price (exact for an isolated position or a lone
        cross position; with several cross positions every mark matters: full check)."""
        acct = self.account
        pos = acct.positions[m.symbol]
        if not pos.isolated and sum(1 for p in acct.positions.values() if p.qty_lots and not p.isolated) > 1:
            self._check_liquidation(now)
            return
        cached = self._liq_cache.get(m.symbol)
        if cached is None or cached[0] != acct.version:
            cached = (acct.version, acct.liquidation_price_ticks(pos, self.marks()))
            self._liq_cache[m.symbol] = cached
        lp = cached[1]
        mark = m.mark_ticks()
        if lp > 0 and (mark <= lp if pos.qty_lots > 0 else mark >= lp):
            self._check_liquidation(now)

    @staticmethod
    def _trail(a: AlgoOrder, px: float) -> bool:
        if not a.activated:
            if (a.side_sign < 0 and px >= a.activate_ticks) or (a.side_sign > 0 and px <= a.activate_ticks):
                a.activated = True
                a.extreme_ticks = px
            return False
        cb = a.callback_rate_bps / 10_000
        if a.side_sign < 0:  # protects a long: from the high
            if px > a.extreme_ticks:
                a.extreme_ticks = px
            return px <= a.extreme_ticks * (1 - cb)
        if px < a.extreme_ticks:
            a.extreme_ticks = px
        return px >= a.extreme_ticks * (1 + cb)

    def _trigger(self, a: AlgoOrder, m: SymbolMarket, now: int) -> None:
        q = self.position_lots(a.symbol)
        opposite = q != 0 and (q > 0) != (a.side_sign > 0)
        if a.close_position or a.reduce_only:
            if not opposite:
                self._close_algo(a, "EXPIRED" if a.close_position else "REJECTED", now,
                                 "no position to close" if a.close_position else "ReduceOnly Order is rejected.")
                return
            qty = abs(q) if a.close_position else min(a.qty_lots, abs(q))
        else:
            qty = a.qty_lots
        lst = self.open_algos[a.symbol]
        if a in lst:
            lst.remove(a)
        a.status = "TRIGGERED"
        a.trigger_ns = now
        a.updated_ns = now
        a.child_order_id = self._next_order_id
        self._emit(AlgoReport(now, a.copy()))
        o = self._new_order(a.symbol, a.client_algo_id, a.side_sign, "MARKET", "GTC", qty, 0,
                            a.reduce_only or a.close_position, now)
        o.orig_type = a.type
        o.stop_ticks = a.trigger_ticks
        o.close_position = a.close_position
        o.working_type = a.working_type
        o.parent_algo_id = a.algo_id
        o.parent_client_id = a.client_algo_id
        self._execute(o, m, now)
        self._refresh_watch(a.symbol)

    def _child_done(self, o: SimOrder, now: int) -> None:
        a = self.algos.get(o.parent_algo_id)
        if a is None or a.status != "TRIGGERED":
            return
        a.fill_lots = o.filled_lots
        a.fill_notional_tl = o.avg_notional_tl
        self._close_algo(a, "FINISHED", now)

    # ================================================================== liquidation
    def _check_liquidation(self, now: int) -> None:
        marks = self.marks()
        for pos in self.account.to_liquidate(marks):
            self._liquidate(pos, marks[pos.symbol], now)

    def _liquidate(self, pos: Any, mark_ticks: float, now: int) -> None:
        m = self.markets[pos.symbol]
        for o in sorted(m.bids + m.asks, key=lambda o: o.seq):
            self._finish(o, m, "CANCELED", now, "liquidation")
        side = -1 if pos.qty_lots > 0 else 1
        qty = abs(pos.qty_lots)
        cid = f"autoclose-{now // 1_000_000}"
        o = self._new_order(pos.symbol, cid, side, "MARKET", "IOC", qty, 0, True, now)
        notional = qty * mark_ticks * pos.k
        margin_left = (pos.isolated_wallet if pos.isolated else self.account.cross_wallet) + pos.upnl(mark_ticks)
        fee_rate = min(self.liquidation_fee, max(0.0, margin_left) / notional) if notional else 0.0
        self._fill(o, qty, mark_ticks, False, now, exec_type="CALCULATED", fee_rate=fee_rate)
        if o.is_open:
            self._finish(o, m, "EXPIRED", now, "liquidation")
