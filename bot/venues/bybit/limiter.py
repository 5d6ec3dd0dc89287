"""Request limiter for the Bybit v5 trading REST, fed by the venue's own headers (sans-I/O).

Bybit counts (exchange-facts B2, docs/v5/rate-limit):
- per UID, per endpoint, per second: e.g. /v5/order/create 10/s (linear), /v5/order/cancel 10/s,
  /v5/position/trading-stop 10/s; every response reports the endpoint's `X-Bapi-Limit` (the limit),
  `X-Bapi-Limit-Status` (what is left) and `X-Bapi-Limit-Reset-Timestamp` (ms; when a breached limit
  resets, else about now). A breach answers retCode 10006.
- per IP: 600 requests in any 5 s; a breach is HTTP 403 "access too frequent", and Bybit asks for at
  least 10 minutes of silence (B2). 10018 is the IP limit said in a body.

ccxt's own throttle is off (C4: it would space orders 50 ms apart); this limiter decides. Entries stop at
`budget_frac` of each limit; protective requests (stops, reduce-only exits, cancels, look-ups) may use
the rest up to the limit itself, so a busy second never leaves a position without its stop. While a
block runs (10006 on one endpoint, 403/10018 on all) nothing of it is sent.

Windows: our own 1 s buckets per endpoint; each response resynchronises the bucket with the venue's
number (the larger wins, since requests of ours may be in flight).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping

from bot.venues.bybit.orders import num

__all__ = ["DEFAULT_LIMITS_PER_S", "BybitLimiter"]

# UID limits per second for linear (docs/v5/rate-limit, "API Rate Limit Table"); the headers override them.
# Paths not listed (public market data) count against the IP limit only, until a header says otherwise.
DEFAULT_LIMITS_PER_S = {
    "/v5/order/create": 10, "/v5/order/amend": 10, "/v5/order/cancel": 10, "/v5/position/trading-stop": 10,
    "/v5/position/set-leverage": 10, "/v5/order/realtime": 50, "/v5/order/history": 50,
    "/v5/execution/list": 50, "/v5/position/list": 50, "/v5/account/wallet-balance": 50,
}


class _Endpoint:
    __slots__ = ("blocked_until_s", "limit", "sec", "used")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.sec = -1
        self.used = 0
        self.blocked_until_s = 0.0


class BybitLimiter:
    def __init__(self, budget_frac: float = 0.8, ip_per_5s: int = 600, ip_block_s: float = 600.0) -> None:
        if not 0 < budget_frac <= 1:
            raise ValueError("budget_frac must be in (0, 1]")
        self.budget_frac = budget_frac
        self.ip_per_5s = ip_per_5s
        self.ip_block_s = ip_block_s
        self._ep: dict[str, _Endpoint] = {}
        self._ip: deque[float] = deque()
        self._blocked_until_s = 0.0
        self.banned = False
        self.offset_s = 0.0  # exchange clock - ours: X-Bapi-Limit-Reset-Timestamp is the exchange's

    def _endpoint(self, path: str) -> _Endpoint:
        ep = self._ep.get(path)
        if ep is None:
            ep = self._ep[path] = _Endpoint(DEFAULT_LIMITS_PER_S.get(path, 0))
        return ep

    def blocked_for_s(self, now_s: float, path: str = "") -> float:
        until = self._blocked_until_s
        if path and path in self._ep:
            until = max(until, self._ep[path].blocked_until_s)
        return max(0.0, until - now_s)

    def used(self, path: str, now_s: float) -> int:
        ep = self._endpoint(path)
        return ep.used if ep.sec == int(now_s) else 0

    # -- decisions ----------------------------------------------------------------------------------
    def delay_s(self, path: str, now_s: float, protective: bool = False, http: bool = True) -> float:
        """Seconds to wait before a request to `path` may go (0: now). Does not count it (see `spend`).
        `http=False`: the same op over the /v5/trade socket, which shares the per-UID limit of its REST path
        but not the HTTP IP budget (600 / 5 s is the HTTP gateway's; WS trade has its own 3000 req/s/IP, E)."""
        blocked = self.blocked_for_s(now_s, path)
        if blocked > 0:
            return blocked
        frac = 1.0 if protective else self.budget_frac
        waits = [0.0]
        ep = self._endpoint(path)
        if ep.limit and ep.sec == int(now_s) and ep.used + 1 > max(1.0, ep.limit * frac):
            waits.append(int(now_s) + 1.0 - now_s)
        while self._ip and self._ip[0] <= now_s - 5.0:
            self._ip.popleft()
        if http and len(self._ip) + 1 > self.ip_per_5s * frac:
            waits.append(self._ip[0] + 5.0 - now_s)
        return max(waits)

    def spend(self, path: str, now_s: float, http: bool = True) -> None:
        ep = self._endpoint(path)
        sec = int(now_s)
        if ep.sec != sec:
            ep.sec, ep.used = sec, 0
        ep.used += 1
        if http:
            self._ip.append(now_s)

    # -- feedback from responses ------------------------------------------------------------------------
    def on_response(self, path: str, status: int, headers: Mapping[str, str], ret_code: int | None,
                    now_s: float) -> None:
        h = {k.lower(): v for k, v in headers.items()}
        ep = self._endpoint(path)
        limit, left = _int(h.get("x-bapi-limit")), h.get("x-bapi-limit-status")
        if limit > 0:
            ep.limit = limit
            if left is not None and left != "":
                sec = int(now_s)
                if ep.sec != sec:
                    ep.sec, ep.used = sec, 0
                ep.used = max(ep.used, limit - _int(left))
        reset_s = _int(h.get("x-bapi-limit-reset-timestamp")) / 1000.0 - self.offset_s
        retry = num(h.get("retry-after"))
        if ret_code == 10006:  # this endpoint, until its reset
            ep.blocked_until_s = max(ep.blocked_until_s, reset_s if reset_s > now_s else now_s + 1.0)
        elif ret_code == 10018 or status == 429:  # the IP, until the reset or Retry-After
            until = now_s + retry if retry > 0 else (reset_s if reset_s > now_s else now_s + 1.0)
            self._blocked_until_s = max(self._blocked_until_s, until)
        elif status == 403:  # "access too frequent": >= 10 minutes of silence (B2)
            self._blocked_until_s = max(self._blocked_until_s, now_s + (retry if retry > 0 else self.ip_block_s))
            self.banned = True
        elif 200 <= status < 300 and ret_code == 0:
            self.banned = False


def _int(v: str | None) -> int:
    try:
        return int(float(v)) if v else 0
    except ValueError:
        return 0
