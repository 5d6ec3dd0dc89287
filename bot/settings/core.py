"""Core config sections: app, log, venue, market. Units in names; every model frozen and strict."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

__all__ = ["AppSection", "FrozenModel", "LogSection", "MarketSection", "VenueSection"]


class FrozenModel(BaseModel):
    """Base of every config section: immutable, unknown keys are errors."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)


class AppSection(FrozenModel):
    # sim: in-process simulator, no network. paper: simulated fills on live public data.
    # exchange-sim / demo / testnet: real venue code against a test exchange. live: real money.
    # shadow: [shadow]'s public data drive the bot, orders go to [venue] (a demo/testnet account) and are
    # paper-filled alongside on the same data (docs/shadow.md).
    mode: Literal["sim", "paper", "exchange-sim", "demo", "testnet", "live", "shadow"] = "sim"
    name: str = "scalper"
    state_dir: str = "var"  # journal, recordings, runtime state (relative to the working directory)
    # On SIGTERM/SIGINT new entries stop first; then a real venue either keeps its positions with their
    # exchange-side stops in place ("keep_protected") or flattens them ("flatten"). The simulator always
    # flattens: its positions end with the process.
    on_shutdown: Literal["keep_protected", "flatten"] = "keep_protected"
    # The shutdown waits at most this long for every position to be flat or under a confirmed stop (exits
    # wait out a running Retry-After), then sends an EMERGENCY alert for what is left and exits 3. Keep it
    # below deploy/scalper.service's TimeoutStopSec (60 s) minus the alert's flush (<= 5 s): systemd's
    # SIGKILL must not come first.
    shutdown_max_wait_s: float = Field(45.0, ge=1.0, le=55.0)


class LogSection(FrozenModel):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # auto: readable console on a TTY, JSON lines when headless.
    format: Literal["auto", "json", "console"] = "auto"


class VenueSection(FrozenModel):
    name: Literal["sim", "binance-usdm", "bybit"] = "sim"
    environment: Literal["mainnet", "demo", "testnet", "exchange-sim"] = "mainnet"
    symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT")
    # Overrides of the environment's default endpoints (e.g. the loopback exchange simulator).
    rest_url: str = ""
    ws_public_url: str = ""  # Binance: .../public (depth, bookTicker); Bybit: .../v5/public/linear
    ws_market_url: str = ""  # Binance: .../market (aggTrade, markPrice)
    ws_private_url: str = ""
    # Secrets: only from the environment (SCALPER__VENUE__API_KEY) or `secrets_file`, never a config file.
    api_key: SecretStr = SecretStr("")
    api_secret: SecretStr = SecretStr("")
    secrets_file: str = ""
    recv_window_ms: int = Field(5000, ge=1000, le=60000)
    request_timeout_ms: int = Field(5000, ge=100, le=60000)
    # ---- live gateways (bot/venues/binance_usdm, bot/venues/bybit): limits, clock, user stream
    # Entries stop at this share of each venue limit (weight/min, orders/10 s, orders/min); protective
    # orders (stops, reduce-only exits) may use the rest up to the limit itself.
    order_budget_frac: float = Field(0.8, gt=0, le=1)
    # An order waits at most this long for the limiter; longer -> RateLimited to the caller.
    limiter_max_wait_ms: int = Field(250, ge=0, le=10_000)
    # Entries are refused while |clock offset to the exchange| + rtt/2 exceeds this share of recv_window_ms.
    clock_max_offset_frac: float = Field(0.25, gt=0, le=1)
    # Re-measure the clock offset (GET /fapi/v1/time) this often; at once after a -1021.
    clock_resync_s: float = Field(60.0, ge=1, le=3600)
    # Look-ups by client id after an ambiguous placement (timeout/5xx), waiting this long before each.
    ambiguous_lookup_delays_ms: tuple[int, ...] = (0, 250, 1000)
    # listenKey keep-alive period (Binance closes the stream after 60 min without one).
    listen_key_keepalive_s: float = Field(1800.0, ge=5, le=3500)
    # A triggered stop's fills can arrive before the ALGO_UPDATE that links them; held this long.
    algo_link_wait_ms: int = Field(2000, ge=0, le=60_000)
    # No user-stream message (events or pongs) for this long -> reconnect and catch up by REST.
    user_stream_stale_ms: int = Field(600_000, ge=1000)
    # An order whose own answer (Binance newOrderRespType=RESULT) says it filled, while the user stream has
    # not delivered the fill this long after: its fills are fetched by REST and applied (once).
    ack_fill_grace_ms: int = Field(300, ge=0, le=10_000)
    # Continuous reconciliation (positions, open orders, algo orders vs the engine) every this many ms, and at
    # once after a failure, a user-stream doubt or a position that differs from the bot's. 0 = only on those
    # events. One pass weighs 5 + 2 per symbol (+1 per look-up) on Binance's 2400/min IP limit (exchange-facts
    # A2): 5000 ms with 2 symbols spends 108/min (4.5 %); the timer may take at most 10 % of the limit.
    reconcile_interval_ms: int = Field(5000, ge=0, le=600_000)
    # An order still without acknowledgement, or a market order still without its fill, this long after it
    # was sent is looked up by its client id (a reconciliation pass); if the user stream said nothing since
    # it was sent, the stream is in doubt (entries refused, the stream reconnected and caught up).
    inflight_check_ms: int = Field(2000, ge=100, le=60_000)
    # A fill or order change found by reconciliation that is older than this and the user stream never
    # delivered puts the stream in doubt.
    stream_doubt_grace_ms: int = Field(1500, ge=100, le=60_000)
    # Reconciliation of a position with no known plan: "stop" = a protective stop this far from the
    # entry price, "flatten" = close it at market. Either way an alert.
    unknown_position_action: Literal["stop", "flatten"] = "stop"
    # distance of that protective stop from the position's entry price (rounded away from the market)
    unknown_position_stop_bps: float = Field(50.0, gt=0, le=2000)
    # Bybit one-way mode positionIdx (0); hedge mode would be 1 (buy side) / 2 (sell side).
    bybit_position_idx: int = Field(0, ge=0, le=2)

    @field_validator("symbols")
    @classmethod
    def _upper(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError("at least one symbol is required")
        out = tuple(s.strip().upper() for s in v)
        for s in out:
            if not s.isalnum():
                raise ValueError(f"symbol {s!r} must be letters and digits only, e.g. 'BTCUSDT'")
        if len(set(out)) != len(out):
            raise ValueError("symbols must be unique")
        return out

    @model_validator(mode="after")
    def _reconcile_weight(self) -> VenueSection:
        """The reconciliation timer may take at most 10 % of Binance's 2400/min IP weight (exchange-facts A2):
        one pass weighs 5 (account) + 2 per symbol (open orders + open algo orders)."""
        if self.reconcile_interval_ms:
            per_min = (5 + 2 * len(self.symbols)) * 60_000 / self.reconcile_interval_ms
            if per_min > 240:
                low = -(-(5 + 2 * len(self.symbols)) * 60_000 // 240)
                raise ValueError(f"reconcile_interval_ms = {self.reconcile_interval_ms} spends {per_min:.0f} of "
                                 f"the 2400/min REST weight on reconciliation (over 10 %); use {low} or more")
        return self

    @model_validator(mode="after")
    def _sim_keys(self) -> VenueSection:
        """`scalper exchange-sim` accepts one well-known key pair (sim-key/sim-secret, public in the docs,
        good for nothing else): the exchange-sim environment uses it unless keys are given."""
        if self.environment == "exchange-sim" and not self.api_key.get_secret_value():
            object.__setattr__(self, "api_key", SecretStr("sim-key"))
            if not self.api_secret.get_secret_value():
                object.__setattr__(self, "api_secret", SecretStr("sim-secret"))
        return self


class MarketSection(FrozenModel):
    # Binance diff-depth stream speed: depth@100ms (default), depth@0ms (undocumented real-time), depth (250 ms).
    binance_depth_stream: Literal["depth@100ms", "depth@0ms", "depth", "depth@500ms"] = "depth@100ms"
    binance_trade_stream: Literal["aggTrade", "trade"] = "aggTrade"
    # GET /fapi/v1/depth limit; valid limits are exactly these (weight 2/2/2/2/5/10/20).
    snapshot_limit: Literal[5, 10, 20, 50, 100, 500, 1000] = 1000
    bybit_depth: Literal[1, 50, 200, 1000] = 200
    bybit_resync_on_gap: bool = True
    depth_bps: float = Field(200.0, gt=0, le=5000, description="book depth kept each side of the touch, bps")
    stale_after_ms: int = Field(5000, ge=100, le=600_000, description="no message for this long -> STALE")
    # Entries need a fresh book, not only a LIVE one: the watchdog above marks STALE after seconds, but a
    # scalper's 10-30 bps edge is gone in far less. An entry is refused (BOOK_STALE) and /health is
    # degraded when the book's last update is older than this, counted both as exchange event time ->
    # local receive above the lowest such lag seen (a stream falling behind; a constant clock offset is
    # not age) and as local receive -> now (a silent stream). Binance pushes
    # depth@100ms, so 500 ms is five missed pushes (a book that did not change at all for 500 ms is
    # refused too: nothing to scalp there); 0 turns the check off.
    max_book_age_ms: int = Field(500, ge=0, le=60_000, description="book older than this -> no entries")
    reconnect_min_ms: int = Field(250, ge=10)
    reconnect_max_ms: int = Field(30_000, ge=100)
    rollover_after_s: int = Field(
        23 * 3600 + 30 * 60, ge=60, le=24 * 3600, description="planned reconnect before the venue's 24 h cut"
    )
    bybit_ping_interval_s: float = Field(20.0, gt=0, le=60)
    # Planned rollover: the old connection is kept this long after the new one delivered its first
    # message, so nothing in flight on the old one is lost (duplicates are dropped by the book syncs).
    rollover_overlap_ms: int = Field(2000, ge=0, le=60_000)
    # websocket opening handshake (TCP + TLS + HTTP upgrade) must finish within this, else retry.
    ws_open_timeout_ms: int = Field(10_000, ge=100, le=120_000)
    # REST weight budget per minute (Binance REQUEST_WEIGHT 2400/min; exchangeInfo rateLimits override it).
    rest_weight_budget_per_min: int = Field(2400, ge=10)
    # Malformed venue messages are counted; one log line per this many (never one per message).
    malformed_log_every: int = Field(1000, ge=1)
