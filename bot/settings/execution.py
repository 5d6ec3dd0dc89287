"""Config section: the trade lifecycle (entries, stops, take-profits, time exits)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from bot.settings.core import FrozenModel

__all__ = ["ExecutionSection"]


class ExecutionSection(FrozenModel):
    """[execution] keys. Owned by the execution layer; every key has a unit in its name and a comment."""

    # -- entry --
    # entry: the execution style (docs/costs.md "Execution styles"). taker: an IOC limit (or market) through the touch,
    # today's entry; maker: post-only (GTX / Bybit PostOnly) at our own side's touch, repriced at most
    # entry_reprice_max times when the touch moves away, cancelled after entry_timeout_ms (never takes);
    # maker_then_taker: as maker, then at the timeout an IOC through the touch at the plan's limit when the
    # price still allows it (gated and sized at taker costs up front, so the cross always passes the gate).
    # `entry_order` (the order type of a taker entry) is the older key: limit_post_only means entry=maker.
    entry: Literal["taker", "maker", "maker_then_taker"] = "taker"
    entry_reprice_max: int = Field(3, ge=0, le=100)  # re-posts of a resting maker entry (the touch moved away)
    tp_post_only: bool = True  # take-profits as reduce-only post-only limits (a crossing one: plain GTC limit)
    # limit_ioc: LIMIT IOC through the touch by entry_offset_ticks (taker, bounded slippage);
    # limit_post_only: the same as entry = "maker" (LIMIT GTX at our own touch; may not fill);
    # market: MARKET (sized as if it filled entry_offset_ticks worse than the reference).
    entry_order: Literal["limit_ioc", "limit_post_only", "market"] = "limit_ioc"
    entry_offset_ticks: int = Field(2, ge=0, le=1000)
    entry_timeout_ms: int = Field(3000, ge=10)  # a resting entry still unfilled after this is cancelled
    # An entry whose outcome was unknown (5xx / -1007 "execution status unknown", a timeout) and that its
    # look-ups then did not find may still reach the book seconds later (exchange-facts A2: 5XX = status
    # UNKNOWN, reconcile instead of assuming failure). Its symbol takes no entry, either side, until this has
    # passed and a final look-up by client id still says "not found" (or the order executed: its trade
    # reopens and is protected). 10 000 ms: past the signed request's recvWindow (venue.recv_window_ms, 5000
    # by default; ccxt sends 10 000), after which the matching engine refuses it (-5028, exchange-facts A2).
    # 0: off (an opposite-side entry could then net against the late fill; not recommended).
    unknown_entry_quarantine_ms: int = Field(10_000, ge=0, le=600_000)
    # order_transport: how orders reach the venue. rest: signed HTTPS requests (today's path); ws: the venue's
    # authenticated order-entry websocket (Binance USD-M WebSocket API, Bybit v5 /v5/trade), with REST as the
    # fallback while that socket is down; the same client order ids and error translation either way.
    order_transport: Literal["rest", "ws"] = "rest"
    # warm_interval_ms: keep the entry path hot (bot/execution/warm.py). This often, between market messages, the bot
    # runs an entry's path on one symbol that could take one, up to the signature (risk and sizing, the request, the
    # order gate, the venue's build + sign), and drops it: nothing is sent, counted or journaled. Idle for a few ms,
    # that path leaves the CPU's caches and runs ~1.5x slower (docs/architecture.md "Entry path latency").
    # Measured against the loopback exchange process (tick-to-order p50, recorded BTCUSDT / generated market) and
    # the bot's CPU: 0 (off) 286 / 259-302 us, 1.8 % of a core; 5 ms 262 / 207 us, 4.5 %; 1 ms 222 / 174 us,
    # 10 %; below 1 ms the loop spins (a warm-up at every turn, it never sleeps): 187 / 134 us, one whole core:
    # for a VPS where the bot has a core of its own. 0: off (the in-process sim: always off).
    warm_interval_ms: float = Field(5.0, ge=0.0, le=60_000.0)

    # -- protective stop (STOP_MARKET, reduce-only, at the venue) --
    stop_trigger: Literal["mark", "last"] = "mark"  # workingType MARK_PRICE | CONTRACT_PRICE
    stop_confirm_timeout_ms: int = Field(500, ge=10, le=60_000)  # not acknowledged by then -> flatten, halt symbol

    # -- take-profit tiers (reduce-only LIMIT) when the intent carries no targets --
    tp_r_multiples: tuple[float, ...] = (1.0, 2.0)  # target distance in R (initial stop distance)
    tp_fractions: tuple[float, ...] = (0.5, 0.5)  # of the position per tier, sum 1
    breakeven_after_tp1: bool = True  # after TP1 fills the stop goes to entry ± fees, resized to the rest

    # -- scale-in (seed 001): N increments, each after price moved in favour by its trigger --
    scale_in_fractions: tuple[float, ...] = ()  # e.g. (0.3, 0.4, 0.3); empty: one entry
    scale_in_trigger_r: tuple[float, ...] = ()  # favourable move in R before add 2, add 3, ... (len N-1)
    scale_in_stop_buffer_ticks: int = Field(1, ge=0)  # stop this far under the previous add's entry

    # -- trailing stop: the protective stop follows the best price once in profit --
    trailing_activation_r: float = Field(0.0, ge=0)  # 0: off; start trailing after this many R in favour
    trailing_callback_bps: float = Field(10.0, gt=0, le=2000)  # stop this far behind the best price
    trailing_min_move_ticks: int = Field(2, ge=1)  # move the stop only by at least this much (order budget)

    # -- time exits (deadlines, not polling) --
    no_progress_s: float = Field(60.0, ge=0)  # 0: off; flat at market if no progress by then (seed 000)
    no_progress_min_r: float = Field(0.3, ge=0)  # progress = this many R in favour ...
    no_progress_min_ticks: int = Field(0, ge=0)  # ... or this many ticks (0: R only)
    max_hold_s: float = Field(900.0, gt=0)  # hard limit (the intent's time_limit_s when shorter)

    @model_validator(mode="before")
    @classmethod
    def _unify_entry(cls, data: Any) -> Any:
        """`entry` and the older `entry_order` describe one choice: either key alone works; both must agree."""
        if not isinstance(data, dict):
            return data
        style, order = data.get("entry"), data.get("entry_order")
        if style is None and order == "limit_post_only":
            return {**data, "entry": "maker"}
        if style in ("maker", "maker_then_taker") and order is None:
            return {**data, "entry_order": "limit_post_only"}
        if style is not None and order is not None and (style == "taker") == (order == "limit_post_only"):
            raise ValueError(f"execution.entry = {style!r} contradicts execution.entry_order = {order!r}: "
                             "remove entry_order (entry = taker | maker | maker_then_taker says it all)")
        return data

    @model_validator(mode="after")
    def _check(self) -> ExecutionSection:
        if len(self.tp_fractions) != len(self.tp_r_multiples):
            raise ValueError("tp_fractions and tp_r_multiples must have the same length")
        if self.tp_fractions and abs(sum(self.tp_fractions) - 1.0) > 1e-9:
            raise ValueError(f"tp_fractions must sum to 1, got {sum(self.tp_fractions)}")
        if self.scale_in_fractions:
            if abs(sum(self.scale_in_fractions) - 1.0) > 1e-9:
                raise ValueError(f"scale_in_fractions must sum to 1, got {sum(self.scale_in_fractions)}")
            if len(self.scale_in_trigger_r) != len(self.scale_in_fractions) - 1:
                raise ValueError("scale_in_trigger_r needs one trigger per add (len(scale_in_fractions) - 1)")
            if any(r <= 0 for r in self.scale_in_trigger_r) or list(self.scale_in_trigger_r) != sorted(
                    self.scale_in_trigger_r):
                raise ValueError("scale_in_trigger_r must be > 0 and ascending (adds only in favour)")
        return self
