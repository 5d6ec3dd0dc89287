"""Request security and limits of the loopback exchange, as Binance applies them (exchange-facts A2).

- API key in `X-MBX-APIKEY` (missing: -2014, unknown: -2015, HTTP 401).
- Signed endpoints: HMAC-SHA256 (hex) of totalParams = query string + request body, exactly as sent,
  without the `signature` parameter (-1022 when it does not match).
- Timing: accept if timestamp < serverTime + 1000 and serverTime - timestamp <= recvWindow
  (default 5000, max 60000), else -1021.
- Limits: request weight per minute (2400) with `X-MBX-USED-WEIGHT-1M`, orders per 10 s (300) and per
  minute (1200) with `X-MBX-ORDER-COUNT-10S` / `-1M`; over a limit: HTTP 429 with Retry-After, and
  418 (IP ban) for a client that keeps going while told to wait.
"""

from __future__ import annotations

import hashlib
import hmac

from bot.venues.sim.orders import SimError

__all__ = ["Auth", "Limits"]


def _strip_signature(s: str) -> tuple[str, str | None]:
    if "signature=" not in s:
        return s, None
    sig = None
    kept = []
    for part in s.split("&"):
        if part.startswith("signature="):
            sig = part[len("signature="):]
        else:
            kept.append(part)
    return "&".join(kept), sig


class Auth:
    def __init__(self, api_key: str, api_secret: str) -> None:
        self.api_key = api_key
        self._secret = api_secret.encode()

    def check_key(self, header_key: str | None) -> None:
        if not header_key:
            raise SimError(-2014, "API-key format invalid.", 401)
        if not hmac.compare_digest(header_key, self.api_key):
            raise SimError(-2015, "Invalid API-key, IP, or permissions for action.", 401)

    def verify(self, raw_query: str, body: str, params: dict[str, str], server_ms: int) -> None:
        """Timestamp/recvWindow, then the signature over the exact bytes sent."""
        ts_s = params.get("timestamp")
        if ts_s is None:
            raise SimError(-1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed.")
        try:
            ts = int(ts_s)
            recv_window = int(params.get("recvWindow", "5000"))
        except ValueError as e:
            raise SimError(-1100, "Illegal characters found in a parameter.") from e
        if recv_window > 60_000 or recv_window <= 0:
            raise SimError(-1131, "recvWindow must be less than 60000")
        if ts >= server_ms + 1000:
            raise SimError(-1021, "Timestamp for this request was 1000ms ahead of the server's time.")
        if server_ms - ts > recv_window:
            raise SimError(-1021, "Timestamp for this request is outside of the recvWindow.")
        q, sig_q = _strip_signature(raw_query)
        b, sig_b = _strip_signature(body)
        sig = sig_q or sig_b
        if not sig:
            raise SimError(-1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.")
        want = hmac.new(self._secret, (q + b).encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(want, sig.lower()):
            raise SimError(-1022, "Signature for this request is not valid.")


class Limits:
    """Fixed-window counters (Binance counts per calendar interval) and the 429/418 state."""

    WEIGHT_1M = 2400
    ORDERS_10S = 300
    ORDERS_1M = 1200

    def __init__(self) -> None:
        self._minute = -1
        self._ten_s = -1
        self.weight_1m = 0
        self.orders_10s = 0
        self.orders_1m = 0
        self.limited_until_ms = 0  # 429 answers until then (a fault or a broken limit)
        self.banned_until_ms = 0  # 418 answers until then
        self.retry_after_s = 1
        self.ban_s = 120
        self.hits_while_limited = 0
        self.ban_after_hits = 3

    def _roll(self, now_ms: int) -> None:
        m = now_ms // 60_000
        if m != self._minute:
            self._minute = m
            self.weight_1m = 0
            self.orders_1m = 0
        t = now_ms // 10_000
        if t != self._ten_s:
            self._ten_s = t
            self.orders_10s = 0

    def limit(self, now_ms: int, retry_after_s: int, ban_after_hits: int = 3, ban_s: int = 120) -> None:
        """Start answering 429 (the rate_limit fault)."""
        self.limited_until_ms = now_ms + retry_after_s * 1000
        self.retry_after_s = retry_after_s
        self.ban_after_hits = ban_after_hits
        self.ban_s = ban_s
        self.hits_while_limited = 0

    def admit(self, now_ms: int, weight: int) -> tuple[int, int] | None:
        """Count a request's IP weight. None if admitted, else (HTTP status, Retry-After seconds)."""
        self._roll(now_ms)
        if now_ms < self.banned_until_ms:
            return 418, max(1, (self.banned_until_ms - now_ms + 999) // 1000)
        if now_ms < self.limited_until_ms:
            self.hits_while_limited += 1
            if self.hits_while_limited > self.ban_after_hits:
                self.banned_until_ms = now_ms + self.ban_s * 1000
                return 418, self.ban_s
            return 429, max(1, (self.limited_until_ms - now_ms + 999) // 1000)
        self.weight_1m += weight
        if self.weight_1m > self.WEIGHT_1M:
            wait = 60 - (now_ms // 1000) % 60
            self.limit(now_ms, wait, self.ban_after_hits, self.ban_s)
            return 429, wait
        return None

    def count_order(self, now_ms: int) -> tuple[int, int] | None:
        """Count an authenticated order request on the account's order counters."""
        self._roll(now_ms)
        self.orders_10s += 1
        self.orders_1m += 1
        if self.orders_10s > self.ORDERS_10S or self.orders_1m > self.ORDERS_1M:
            wait = 10 - (now_ms // 1000) % 10 if self.orders_10s > self.ORDERS_10S else 60 - (now_ms // 1000) % 60
            return 429, wait
        return None

    def headers(self, is_order: bool) -> dict[str, str]:
        h = {"X-MBX-USED-WEIGHT-1M": str(self.weight_1m)}
        if is_order:
            h["X-MBX-ORDER-COUNT-10S"] = str(self.orders_10s)
            h["X-MBX-ORDER-COUNT-1M"] = str(self.orders_1m)
        return h
