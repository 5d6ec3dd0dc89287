"""Is the user data stream telling us everything? A pure judgement, fed by the stream and by reconciliation.

The user stream is the bot's only fast source of fills: a stream that is down, or connected but silent while
something happened, leaves filled entries without stops. Its health is judged from evidence, never from
silence alone (a Binance user stream is legitimately silent while nothing happens, exchange-facts A4):
- down: the socket is not connected (lost, reconnecting, never connected);
- in doubt: connected, but
  * a probe failed (Binance: the listenKey keep-alive PUT was not answered; Bybit: no pong to our
    `op: ping` within the stale period, B2),
  * reconciliation found a fill or order change the stream never delivered (older than the grace the
    stream gets to deliver it), or
  * an order has been waiting for its acknowledgement or (market) fill longer than the in-flight check
    allows AND the stream has been silent since the order was sent.
A doubt is lifted only by fresh evidence: the stream reconnected and caught up by REST (the app asks for the
reconnect) and the reconciliation passes of a probation period after that (`probation_ns`, two timer
intervals by default in the app) found nothing missed; a probe that failed is lifted by its next success.
A renewed connection alone proves nothing (a muted stream stays muted after a reconnect), hence the probation.

While down or in doubt new entries are refused (the app halts entries on every symbol with a reason that
starts with `REASON_PREFIX`) and `/health` is degraded; protective orders and exits always go.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["REASON_PREFIX", "StreamHealth", "Transition"]

REASON_PREFIX = "user stream"  # the reason of the entry halts this judgement sets (lifted only by it)


@dataclass(frozen=True, slots=True)
class Transition:
    ok: bool  # entries allowed after the change
    reason: str  # why not (empty when ok)


class StreamHealth:
    def __init__(self, probation_ns: int = 0) -> None:
        self.probation_ns = probation_ns
        self.caught_up_ns = 0  # when the catch-up after the doubt finished
        self.connected = False
        self.ever_connected = False
        self.down_reason = "not connected yet"
        self.doubt = ""  # why the connected stream is in doubt ("" = not)
        self.doubt_since_ns = 0
        self.probe_failed = ""  # a failing keep-alive / ping probe (cleared by the next success)
        self.caught_up_since_doubt = False  # reconnected and caught up after the doubt arose
        self.last_msg_ns = 0
        self.doubts_total = 0
        self._reported = True  # what the last `transition()` reported as "entries ok"

    # ------------------------------------------------------------------ evidence from the stream
    def on_connected(self, now_ns: int) -> None:
        self.connected = self.ever_connected = True
        self.down_reason = ""
        self.last_msg_ns = max(self.last_msg_ns, now_ns)

    def on_lost(self, reason: str, now_ns: int) -> None:
        self.connected = False
        self.down_reason = reason or "connection lost"

    def on_message(self, now_ns: int) -> None:
        self.last_msg_ns = now_ns

    def on_caught_up(self, now_ns: int) -> None:
        """The REST catch-up after a (re)connect finished: what the stream missed has been applied."""
        if self.doubt:
            self.caught_up_since_doubt = True
            self.caught_up_ns = now_ns

    def on_probe(self, ok: bool, detail: str, now_ns: int) -> None:
        """A keep-alive / ping answer (ok) or its failure."""
        if ok:
            self.probe_failed = ""
            self.last_msg_ns = max(self.last_msg_ns, now_ns)
        else:
            self.probe_failed = detail or "probe failed"

    # ------------------------------------------------------------------ evidence from reconciliation
    def on_missed(self, detail: str, now_ns: int) -> None:
        """Reconciliation (or the in-flight check) found a change the stream did not deliver."""
        if not self.doubt:
            self.doubt_since_ns = now_ns
            self.doubts_total += 1
        self.doubt = detail
        self.caught_up_since_doubt = False

    def on_clean_pass(self, now_ns: int) -> None:
        """A complete reconciliation pass found nothing missed: a doubt ends if the stream was renewed since."""
        if self.doubt and self.caught_up_since_doubt and self.connected and \
                now_ns - self.caught_up_ns >= self.probation_ns:
            self.doubt = ""
            self.caught_up_since_doubt = False

    def silent_since(self, sent_ns: int) -> bool:
        """No stream message since `sent_ns` (an order sent then has had no word from the stream)."""
        return self.last_msg_ns < sent_ns

    # ------------------------------------------------------------------ reads
    def reason(self) -> str:
        """Why entries must wait ("" = they need not)."""
        if not self.connected:
            return f"{REASON_PREFIX} down: {self.down_reason}"
        if self.doubt:
            return f"{REASON_PREFIX} in doubt: {self.doubt}"
        if self.probe_failed:
            return f"{REASON_PREFIX} in doubt: {self.probe_failed}"
        return ""

    def entries_ok(self) -> bool:
        return not self.reason()

    def transition(self) -> Transition | None:
        """The change since the last call (for one alert per transition), or None. Before the first connect
        nothing is reported: the start-up halt (reconciling) covers that time."""
        if not self.ever_connected:
            return None
        ok = self.entries_ok()
        if ok is self._reported:
            return None
        self._reported = ok
        return Transition(ok, self.reason())
