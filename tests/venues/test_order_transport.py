"""The order transport as the operator sees it (bot/venues/order_transport.py): the socket's life record and
its snapshot; then through RuntimeState into /status, /metrics (parsed back with prometheus_client's own
parser) and the `scalper status` line. Pure: explicit clocks, no I/O, milliseconds."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from bot.cli.control import order_transport_line
from bot.ops.metrics import build_registry
from bot.ops.state import RuntimeState
from bot.venues.order_transport import OrderTransportSnapshot, SocketLife

T0 = 1_700_000_000_000_000_000
S = 1_000_000_000


def test_life_connecting_down_up_and_reconnects_counted_after_the_first_up() -> None:
    life = SocketLife("ws", T0)
    assert (life.state, life.since_ns, life.reconnects, life.last_error) == ("connecting", T0, 0, "")
    life.down("InvalidStatus: server rejected WebSocket connection: HTTP 503", T0 + 1 * S)  # first attempt fails
    life.down("OSError: connection refused", T0 + 3 * S)  # the outage goes on: since kept, error updated
    assert (life.state, life.since_ns, life.last_error) == ("down", T0 + 1 * S, "OSError: connection refused")
    life.up(T0 + 4 * S)
    assert (life.state, life.since_ns, life.reconnects) == ("up", T0 + 4 * S, 0)  # the first connection
    life.up(T0 + 5 * S)  # no transition: since and count unchanged
    assert (life.since_ns, life.reconnects) == (T0 + 4 * S, 0)
    life.down("closed 1006", T0 + 6 * S)
    life.up(T0 + 9 * S)
    assert (life.state, life.since_ns, life.reconnects) == ("up", T0 + 9 * S, 1)
    assert life.last_error == "closed 1006"  # the last error stays readable after the socket is back
    snap = life.snapshot("binance-usdm", 12, 3)
    assert snap == OrderTransportSnapshot("binance-usdm", "ws", "up", T0 + 9 * S, 1, 12, 3, "closed 1006")
    assert snap.as_dict()["rest_fallbacks"] == 3


def test_rest_or_no_usable_socket_is_disabled_and_stays_so() -> None:
    rest = SocketLife("rest", T0)
    rest.up(T0 + S)
    rest.down("x", T0 + S)
    assert (rest.state, rest.since_ns, rest.last_error) == ("disabled", T0, "")
    demo = SocketLife("ws", T0)
    demo.disable("no /v5/trade on demo (B2): orders go over REST", T0 + S)
    demo.down("never", T0 + 2 * S)
    assert (demo.state, demo.since_ns, demo.configured) == ("disabled", T0 + S, "ws")
    assert demo.last_error.startswith("no /v5/trade")
    long = SocketLife("ws", T0)
    long.down("e" * 5000, T0)
    assert len(long.last_error) == 300  # a bounded text, never a whole frame


def _state(snaps: dict[str, OrderTransportSnapshot]) -> RuntimeState:
    st = RuntimeState(now_ns=T0)
    for venue in snaps:
        st.track_order_transport(venue, lambda v=venue: snaps[v])  # read live at every call
    return st


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def test_status_and_metrics_read_the_gateways_snapshot_live() -> None:
    snaps = {"binance-usdm": OrderTransportSnapshot("binance-usdm", "ws", "up", T0, 0, 5, 0, ""),
             "bybit": OrderTransportSnapshot("bybit", "rest", "disabled", T0, 0, 0, 0, "")}
    st = _state(snaps)
    reg = build_registry(st, clock=lambda: T0 + S)
    got = _samples(generate_latest(reg).decode())
    assert got[("scalper_order_ws_up", (("venue", "binance-usdm"),))] == 1.0
    assert got[("scalper_order_ws_requests_total", (("venue", "binance-usdm"),))] == 5.0
    assert got[("scalper_order_transport_state", (("state", "up"), ("venue", "binance-usdm")))] == 1.0
    assert got[("scalper_order_transport_state", (("state", "disabled"), ("venue", "bybit")))] == 1.0
    assert ("scalper_order_ws_up", (("venue", "bybit"),)) not in got  # REST by configuration: no socket to watch

    # the socket drops: the next scrape says so, no push needed
    snaps["binance-usdm"] = OrderTransportSnapshot("binance-usdm", "ws", "down", T0 + 2 * S, 0, 5, 2,
                                                   "closed 1006 dropped by the simulator")
    got = _samples(generate_latest(reg).decode())
    assert got[("scalper_order_ws_up", (("venue", "binance-usdm"),))] == 0.0
    assert got[("scalper_order_rest_fallbacks_total", (("venue", "binance-usdm"),))] == 2.0
    assert got[("scalper_order_transport_state", (("state", "down"), ("venue", "binance-usdm")))] == 1.0
    assert got[("scalper_order_transport_state", (("state", "up"), ("venue", "binance-usdm")))] == 0.0
    snaps["binance-usdm"] = OrderTransportSnapshot("binance-usdm", "ws", "up", T0 + 5 * S, 1, 9, 2, "closed 1006")
    got = _samples(generate_latest(reg).decode())
    assert got[("scalper_order_ws_reconnects_total", (("venue", "binance-usdm"),))] == 1.0

    status = st.status(T0 + 6 * S)["order_transport"]
    assert status["binance-usdm"] == {"venue": "binance-usdm", "configured": "ws", "state": "up",
                                      "since_ns": T0 + 5 * S, "reconnects": 1, "ws_requests": 9,
                                      "rest_fallbacks": 2, "last_error": "closed 1006"}
    assert status["bybit"]["state"] == "disabled"


def test_no_gateway_tracked_no_families_and_an_empty_block() -> None:
    st = RuntimeState(now_ns=T0)
    text = generate_latest(build_registry(st, clock=lambda: T0)).decode()
    assert "scalper_order_ws" not in text and "scalper_order_transport" not in text
    assert st.status(T0)["order_transport"] == {}


def test_status_line_per_venue() -> None:
    down = OrderTransportSnapshot("bybit", "ws", "down", T0, 2, 7, 1, "ConnectionClosedError: no close frame")
    line = order_transport_line("bybit", down.as_dict())
    assert line.startswith("order transport bybit: ws DOWN since 2023-11-14 22:13:20 UTC")
    assert "reconnects=2 ws_requests=7 rest_fallbacks=1" in line and line.endswith("no close frame")
    up = OrderTransportSnapshot("bybit", "ws", "up", T0, 2, 7, 1, "")
    assert "last error" not in order_transport_line("bybit", up.as_dict())
    rest = OrderTransportSnapshot("bybit", "rest", "disabled", T0, 0, 0, 0, "")
    assert order_transport_line("bybit", rest.as_dict()) == "order transport bybit: REST"
