"""Clock offset to the exchange (sans-I/O), venue-neutral: Binance measures it from `GET /fapi/v1/time`, Bybit
from `GET /v5/market/time`; applied to signed requests. The rules quoted below are Binance's (Bybit's recv_window
check is the same shape, exchange-facts B2).

Binance accepts a signed request when `timestamp < serverTime + 1000` and `serverTime - timestamp <=
recvWindow`; otherwise -1021 (exchange-facts A2), and -5028 at the matching engine. We stamp requests
with `local_ms + offset_ms`, the offset estimated NTP-style from one round trip:
offset = server_ms - (send_ms + recv_ms) / 2, with error at most rtt / 2. Of several samples the one
with the smallest round trip wins (its error bound is the tightest).

The offset is applied (ccxt: `options['timeDifference'] = -offset`), so protective orders keep working
on a wrong host clock. Entries are refused while the clock is not trusted: never synced, a -1021/-5028
seen since the last sync, or |offset| + rtt/2 beyond `max_offset_frac` of recvWindow (a host clock that
far off can step again between two resyncs: NTP slew, VM pause). The refusal lifts at the first sync
that is back within bounds.
"""

from __future__ import annotations

__all__ = ["ClockSync"]


class ClockSync:
    __slots__ = ("_invalid_reason", "max_offset_frac", "offset_ms", "recv_window_ms", "rtt_ms", "synced_at_ms",
                 "syncs")

    def __init__(self, recv_window_ms: int = 5000, max_offset_frac: float = 0.25) -> None:
        self.recv_window_ms = recv_window_ms
        self.max_offset_frac = max_offset_frac
        self.offset_ms = 0.0  # server - local
        self.rtt_ms = 0.0
        self.synced_at_ms = 0.0
        self.syncs = 0
        self._invalid_reason = "never synced"

    def on_samples(self, samples: list[tuple[float, float, float]]) -> None:
        """(local send ms, server ms, local receive ms) of one or more `GET /fapi/v1/time` round trips."""
        if not samples:
            return
        send, server, recv = min(samples, key=lambda s: s[2] - s[0])
        self.rtt_ms = max(0.0, recv - send)
        self.offset_ms = server - (send + recv) / 2.0
        self.synced_at_ms = recv
        self.syncs += 1
        self._invalid_reason = ""

    def invalidate(self, reason: str) -> None:
        """The venue said our timestamp is wrong (-1021/-5028): distrust until the next sync."""
        self._invalid_reason = reason

    @property
    def time_difference_ms(self) -> int:
        """ccxt's convention: local - server (its nonce() is milliseconds() - timeDifference)."""
        return round(-self.offset_ms)

    def now_exchange_ms(self, local_ms: float) -> float:
        return local_ms + self.offset_ms

    @property
    def limit_ms(self) -> float:
        return self.recv_window_ms * self.max_offset_frac

    def entry_refusal(self) -> str:
        """Why entries are refused now ('' = allowed)."""
        if self._invalid_reason:
            return self._invalid_reason
        err = abs(self.offset_ms) + self.rtt_ms / 2.0
        if err > self.limit_ms:
            return f"clock offset {self.offset_ms:+.0f} ms (rtt {self.rtt_ms:.0f} ms) beyond {self.limit_ms:.0f} ms"
        return ""
