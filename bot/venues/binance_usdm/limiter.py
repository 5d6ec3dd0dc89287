"""Order and weight limiter for the Binance USD-M trading REST, fed by the venue's own counters (sans-I/O).

Binance counts (exchange-facts A2, REST rate limits; the real values come from exchangeInfo `rateLimits`):
- REQUEST_WEIGHT per IP per minute (2400), reported in `X-MBX-USED-WEIGHT-1M` on every response;
- ORDERS per account per 10 s (300) and per minute (1200), reported in `X-MBX-ORDER-COUNT-10S` / `-1M`.
  `POST /fapi/v1/order` and `POST /fapi/v1/algoOrder` cost 1 on each order counter and 0 IP weight.
- 429 = a limit was broken, 418 = the IP is banned (2 min .. 3 days); both carry `Retry-After` (s).

ccxt's own throttle is off (it spaces Binance orders 200 ms apart, C4); this limiter decides instead.
Entries stop at `budget_frac` of each limit; protective orders (stops, reduce-only exits) may use the
rest, up to the venue's limit itself, so a busy minute never leaves a position without its stop.

What a 429 blocks depends on which limit it reports (issue 11: the bot once refused its own stop for
10 s while the exchange would have taken it):
- an IP-weight 429 (-1003) on a request that weighs (look-ups, account, cancels) blocks requests that
  weigh, for Retry-After; order placement weighs 0 (A2) and still goes;
- a 429 answering an order placement (-1015 "too many orders", or the venue refusing orders during an
  IP block after all) blocks order placement for Retry-After: resending into it only counts towards a ban;
- a 418 (ban) blocks everything until Retry-After: sending would lengthen the ban.

Windows are the venue's fixed windows on the wall clock (10 s and 1 min buckets); between responses we
count locally, and every response resynchronises with the venue's number (the larger one wins, since
requests of ours may be in flight).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["ORDER_HEADERS", "WEIGHT_HEADER", "TradeLimiter"]

# The response headers the limiter reads (lower case), declared once: `scalper conformance` checks the
# venue still sends them (bot/conformance). Weight on every response; order counts on order placements.
WEIGHT_HEADER = "x-mbx-used-weight-1m"
ORDER_HEADERS = ("x-mbx-order-count-10s", "x-mbx-order-count-1m")

_TOO_MANY_ORDERS = -1015  # "Too many new orders; current limit is %s orders per %s"


class TradeLimiter:
    __slots__ = (
        "_ban_until_s",
        "_orders_1m",
        "_orders_10s",
        "_orders_blocked_until_s",
        "_w10",
        "_w60",
        "_weight_1m",
        "_weight_blocked_until_s",
        "banned",
        "budget_frac",
        "orders_per_10s",
        "orders_per_min",
        "weight_per_min",
    )

    def __init__(self, weight_per_min: int = 2400, orders_per_10s: int = 300, orders_per_min: int = 1200,
                 budget_frac: float = 0.8) -> None:
        if not 0 < budget_frac <= 1:
            raise ValueError("budget_frac must be in (0, 1]")
        self.weight_per_min = weight_per_min
        self.orders_per_10s = orders_per_10s
        self.orders_per_min = orders_per_min
        self.budget_frac = budget_frac
        self._w10 = -1
        self._w60 = -1
        self._orders_10s = 0
        self._orders_1m = 0
        self._weight_1m = 0
        self._weight_blocked_until_s = 0.0  # IP-weight 429: requests that weigh wait
        self._orders_blocked_until_s = 0.0  # ORDERS 429 (or a 429 to an order): placements wait
        self._ban_until_s = 0.0  # 418: nothing at all
        self.banned = False

    def set_limits_from_exchange_info(self, info: Mapping[str, Any]) -> None:
        for rl in info.get("rateLimits", []):
            kind, interval, n = rl.get("rateLimitType"), rl.get("interval"), int(rl.get("intervalNum", 1))
            limit = int(rl.get("limit", 0))
            if kind == "REQUEST_WEIGHT" and interval == "MINUTE" and n == 1:
                self.weight_per_min = limit
            elif kind == "ORDERS" and interval == "SECOND" and n == 10:
                self.orders_per_10s = limit
            elif kind == "ORDERS" and interval == "MINUTE" and n == 1:
                self.orders_per_min = limit

    # -- state ----------------------------------------------------------------------------------------
    def _roll(self, now_s: float) -> None:
        w10, w60 = int(now_s // 10), int(now_s // 60)
        if w10 != self._w10:
            self._w10, self._orders_10s = w10, 0
        if w60 != self._w60:
            self._w60, self._orders_1m, self._weight_1m = w60, 0, 0

    def blocked_for_s(self, now_s: float, *, order: bool | None = None, weight: int = 1) -> float:
        """Seconds a Retry-After still forbids sending. Without `order`: the longest block of any kind
        (what an error message quotes); with it: the block that applies to that request (an order
        placement weighs 0: `order=True, weight=0`)."""
        until = self._ban_until_s
        if order is None:
            until = max(until, self._weight_blocked_until_s, self._orders_blocked_until_s)
        else:
            if order:
                until = max(until, self._orders_blocked_until_s)
            if weight:
                until = max(until, self._weight_blocked_until_s)
        return max(0.0, until - now_s)

    @property
    def used(self) -> tuple[int, int, int]:
        """(weight this minute, orders these 10 s, orders this minute) as we know them."""
        return self._weight_1m, self._orders_10s, self._orders_1m

    # -- decisions --------------------------------------------------------------------------------------
    def delay_s(self, *, order: bool, weight: int, now_s: float, protective: bool = False) -> float:
        """Seconds to wait before this request may go (0: now). Does not count it (see `spend`)."""
        blocked = self.blocked_for_s(now_s, order=order, weight=weight)
        if blocked > 0:
            return blocked
        self._roll(now_s)
        frac = 1.0 if protective else self.budget_frac
        waits = [0.0]
        if weight and self._weight_1m + weight > self.weight_per_min * frac:
            waits.append(60.0 - now_s % 60.0)
        if order:
            if self._orders_10s + 1 > self.orders_per_10s * frac:
                waits.append(10.0 - now_s % 10.0)
            if self._orders_1m + 1 > self.orders_per_min * frac:
                waits.append(60.0 - now_s % 60.0)
        return max(waits)

    def take_order(self, now_s: float, protective: bool = False) -> float:
        """An order placement (weight 0) in one call, as `delay_s` then `spend` would do it: 0.0 and counted
        when it may go now; else the wait `delay_s` gives, nothing counted (the caller's `_gate` takes over)."""
        until = self._ban_until_s if self._ban_until_s > self._orders_blocked_until_s else self._orders_blocked_until_s
        if until > now_s:
            return until - now_s
        self._roll(now_s)
        frac = 1.0 if protective else self.budget_frac
        if self._orders_10s + 1 > self.orders_per_10s * frac or self._orders_1m + 1 > self.orders_per_min * frac:
            return self.delay_s(order=True, weight=0, now_s=now_s, protective=protective)
        self._orders_10s += 1
        self._orders_1m += 1
        return 0.0

    def spend(self, *, order: bool, weight: int, now_s: float) -> None:
        self._roll(now_s)
        self._weight_1m += weight
        if order:
            self._orders_10s += 1
            self._orders_1m += 1

    # -- feedback from responses --------------------------------------------------------------------------
    def on_response(self, status: int, headers: Mapping[str, str], now_s: float, *, order: bool = False,
                    code: int | None = None) -> None:
        """Every response's headers (any case). 429/418 start a block of Retry-After seconds: of order
        placement when it answered one (`order`) or says too many orders (-1015), of weighted requests
        when it says too much weight (-1003 or no code) on a request that weighs; 418 of everything."""
        h = {k.lower(): v for k, v in headers.items()}
        self._roll(now_s)
        self._weight_1m = max(self._weight_1m, _int(h.get(WEIGHT_HEADER)))
        self._orders_10s = max(self._orders_10s, _int(h.get(ORDER_HEADERS[0])))
        self._orders_1m = max(self._orders_1m, _int(h.get(ORDER_HEADERS[1])))
        if status in (418, 429):
            retry = _float(h.get("retry-after"))
            # No Retry-After: 429 -> wait out the minute; 418 -> Binance's shortest ban, 2 minutes.
            if retry <= 0:
                retry = 120.0 if status == 418 else 60.0 - now_s % 60.0
            until = now_s + retry
            if status == 418:
                self._ban_until_s = max(self._ban_until_s, until)
                self.banned = True
            elif order or code == _TOO_MANY_ORDERS:
                self._orders_blocked_until_s = max(self._orders_blocked_until_s, until)
                if order and code != _TOO_MANY_ORDERS:
                    # the venue refused an order for the IP limit: it applies to every request here
                    self._weight_blocked_until_s = max(self._weight_blocked_until_s, until)
            else:
                self._weight_blocked_until_s = max(self._weight_blocked_until_s, until)
        elif 200 <= status < 300:
            self.banned = False


def _int(v: str | None) -> int:
    try:
        return int(v) if v else 0
    except ValueError:
        return 0


def _float(v: str | None) -> float:
    try:
        return float(v) if v else 0.0
    except ValueError:
        return 0.0
