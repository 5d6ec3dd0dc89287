"""App start-up and shutdown safety (issue 11): start-up retries a venue answering 429/418/5xx instead of
exiting into a restart loop, never inside a Retry-After; a position left without a confirmed stop at the
end of the shutdown's bounded wait is named in an EMERGENCY alert and the exit code says so; the fatal log
unwraps exception groups."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

import bot.app as app_mod
from bot.app import EXIT_NAKED, App, _leaves
from bot.settings import load_settings
from bot.venues.errors import RateLimited, VenueUnavailable
from bot.venues.ports import AccountSnapshot, GatewayCapabilities

ROOT = Path(__file__).resolve().parent.parent


def _app(tmp_path: Path) -> App:
    s = load_settings(str(ROOT / "config" / "default.toml"),
                      overrides={"app": {"state_dir": str(tmp_path)}, "ops": {"port": 0}})
    return App(s, view=False)


class _Limiter:
    def __init__(self) -> None:
        self.until = 0.0

    def blocked_for_s(self, now_s: float) -> float:
        return max(0.0, self.until - now_s)


class _Venue:
    """start() fails as scripted; the limiter remembers a ban the way the real gateways' do (and, like them,
    declares it: capabilities.retry_after, ports.RetryAfterState)."""

    capabilities = GatewayCapabilities(retry_after=True)

    def blocked_for_s(self, now_s: float) -> float:
        return self.limiter.blocked_for_s(now_s)

    def __init__(self, errors: list[Exception]) -> None:
        self.errors = errors
        self.limiter = _Limiter()
        self.starts: list[float] = []
        self.account_errors: list[Exception] = []
        self.accounts = 0

    async def start(self) -> None:
        self.starts.append(time.monotonic())
        if self.errors:
            e = self.errors.pop(0)
            if isinstance(e, RateLimited):
                self.limiter.until = time.time() + e.retry_after_s
            raise e

    async def account(self) -> AccountSnapshot:
        self.accounts += 1
        if self.account_errors:
            raise self.account_errors.pop(0)
        return AccountSnapshot(equity=1000.0, available=1000.0, wallet_balance=1000.0, positions=())


async def test_start_up_retries_with_backoff_and_never_inside_retry_after(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app_mod, "_START_RETRY_FIRST_S", 0.01)
    app = _app(tmp_path)
    gw = _Venue([RateLimited("418 banned", retry_after_s=0.3, banned=True), VenueUnavailable("503"),
                 VenueUnavailable("connection refused")])
    acct = await asyncio.wait_for(app._start_venue(gw), 10)
    assert acct is not None and acct.equity == 1000.0
    assert len(gw.starts) == 4
    assert gw.starts[1] - gw.starts[0] >= 0.3  # the ban was waited out, nothing sent meanwhile
    assert gw.starts[2] - gw.starts[1] >= 0.02 and gw.starts[3] - gw.starts[2] >= 0.04  # capped doubling


async def test_start_up_does_not_start_twice_when_only_the_account_fails(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app_mod, "_START_RETRY_FIRST_S", 0.01)
    app = _app(tmp_path)
    gw = _Venue([])
    gw.account_errors = [VenueUnavailable("503"), RateLimited("429", retry_after_s=0.05)]
    assert await asyncio.wait_for(app._start_venue(gw), 10) is not None
    assert len(gw.starts) == 1 and gw.accounts == 3  # one user stream, the account asked again


async def test_start_up_gives_up_only_when_told_to_stop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app_mod, "_START_RETRY_FIRST_S", 0.01)
    app = _app(tmp_path)
    gw = _Venue([VenueUnavailable("down")] * 1000)
    task = asyncio.create_task(app._start_venue(gw))
    await asyncio.sleep(0.3)
    assert not task.done() and len(gw.starts) >= 3
    app.stop.set()
    assert await asyncio.wait_for(task, 5) is None


class _Engine:
    def __init__(self, left: list[dict[str, Any]]) -> None:
        self.left = left

    def unprotected(self) -> list[dict[str, Any]]:
        return self.left


async def test_naked_position_at_shutdown_is_an_emergency_naming_what_is_missing(tmp_path: Path) -> None:
    app = _app(tmp_path)
    sent: list[tuple[str, str]] = []
    app.alerts.emergency = lambda symbol, reason, **kw: sent.append((symbol, reason)) or True  # type: ignore[method-assign]
    app.engine = _Engine([{"trade_id": "t3", "symbol": "ETHUSDT", "side": "short", "qty": 9.369,
                           "state": "EXITING", "missing": "stop t3-sl.2 not confirmed by the venue"}])  # type: ignore[assignment]
    assert await app._naked_at_exit() is True
    assert sent == [("ETHUSDT", "short 9.369 left WITHOUT A STOP at shutdown (t3, EXITING): "
                                "stop t3-sl.2 not confirmed by the venue")]
    app.engine = _Engine([])  # type: ignore[assignment]
    assert await app._naked_at_exit() is False
    # a stop confirmed during the bounded wait: no alert
    eng = _Engine([{"trade_id": "t4", "symbol": "BTCUSDT", "side": "long", "qty": 0.1, "state": "PROTECTING",
                    "missing": "stop t4-sl not confirmed by the venue"}])
    app.engine = eng  # type: ignore[assignment]
    asyncio.get_running_loop().call_later(0.2, eng.left.clear)
    sent.clear()
    t0 = time.monotonic()
    assert await app._naked_at_exit(time.monotonic() + 5.0) is False
    assert sent == [] and 0.15 < time.monotonic() - t0 < 2.0
    assert EXIT_NAKED not in (0, 1, 2)


def test_fatal_log_unwraps_nested_exception_groups() -> None:
    eg = ExceptionGroup("outer", [ValueError("a"), ExceptionGroup("inner", [KeyError("b"), RuntimeError("c")])])
    assert [(type(e).__name__, str(e)) for e in _leaves(eg)] == [("ValueError", "a"), ("KeyError", "'b'"),
                                                               ("RuntimeError", "c")]


def test_engine_reconcile_requests_set_the_apps_reconcile_event(tmp_path: Path) -> None:
    from bot.app import _instruments
    from bot.venues.sim.gateway import SimGateway, exchange_from_settings

    app = _app(tmp_path)
    inst = _instruments(app.settings)
    app._build_core(SimGateway(exchange_from_settings(app.settings.sim, inst)), inst, 1000.0, None)
    assert app.engine is not None and not app.reconcile_wanted.is_set()
    app.engine.request_reconcile("BTCUSDT", "t1: fill of 5 lots after the trade ended ABORTED")
    assert app.reconcile_wanted.is_set()
    assert app.engine.stats["reconcile_requests"] == 1
    assert app.journal is not None
    app.journal.close()
