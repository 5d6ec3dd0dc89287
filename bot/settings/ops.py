"""Config section: health/metrics endpoint, control, alerts.

Secrets (`ops.token`, `ops.alerts.bot_token`, `ops.alerts.webhook_url`) come only from the environment
(`SCALPER__OPS__TOKEN`, `SCALPER__OPS__ALERTS__BOT_TOKEN`, `SCALPER__OPS__ALERTS__WEBHOOK_URL`) or the
secrets file (`[ops] token = ...`, `[ops.alerts] webhook_url = ...`); `load_settings` rejects a config
file that carries them.
"""

from __future__ import annotations

import ipaddress

from pydantic import Field, SecretStr, field_validator, model_validator

from bot.settings.core import FrozenModel

__all__ = ["ALERT_KINDS", "AlertsSection", "OpsSection", "is_loopback_host"]

# Every kind of alert bot.ops.alerts knows; `ops.alerts.kinds` picks a subset.
ALERT_KINDS = ("fill", "stop_out", "halt", "resume", "feed_lost", "feed_restored", "emergency",
               "daily_summary", "error")


def is_loopback_host(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and 'localhost' (the only binds allowed without a token)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class AlertsSection(FrozenModel):
    """[ops.alerts]: Telegram and/or a generic JSON webhook. Both off when their secret is empty."""

    enabled: bool = True  # master switch; with no sink configured alerts are only counted
    # Telegram Bot API: POST {telegram_api_url}/bot<bot_token>/sendMessage. The URL is configurable
    # so tests (and a self-hosted Bot API server) can point it elsewhere.
    telegram_api_url: str = "https://api.telegram.org"
    telegram_chat_id: str = ""  # numeric chat id or @channel; empty = Telegram off
    bot_token: SecretStr = SecretStr("")  # secret: SCALPER__OPS__ALERTS__BOT_TOKEN or the secrets file
    webhook_url: SecretStr = SecretStr("")  # secret (URLs often embed a key): env or secrets file only
    # Which kinds are sent; others are counted and dropped.
    kinds: tuple[str, ...] = ALERT_KINDS
    # Per kind, at most this many alerts in any rolling minute; the excess is counted and reported
    # with the next alert of that kind ("+N suppressed"). Protects the operator's phone and the
    # Telegram limit (about 20 messages a minute to one group).
    max_per_kind_per_min: int = Field(6, ge=1, le=600)
    queue_size: int = Field(256, ge=1, le=100_000)  # bounded; full -> the new alert is dropped and counted
    send_timeout_ms: int = Field(5000, ge=100, le=60_000)  # per HTTP request to a sink
    # Hour (UTC) at which the app sends the daily summary (Alerts.next_daily_summary_ns); -1 = never.
    daily_summary_hour_utc: int = Field(0, ge=-1, le=23)

    @field_validator("kinds")
    @classmethod
    def _known_kinds(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        bad = [k for k in v if k not in ALERT_KINDS]
        if bad:
            raise ValueError(f"unknown alert kind(s) {bad}; allowed: {list(ALERT_KINDS)}")
        return v

    @field_validator("telegram_api_url")
    @classmethod
    def _http_url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v.rstrip("/")


class OpsSection(FrozenModel):
    """[ops] keys. Owned by the ops layer; every key has a unit in its name and a comment."""

    enabled: bool = True  # serve /health, /metrics, /status and /control/* while the bot runs
    host: str = "127.0.0.1"  # bind address; anything but loopback requires `token`
    port: int = Field(9310, ge=0, le=65535)  # 0 = any free port (tests)
    # Bearer token for /status and /control/* (and /metrics when metrics_require_token). Secret: only
    # from SCALPER__OPS__TOKEN or the secrets file. Required when `host` is not loopback.
    token: SecretStr = SecretStr("")
    metrics_require_token: bool = False  # Prometheus can send it (authorization: credentials_file)
    last_errors_max: int = Field(50, ge=1, le=10_000)  # last errors kept for /status
    # The user data stream counts as stale (health: degraded) after this long without a message or
    # keep-alive; 0 = only the status the venue layer reports.
    user_stream_stale_after_ms: int = Field(0, ge=0, le=3_600_000)
    # The account (equity, free margin) is fetched by REST after every closed trade and at least this often
    # (0 = only after closes). Binance GET /fapi/v2/account weighs 5 of the 2400/min IP limit (exchange-facts
    # A2): every 60 s costs 5/min, where the former twice-a-second refresh spent 600/min.
    account_check_s: float = Field(60.0, ge=0, le=3600)
    alerts: AlertsSection = AlertsSection()

    @field_validator("host")
    @classmethod
    def _host(cls, v: str) -> str:
        v = v.strip()
        if not v:
            raise ValueError("must not be empty; use 127.0.0.1 to serve locally only")
        return v

    @model_validator(mode="after")
    def _token_beyond_loopback(self) -> OpsSection:
        # Control endpoints can flatten positions: never expose them unauthenticated.
        if self.enabled and not is_loopback_host(self.host) and not self.token.get_secret_value():
            raise ValueError(
                f"ops.host = {self.host!r} is beyond loopback: set SCALPER__OPS__TOKEN (or [ops] token in "
                "the secrets file), or bind 127.0.0.1"
            )
        return self
