"""`scalper conformance` on Bybit v5: the `deviate` fault on Bybit's envelope (unit, milliseconds), and the
command against `python -m bot exchange-sim --protocol bybit` (real processes, ~4-5 s per run): it passes and
leaves nothing open, and with deviations it fails naming the step and the field or code."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import aiohttp
import orjson
import pytest

from bot.drill.procs import ROOT, Sim, env, webhook


# ------------------------------------------------------------------------------------------ unit
def test_deviate_reaches_bybit_result_rows_and_a_non_zero_retcode_only() -> None:
    from bot.venues.sim.faults import Faults

    f = Faults.__new__(Faults)  # the fault's own state only
    f.server, f.deviations, f.applied = None, [], []  # type: ignore[assignment]
    Faults.apply(f, {"kind": "deviate", "on": "GET /v5/order/realtime", "drop_field": "orderStatus"})
    Faults.apply(f, {"kind": "deviate", "on": "POST /v5/order/create", "drop_field": "orderId"})
    Faults.apply(f, {"kind": "deviate", "on": "POST /v5/order/create", "error_code": 10001})
    rows = {"retCode": 0, "retMsg": "OK", "result": {"list": [{"orderId": "1", "orderStatus": "New"},
                                                              {"orderId": "2", "orderStatus": "Filled"}]}}
    assert f.deviate("GET", "/v5/order/realtime", rows)["result"]["list"] == [{"orderId": "1"}, {"orderId": "2"}]
    ok = {"retCode": 0, "retMsg": "OK", "result": {"orderId": "9", "orderLinkId": "c"}}
    assert f.deviate("POST", "/v5/order/create", ok) == {"retCode": 0, "retMsg": "OK", "result": {"orderLinkId": "c"}}
    err = {"retCode": 110093, "retMsg": "expect Rising", "result": {}}
    assert f.deviate("POST", "/v5/order/create", err)["retCode"] == 10001
    other = {"retCode": 0, "retMsg": "OK", "result": {"orderId": "9"}}
    assert f.deviate("POST", "/v5/order/cancel", other) == {"retCode": 0, "retMsg": "OK", "result": {"orderId": "9"}}


# ------------------------------------------------------------------------------------------ real processes
@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    s = Sim(tmp_path_factory.mktemp("conformance-bybit"), symbols=("BTCUSDT",), protocol="bybit")
    s.wait_ready()
    yield s
    s.stop()


def _venue_env(sim: Sim, **extra: str) -> dict[str, str]:
    ws = f"ws://127.0.0.1:{sim.port}"
    return env(SCALPER__VENUE__REST_URL=sim.base, SCALPER__VENUE__WS_PUBLIC_URL=f"{ws}/v5/public/linear",
               SCALPER__VENUE__WS_PRIVATE_URL=f"{ws}/v5/private", SCALPER__VENUE__API_KEY="sim-key",
               SCALPER__VENUE__API_SECRET="sim-secret", SCALPER__VENUE__SYMBOLS='["BTCUSDT"]', **extra)


def _conformance(environ: dict[str, str]) -> tuple[int, Any, str]:
    p = subprocess.run([sys.executable, "-m", "bot", "conformance", "-c", "config/exchange-sim-bybit.toml", "--json"],
                       cwd=ROOT, env=environ, capture_output=True, text=True, timeout=60)
    return p.returncode, orjson.loads(p.stdout) if p.stdout.strip() else p.stdout, p.stderr


async def _fault(sim: Sim, body: dict[str, Any]) -> None:
    async with aiohttp.ClientSession() as http, http.post(f"{sim.base}/_sim/fault", json=body) as r:
        assert r.status == 200, await r.text()


async def _state(sim: Sim) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.get(f"{sim.base}/_sim/state") as r:
        return dict(await r.json())


async def _open_orders(sim: Sim) -> list[Any]:
    state = await _state(sim)
    return [o for k in ("open_orders", "open_algo_orders") for o in state.get(k) or []]


async def _positions(sim: Sim) -> list[Any]:
    return [p for p in (await _state(sim)).get("positions") or [] if float(p.get("positionAmt") or 0)]


def test_passes_against_the_bybit_loopback_exchange(sim: Sim) -> None:
    asyncio.run(_fault(sim, {"kind": "clear"}))
    rc, out, err = _conformance(_venue_env(sim))
    assert rc == 0, (out, err[-2000:])
    assert out["passed"] is True and out["venue"] == "bybit" and out["environment"] == "exchange-sim"
    steps = {s["name"]: s for s in out["steps"]}
    for want in ("GET /v5/market/instruments-info: instrument filters",
                 "GET /v5/market/time: server time and clock skew",
                 "POST /v5/position/set-leverage", "GET /v5/position/list: the symbol's position",
                 "POST /v5/order/create: PostOnly limit far from the market", "private stream: limit New",
                 "POST /v5/order/cancel: cancel the limit", "private stream: limit Cancelled",
                 "POST /v5/order/create: conditional stop far from the market",
                 "private stream: conditional Untriggered", "private stream: conditional Deactivated",
                 "POST /v5/order/create: a stop that would trigger at once",
                 "POST /v5/position/trading-stop: the position's stop with no position",
                 "POST /v5/order/create: a market entry with an attached stopLoss (exchange-sim only)",
                 "POST /v5/position/trading-stop: the stop leg moves the position's stop",
                 "private stream: `position` with the moved stopLoss",
                 "POST /v5/order/create: reduce-only close; the stop goes with the position", "rate-limit headers"):
        assert want in steps, want
    assert all(s["passed"] and s["ms"] >= 0 and s["detail"] for s in out["steps"])
    assert "StopWouldTrigger" in steps["POST /v5/order/create: a stop that would trigger at once"]["detail"]
    assert "x-bapi-limit-status" in steps["rate-limit headers"]["detail"]
    assert asyncio.run(_open_orders(sim)) == []  # it left nothing behind: no order, no position
    assert asyncio.run(_positions(sim)) == []


def test_a_dropped_field_and_a_changed_error_code_fail_naming_step_and_field(sim: Sim) -> None:
    """One run, four deviations: `orderStatus` gone from the realtime look-up (the steps that look an
    order up fail), `timeNano` gone from the server time, 10001 instead of 110092/110093, and `orderLinkId`
    gone from the create answer (the gateway never reads it: no failure)."""
    async def go() -> tuple[int, Any, list[str]]:
        await _fault(sim, {"kind": "clear"})
        await _fault(sim, {"kind": "deviate", "drop_field": "orderStatus", "on": "GET /v5/order/realtime"})
        await _fault(sim, {"kind": "deviate", "drop_field": "timeNano", "on": "GET /v5/market/time"})
        await _fault(sim, {"kind": "deviate", "error_code": 10001, "on": "POST /v5/order/create"})
        await _fault(sim, {"kind": "deviate", "drop_field": "orderLinkId", "on": "POST /v5/order/create"})
        async with webhook() as hook:
            rc, out, _ = await asyncio.to_thread(
                _conformance, _venue_env(sim, SCALPER__OPS__ALERTS__WEBHOOK_URL=hook.url))
            return rc, out, hook.texts("error")

    try:
        rc, out, alerts = asyncio.run(go())
    finally:
        asyncio.run(_fault(sim, {"kind": "clear"}))
    assert rc == 1 and out["passed"] is False
    failed = {s["name"]: s["detail"] for s in out["steps"] if not s["passed"]}
    look = "GET /v5/order/realtime: field `orderStatus` missing"
    cancel = "GET /v5/order/realtime|history: field `orderStatus` missing"
    assert failed == {
        "GET /v5/market/time: server time and clock skew": "GET /v5/market/time: field `result.timeNano` missing",
        "GET /v5/order/realtime: the limit by its orderLinkId": look,
        "POST /v5/order/cancel: cancel the limit": cancel,
        "GET /v5/order/realtime: the conditional by its orderLinkId": look,
        "POST /v5/order/cancel: cancel the conditional": cancel,
        "POST /v5/order/create: a stop that would trigger at once":
            "POST /v5/order/create: error code 110092/110093 expected, got 10001",
    }
    # the rest still ran and passed: placements (orderLinkId is not read), events, headers
    assert any(s["name"] == "private stream: conditional Deactivated" and s["passed"] for s in out["steps"])
    assert len(alerts) == 1 and "`result.timeNano` missing" in alerts[0] and "got 10001" in alerts[0]
    assert asyncio.run(_open_orders(sim)) == [] and asyncio.run(_positions(sim)) == []
