"""The entry path kept warm (bot/execution/warm.py): a warm-up runs risk, the request and the venue's
synchronous part and changes nothing the bot does: no order, no id, no journal row, no gate count."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from bot.domain.orders import OrderRequest
from bot.risk import MarketView
from bot.venues.ports import GatewayCapabilities
from tests.execution.harness import LIVE, Rig, intent, running

BID, ASK = 499_990, 500_000


def _rig(tmp_path: Path, **risk: object) -> tuple[Rig, list[OrderRequest]]:
    rig = Rig(tmp_path, risk=dict(risk) or None)
    warmed: list[OrderRequest] = []
    rig.gw.capabilities = GatewayCapabilities(eager_submit=True, warm_submit=True)  # type: ignore[misc]
    rig.gw.warm_submit = warmed.append  # type: ignore[attr-defined]
    rig.engine._leverage["BTCUSDT"] = 20
    return rig, warmed


def _journal_counts(rig: Rig) -> dict[str, int]:
    return {t: len(rig.rows(t)) for t in ("trades", "legs", "denials", "rejections")}


async def test_a_warm_up_signs_both_sides_and_changes_nothing(tmp_path: Path) -> None:
    rig, warmed = _rig(tmp_path)
    async with running(rig):
        gate = rig.engine.risk.gate
        before = (rig.engine._next_id, Counter(gate.denials), list(gate._sent_1s), list(gate._sent_60s),
                  _journal_counts(rig), dict(gate.open_notional))
        got = [rig.engine.warm_entry("BTCUSDT", LIVE, BID, ASK) for _ in range(4)]
        assert got == ["signed"] * 4
        # the venue's build + sign ran on a real-looking entry of each side, under the warm-up's own id
        assert [r.side.value for r in warmed] == ["BUY", "SELL", "BUY", "SELL"]
        assert {r.client_id for r in warmed} == {"warm-entry"} and all(r.qty_lots > 0 for r in warmed)
        await rig.settle()
        assert rig.gw.sent == [] and rig.engine.trades == {} and not rig.engine.inflight
        assert (rig.engine._next_id, Counter(gate.denials), list(gate._sent_1s), list(gate._sent_60s),
                _journal_counts(rig), dict(gate.open_notional)) == before
        assert rig.engine.stats["warmups"] == 4 and rig.engine.warm_last == "signed"
        # and the next real entry is the one it would have been: t1, its order counted once
        assert rig.engine.on_intent(intent(), LIVE) == "t1"
        assert [r.client_id for r in rig.gw.sent] == ["t1-entry"] and len(gate._sent_1s) == 1


async def test_a_warm_up_the_gate_would_deny_stops_there_uncounted(tmp_path: Path) -> None:
    rig, warmed = _rig(tmp_path, max_spread_bps=1.0)
    async with running(rig):
        wide = MarketView(book_live=True, spread_bps=5.0)
        assert rig.engine.warm_entry("BTCUSDT", wide, BID, ASK) == "SPREAD_TOO_WIDE"
        assert warmed == [] and sum(rig.engine.risk.gate.denials.values()) == 0 and rig.rows("denials") == []
        assert rig.engine.risk.gate.last_denial is None
        # a real intent on the same market is denied and counted as before
        assert not isinstance(rig.engine.on_intent(intent(), wide), str)
        assert rig.engine.risk.gate.denials["SPREAD_TOO_WIDE"] == 1 and len(rig.rows("denials")) == 1


async def test_a_warm_up_that_raises_turns_warming_off_and_never_reaches_the_caller(tmp_path: Path) -> None:
    rig, _ = _rig(tmp_path)

    def broken(req: OrderRequest) -> None:
        raise RuntimeError("signer broke")

    rig.gw.warm_submit = broken  # type: ignore[attr-defined]
    async with running(rig):
        assert rig.engine.warm_entry("BTCUSDT", LIVE, BID, ASK) == "off"
        assert rig.engine.warm_ok is False and rig.engine.warm_last == "failed: RuntimeError"
        assert rig.engine.warm_entry("BTCUSDT", LIVE, BID, ASK) == "off"  # not tried again
        assert rig.engine.risk.gate.dry is False  # the gate is back to counting
        assert rig.engine.on_intent(intent(), LIVE) == "t1"  # entries go on


async def test_a_gateway_without_warm_submit_warms_up_to_the_request(tmp_path: Path) -> None:
    rig, warmed = _rig(tmp_path)
    rig.gw.capabilities = GatewayCapabilities(eager_submit=True)  # type: ignore[misc]
    async with running(rig):
        assert rig.engine.warm_entry("BTCUSDT", LIVE, BID, ASK) == "request"
        assert warmed == [] and rig.gw.sent == []
