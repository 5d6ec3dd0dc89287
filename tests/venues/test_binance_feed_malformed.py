"""BinanceMarketFeed over real websockets (the loopback replay server of tests/support) while the issue's
malformed values arrive in the stream (issue 11 item 4): a bad level inside an in-sequence diff, `u` as a
string, a NaN mark price. The feed counts each, resyncs only the damaged book over the same socket, comes
back LIVE, and its book matches Binance's own bookTicker statements afterwards (0 mismatches)."""

from __future__ import annotations

import orjson

from bot.market.health import BookStatus
from tests.conftest import SESSIONS, needs_data
from tests.support import until
from tests.support.replay_server import BinanceReplayServer, load_binance_items
from tests.venues.test_binance_feed import BTC, Harness

pytestmark = [needs_data]

BAD_LEVELS = [["abc", "1"], ["NaN", "1"], ["1e400", "1"], ["60000.0", "1", "2"], ["60000.0", "-1"]]


class CorruptingServer(BinanceReplayServer):
    """Corrupts the next in-sequence BTC depth diff it sends with `edit` (the reference book keeps the
    true one, so the snapshot the feed then asks for is right)."""

    def __init__(self, *a: object, **kw: object) -> None:
        super().__init__(*a, unknown_fields=True, **kw)  # type: ignore[arg-type]
        self.edits: list = []
        self.corrupted = 0

    def unknown(self, raw: bytes) -> bytes:  # called for every message sent (unknown_fields=True)
        if self.edits and b'"depthUpdate"' in raw[:120] and b'"s":"BTCUSDT"' in raw:
            msg = orjson.loads(raw)
            self.edits.pop(0)(msg["data"])
            self.corrupted += 1
            return orjson.dumps(msg)
        return raw


async def test_bad_values_in_the_stream_resync_that_book_and_the_feed_goes_on() -> None:
    items = load_binance_items([SESSIONS["btcusdt_20240808"]], 12_000)
    async with CorruptingServer(items, speed=10) as srv, Harness(srv, [BTC]) as h:
        sync = h.feed.syncs[BTC]
        await until(lambda: h.live(BTC) and h.checked[BTC] >= 5, limit_s=30)
        for k, level in enumerate(BAD_LEVELS):
            srv.edits.append(lambda d, lv=level: d["b"].insert(0, lv))
            await until(lambda k=k: h.feed.malformed == k + 1, limit_s=30)
            assert sync.stats.malformed == k + 1  # it reached the book: an in-sequence diff
            await until(lambda: h.live(BTC), limit_s=30)  # a fresh snapshot, the same socket
        snapshots = sync.stats.snapshots
        srv.edits.append(lambda d: d.update(u=str(d["u"])))  # `u` as a string: refused by the parser
        srv.inject("market", b'{"stream":"btcusdt@markPrice@1s","data":{"e":"markPriceUpdate","E":1,'
                             b'"s":"BTCUSDT","p":"NaN","i":"1","r":"0","T":2}}')
        await until(lambda: h.feed.malformed == len(BAD_LEVELS) + 2, limit_s=30)
        await until(lambda: h.live(BTC) and sync.stats.snapshots == snapshots + 1, limit_s=30)  # the gap
        n = h.checked[BTC]
        await until(lambda: h.checked[BTC] >= n + 10, limit_s=30)
        assert srv.corrupted == len(BAD_LEVELS) + 1
        assert h.mismatched[BTC] == 0, h.first_mismatch
        assert h.feed.public.connects == 1 and h.feed.market_ws.connects == 1  # no socket was dropped
        assert h.feed.handler_errors == 0 and h.task is not None and not h.task.done()
        assert BookStatus.SYNCING in h.health[BTC][1:] and h.health[BTC][-1] is BookStatus.LIVE
