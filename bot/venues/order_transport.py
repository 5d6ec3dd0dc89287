"""What the operator sees of a venue's order transport (execution.order_transport): is the order websocket up,
since when, how often it came back, how many requests went over it and how many went by REST because it was
not up, and why it last went down. Venue-neutral and sans-I/O: plain records written with an explicit `now_ns`.

- `SocketLife`: written by the order socket's run loop (bot/venues/ws_orders.py for Binance's ws-fapi,
  bot/venues/bybit/trade_ws.py for Bybit's /v5/trade) at each transition; owned by the gateway.
- `OrderTransportSnapshot`: the frozen view a gateway gives (`ports.OrderTransportReport`,
  `capabilities.order_transport`), read by the ops side at scrape time (/status `order_transport`, /metrics
  `scalper_order_ws_*`, `scalper status`, the web view).

States: `up` (orders go over the socket), `connecting` (the first connection is being opened: orders go by
REST meanwhile), `down` (the socket was lost or could not be opened: orders go by REST until it is back),
`disabled` (REST by configuration, or the venue has no order socket here: Bybit demo trading, exchange-facts
B2; a Binance RSA/Ed25519 key, which ccxt signs: REST).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

__all__ = ["TRANSPORT_STATES", "OrderTransportSnapshot", "SocketLife"]

TransportState = Literal["up", "down", "connecting", "disabled"]
TRANSPORT_STATES: tuple[TransportState, ...] = ("up", "down", "connecting", "disabled")
_ERROR_CHARS = 300  # a handshake error, a close reason: enough to tell them apart, never a whole frame


@dataclass(frozen=True, slots=True)
class OrderTransportSnapshot:
    venue: str  # the gateway's name (binance-usdm, bybit)
    configured: str  # execution.order_transport: "rest" | "ws"
    state: TransportState
    since_ns: int  # wall clock the current state began (0: never set)
    reconnects: int  # times the socket came up again after it had been up once
    ws_requests: int  # order requests (placements, cancels) that went over the socket
    rest_fallbacks: int  # order requests sent by REST because the socket was not up (transport "ws" only)
    last_error: str  # why the socket last went down or could not be opened ("" none); never a key or signature

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class SocketLife:
    """The life of one order socket. `connecting` until its first connection, then `up` / `down`; a failed
    reconnect attempt while down keeps the state and its `since_ns` (the outage goes on) and updates the
    error. Sockets write it; nothing here decides anything for trading."""

    __slots__ = ("_ever_up", "configured", "last_error", "reconnects", "since_ns", "state")

    def __init__(self, configured: str, now_ns: int = 0) -> None:
        self.configured = configured
        self.state: TransportState = "connecting" if configured == "ws" else "disabled"
        self.since_ns = now_ns
        self.reconnects = 0
        self.last_error = ""
        self._ever_up = False

    def _enter(self, state: TransportState, now_ns: int) -> None:
        if state != self.state:
            self.state = state
            self.since_ns = now_ns

    def disable(self, reason: str, now_ns: int) -> None:
        """Configured "ws" but the venue has no usable order socket here: REST for the whole run."""
        self._enter("disabled", now_ns)
        self.last_error = reason[:_ERROR_CHARS]

    def up(self, now_ns: int) -> None:
        if self.state == "disabled":
            return
        if self._ever_up and self.state != "up":
            self.reconnects += 1
        self._ever_up = True
        self._enter("up", now_ns)

    def down(self, reason: str, now_ns: int) -> None:
        """The socket closed, or an attempt to open it failed (`reason`: what the caller logged)."""
        if self.state == "disabled":
            return
        self._enter("down", now_ns)
        self.last_error = reason[:_ERROR_CHARS]

    def snapshot(self, venue: str, ws_requests: int, rest_fallbacks: int) -> OrderTransportSnapshot:
        return OrderTransportSnapshot(venue, self.configured, self.state, self.since_ns, self.reconnects,
                                      ws_requests, rest_fallbacks, self.last_error)
