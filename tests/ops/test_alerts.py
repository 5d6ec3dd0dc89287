"""Alerts: a local webhook/Telegram receiver on 127.0.0.1, rate limits, a full queue, a dead webhook."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from bot.ops.alerts import Alerts
from bot.settings.ops import AlertsSection


class Receiver:
    """A webhook and a fake Telegram Bot API on 127.0.0.1:0. mode: 'ok' answers, 'hang' never does."""

    def __init__(self, mode: str = "ok") -> None:
        self.mode = mode
        self.webhook: list[dict] = []
        self.telegram: list[tuple[str, dict]] = []
        self.entered = 0
        self.release = asyncio.Event()
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def _hook(self, request: web.Request) -> web.Response:
        self.entered += 1
        if self.mode == "hang":
            await self.release.wait()
        self.webhook.append(await request.json())
        return web.json_response({"ok": True})

    async def _tg(self, request: web.Request) -> web.Response:
        self.telegram.append((request.match_info["token"], await request.json()))
        return web.json_response({"ok": True, "result": {}})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        app.router.add_post("/bot{token}/sendMessage", self._tg)
        self.runner = web.AppRunner(app, handle_signals=False)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}"

    async def stop(self) -> None:
        self.release.set()
        assert self.runner is not None
        await self.runner.cleanup()


@contextlib.asynccontextmanager
async def receiver(mode: str = "ok") -> AsyncIterator[Receiver]:
    r = Receiver(mode)
    await r.start()
    try:
        yield r
    finally:
        await r.stop()


@contextlib.asynccontextmanager
async def running(alerts: Alerts) -> AsyncIterator[Alerts]:
    task = asyncio.create_task(alerts.run())
    try:
        yield alerts
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 5)


async def _until(cond, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


async def test_stop_out_and_halt_reach_the_webhook_and_telegram():
    async with receiver() as rx:
        section = AlertsSection(webhook_url=rx.url + "/hook", telegram_api_url=rx.url,
                                telegram_chat_id="-100123", bot_token="123:ABC")
        alerts = Alerts(section, name="bot-a")
        async with running(alerts):
            assert alerts.stop_out("BTCUSDT", "long", trade_id="t42", stop_price=59950.0, exit_price=59949.9,
                                   pnl_quote=-5.3, r_multiple=-1.02, slip_ticks=1)
            assert alerts.halt("stop not confirmed within 2000 ms")
            await _until(lambda: len(rx.webhook) == 2 and len(rx.telegram) == 2)
    first, second = rx.webhook
    assert first["kind"] == "stop_out" and first["bot"] == "bot-a"
    assert first["text"] == ("[bot-a] STOP-OUT BTCUSDT long t42: exit 59949.9 vs stop 59950, slip 1 ticks, "
                             "pnl -5.30 (-1.02R)")
    assert first["fields"]["trade_id"] == "t42" and first["fields"]["stop_price"] == 59950.0
    assert second["kind"] == "halt" and second["text"] == "[bot-a] HALTED: stop not confirmed within 2000 ms"
    assert rx.telegram[0] == ("123:ABC", {"chat_id": "-100123", "text": first["text"],
                                          "disable_web_page_preview": True})
    assert rx.telegram[1][1]["text"] == second["text"]
    assert alerts.stats["sent"] == 4 and alerts.stats["failed"] == 0


async def test_rate_limit_per_kind_counts_and_reports_suppressed():
    mono = [0]
    alerts = Alerts(AlertsSection(max_per_kind_per_min=3), monotonic_ns=lambda: mono[0])
    results = [alerts.fill("BTCUSDT", "BUY", 0.01, 60000.0) for _ in range(5)]
    assert results == [True, True, True, False, False]
    assert alerts.halt("other kinds have their own budget")
    assert alerts.stats["suppressed_rate"] == 2
    mono[0] += 61_000_000_000
    assert alerts.fill("BTCUSDT", "SELL", 0.01, 60010.0)
    assert alerts._queue[-1].suppressed_before == 2
    assert alerts.queued == 5


async def test_full_queue_drops_and_counts():
    alerts = Alerts(AlertsSection(queue_size=4, max_per_kind_per_min=600))
    results = [alerts.error("test", f"e{i}") for i in range(10)]
    assert results == [True] * 4 + [False] * 6
    assert alerts.stats["dropped_queue_full"] == 6 and alerts.queued == 4


def _best_notify_time(alerts: Alerts, rounds: int = 5, per_round: int = 100) -> float:
    best = float("inf")
    for r in range(rounds):
        t0 = time.perf_counter()
        for i in range(per_round):
            alerts.emergency("BTCUSDT", f"round {r} alert {i}")
        best = min(best, time.perf_counter() - t0)
    return best


@pytest.mark.parametrize("dead", ["hang", "refuse"])
async def test_dead_webhook_does_not_slow_notify(dead: str):
    section_kw = dict(max_per_kind_per_min=600, queue_size=100_000, send_timeout_ms=3000)
    async with receiver("ok") as good, receiver("hang") as bad:
        if dead == "refuse":
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                dead_url = f"http://127.0.0.1:{s.getsockname()[1]}/hook"  # closed: connection refused
        else:
            dead_url = bad.url + "/hook"
        # Baseline: the same code path with a receiver that answers at once.
        healthy = Alerts(AlertsSection(webhook_url=good.url + "/hook", **section_kw))
        broken = Alerts(AlertsSection(webhook_url=dead_url, **section_kw))
        async with running(healthy), running(broken):
            healthy.halt("prime")
            broken.halt("prime")
            if dead == "hang":
                await _until(lambda: bad.entered == 1 and broken.in_flight == 1)  # the drainer is stuck
            else:
                await _until(lambda: broken.stats["failed"] >= 1)
            await _until(lambda: healthy.stats["sent"] >= 1)
            base_s = _best_notify_time(healthy)
            await asyncio.sleep(0)  # let both drainers run between the measurements
            dead_s = _best_notify_time(broken)
            if dead == "hang":
                assert broken.in_flight == 1 and broken.stats["sent"] == 0  # still hanging while we notified
            # notify never touches the network: with a dead sink it costs the same as with a healthy one.
            print(f"notify x100: healthy {base_s * 1e6:.0f} us, dead ({dead}) {dead_s * 1e6:.0f} us")
            assert dead_s < 10 * base_s, (dead_s, base_s)
            assert broken.stats["queued"] == 501 and broken.stats["dropped_queue_full"] == 0


async def test_dead_webhook_fills_the_queue_then_drops():
    async with receiver("hang") as bad:
        alerts = Alerts(AlertsSection(webhook_url=bad.url + "/hook", queue_size=3, max_per_kind_per_min=600,
                                      send_timeout_ms=3000))
        async with running(alerts):
            alerts.halt("first")
            await _until(lambda: bad.entered == 1)  # in flight, hanging
            results = [alerts.error("x", str(i)) for i in range(8)]
            assert results == [True, True, True] + [False] * 5
            assert alerts.stats["dropped_queue_full"] == 5 and alerts.queued == 3


def test_next_daily_summary():
    alerts = Alerts(AlertsSection(daily_summary_hour_utc=6))
    t = 1_700_000_000 * 10**9  # 2023-11-14 22:13:20 UTC
    assert alerts.next_daily_summary_ns(t) == 1_700_028_000 * 10**9  # 2023-11-15 06:00:00 UTC
    assert Alerts(AlertsSection(daily_summary_hour_utc=-1)).next_daily_summary_ns(t) is None
