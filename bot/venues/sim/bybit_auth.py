"""Bybit v5 request security and per-endpoint limits of the loopback exchange (exchange-facts B2).

- Private REST: headers X-BAPI-API-KEY, X-BAPI-TIMESTAMP, X-BAPI-RECV-WINDOW (default 5000),
  X-BAPI-SIGN = hex HMAC-SHA256(secret, timestamp + key + recvWindow + (query string | body)), over the
  exact bytes sent (GET: the raw query string; POST: the raw JSON body).
  Missing key / unknown key: retCode 10003 "API key is invalid."; bad signature: 10004 "error sign!";
  timestamp outside [server - recvWindow, server + 1000): 10002. All with HTTP 200 (Bybit answers
  business errors in the envelope).
- Websocket auth: `{"op": "auth", "args": [key, expires_ms, hex HMAC(secret, "GET/realtime" + expires)]}`.
- UID limits per endpoint per second (docs/v5/rate-limit): every private response carries
  X-Bapi-Limit (the limit), X-Bapi-Limit-Status (what is left) and X-Bapi-Limit-Reset-Timestamp;
  over it: retCode 10006 "Too many visits!".
"""

from __future__ import annotations

import hashlib
import hmac

from bot.venues.sim.bybit_desk import BybitError

__all__ = ["BybitAuth", "UidLimits"]

# docs/v5/rate-limit (linear, default tier): requests per second per UID
_LIMITS = {
    "/v5/order/create": 10, "/v5/order/amend": 10, "/v5/order/cancel": 10, "/v5/order/cancel-all": 10,
    "/v5/position/trading-stop": 10, "/v5/position/set-leverage": 10, "/v5/order/realtime": 50,
    "/v5/order/history": 50, "/v5/execution/list": 50, "/v5/position/list": 50,
    "/v5/account/wallet-balance": 50, "/v5/account/fee-rate": 5,
}


class BybitAuth:
    def __init__(self, api_key: str, api_secret: str) -> None:
        self.api_key = api_key
        self._secret = api_secret.encode()

    def verify(self, headers: dict[str, str], payload: str, server_ms: int) -> None:
        key = headers.get("X-BAPI-API-KEY", "")
        if not key or not hmac.compare_digest(key, self.api_key):
            raise BybitError(10003, "API key is invalid.")
        ts_s, recv_s, sig = headers.get("X-BAPI-TIMESTAMP", ""), headers.get("X-BAPI-RECV-WINDOW", "5000"), \
            headers.get("X-BAPI-SIGN", "")
        try:
            ts, recv = int(ts_s), int(recv_s)
        except ValueError as e:
            raise BybitError(10001, "params error: X-BAPI-TIMESTAMP / X-BAPI-RECV-WINDOW") from e
        want = hmac.new(self._secret, (ts_s + key + recv_s + payload).encode(), hashlib.sha256).hexdigest()
        if not sig or not hmac.compare_digest(want, sig.lower()):
            raise BybitError(10004, f"error sign! origin_string[{ts_s}{key}{recv_s}{payload[:200]}]")
        if not server_ms - recv <= ts < server_ms + 1000:
            raise BybitError(10002, "invalid request, please check your server timestamp or recv_window param. "
                                    f"req_timestamp[{ts}],server_timestamp[{server_ms}],recv_window[{recv}]")

    def ws_auth_ok(self, key: str, expires_ms: int, sig: str, server_ms: int) -> bool:
        want = hmac.new(self._secret, f"GET/realtime{expires_ms}".encode(), hashlib.sha256).hexdigest()
        return (hmac.compare_digest(str(key), self.api_key) and hmac.compare_digest(want, str(sig))
                and expires_ms > server_ms)


class UidLimits:
    """Per-endpoint, per-second counters (fixed one-second windows)."""

    def __init__(self) -> None:
        self._used: dict[str, tuple[int, int]] = {}  # path -> (second, count)
        self.unlimited = False  # `exchange-sim --unlimited` (benchmarks): every limit 10**9

    def limit_of(self, path: str) -> int:
        return 10**9 if self.unlimited else _LIMITS.get(path, 20)

    def admit(self, path: str, now_ms: int) -> tuple[bool, dict[str, str]]:
        sec = now_ms // 1000
        cur_sec, n = self._used.get(path, (sec, 0))
        if cur_sec != sec:
            n = 0
        n += 1
        self._used[path] = (sec, n)
        limit = self.limit_of(path)
        headers = {"X-Bapi-Limit": str(limit), "X-Bapi-Limit-Status": str(max(0, limit - n)),
                   "X-Bapi-Limit-Reset-Timestamp": str((sec + 1) * 1000)}
        return n <= limit, headers
