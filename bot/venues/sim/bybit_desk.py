"""What Bybit v5 adds on top of the shared matching engine: the position's TP/SL and order words.

Bybit's position TP/SL (tpslMode Full, exchange-facts B3 trading-stop): ONE stop (and one take-profit)
over the whole position, set by `POST /v5/position/trading-stop` or armed by an entry's attached
`stopLoss`/`takeProfit` the moment it fills; the venue resizes it with the position and removes it
when the position closes. Here it is an engine conditional order with `closePosition` (so it closes
whatever the position is when it fires), listed as a system order (`orderLinkId` "", `stopOrderType`
StopLoss / TakeProfit). Moving it ends the old order (Deactivated) and makes a new one (a new orderId),
as the venue does.

The desk listens to the engine's reports: a fill of an order that carries an attached stop arms the
position's stop at once (same call stack as the fill: no unprotected gap), and a position back to zero
ends its TP/SL.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable

from bot.domain.orders import OrderRequest
from bot.domain.types import OrderKind, Side, TriggerPrice
from bot.venues.sim.bybit_wire import AUTO_PREFIX, Meta
from bot.venues.sim.exchange import Report, SimExchange
from bot.venues.sim.orders import AccountReport, AlgoOrder, OrderReport, SimError

__all__ = ["Ambiguous", "BybitDesk", "BybitError"]


class BybitError(Exception):
    """Bybit said no: retCode + retMsg (HTTP 200, docs/v5/error)."""

    def __init__(self, code: int, msg: str) -> None:
        super().__init__(f"{code}: {msg}")
        self.code = code
        self.msg = msg


class Ambiguous(Exception):
    """The request executed, then the answer was lost: HTTP `status` with no envelope (error_after_execute)."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


# engine (Binance) codes -> Bybit retCodes (docs/v5/error, B2)
_CODES = {
    -2019: (110007, "CheckMarginRatio fail! InsufficientAB"),
    -4116: (110072, "OrderLinkedID is duplicate"),
    -2022: (110017, "current position is zero, cannot fix reduce-only order qty"),
    -4164: (110094, "Order does not meet minimum order value"),
    -2011: (110001, "order not exists or too late to cancel"),
    -2013: (110001, "order not exists or too late to cancel"),
    -2021: (110093, "expect Falling, but trigger_price is higher than current price"),
    -4028: (10001, "leverage invalid"),
    -2010: (110007, "CheckMarginRatio fail! InsufficientAB"),
}


def bybit_error(e: SimError) -> BybitError:
    code, msg = _CODES.get(e.code, (10001, e.msg))
    return BybitError(code, msg)


def trigger_type(by: str) -> TriggerPrice:
    if by in ("", "LastPrice"):
        return TriggerPrice.LAST
    if by == "MarkPrice":
        return TriggerPrice.MARK
    raise BybitError(10001, f"params error: triggerBy {by} (IndexPrice is not simulated)")


class BybitDesk:
    def __init__(self, ex: SimExchange, now_ns: Callable[[], int]) -> None:
        self.ex = ex
        self.now_ns = now_ns
        self.order_meta: dict[int, Meta] = {}  # engine order id -> Bybit words
        self.algo_meta: dict[int, Meta] = {}  # engine algo id -> Bybit words
        # (symbol, client id) of entries whose stopLoss/takeProfit arm on their first fill
        self.attached: dict[tuple[str, str], Meta] = {}
        self.pos_sl: dict[str, int] = {}  # symbol -> algo id of the position's stop
        self.pos_tp: dict[str, int] = {}
        self.seq = itertools.count(1)
        self._auto = itertools.count(1)
        self.position_listeners: list[Callable[[str], None]] = []  # fn(symbol) when its TP/SL changed
        ex.listeners.append(self._on_report)

    def auto_id(self, kind: str = "") -> str:
        return f"{AUTO_PREFIX}{kind}{next(self._auto)}"

    # ------------------------------------------------------------------ position TP/SL
    def position_tpsl(self, symbol: str) -> tuple[tuple[str, str], tuple[str, str]]:
        out = []
        for book in (self.pos_sl, self.pos_tp):
            a = self.ex.algos.get(book.get(symbol, 0))
            if a is None or not a.is_open:
                out.append(("", ""))
            else:
                inst = self.ex.markets[symbol].inst
                out.append((inst.ticks_to_str(a.trigger_ticks), self.algo_meta[a.algo_id].trigger_by))
        return out[0], out[1]

    def set_position_level(self, symbol: str, which: str, price: str, trigger_by: str) -> bool:
        """Set (price) or clear ("" / "0") the position's StopLoss or TakeProfit. False if unchanged."""
        book = self.pos_sl if which == "StopLoss" else self.pos_tp
        inst = self.ex.markets[symbol].inst
        old = self.ex.algos.get(book.get(symbol, 0))
        old_open = old is not None and old.is_open
        clear = price in ("", "0") or float(price) == 0
        if clear:
            if not old_open:
                return False
        else:
            try:
                ticks = inst.price_to_ticks(price)
            except (ValueError, ArithmeticError) as e:
                raise BybitError(10001, f"params error: {which} {price}") from e
            if old_open and old is not None and old.trigger_ticks == ticks:
                return False
        q = self.ex.position_lots(symbol)
        if not clear and q == 0:
            raise BybitError(10001, "can not set tp/sl/ts for zero position")
        new: AlgoOrder | None = None
        if not clear:
            side = Side.SELL if q > 0 else Side.BUY
            kind = OrderKind.STOP_MARKET if which == "StopLoss" else OrderKind.TAKE_PROFIT_MARKET
            req = OrderRequest(self.auto_id(which[0].lower()), symbol, side, kind, 0, trigger_ticks=ticks,
                               close_position=True, working_type=trigger_type(trigger_by))
            try:  # placed BEFORE the old one ends: a move never leaves the position without a stop
                new = self.ex.place_algo(req, now_ns=self.now_ns())
            except SimError as e:
                pos_side = "Buy" if q > 0 else "Sell"
                rel = "lower" if (which == "StopLoss") == (q > 0) else "higher"
                if e.code == -2021:
                    raise BybitError(10001, f"{which}:{ticks} set for {pos_side} position should {rel} than "
                                            "base_price") from e
                raise bybit_error(e) from e
            self.algo_meta[new.algo_id] = Meta(stop_order_type=which, trigger_by=trigger_by or "LastPrice",
                                               trigger_direction=2 if (q > 0 and which == "StopLoss") or
                                               (q < 0 and which != "StopLoss") else 1)
            book[symbol] = new.algo_id
        else:
            book.pop(symbol, None)
        if old_open and old is not None:
            self.ex.cancel_algo(symbol, algo_id=old.algo_id, now_ns=self.now_ns())
        for fn in self.position_listeners:
            fn(symbol)
        return True

    # ------------------------------------------------------------------ engine reports
    def _on_report(self, r: Report) -> None:
        if isinstance(r, OrderReport) and r.last_lots > 0:
            sym = r.order.symbol
            meta = self.attached.get((sym, r.order.client_id))
            if meta is not None and self.ex.position_lots(sym):
                self.attached.pop((sym, r.order.client_id), None)
                # B3: attached TP/SL (tpslMode Full) become the POSITION's, armed at the fill
                for which, price, by in (("StopLoss", meta.stop_loss, meta.sl_trigger_by),
                                         ("TakeProfit", meta.take_profit, meta.tp_trigger_by)):
                    if price and not self.position_tpsl(sym)[0 if which == "StopLoss" else 1][0]:
                        # the market already past it: the TP/SL is dropped, the fill stands
                        with contextlib.suppress(BybitError):
                            self.set_position_level(sym, which, price, by)
        if isinstance(r, AccountReport):
            for sym in r.symbols:
                if self.ex.position_lots(sym) == 0:
                    self._end_position_levels(sym)

    def _end_position_levels(self, sym: str) -> None:
        for book in (self.pos_sl, self.pos_tp):
            aid = book.pop(sym, None)
            a = self.ex.algos.get(aid or 0)
            if a is not None and a.is_open:
                self.ex.cancel_algo(sym, algo_id=a.algo_id, now_ns=self.now_ns())
