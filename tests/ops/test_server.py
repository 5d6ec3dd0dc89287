"""/health, /metrics, /status and the control endpoints against a real OpsServer on 127.0.0.1:0."""

from __future__ import annotations

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.domain.types import CloseReason, OrderKind, Side
from bot.errors import ConfigError
from bot.market.health import BookStatus
from bot.ops.server import OpsServer
from bot.ops.state import RuntimeState
from bot.settings.ops import OpsSection
from tests.ops.conftest import AUTH, T0, live_sync

TIMEOUT = aiohttp.ClientTimeout(total=5)


async def _get(url: str, **kw):
    async with aiohttp.ClientSession(timeout=TIMEOUT) as s, s.get(url, **kw) as r:
        return r.status, await r.text(), r.headers.get("Content-Type", "")


async def _health(srv: OpsServer) -> tuple[int, dict]:
    async with aiohttp.ClientSession(timeout=TIMEOUT) as s, s.get(srv.url + "/health") as r:
        return r.status, await r.json()


async def test_health_ok_then_degraded_on_stale_book_then_halted(server, state: RuntimeState, clock):
    btc, eth = live_sync("BTCUSDT"), live_sync("ETHUSDT")
    state.track_book("BTCUSDT", btc.health, btc.stats)
    state.track_book("ETHUSDT", eth.health, eth.stats)
    code, body = await _health(server)
    assert (code, body) == (200, {"status": "ok", "reasons": []})

    # The app's staleness watchdog: no depth message for stale_after_ms -> the sync marks the book STALE.
    clock[0] += 6_000_000_000
    btc.mark_stale("no message for 6000 ms", clock[0])
    code, body = await _health(server)
    assert code == 503
    assert body["status"] == "degraded"
    assert body["reasons"] == ["BTCUSDT book STALE: no message for 6000 ms"]

    state.set_trading_state("HALTED", "stop not confirmed for t7", clock[0])
    code, body = await _health(server)
    assert code == 503 and body["status"] == "halted"
    assert "trading HALTED: stop not confirmed for t7" in body["reasons"]
    assert "BTCUSDT book STALE: no message for 6000 ms" in body["reasons"]

    state.set_trading_state("ACTIVE", "operator resume", clock[0])
    state.set_book_status("BTCUSDT", BookStatus.LIVE, "in sequence", clock[0])
    assert await _health(server) == (200, {"status": "ok", "reasons": []})


async def test_health_degraded_on_crossed_syncing_and_user_stream(server, state: RuntimeState, clock):
    state.set_book_status("BTCUSDT", "CROSSED", "best bid >= best ask", clock[0])
    state.set_book_status("ETHUSDT", BookStatus.SYNCING, "gap: pu=5 but last u=3", clock[0])
    state.set_user_stream(True, "connected", clock[0])
    code, body = await _health(server)
    assert code == 503 and body["status"] == "degraded"
    assert body["reasons"] == ["BTCUSDT book CROSSED: best bid >= best ask",
                               "ETHUSDT book SYNCING: gap: pu=5 but last u=3"]
    state.set_book_status("BTCUSDT", "LIVE", "ok", clock[0])
    state.set_book_status("ETHUSDT", "LIVE", "ok", clock[0])
    assert (await _health(server))[0] == 200
    # No user-stream message for longer than user_stream_stale_after_ns (10 s in the fixture).
    clock[0] += 11_000_000_000
    code, body = await _health(server)
    assert code == 503 and body["reasons"] == ["user stream stale: no message for 11000 ms"]
    state.on_user_stream_message(clock[0])
    assert (await _health(server))[0] == 200
    state.set_user_stream(False, "listenKey expired", clock[0])
    code, body = await _health(server)
    assert body == {"status": "degraded", "reasons": ["user stream down: listenKey expired"]}


def _families(text: str) -> dict:
    return {f.name: f for f in text_string_to_metric_families(text)}


async def test_metrics_parse_with_prometheus_parser_and_carry_values(server, state: RuntimeState, clock):
    sync = live_sync("BTCUSDT")
    state.set_info(name="scalper", mode="sim", venue="sim")
    state.track_book("BTCUSDT", sync.health, sync.stats)
    state.set_book_status("ETHUSDT", "STALE", "no message", clock[0])
    state.on_resync("ETHUSDT", clock[0])
    sec = T0 // 1_000_000_000 * 1_000_000_000
    for i in range(30):
        state.on_message("BTCUSDT", "depth", sec + i * 10_000_000)  # 30 in second s
    for i in range(7):
        state.on_message("BTCUSDT", "depth", sec + 1_000_000_000 + i)  # 7 in second s+1
    clock[0] = sec + 1_500_000_000
    state.observe_latency("event_to_decision", 40_000)  # 40 µs
    state.observe_latency("event_to_decision", 3_000_000_000)  # beyond the last bucket
    state.observe_latency("order_ack", 12_000_000)
    state.on_order(OrderKind.LIMIT, "ack")
    state.on_order(OrderKind.STOP_MARKET, "rejected")
    state.on_denial("max_open_positions")
    state.on_denial("max_open_positions")
    state.on_denial("book_not_live")
    state.set_position("BTCUSDT", side=Side.SELL, qty=0.01, entry_price=60000.0, stop_price=60100.0,
                       unrealized_pnl_quote=-1.5)
    state.order_opened("t1-sl", symbol="BTCUSDT", kind=OrderKind.STOP_MARKET, trigger=60100.0)
    state.on_trade_closed(CloseReason.STOP_LOSS, -5.25, fees_quote=0.5)
    state.set_trading_state("REDUCING", "daily loss 80% used", clock[0])

    code, text, ctype = await _get(server.url + "/metrics")
    assert code == 200 and ctype.startswith("text/plain")
    fam = _families(text)
    for name in ("scalper_info", "scalper_messages", "scalper_message_rate", "scalper_book_status",
                 "scalper_book_live", "scalper_book_resyncs", "scalper_event_to_decision_seconds",
                 "scalper_order_ack_seconds", "scalper_orders", "scalper_denials", "scalper_open_positions",
                 "scalper_position_qty", "scalper_open_orders", "scalper_pnl_realized_quote",
                 "scalper_pnl_unrealized_quote", "scalper_trading_state", "scalper_health",
                 "scalper_trades_closed"):
        assert name in fam, name

    def value(name, sample_name=None, **labels):
        for s in fam[name].samples:
            if s.name == (sample_name or name) and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
        raise AssertionError(f"no sample {sample_name or name} {labels}")

    assert value("scalper_messages", "scalper_messages_total", symbol="BTCUSDT", channel="depth") == 37
    assert value("scalper_message_rate", symbol="BTCUSDT", channel="depth") == 30  # last complete second
    assert value("scalper_book_live", symbol="BTCUSDT") == 1
    assert value("scalper_book_live", symbol="ETHUSDT") == 0
    assert value("scalper_book_status", symbol="ETHUSDT", status="STALE") == 1
    assert value("scalper_book_resyncs", "scalper_book_resyncs_total", symbol="ETHUSDT") == 1
    assert value("scalper_event_to_decision_seconds", "scalper_event_to_decision_seconds_bucket",
                 le="5e-05") == 1
    assert value("scalper_event_to_decision_seconds", "scalper_event_to_decision_seconds_bucket",
                 le="+Inf") == 2
    assert value("scalper_event_to_decision_seconds", "scalper_event_to_decision_seconds_count") == 2
    assert value("scalper_order_ack_seconds", "scalper_order_ack_seconds_bucket", le="0.01") == 0
    assert value("scalper_order_ack_seconds", "scalper_order_ack_seconds_bucket", le="0.025") == 1
    assert value("scalper_orders", "scalper_orders_total", kind="STOP_MARKET", result="rejected") == 1
    assert value("scalper_denials", "scalper_denials_total", reason="max_open_positions") == 2
    assert value("scalper_open_positions") == 1
    assert value("scalper_position_qty", symbol="BTCUSDT", side="short") == 0.01
    assert value("scalper_open_orders") == 1
    assert value("scalper_pnl_realized_quote") == -5.25
    assert value("scalper_pnl_unrealized_quote") == -1.5
    assert value("scalper_trades_closed", "scalper_trades_closed_total", reason="STOP_LOSS") == 1
    assert value("scalper_trading_state", state="REDUCING") == 1
    assert value("scalper_trading_state", state="ACTIVE") == 0
    assert value("scalper_health", status="degraded") == 1
    assert value("scalper_info", mode="sim") == 1


async def test_status_lists_positions_orders_errors_and_feeds(server, state: RuntimeState, clock):
    state.set_book_status("BTCUSDT", "LIVE", "in sequence", clock[0])
    state.on_message("BTCUSDT", "bookTicker", clock[0])
    state.set_position("BTCUSDT", side="long", qty=0.02, entry_price=60000.0, stop_price=59900.0,
                       trade_id="t9")
    state.order_opened("t9-sl", symbol="BTCUSDT", kind=OrderKind.STOP_MARKET)
    for i in range(60):
        state.on_error("venue", f"timeout {i}", clock[0] + i)
    async with aiohttp.ClientSession(timeout=TIMEOUT) as s, s.get(server.url + "/status", headers=AUTH) as r:
        assert r.status == 200
        st = await r.json()
    assert st["positions"][0]["trade_id"] == "t9" and st["positions"][0]["side"] == "long"
    assert st["open_orders"] == [{"client_id": "t9-sl", "symbol": "BTCUSDT", "kind": "STOP_MARKET"}]
    assert len(st["last_errors"]) == 50 and st["last_errors"][-1]["message"] == "timeout 59"
    assert st["feeds"]["BTCUSDT"]["status"] == "LIVE"
    assert st["trading"]["state"] == "ACTIVE"
    assert st["health"]["status"] == "ok"


async def test_control_calls_registered_callbacks_and_reports_missing_ones(server, state, clock):
    calls = []

    async def halt(reason):
        calls.append(("halt", reason))
        state.set_trading_state("HALTED", reason, clock[0])
        return {"cancelled_entries": 2}

    server.on_control("halt", halt)
    server.on_control("resume", lambda reason: calls.append(("resume", reason)))
    async with aiohttp.ClientSession(timeout=TIMEOUT, headers=AUTH) as s:
        async with s.post(server.url + "/control/halt", json={"reason": "news"}) as r:
            assert r.status == 200
            body = await r.json()
        assert body == {"ok": True, "action": "halt", "result": {"cancelled_entries": 2},
                        "trading": {"state": "HALTED", "reason": "news"}, "halted_symbols": {}}
        async with s.post(server.url + "/control/resume", json={}) as r:
            assert r.status == 200
        async with s.post(server.url + "/control/flatten", json={}) as r:
            assert r.status == 501
        # A browser form / no-cors fetch cannot send application/json: refused.
        async with s.post(server.url + "/control/halt", data="reason=x",
                          headers={"Content-Type": "application/x-www-form-urlencoded"}) as r:
            assert r.status == 415
        # DNS rebinding: a foreign Host header on a loopback bind is refused.
        async with s.get(server.url + "/status", headers={"Host": "evil.example:9310"}) as r:
            assert r.status == 403
    assert calls == [("halt", "news"), ("resume", "operator resume via ops endpoint")]


async def test_token_required_when_set_and_beyond_loopback():
    with pytest.raises(ConfigError, match="beyond loopback"):
        OpsServer(RuntimeState(), OpsSection.model_construct(host="0.0.0.0", port=0))
    with pytest.raises(ValueError, match="beyond loopback"):
        OpsSection(host="0.0.0.0")
    section = OpsSection(host="127.0.0.1", port=0, token="s3cret-token")
    srv = OpsServer(RuntimeState(), section)
    srv.on_control("halt", lambda reason: None)
    await srv.start()
    try:
        async with aiohttp.ClientSession(timeout=TIMEOUT) as s:
            async with s.get(srv.url + "/health") as r:
                assert r.status == 200  # health stays open for Docker/systemd checks
            async with s.get(srv.url + "/status") as r:
                assert r.status == 401
            async with s.post(srv.url + "/control/halt", json={},
                              headers={"Authorization": "Bearer wrong"}) as r:
                assert r.status == 401
            async with s.post(srv.url + "/control/halt", json={},
                              headers={"Authorization": "Bearer s3cret-token"}) as r:
                assert r.status == 200
    finally:
        await srv.stop()
