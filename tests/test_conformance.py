"""`scalper conformance`: the fields the bot relies on come from its parsers (unit tests, milliseconds), and the
command passes against the loopback exchange and fails, naming the step and the field or code, when the
exchange is started with a deviation (real processes: `python -m bot exchange-sim` and `python -m bot
conformance`, ~2-4 s each)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import aiohttp
import orjson
import pytest

from bot.conformance.fields import missing_fields
from bot.domain.instrument import Instrument
from bot.drill.procs import ROOT, Sim, env, webhook
from bot.venues.binance_usdm.instruments import parse_exchange_info
from bot.venues.binance_usdm.orders import ALGO_OPTIONAL, ORDER_OPTIONAL, algo_update_from_rest, order_update_from_rest

INST = Instrument(venue="binance-usdm", symbol="BTCUSDT", tick_size="0.10", step_size="0.001", min_qty="0.001",
                  min_notional="100")
ORDER = {"orderId": 7, "symbol": "BTCUSDT", "status": "NEW", "clientOrderId": "c1", "price": "60000.0",
         "avgPrice": "0.00", "origQty": "0.002", "executedQty": "0", "cumQuote": "0", "timeInForce": "GTX",
         "type": "LIMIT", "reduceOnly": False, "closePosition": False, "side": "BUY", "origType": "LIMIT",
         "time": 1, "updateTime": 2}


# ------------------------------------------------------------------------------------------ unit
def test_a_complete_order_answer_misses_nothing_and_a_dropped_field_is_named() -> None:
    assert missing_fields(lambda b: order_update_from_rest(b, INST), ORDER, ORDER_OPTIONAL) == ([], "")
    for field in ("updateTime", "executedQty", "status", "clientOrderId"):
        body = {k: v for k, v in ORDER.items() if k != field}
        missing, _ = missing_fields(lambda b: order_update_from_rest(b, INST), body, ORDER_OPTIONAL)
        assert missing == [field]
    # a field the parser never reads is not relied on
    body = {k: v for k, v in ORDER.items() if k != "cumQuote"}
    assert missing_fields(lambda b: order_update_from_rest(b, INST), body, ORDER_OPTIONAL) == ([], "")
    # null counts as missing
    assert missing_fields(lambda b: order_update_from_rest(b, INST), {**ORDER, "origQty": None},
                          ORDER_OPTIONAL)[0] == ["origQty"]


def test_declared_optional_fields_are_not_reported_but_the_rest_of_the_algo_answer_is() -> None:
    algo = {"algoId": 9, "clientAlgoId": "c1-sl", "orderType": "STOP_MARKET", "symbol": "BTCUSDT", "side": "SELL",
            "quantity": "0", "algoStatus": "NEW", "closePosition": True, "reduceOnly": False, "updateTime": 3}
    assert missing_fields(lambda b: algo_update_from_rest(b, INST), algo, ALGO_OPTIONAL) == ([], "")
    missing, _ = missing_fields(lambda b: algo_update_from_rest(b, INST), algo)
    assert set(missing) == {"executedQty", "actualQty", "actualPrice", "avgPrice"}
    del algo["algoStatus"]
    assert missing_fields(lambda b: algo_update_from_rest(b, INST), algo, ALGO_OPTIONAL)[0] == ["algoStatus"]


def test_nested_paths_and_a_parser_refusal() -> None:
    info = {"symbols": [{"symbol": "BTCUSDT", "baseAsset": "BTC", "quoteAsset": "USDT", "filters": [
        {"filterType": "PRICE_FILTER", "tickSize": "0.10"},
        {"filterType": "LOT_SIZE", "stepSize": "0.001", "minQty": "0.001", "maxQty": "1000"}]}]}
    assert missing_fields(parse_exchange_info, info) == ([], "")
    del info["symbols"][0]["filters"][0]["tickSize"]
    missing, err = missing_fields(parse_exchange_info, info)
    assert missing == ["symbols[].filters[].tickSize"]
    assert err.startswith("KeyError")


def test_deviate_fault_drops_a_field_or_changes_an_error_code_on_its_route_only() -> None:
    from bot.venues.sim.faults import Faults

    f = Faults.__new__(Faults)  # the fault's own state only: no server needed to check the rewrite
    f.server, f.deviations, f.applied = None, [], []  # type: ignore[assignment]
    with pytest.raises(ValueError, match="METHOD /path"):
        Faults.apply(f, {"kind": "deviate", "on": "/fapi/v1/order", "drop_field": "x"})
    with pytest.raises(ValueError, match="drop_field"):
        Faults.apply(f, {"kind": "deviate", "on": "POST /fapi/v1/order"})
    Faults.apply(f, {"kind": "deviate", "on": "post /fapi/v1/order", "drop_field": "updateTime"})
    Faults.apply(f, {"kind": "deviate", "on": "POST /fapi/v1/algoOrder", "error_code": -1111})
    assert f.deviate("POST", "/fapi/v1/order", {"orderId": 1, "updateTime": 2}) == {"orderId": 1}
    assert f.deviate("GET", "/fapi/v1/order", {"orderId": 1, "updateTime": 2}) == {"orderId": 1, "updateTime": 2}
    assert f.deviate("POST", "/fapi/v1/order", [{"updateTime": 1}, {"a": 1}]) == [{}, {"a": 1}]
    err = {"code": -2021, "msg": "Order would immediately trigger."}
    assert f.deviate("POST", "/fapi/v1/algoOrder", err)["code"] == -1111
    assert f.deviate("POST", "/fapi/v1/algoOrder", {"algoId": 3}) == {"algoId": 3}  # success untouched


# ------------------------------------------------------------------------------------------ real processes
@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    s = Sim(tmp_path_factory.mktemp("conformance"), symbols=("BTCUSDT",))
    s.wait_ready()
    yield s
    s.stop()


def _venue_env(sim: Sim, **extra: str) -> dict[str, str]:
    p = sim.port
    return env(SCALPER__VENUE__REST_URL=sim.base, SCALPER__VENUE__WS_PUBLIC_URL=f"ws://127.0.0.1:{p}/public",
               SCALPER__VENUE__WS_MARKET_URL=f"ws://127.0.0.1:{p}/market",
               SCALPER__VENUE__WS_PRIVATE_URL=f"ws://127.0.0.1:{p}/private",
               SCALPER__VENUE__API_KEY="sim-key", SCALPER__VENUE__API_SECRET="sim-secret",
               SCALPER__VENUE__SYMBOLS='["BTCUSDT"]', **extra)


def _conformance(environ: dict[str, str], *args: str) -> tuple[int, Any, str]:
    p = subprocess.run([sys.executable, "-m", "bot", "conformance", "-c", "config/exchange-sim.toml", *args],
                       cwd=ROOT, env=environ, capture_output=True, text=True, timeout=60)
    out = orjson.loads(p.stdout) if "--json" in args and p.stdout.strip() else p.stdout
    return p.returncode, out, p.stderr


async def _fault(sim: Sim, body: dict[str, Any]) -> None:
    async with aiohttp.ClientSession() as http, http.post(f"{sim.base}/_sim/fault", json=body) as r:
        assert r.status == 200, await r.text()


async def _state(sim: Sim) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.get(f"{sim.base}/_sim/state") as r:
        return dict(await r.json())


def _open_orders(state: dict[str, Any]) -> list[Any]:
    return [o for k in ("open_orders", "open_algo_orders") for o in state.get(k) or []]


def test_passes_against_the_loopback_exchange(sim: Sim) -> None:
    asyncio.run(_fault(sim, {"kind": "clear"}))
    rc, out, err = _conformance(_venue_env(sim), "--json")
    assert rc == 0, (out, err[-2000:])
    assert out["passed"] is True and out["venue"] == "binance-usdm" and out["environment"] == "exchange-sim"
    names = [s["name"] for s in out["steps"]]
    for want in ("GET /fapi/v1/time: server time and clock skew", "POST /fapi/v1/leverage",
                 "POST /fapi/v1/order: post-only limit far from the market", "user stream: limit NEW",
                 "user stream: limit CANCELED", "POST /fapi/v1/algoOrder: closePosition stop far from the market",
                 "user stream: stop NEW", "user stream: stop CANCELED", "rate-limit headers"):
        assert want in names
    assert all(s["passed"] and s["ms"] >= 0 and s["detail"] for s in out["steps"])
    # it left nothing behind on the account
    assert _open_orders(asyncio.run(_state(sim))) == []


def test_a_dropped_field_and_a_changed_error_code_fail_naming_step_and_field(sim: Sim) -> None:
    """One run (ccxt's import alone is seconds on a loaded box), four deviations: `updateTime` gone from the
    order answer, -1111 instead of -2021, `algoStatus` gone from the algo look-up (the two steps that look
    the stop up fail) and `cumQuote` gone from the order answer (no parser reads it: no failure)."""
    async def go() -> tuple[int, Any, list[str]]:
        await _fault(sim, {"kind": "clear"})
        await _fault(sim, {"kind": "deviate", "drop_field": "updateTime", "on": "POST /fapi/v1/order"})
        await _fault(sim, {"kind": "deviate", "drop_field": "cumQuote", "on": "POST /fapi/v1/order"})
        await _fault(sim, {"kind": "deviate", "error_code": -1111, "on": "POST /fapi/v1/algoOrder"})
        await _fault(sim, {"kind": "deviate", "drop_field": "algoStatus", "on": "GET /fapi/v1/algoOrder"})
        async with webhook() as hook:
            rc, out, _ = await asyncio.to_thread(
                _conformance, _venue_env(sim, SCALPER__OPS__ALERTS__WEBHOOK_URL=hook.url), "--json")
            return rc, out, hook.texts("error")

    try:
        rc, out, alerts = asyncio.run(go())
    finally:
        asyncio.run(_fault(sim, {"kind": "clear"}))
    assert rc == 1
    assert out["passed"] is False
    failed = {s["name"]: s["detail"] for s in out["steps"] if not s["passed"]}
    assert failed == {
        "POST /fapi/v1/order: post-only limit far from the market":
            "POST /fapi/v1/order: field `updateTime` missing",
        "POST /fapi/v1/algoOrder: a stop that would trigger at once":
            "POST /fapi/v1/algoOrder: error code -2021 expected, got -1111",
        "GET /fapi/v1/algoOrder: the stop by its client id": "GET /fapi/v1/algoOrder: field `algoStatus` missing",
        "DELETE /fapi/v1/algoOrder: cancel the stop": "GET /fapi/v1/algoOrder: field `algoStatus` missing",
    }
    # the rest still ran and passed (the stop's own placement answers are untouched by an error-code change)
    assert any(s["name"] == "user stream: stop CANCELED" and s["passed"] for s in out["steps"])
    assert len(alerts) == 1 and "field `updateTime` missing" in alerts[0] and "-1111" in alerts[0]
    assert _open_orders(asyncio.run(_state(sim))) == []  # the limit placed before its answer failed: cancelled


def test_mainnet_without_live_is_refused_with_one_line_before_connecting() -> None:
    environ = env(SCALPER__VENUE__ENVIRONMENT="mainnet", SCALPER__APP__MODE="demo")
    p = subprocess.run([sys.executable, "-m", "bot", "conformance", "-c", "config/exchange-sim.toml"], cwd=ROOT,
                       env={k: v for k, v in environ.items() if k != "SCALPER__VENUE__REST_URL"},
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 2
    assert p.stdout == ""
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "--live" in lines[0], p.stderr


def test_a_bybit_mainnet_config_without_live_is_refused_with_one_line(monkeypatch: pytest.MonkeyPatch,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """Bybit is covered now (tests/test_conformance_bybit.py); the live-money guard holds for it too."""
    from bot.__main__ import main

    monkeypatch.chdir(ROOT)
    for k in [k for k in os.environ if k.startswith("SCALPER__")]:
        monkeypatch.delenv(k)
    monkeypatch.setenv("SCALPER__VENUE__ENVIRONMENT", "mainnet")
    monkeypatch.setenv("SCALPER__APP__MODE", "demo")
    monkeypatch.setenv("SCALPER__VENUE__REST_URL", "")
    assert main(["conformance", "-c", "config/exchange-sim-bybit.toml"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1 and "--live" in err
