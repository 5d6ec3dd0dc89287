"""Market sources for the simulator: recorded sessions (as-is) and the seeded generator.

Both yield `Message(ts_ns, symbol, kind, data)` in time order, `data` being the ws-mode payload bytes
(the server re-wraps them per subscription) and `.raw` the combined-stream envelope. The engine can
also be fed the recorded lines directly (`SimExchange.on_message(record.raw, record.ts_recv_ns)`):
the splitting here is for the server's stream routing.

Recorded sessions play exactly as recorded: the REST snapshot inline (bare, or wrapped as
`<symbol>@depthSnapshot`), the diffs with their U/u/pu chain (a day pair given in order is one
session), trades and bookTickers. The session's receive time is the exchange clock of the replay.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import orjson

from bot.replay.reader import LineError, read_session
from bot.venues.sim.generator import Message
from bot.venues.sim.latency import Latency

__all__ = ["kind_of_stream", "replay_messages", "split_raw", "with_latency"]

_PREFIX = b'{"stream":"'


def kind_of_stream(rest: str) -> str | None:
    """Stream suffix after '<symbol>@' -> message kind (None: not served)."""
    if rest == "depthSnapshot":
        return "snapshot"
    if rest.startswith("depth"):
        head = rest.split("@", 1)[0]
        return "depth" if head == "depth" else None  # depth5/10/20 are partial books, not diffs
    if rest.startswith("bookTicker"):
        return "bookTicker"
    if rest.startswith("aggTrade"):
        return "aggTrade"
    if rest.startswith("trade"):
        return "trade"
    if rest.startswith("markPrice"):
        return "markPrice"
    return None


_EVENT_KIND = {"depthUpdate": "depth", "bookTicker": "bookTicker", "aggTrade": "aggTrade", "trade": "trade",
               "markPriceUpdate": "markPrice"}


def split_raw(raw: bytes, last_symbol: str = "") -> tuple[str, str, bytes] | None:
    """(symbol, kind, payload) of one recorded/generated line; None for lines that are not served."""
    if raw.startswith(_PREFIX):
        end = raw.index(b'"', len(_PREFIX))
        stream = raw[len(_PREFIX):end].decode()
        start = raw.index(b'"data":', end) + 7
        sym, _, rest = stream.partition("@")
        kind = kind_of_stream(rest)
        if kind is None:
            return None
        return sym.upper(), kind, raw[start:-1]
    if raw.startswith(b'{"lastUpdateId"'):
        return last_symbol, "snapshot", raw
    try:
        d = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    kind = _EVENT_KIND.get(d.get("e", "")) if isinstance(d, dict) else None
    if kind is None:
        return None
    return d.get("s", last_symbol), kind, raw


def replay_messages(paths: Iterable[str], errors: list[str] | None = None) -> Iterator[Message]:
    """The messages of a recorded session (several files merged by receive time, bot.replay.reader);
    unreadable lines go to `errors`. A bare REST snapshot is its file's: the symbol of the file's last
    diff, or, before the file's first diff, the symbol the market session places it on (the diff that
    bridges its lastUpdateId, bot.market.session): it is played just before that diff."""
    from bot.domain.events import DepthSnapshot
    from bot.market.session import MarketSession

    last: dict[str, str] = {}  # per file: the symbol of its last depth diff
    placer = MarketSession(book_tickers=False, bybit=False)
    waiting: dict[tuple[str, int], bytes] = {}  # (file, lastUpdateId) -> the bare snapshot's raw line
    for rec in read_session(paths):
        if isinstance(rec, LineError):
            if errors is not None:
                errors.append(str(rec))
            continue
        raw = rec.raw
        if raw.startswith(b'{"lastUpdateId"') and not last.get(rec.path):
            placer.decode(raw, rec.ts_recv_ns, rec.path, rec.lineno)
            src = placer.sources.get(rec.path)
            if src is not None and src.pending:
                waiting[(rec.path, src.pending[-1][0].last_update_id)] = raw
            continue
        got = split_raw(raw, last.get(rec.path, ""))
        if got is None:
            continue
        sym, kind, data = got
        if kind == "depth":
            last[rec.path] = sym
            if waiting:
                for ev in placer.decode(raw, rec.ts_recv_ns, rec.path, rec.lineno) or ():
                    if type(ev) is DepthSnapshot:
                        snap_raw = waiting.pop((rec.path, ev.last_update_id), None)
                        if snap_raw is not None:
                            yield Message(ev.ts_recv_ns, ev.symbol, "snapshot", snap_raw)
        if not sym:
            continue
        yield Message(rec.ts_recv_ns, sym, kind, data)


def with_latency(messages: Iterable[Message], latency: Latency) -> Iterator[tuple[int, Message]]:
    """(arrival ns, message): each message reaches us `latency.draw()` after its time, never before
    the previous one (one connection delivers in order)."""
    prev = 0
    for m in messages:
        t = m.ts_ns + latency.draw()
        if t < prev:
            t = prev
        prev = t
        yield t, m
