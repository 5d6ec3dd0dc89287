"""The order websocket's state, as an operator reads it, fed by THE BOT (`python -m bot run`, a subprocess, with
`execution.order_transport = "ws"`) against `python -m bot exchange-sim` (another one): `/status`
`order_transport`, `/metrics` `scalper_order_ws_*`, `scalper status` and the web view's snapshot.

One run: the socket up (ws_up 1); the exchange drops it while a trade is open and refuses reconnects for 3 s
(`drop_ws ws-api`): `down` with the drop's reason and the trade's orders meanwhile counted as REST fallbacks
(ws_up 0, the fallback counter); then `up` again with one reconnect. The counts are checked against the
exchange's own request counter (`/_sim/state`): REST order requests = the bot's fallbacks, socket requests =
the bot's requests over the socket.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

import pytest

import tests.test_ops_e2e as ops_e2e
from bot.__main__ import main
from tests.test_binance_ws_orders_e2e import SYMBOLS, errors_of
from tests.test_exchange_sim_e2e import SimProcess, _config
from tests.test_ops_e2e import _BotProc, _get, _json, _sample, _until

VENUE = "binance-usdm"
REST_ORDER_ROUTES = ("POST /fapi/v1/order", "POST /fapi/v1/algoOrder", "DELETE /fapi/v1/order",
                     "DELETE /fapi/v1/algoOrder")


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    (tmp_path / "state").mkdir()
    return tmp_path


def _exchange_counts(sim: SimProcess) -> tuple[int, int]:
    """(order requests the exchange served over its WebSocket API, by REST)."""
    req = sim.state()["requests"]
    return (sum(n for k, n in req.items() if k.startswith("WS ")), sum(req.get(k, 0) for k in REST_ORDER_ROUTES))


def _status_text(url: str, token: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("SCALPER__OPS__TOKEN", token)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        main(["status", "--url", url])
    return out.getvalue()


def test_status_and_metrics_show_the_order_socket_up_down_with_fallbacks_and_up_again(
        tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sim = SimProcess(tmp, SYMBOLS, seed=2)
    bot: _BotProc | None = None
    try:
        # a 1.5 s time limit: a trade open at the drop ends (cancels, an exit) inside the 3 s refusal
        cfg = _config(tmp, sim.port, SYMBOLS, on_shutdown="flatten", time_limit_s=1.5)
        cfg.write_text(cfg.read_text() + '\n[execution]\norder_transport = "ws"\n')
        bot = _BotProc(tmp, cfg, max_s=60)
        b = bot
        url = _until("ops_listening", lambda: b.find("ops_listening"), 30, bot)[0]["url"]
        token = (tmp / "state" / "ops.token").read_text().strip()
        ops_e2e.TOKEN[:] = [token]

        def transport() -> dict[str, Any]:
            return dict(_json(url + "/status")["order_transport"][VENUE])

        up = _until("the order socket up in /status", lambda: (t := transport())["state"] == "up" and t, 20, bot)
        assert (up["configured"], up["reconnects"]) == ("ws", 0), up
        metrics = _get(url + "/metrics")[1].decode()
        assert _sample(metrics, "scalper_order_ws_up", venue=VENUE) == 1
        assert _sample(metrics, "scalper_order_transport_state", venue=VENUE, state="up") == 1

        # a trade open, its orders over the socket: the exchange drops the socket, refuses it for 3 s
        _until("a position opened over the socket", lambda: _json(url + "/status")["positions"]
               and transport()["ws_requests"] >= 2, 30, bot)
        fallbacks0 = transport()["rest_fallbacks"]
        sim.post("/_sim/fault", {"kind": "drop_ws", "route": "ws-api", "refuse_ms": 3000})
        down = _until("down, and the trade's orders by REST meanwhile",
                      lambda: (t := transport())["state"] == "down" and t["rest_fallbacks"] > fallbacks0 and t,
                      10, bot)
        assert down["last_error"] and down["since_ns"] > up["since_ns"], down
        metrics = _get(url + "/metrics")[1].decode()
        assert _sample(metrics, "scalper_order_ws_up", venue=VENUE) == 0
        assert _sample(metrics, "scalper_order_transport_state", venue=VENUE, state="down") == 1
        assert _sample(metrics, "scalper_order_rest_fallbacks_total", venue=VENUE) >= down["rest_fallbacks"]
        text = _status_text(url, token, monkeypatch)
        assert f"order transport {VENUE}: ws DOWN since" in text, text

        # the refusal ends: the socket is back, one reconnect
        back = _until("up again", lambda: (t := transport())["state"] == "up" and t, 15, bot)
        assert back["reconnects"] == 1 and back["since_ns"] > down["since_ns"], back
        metrics = _get(url + "/metrics")[1].decode()
        assert _sample(metrics, "scalper_order_ws_up", venue=VENUE) == 1
        assert _sample(metrics, "scalper_order_ws_reconnects_total", venue=VENUE) == 1
        assert _json(url + "/view/snapshot")["status"]["order_transport"][VENUE]["state"] == "up"  # the web view's data
        # the bot's counts are the exchange's: every REST order request a fallback, every socket request seen
        # (bounded re-reads: a request counted by the bot may still be on its way)
        _until("the bot's counts equal the exchange's", lambda: _exchange_counts(sim) == (
            (t := transport())["ws_requests"], t["rest_fallbacks"]), 5, bot)
    finally:
        rc = bot.stop() if bot is not None else -1
        sim.stop()
    assert rc == 0 and bot is not None and not errors_of(bot.logs), errors_of(bot.logs)[:3] if bot else rc
