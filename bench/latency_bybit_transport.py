"""Bybit order entry, REST vs the /v5/trade websocket: send -> acknowledgement against the loopback exchange.

`python -m bench.latency_bybit_transport [--n 200] [--json]`

`python -m bot exchange-sim --protocol bybit --unlimited` runs as its own process on a free port (its
per-UID and IP limits lifted: the bench measures latency, not Bybit's 10 orders/s); the bot side is the
real BybitGateway with order_transport = "ws", its trade socket connected and authenticated. Each round
places one far PostOnly limit (3 % under the bid: it rests, fills nothing) over each transport, in
alternating order (REST first on even rounds, ws first on odd ones), and cancels it over the same transport:
- create_ack_ms: `gateway.submit` called -> its OrderAck returned (the gateway's whole path: clock check,
  body, limiter, signing, the loopback exchange's work and the answer parsed);
- wire_us: `gateway.submit` called -> the request handed to its transport (REST: ccxt calls the aiohttp
  session's post; ws: the frame handed to the socket's send): the bot's side of tick-to-wire;
- cancel_ack_ms: `gateway.cancel` called -> returned;
- build_us: building what goes on the wire, per order: REST = ccxt's create_order_request + its sign()
  (HMAC of the body, headers, URL); ws = create_body + the orjson frame (the socket was signed once, at auth).
REST runs with the trade socket set aside (`gateway.trade_ws = None`), which is what the gateway does
while the socket is down. The two transports share one process, one exchange and one market, interleaved,
so machine load falls on both alike. Medians and p99 (nearest rank).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

__all__ = ["main", "run"]


def _pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(q * len(s) + 0.5) - 1))]


def _summary(xs: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(xs), 3), "p99": round(_pct(xs, 0.99), 3),
            "min": round(min(xs), 3), "n": len(xs)}


async def run(n: int = 200) -> dict[str, Any]:
    from pydantic import SecretStr

    from bot.domain.types import OrderKind, Side, TimeInForce
    from bot.drill.procs import Sim
    from bot.settings.core import VenueSection
    from bot.venues.bybit.gateway import BybitGateway
    from bot.venues.bybit.orders import create_args, create_body
    from bot.venues.ports import OrderRequest

    with tempfile.TemporaryDirectory() as tmp:
        sim = Sim(Path(tmp), symbols=("BTCUSDT",), protocol="bybit", args=("--unlimited",))
        g: BybitGateway | None = None
        try:
            await asyncio.to_thread(sim.wait_ready, 30)
            ws = f"ws://127.0.0.1:{sim.port}"
            v = VenueSection(name="bybit", environment="exchange-sim", symbols=("BTCUSDT",), rest_url=sim.base,
                             ws_public_url=f"{ws}/v5/public/linear", ws_private_url=f"{ws}/v5/private",
                             api_key=SecretStr("sim-key"), api_secret=SecretStr("sim-secret"))
            g = BybitGateway(v, order_transport="ws")
            await asyncio.wait_for(g.start(), 20)
            tw = g.trade_ws
            assert tw is not None and g.user_stream is not None and g.ex is not None
            await asyncio.wait_for(tw.ready.wait(), 10)
            await asyncio.wait_for(g.user_stream.caught_up.wait(), 10)
            inst = g.instrument("BTCUSDT")
            ob = await g.ex.publicGetV5MarketOrderbook({"category": "linear", "symbol": "BTCUSDT", "limit": 1})
            bid_ticks = inst.price_to_ticks(ob["result"]["b"][0][0])
            out: dict[str, dict[str, list[float]]] = {
                t: {"create_ack_ms": [], "wire_us": [], "cancel_ack_ms": [], "build_us": []} for t in ("rest", "ws")}
            session = g.ex.session
            posted = [0]

            class _Stamp:  # ccxt's session with its post() stamped: the REST request handed to aiohttp
                def post(self, *a: Any, **k: Any) -> Any:
                    posted[0] = time.perf_counter_ns()
                    return session.post(*a, **k)

                def __getattr__(self, name: str) -> Any:
                    return getattr(session, name)

            g.ex.session = _Stamp()
            lots = inst.qty_to_lots("0.01")
            for i in range(-5, n):  # 5 warm-up rounds, not counted
                for t in (("rest", "ws") if i % 2 == 0 else ("ws", "rest")):
                    req = OrderRequest(f"b{i + 5}{t[0]}", "BTCUSDT", Side.BUY, OrderKind.LIMIT, lots,
                                       price_ticks=int(bid_ticks * 0.97), time_in_force=TimeInForce.GTX)
                    b0 = time.perf_counter_ns()
                    if t == "rest":
                        args = create_args(req, inst, g._ccxt_symbol["BTCUSDT"])
                        body = g.ex.create_order_request(*args)
                        g.ex.sign("v5/order/create", ["private"], "POST", body)
                    else:
                        orjson.dumps({"reqId": "x", "header": {"X-BAPI-TIMESTAMP": "1", "X-BAPI-RECV-WINDOW": "5000"},
                                      "op": "order.create", "args": [create_body(req, inst)]})
                    build_us = (time.perf_counter_ns() - b0) / 1000
                    g.trade_ws = None if t == "rest" else tw
                    try:
                        t0 = time.perf_counter_ns()
                        await g.submit(req)
                        t1 = time.perf_counter_ns()
                        wire_ns = (posted[0] if t == "rest" else tw.last_send_ns) - t0
                        await g.cancel("BTCUSDT", req.client_id)
                        t2 = time.perf_counter_ns()
                    finally:
                        g.trade_ws = tw
                    if i >= 0:
                        o = out[t]
                        o["create_ack_ms"].append((t1 - t0) / 1e6)
                        o["wire_us"].append(wire_ns / 1000)
                        o["cancel_ack_ms"].append((t2 - t1) / 1e6)
                        o["build_us"].append(build_us)
            g.ex.session = session
            assert g.stats["ws_fallbacks"] == 0, g.stats  # every ws round really went over the socket
            return {"n": n, "exchange": "exchange-sim --protocol bybit (separate process, loopback)",
                    "ws_stats": dict(tw.stats),
                    **{t: {k: _summary(v) for k, v in o.items()} for t, o in out.items()}}
        finally:
            if g is not None:
                await g.close()
            sim.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.latency_bybit_transport", description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=200, help="rounds (each: one order per transport, then its cancel)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    a = p.parse_args(argv)
    from bot.logging import configure_logging

    configure_logging("ERROR", "json", stream=sys.stderr)
    res = asyncio.run(run(a.n))
    if a.json:
        print(orjson.dumps(res, option=orjson.OPT_INDENT_2).decode())
        return 0
    print(f"Bybit order entry on the loopback exchange, {res['n']} interleaved rounds")
    print(f"{'':8}{'create->ack ms (med / p99)':>28}{'create->wire us':>22}{'cancel->ack ms (med / p99)':>28}"
          f"{'build us (med / p99)':>24}")
    for t in ("rest", "ws"):
        r = res[t]
        print(f"{t:8}{r['create_ack_ms']['median']:>18.3f} / {r['create_ack_ms']['p99']:<7.3f}"
              f"{r['wire_us']['median']:>12.1f} / {r['wire_us']['p99']:<7.1f}"
              f"{r['cancel_ack_ms']['median']:>18.3f} / {r['cancel_ack_ms']['p99']:<7.3f}"
              f"{r['build_us']['median']:>14.1f} / {r['build_us']['p99']:<7.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
