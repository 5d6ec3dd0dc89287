"""The risk gate: a trading state (ACTIVE / REDUCING / HALTED) and the limits every order passes.

Pure and clock-free: every call takes `now_ns`. Entries (orders that add exposure) are checked against
everything; protective and reducing orders (stops, take-profits, flattening) are counted in the rate
windows but never denied: refusing a stop would leave a position unprotected, which is the one thing
the bot must never do (architecture.md habit 9).

- HALTED: no new entries until the next UTC day (daily loss limit, drawdown from the day's peak) or
  an operator `reset`; a halt by hand or after a failed stop stays until `reset`.
- REDUCING: no new entries, exits allowed (reached `reducing_at_loss_fraction` of the daily limit,
  or set by the operator); back to ACTIVE on the next UTC day or `reset`.
- Per symbol: `halt_symbol` (a stop that was not confirmed in time) blocks entries on that symbol until
  `lift_symbol` or an operator `reset`; `symbol_halts()` is the read-only view the ops endpoints show.
- Per symbol, `quarantine`: an entry that answered "execution status unknown" (5xx, -1007, a timeout) and
  was then not found by its client id may still execute (exchange-facts A2: 5XX = status UNKNOWN). Until
  its fate is certain (`release`: it executed, or a final look-up after the quarantine said not found) no
  entry either side there: the opposite side would net against it (one-way mode). Never blocks exits or
  stops; an operator `reset` does not lift it (only the order's fate does).
Every denial is counted by reason (`denials`) and kept for the journal (`last_denial`).
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from bot.domain.types import CloseReason
from bot.risk.reasons import Denial, DenyReason

if TYPE_CHECKING:
    from bot.settings.risk import RiskSection

__all__ = ["DAY_NS", "MarketView", "RiskGate", "TradingState"]

DAY_NS = 86_400 * 1_000_000_000
_LIMIT_CODES = frozenset({DenyReason.DAILY_LOSS_LIMIT, DenyReason.MAX_DRAWDOWN})  # halts reset_limits lifts
_S = 1_000_000_000


class TradingState(StrEnum):
    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    HALTED = "HALTED"


@dataclass(frozen=True, slots=True)
class MarketView:
    """What the gate needs to know about the market of one symbol at the time of an entry."""

    book_live: bool = True
    spread_bps: float = 0.0
    next_funding_ns: int = 0  # 0: unknown / no funding (the window check is skipped)
    # Age of the book's last update (BookHealth.age_ms) and the limit (market.max_book_age_ms; 0 = no
    # check): a LIVE book can be seconds old before the watchdog marks it STALE.
    book_age_ms: float = 0.0
    max_book_age_ms: float = 0.0
    # Costs (bot.risk.costs): the book's expected slippage at the planned size in bps (0 = not measured:
    # risk.slippage_bps applies) and the next funding's rate in bps (0 = unknown: no funding cost).
    impact_bps: float = 0.0
    funding_rate_bps: float = 0.0
    # The symbol's depth book (bot.market.book.OrderBook) when the caller has one: the risk manager sweeps it
    # at the size it plans (known only after sizing) for the expected slippage; None = not measured.
    book: object | None = None


class RiskGate:
    def __init__(self, cfg: RiskSection, equity: float, now_ns: int) -> None:
        self.cfg = cfg
        self.state = TradingState.ACTIVE
        self.state_reason = ""
        self.halt_until_ns = 0  # 0: until an operator reset
        self.halt_code = DenyReason.HALTED  # what an entry denied while HALTED is counted as
        self.halted_symbols: dict[str, str] = {}
        self._symbol_halted_ns: dict[str, int] = {}  # when each halt began (valid while in halted_symbols)
        # symbol -> {client id of an entry of unknown fate: end of its quarantine (ns)}
        self.quarantined: dict[str, dict[str, int]] = {}
        self.denials: Counter[str] = Counter()
        self.last_denial: Denial | None = None
        # dry: a warm-up runs the checks (bot/execution/warm.py): denials are not counted, orders not recorded
        self.dry = False
        # (ts_ns, entity 'gate'|'symbol', entity id, from, to, reason), drained by the engine into the journal
        self.state_changes: list[tuple[int, str, str, str, str, str]] = []
        self._day = now_ns // DAY_NS
        self.day_start_equity = equity
        self.day_peak_equity = equity
        self.equity = equity
        self.consecutive_losses = 0
        self.streak_until_ns = 0
        self.setup_until_ns: dict[tuple[str, str], int] = {}
        self.open_notional: dict[str, float] = {}  # symbol -> notional of its open trade
        self._sent_1s: deque[int] = deque()
        self._sent_60s: deque[int] = deque()

    # -- trading state --------------------------------------------------------------------------------
    def _set(self, state: TradingState, reason: str, now_ns: int, until_ns: int = 0) -> None:
        if state is self.state and reason == self.state_reason:
            return
        self.state_changes.append((now_ns, "gate", "risk", self.state.value, state.value, reason))
        self.state, self.state_reason, self.halt_until_ns = state, reason, until_ns

    def halt(self, reason: str, now_ns: int, until_next_day: bool = False,
             code: DenyReason = DenyReason.HALTED) -> None:
        until = (now_ns // DAY_NS + 1) * DAY_NS if until_next_day else 0
        self.halt_code = code
        self._set(TradingState.HALTED, reason, now_ns, until)

    def reduce(self, reason: str, now_ns: int) -> None:
        if self.state is not TradingState.HALTED:
            self._set(TradingState.REDUCING, reason, now_ns, (now_ns // DAY_NS + 1) * DAY_NS)

    def reset(self, now_ns: int) -> None:
        """Operator reset: ACTIVE, symbol halts lifted, streaks cleared, a fresh day baseline."""
        self.halted_symbols.clear()
        self.consecutive_losses = 0
        self.streak_until_ns = 0
        self.day_start_equity = self.day_peak_equity = self.equity
        self._set(TradingState.ACTIVE, "operator reset", now_ns)

    def resume(self, reason: str, now_ns: int) -> None:
        """Operator resume: ACTIVE again. Unlike `reset`, the day's baselines and the loss streak stay: a
        resume never undoes a loss limit (`reset_limits` does, confirmed and journaled)."""
        self._set(TradingState.ACTIVE, reason, now_ns)

    def reset_limits(self, reason: str, now_ns: int) -> None:
        """Operator: fresh daily-loss and drawdown baselines (from the current equity), loss streak
        cleared; a halt by those limits (or REDUCING near them) is lifted, any other halt stays. Always one
        state-change row (entity "limits") for the journal."""
        before = self.state
        self.day_start_equity = self.day_peak_equity = self.equity
        self.consecutive_losses = 0
        self.streak_until_ns = 0
        limit_halt = self.state is TradingState.HALTED and self.halt_code in _LIMIT_CODES
        if self.state is TradingState.REDUCING or limit_halt:
            self.state, self.state_reason, self.halt_until_ns = TradingState.ACTIVE, reason, 0
            self.halt_code = DenyReason.HALTED
        self.state_changes.append((now_ns, "limits", "risk", before.value, self.state.value,
                                   f"{reason}; day baseline {self.equity:.2f}"))

    def restore_day(self, closed: list[tuple[int, str, str, float, CloseReason]], now_ns: int) -> None:
        """After a restart: the day's loss baseline, peak, loss streak and setup cooldowns from the trades
        closed today (exit_ns, symbol, setup, net pnl, reason; oldest first, those since an operator's
        `reset_limits` only), so a restart never resets a loss limit. The baseline is today's equity less
        today's realized results (unrealized moves and transfers today are not known: a deposit makes it
        stricter, a withdrawal looser)."""
        self._day = now_ns // DAY_NS
        start = self.equity - sum(c[3] for c in closed)
        self.day_start_equity = self.day_peak_equity = start
        running = start
        for exit_ns, symbol, setup, pnl, reason in closed:
            running += pnl
            self.day_peak_equity = max(self.day_peak_equity, running)
            self.on_trade_closed(symbol, setup, pnl, reason, exit_ns)
        self.day_peak_equity = max(self.day_peak_equity, self.equity)

    def halt_symbol(self, symbol: str, reason: str, now_ns: int) -> None:
        if symbol not in self.halted_symbols:  # a second halt keeps the first one's start
            self._symbol_halted_ns[symbol] = now_ns
        self.halted_symbols[symbol] = reason
        self.state_changes.append((now_ns, "symbol", symbol, "ACTIVE", "HALTED", reason))

    def lift_symbol(self, symbol: str, reason: str, now_ns: int) -> bool:
        """Operator: entries on `symbol` again; the trading state, streaks and the day's baseline are
        untouched (unlike `reset`). False when the symbol was not halted."""
        if self.halted_symbols.pop(symbol, None) is None:
            return False
        self.state_changes.append((now_ns, "symbol", symbol, "HALTED", "ACTIVE", reason))
        return True

    def quarantine(self, symbol: str, client_id: str, until_ns: int, now_ns: int,
                   why: str = "outcome unknown, not found") -> None:
        """No entry on `symbol` while `client_id` (an entry given up as "not found" after an ambiguous
        outcome) may still execute; its final look-up is due at `until_ns` (the engine's timer). `why`: for
        the journal (a restart restoring it says so)."""
        held = self.quarantined.setdefault(symbol, {})
        old = "QUARANTINED" if held else "ACTIVE"
        held[client_id] = until_ns
        at = f"+{(until_ns - now_ns) / 1e9:.1f} s" if until_ns > now_ns else "now (past due)"
        self.state_changes.append((now_ns, "quarantine", symbol, old, "QUARANTINED",
                                   f"{client_id}: {why}; final look-up at {at}"))

    def release(self, symbol: str, client_id: str, reason: str, now_ns: int) -> bool:
        """`client_id`'s fate is certain (it executed: its trade is live again; or the final look-up said
        not found). False when it was not quarantined (already released)."""
        held = self.quarantined.get(symbol)
        if held is None or held.pop(client_id, None) is None:
            return False
        if not held:
            del self.quarantined[symbol]
        self.state_changes.append((now_ns, "quarantine", symbol, "QUARANTINED",
                                   "QUARANTINED" if held else "ACTIVE", f"{client_id}: {reason}"))
        return True

    def symbol_halts(self) -> dict[str, tuple[str, int]]:
        """Read-only view: symbol -> (reason, since_ns) of every halted symbol (a copy)."""
        since = self._symbol_halted_ns
        return {sym: (reason, since.get(sym, 0)) for sym, reason in self.halted_symbols.items()}

    def _roll_day(self, now_ns: int) -> None:
        day = now_ns // DAY_NS
        if day != self._day:
            self._day = day
            self.day_start_equity = self.day_peak_equity = self.equity
            if self.state is not TradingState.ACTIVE and self.halt_until_ns and now_ns >= self.halt_until_ns:
                self._set(TradingState.ACTIVE, "new trading day", now_ns)

    # -- account and trade results --------------------------------------------------------------------
    def on_equity(self, equity: float, now_ns: int) -> None:
        """Mark-to-market equity (wallet + unrealized). Drives the daily loss and drawdown halts."""
        self.equity = equity
        self._roll_day(now_ns)
        self.day_peak_equity = max(self.day_peak_equity, equity)
        loss_pct = (self.day_start_equity - equity) / self.day_start_equity * 100.0
        dd_pct = (self.day_peak_equity - equity) / self.day_peak_equity * 100.0
        if self.state is TradingState.HALTED:
            return
        if loss_pct >= self.cfg.daily_loss_limit_pct:
            self.halt(f"{DenyReason.DAILY_LOSS_LIMIT.value}: day loss {loss_pct:.2f}% >= "
                      f"{self.cfg.daily_loss_limit_pct}%", now_ns, True, DenyReason.DAILY_LOSS_LIMIT)
        elif dd_pct >= self.cfg.max_drawdown_pct:
            self.halt(f"{DenyReason.MAX_DRAWDOWN.value}: {dd_pct:.2f}% from the day's peak >= "
                      f"{self.cfg.max_drawdown_pct}%", now_ns, True, DenyReason.MAX_DRAWDOWN)
        elif loss_pct >= self.cfg.daily_loss_limit_pct * self.cfg.reducing_at_loss_fraction:
            self.reduce(f"day loss {loss_pct:.2f}% near the limit", now_ns)

    def on_position(self, symbol: str, notional: float) -> None:
        """Notional of the symbol's open trade (0 when flat)."""
        if notional > 0:
            self.open_notional[symbol] = notional
        else:
            self.open_notional.pop(symbol, None)

    def on_trade_closed(self, symbol: str, setup: str, pnl: float, reason: CloseReason, now_ns: int) -> None:
        self.open_notional.pop(symbol, None)
        if pnl < 0:
            self.consecutive_losses += 1
            if self.consecutive_losses >= self.cfg.max_consecutive_losses:
                self.streak_until_ns = now_ns + int(self.cfg.loss_streak_cooldown_s * _S)
                self.consecutive_losses = 0
        else:
            self.consecutive_losses = 0
        if reason is CloseReason.STOP_LOSS:
            self.setup_until_ns[(setup, symbol)] = now_ns + int(self.cfg.setup_cooldown_s * _S)

    # -- checks ---------------------------------------------------------------------------------------
    def _deny(self, reason: DenyReason, detail: str = "") -> Denial:
        d = Denial(reason, detail)
        if not self.dry:
            self.denials[reason.value] += 1
            self.last_denial = d
        return d

    def check_entry(self, symbol: str, setup: str, market: MarketView, now_ns: int) -> Denial | None:
        """Before sizing: state, cooldowns, positions, market conditions."""
        self._roll_day(now_ns)
        cfg = self.cfg
        if self.state is TradingState.HALTED:
            return self._deny(self.halt_code, self.state_reason)
        if self.state is TradingState.REDUCING:
            return self._deny(DenyReason.REDUCING, self.state_reason)
        if symbol in self.halted_symbols:
            return self._deny(DenyReason.SYMBOL_HALTED, self.halted_symbols[symbol])
        held = self.quarantined.get(symbol)
        if held:
            cid, until = min(held.items(), key=lambda kv: kv[1])
            left = f"final look-up in {(until - now_ns) / _S:.1f} s" if until > now_ns else "final look-up pending"
            return self._deny(DenyReason.ENTRY_OUTCOME_UNKNOWN, f"{cid} may still execute; {left}")
        if symbol in self.open_notional:
            return self._deny(DenyReason.POSITION_OPEN, symbol)
        if len(self.open_notional) >= cfg.max_open_positions:
            return self._deny(DenyReason.MAX_OPEN_POSITIONS, f"{len(self.open_notional)} open")
        if now_ns < self.streak_until_ns:
            left_s = (self.streak_until_ns - now_ns) / _S
            return self._deny(DenyReason.LOSS_STREAK_COOLDOWN, f"{left_s:.0f}s left")
        until = self.setup_until_ns.get((setup, symbol), 0)
        if now_ns < until:
            return self._deny(DenyReason.SETUP_COOLDOWN, f"{setup} {(until - now_ns) / _S:.0f}s left")
        if cfg.require_live_book and not market.book_live:
            return self._deny(DenyReason.BOOK_NOT_LIVE, symbol)
        if market.max_book_age_ms and not market.book_age_ms <= market.max_book_age_ms:  # NaN/inf: stale
            return self._deny(DenyReason.BOOK_STALE,
                              f"{symbol} {market.book_age_ms:.0f} > {market.max_book_age_ms:.0f} ms")
        if market.spread_bps > cfg.max_spread_bps:
            return self._deny(DenyReason.SPREAD_TOO_WIDE,
                              f"{market.spread_bps:.2f} > {cfg.max_spread_bps} bps")
        if market.next_funding_ns and cfg.funding_window_s > 0:
            window = int(cfg.funding_window_s * _S)
            # Funding is paid at the instant; the window covers both sides of it (the previous instant
            # is next - 8 h, which the caller reports as next once it has passed).
            if abs(market.next_funding_ns - now_ns) <= window:
                in_s = (market.next_funding_ns - now_ns) / _S
                return self._deny(DenyReason.FUNDING_WINDOW, f"funding in {in_s:.0f}s")
        return None

    def check_costs(self, symbol: str, cost_r: float, cost_bps: float,
                    first_target_net_r: float | None) -> Denial | None:
        """After sizing: the round trip must not take more than `max_cost_r` of the trade's R, and the
        first target must net at least `min_target_net_r` after it (None: the intent carries no target,
        the check is skipped). NaN counts as a denial."""
        cfg = self.cfg
        if not cost_r <= cfg.max_cost_r:
            return self._deny(DenyReason.COST_TOO_HIGH,
                              f"{symbol} {cost_r:.3f} R ({cost_bps:.2f} bps) > max_cost_r {cfg.max_cost_r}")
        if first_target_net_r is not None and not first_target_net_r >= cfg.min_target_net_r:
            return self._deny(DenyReason.TARGET_BELOW_COST,
                              f"{symbol} first target nets {first_target_net_r:.3f} R after {cost_bps:.2f} bps"
                              f" < min_target_net_r {cfg.min_target_net_r}")
        return None

    def check_notional(self, symbol: str, notional: float) -> Denial | None:
        """After sizing: the notional limits, per symbol and in total."""
        if notional > self.cfg.max_notional_per_symbol_usd:
            return self._deny(DenyReason.MAX_SYMBOL_NOTIONAL,
                              f"{notional:.0f} > {self.cfg.max_notional_per_symbol_usd:.0f}")
        total = sum(self.open_notional.values()) + notional
        if total > self.cfg.max_total_notional_usd:
            return self._deny(DenyReason.MAX_TOTAL_NOTIONAL,
                              f"{total:.0f} > {self.cfg.max_total_notional_usd:.0f}")
        return None

    def check_order(self, now_ns: int, reduces: bool, symbol: str = "") -> Denial | None:
        """Every order passes here right before it is sent. Counted always; only orders that add to a
        position are denied (entries and scale-ins): a symbol halt (an unowned size, a user stream in
        doubt, a stop refused) stops adds to an open trade there too, never its stop or exits."""
        one_s, one_min = self._sent_1s, self._sent_60s
        while one_s and one_s[0] <= now_ns - _S:
            one_s.popleft()
        while one_min and one_min[0] <= now_ns - 60 * _S:
            one_min.popleft()
        if not reduces:
            if self.state is TradingState.HALTED:
                return self._deny(self.halt_code, self.state_reason)
            if symbol in self.halted_symbols:
                return self._deny(DenyReason.SYMBOL_HALTED, self.halted_symbols[symbol])
            if len(one_s) >= self.cfg.max_orders_per_s:
                return self._deny(DenyReason.RATE_PER_SECOND, f"{len(one_s)} orders in the last second")
            if len(one_min) >= self.cfg.max_orders_per_min:
                return self._deny(DenyReason.RATE_PER_MINUTE, f"{len(one_min)} orders in the last minute")
        if not self.dry:
            one_s.append(now_ns)
            one_min.append(now_ns)
        return None

    def drain_state_changes(self) -> list[tuple[int, str, str, str, str, str]]:
        out, self.state_changes = self.state_changes, []
        return out
