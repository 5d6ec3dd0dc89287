"""End to end: paper mode (`python -m bot run`, app.mode = "paper") on the PUBLIC streams of the loopback
exchange (`python -m bot exchange-sim`, its generated market), every byte between them through a recording
proxy in this test.

What it shows (issue 12 item 4): the bot trades (entries, confirmed stops, exits, fees in the journal) with
its orders filled by its own matching engine, while the exchange shows no order, fill, position, listen key
or private connection from it at any moment of the run, and the proxy's log holds no private endpoint, no
API key header and no signed request: only the depth snapshot (GET /fapi/v1/depth) and the two public
websocket routes. The sim process has no request log of its own (and bot/venues/sim is not ours to change),
hence the proxy; every venue URL of the config, the private one included, points at the proxy, so a private
call would have to pass it. The bot runs with no key in its environment.

The config is the exchange-sim e2e one (tests/test_exchange_sim_e2e.py: momentum on 1 s bars, loosened so
the generated market triggers it within seconds) with mode = "paper".
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from tests.support.lively import lively_sections
from tests.test_exchange_sim_e2e import PY, ROOT, SimProcess, _rows

PUBLIC_REST = {"/fapi/v1/depth", "/fapi/v1/exchangeInfo", "/fapi/v1/time", "/fapi/v1/ping",
               "/fapi/v1/ticker/bookTicker", "/fapi/v1/premiumIndex"}
PUBLIC_WS = {"/public/stream", "/market/stream"}


class RecordingProxy:
    """HTTP + websocket reverse proxy on 127.0.0.1 (its own thread and loop): every request is logged as
    {method, path, query, api_key (an X-MBX-APIKEY header was sent), ws} and forwarded to `upstream`."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.log: list[dict[str, Any]] = []
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, daemon=True)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._sockets: set[web.WebSocketResponse] = set()

    def start(self) -> None:
        self._thread.start()
        assert self._ready.wait(10), "proxy did not start"

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start())
        self._ready.set()
        self._loop.run_forever()

    async def _start(self) -> None:
        self._session = aiohttp.ClientSession()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        is_ws = request.headers.get("Upgrade", "").lower() == "websocket"
        self.log.append({"method": request.method, "path": request.path, "query": request.query_string,
                         "api_key": "X-MBX-APIKEY" in request.headers, "ws": is_ws})
        assert self._session is not None
        target = self.upstream + request.path_qs
        if is_ws:
            return await self._ws(request, target)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        async with self._session.request(request.method, target, data=await request.read(),
                                         headers=headers) as r:
            body = await r.read()
            keep = {k: v for k, v in r.headers.items() if k.lower().startswith("x-mbx") or k == "Content-Type"}
            return web.Response(status=r.status, body=body, headers=keep)

    async def _ws(self, request: web.Request, target: str) -> web.WebSocketResponse:
        assert self._session is not None
        down = web.WebSocketResponse(autoping=True)
        await down.prepare(request)
        self._sockets.add(down)
        try:
            async with self._session.ws_connect("ws" + target[len("http"):], autoping=True) as up:

                async def pump(src: Any, dst: Any) -> None:
                    async for msg in src:
                        if msg.type == aiohttp.WSMsgType.TEXT:
                            await dst.send_str(msg.data)
                        elif msg.type == aiohttp.WSMsgType.BINARY:
                            await dst.send_bytes(msg.data)
                        else:
                            break

                tasks = [asyncio.ensure_future(pump(up, down)), asyncio.ensure_future(pump(down, up))]
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for t in tasks:
                    t.cancel()
        finally:
            self._sockets.discard(down)
            await down.close()
        return down

    def stop(self) -> None:
        async def _stop() -> None:
            for ws in list(self._sockets):
                with contextlib.suppress(Exception):
                    await ws.close()
            if self._runner is not None:
                await self._runner.cleanup()
            if self._session is not None:
                await self._session.close()

        if self._thread.is_alive():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(_stop(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)


def _config(tmp: Path, port: int, symbols: list[str]) -> Path:
    base = f"127.0.0.1:{port}"
    sym = ", ".join(f'"{s}"' for s in symbols)
    text = f"""
[app]
mode = "paper"
name = "paper-e2e"
[log]
level = "INFO"
format = "json"
[venue]
name = "binance-usdm"
environment = "exchange-sim"
symbols = [{sym}]
rest_url = "http://{base}"
ws_public_url = "ws://{base}/public"
ws_market_url = "ws://{base}/market"
ws_private_url = "ws://{base}/private"
{lively_sections()}
"""
    path = tmp / "paper.toml"
    path.write_text(text)
    return path


def _bot_env(tmp: Path) -> dict[str, str]:
    """No key of any kind: paper mode needs none."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCALPER__")}
    env.update(PYTHONPATH=str(ROOT), SCALPER__APP__STATE_DIR=str(tmp / "state"), PYTHONUNBUFFERED="1")
    return env


def _bot_footprint(state: dict[str, Any]) -> dict[str, Any]:
    """Whatever of the exchange's state a client of it could have caused."""
    return {
        "positions": [p for p in state["positions"] if float(p["positionAmt"]) != 0],
        "open_orders": state["open_orders"],
        "open_algo_orders": state["open_algo_orders"],
        "listen_keys": state["listen_keys"],
        "private_connections": state["connections"]["private"],
        "balance": state["account"]["balance"],
    }


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    (tmp_path / "state").mkdir()
    return tmp_path


def test_paper_mode_trades_on_public_streams_and_the_exchange_never_sees_an_order(tmp: Path) -> None:
    symbols = ["BTCUSDT", "ETHUSDT"]
    sim = SimProcess(tmp, symbols, seed=2)
    proxy = RecordingProxy(sim.base)
    samples: list[dict[str, Any]] = []
    journal = tmp / "state" / "journal.sqlite"
    max_s = 60.0  # ends as soon as two trades closed (~10-25 s here); generous under load
    try:
        proxy.start()
        before = _bot_footprint(sim.state())
        cfg = _config(tmp, proxy.port, symbols)
        proc = subprocess.Popen([PY, "-m", "bot", "run", "-c", str(cfg), "--no-view", "--for", str(max_s)],
                                cwd=ROOT, env=_bot_env(tmp), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + max_s
            while time.monotonic() < deadline and proc.poll() is None:
                state = sim.state()  # sampled all along: while the bot holds paper positions too
                samples.append({**_bot_footprint(state), "connections": state["connections"],
                                "open_paper_trades": len(_rows(journal, "select 1 from trades where state not in "
                                                                        "('CLOSED', 'ABORTED')"))})
                closed = _rows(journal, "select 1 from trades where state = 'CLOSED' and entry_ts_ns is not null")
                if len(closed) >= 2:
                    proc.send_signal(signal.SIGTERM)
                    break
                time.sleep(0.25)
            out, _ = proc.communicate(timeout=40)
        except BaseException:
            proc.kill()
            proc.communicate(timeout=10)
            raise
        after = _bot_footprint(sim.state())
    finally:
        proxy.stop()
        sim.stop()
    logs = []
    for line in out.splitlines():
        try:
            logs.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            logs.append({"event": "<raw>", "line": line.decode(errors="replace")})
    errors = [r for r in logs if r.get("level") in ("error", "critical") or r.get("event") == "<raw>"]
    assert proc.returncode == 0, logs[-20:]
    assert not errors, errors

    # --- the journal: trades exactly as live journals them
    config = _rows(journal, "select body from config order by id desc limit 1")
    assert orjson.loads(config[0]["body"])["app"]["mode"] == "paper"
    trades = _rows(journal, "select * from trades")
    entered = [t for t in trades if t["entry_ts_ns"] is not None]
    assert len(entered) >= 2, f"{len(trades)} trades, {len(entered)} entered"
    for t in entered:
        assert t["entry_price"] > 0 and t["qty"] > 0, t
        assert t["stop_price"] > 0 and t["stop_confirm_ms"] is not None and t["stop_confirm_ms"] > 0, t
        acked = _rows(journal, "select 1 from legs l join order_events e on e.client_id = l.client_id "
                               "where l.trade_id = ? and l.role = 'stop' and e.status = 'NEW'", (t["trade_id"],))
        assert acked, f"{t['trade_id']}: no stop acknowledged by the paper exchange"
        assert t["state"] == "CLOSED" and t["exit_reason"] and t["exit_price"] > 0, t  # shutdown flattens
        assert t["fees"] > 0 and t["pnl"] is not None, t
        fills = _rows(journal, "select role, qty, price, fee from fills where trade_id = ?", (t["trade_id"],))
        assert {f["role"] for f in fills} >= {"entry"} and len(fills) >= 2, fills
        assert abs(sum(f["fee"] for f in fills) - t["fees"]) < 1e-6, (fills, t["fees"])
    assert any(s["open_paper_trades"] for s in samples), "never sampled the bot holding a paper trade"

    # --- the exchange: never an order, a fill, a position, a listen key or a private socket from the bot
    for s in samples:
        assert {k: v for k, v in s.items() if k not in ("connections", "open_paper_trades")} == before, s
    assert after == before, (before, after)
    assert any(s["connections"]["public"] and s["connections"]["market"] for s in samples), samples[-3:]
    # one websocket per public route, shared by the DOM and the matching engine (no second subscription)
    assert all(s["connections"]["public"] <= 1 and s["connections"]["market"] <= 1 for s in samples), samples

    # --- the wire: public market data only
    assert proxy.log, "the bot never reached the proxy"
    rest = [r for r in proxy.log if not r["ws"]]
    ws = [r for r in proxy.log if r["ws"]]
    assert not [r for r in proxy.log if r["api_key"]], "an API key header was sent"
    assert not [r for r in rest if "signature=" in r["query"]], "a signed request was sent"
    assert {(r["method"], r["path"]) for r in rest} <= {("GET", p) for p in PUBLIC_REST}, rest
    assert {r["path"] for r in ws} <= PUBLIC_WS, ws
    assert ("GET", "/fapi/v1/depth") in {(r["method"], r["path"]) for r in rest}
    assert {r["path"] for r in ws} == PUBLIC_WS


def test_a_killed_paper_run_restarts_with_its_open_trades_closed_as_manual(tmp: Path) -> None:
    """Paper positions live in the process: after SIGKILL with trades open, the restart's reconciliation finds
    the (new, empty) paper exchange flat and closes them MANUAL with an alert; the bot then trades on."""
    symbols = ["BTCUSDT", "ETHUSDT"]
    sim = SimProcess(tmp, symbols, seed=2)
    journal = tmp / "state" / "journal.sqlite"
    open_sql = "select trade_id from trades where state not in ('CLOSED', 'ABORTED') and entry_ts_ns is not null"
    try:
        cfg = _config(tmp, sim.port, symbols)
        first = subprocess.Popen([PY, "-m", "bot", "run", "-c", str(cfg), "--no-view", "--for", "40"],
                                 cwd=ROOT, env=_bot_env(tmp), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 40
            while time.monotonic() < deadline and first.poll() is None and not _rows(journal, open_sql):
                time.sleep(0.1)
        finally:
            first.kill()
            first.wait(10)
        killed_open = {r["trade_id"] for r in _rows(journal, open_sql)}
        assert killed_open, "no trade was open when the first run was killed"
        # the restart: SIGTERM (graceful) once its reconciliation closed every killed trade; `--for 6` stays
        # the upper bound
        out_path = tmp / "second.log"
        with open(out_path, "wb") as out:
            proc = subprocess.Popen([PY, "-m", "bot", "run", "-c", str(cfg), "--no-view", "--for", "6"], cwd=ROOT,
                                    env=_bot_env(tmp), stdout=out, stderr=subprocess.STDOUT)
            try:
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline and proc.poll() is None:
                    if all(_rows(journal, "select 1 from trades where trade_id = ? and state = 'CLOSED'", (tid,))
                           for tid in killed_open) and b'"reconciled"' in out_path.read_bytes():
                        proc.send_signal(signal.SIGTERM)
                        break
                    time.sleep(0.1)
                proc.wait(max(1.0, deadline - time.monotonic()))
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(10)
        second = subprocess.CompletedProcess(proc.args, proc.returncode, out_path.read_bytes())
        end = sim.state()
    finally:
        sim.stop()
    logs = [orjson.loads(x) for x in second.stdout.splitlines() if x.startswith(b"{")]
    assert second.returncode == 0, second.stdout[-2000:]
    assert any(r.get("event") == "trade_adopted" for r in logs), second.stdout[-2000:]
    assert not [r for r in logs if r.get("level") in ("error", "critical")], logs[-10:]
    for tid in killed_open:
        t = _rows(journal, "select state, exit_reason from trades where trade_id = ?", (tid,))[0]
        assert (t["state"], t["exit_reason"]) == ("CLOSED", "MANUAL"), (tid, t)
    alerted = {r["message"].split()[0] for r in logs if r.get("event") == "reconcile_alert"}
    assert killed_open <= alerted, (killed_open, alerted)
    reconciled = [r for r in logs if r.get("event") == "reconciled"]
    assert reconciled and reconciled[0]["errors"] == 0
    assert not _rows(journal, open_sql)  # the second run flattened what it opened itself
    assert _bot_footprint(end)["positions"] == [] and end["open_orders"] == [] and end["listen_keys"] == 0
