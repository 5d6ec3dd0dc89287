"""The live web view in a real headless Chromium, against THE BOT (`python -m bot run -c
config/exchange-sim.toml --no-view`, a subprocess) trading on `python -m bot exchange-sim` (another one).

The browser is driven over the DevTools protocol (CDP, through `websockets`, a project dependency): it opens
`/view?token=…` once (the cookie flow a person uses), then the page updates itself over server-sent events.
The test waits until the page shows an open position with its stop price and the stop order resting, and
checks both against the exchange itself (`/_sim/state`: the algo order with that client id and that trigger
price is there). A screenshot is saved (its path printed; SCALPER_WEBVIEW_SHOT copies it elsewhere).

Also the terminal view's stop column and open-order count, rendered from the same bot's /status.
Skips when no Chromium is installed (`make test` installs Debian's where it is root with apt).
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import pytest

from bot.drill.procs import ROOT, Sim, env, free_port
from bot.ops.token import read_token
from bot.ui.terminal import render
from tests.test_exchange_sim_e2e import _config

SEED = 3
MIN_STOP_BPS = 10.0

pytestmark = pytest.mark.skipif(
    not any(shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")),
    reason="no Chromium binary on this machine (`make test` installs it where it is root with apt)")

# what the page knows once it shows a position and its resting orders (read in the browser)
_DOM = """(() => {
  const rows = (id, key) => [...document.querySelectorAll(`#${id} tbody tr[${key}]`)].map((tr) =>
    ({key: tr.getAttribute(key), cells: [...tr.cells].map((c) => c.textContent)}));
  return JSON.stringify({positions: rows("positions", "data-symbol"), orders: rows("orders", "data-client-id"),
                         books: rows("books", "data-symbol"), updates: Number(document.body.dataset.updates || 0),
                         conn: document.getElementById("conn").textContent,
                         control: [...document.querySelectorAll("#control-state dt, #control-state dd")]
                           .map((e) => e.textContent),
                         health: document.getElementById("health").textContent});
})()"""


class BotProc:
    """`python -m bot run -c <cfg> --no-view` with the ops server on `ops_port`; its output in bot.log."""

    def __init__(self, tmp: Path, cfg: Path, ops_port: int) -> None:
        self.log_path = tmp / "bot.log"
        self.out = open(self.log_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen([sys.executable, "-m", "bot", "run", "-c", str(cfg), "--no-view"],
                                     cwd=ROOT, stdout=self.out, stderr=subprocess.STDOUT, env=env(
                                         SCALPER__VENUE__API_KEY="sim-key", SCALPER__VENUE__API_SECRET="sim-secret",
                                         SCALPER__APP__STATE_DIR=str(tmp / "state"),
                                         SCALPER__OPS__PORT=str(ops_port), PYTHONUNBUFFERED="1"))

    def alive(self) -> bool:
        return self.proc.poll() is None

    def term(self, timeout_s: float) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.out.close()


def _browser() -> str:
    return next(p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")) if p)


class Cdp:
    """Just enough of the DevTools protocol: one page, call and wait for the answer."""

    def __init__(self, url: str) -> None:
        from websockets.sync.client import connect

        self._conn = connect(url, max_size=None, open_timeout=10)
        self.ws = self._conn.__enter__()  # websockets 17: the connection is a context manager
        self.ids = itertools.count(1)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        i = next(self.ids)
        self.ws.send(json.dumps({"id": i, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv(timeout=15))
            if msg.get("id") == i:
                if "error" in msg:
                    raise AssertionError(f"{method}: {msg['error']}")
                return dict(msg.get("result", {}))

    def eval(self, expr: str) -> Any:
        return self.call("Runtime.evaluate", expression=expr, returnByValue=True)["result"].get("value")


def _start_chromium(tmp: Path) -> tuple[subprocess.Popen[bytes], Cdp]:
    profile = tmp / "chromium"
    proc = subprocess.Popen([_browser(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                             "--remote-debugging-port=0", f"--user-data-dir={profile}", "--window-size=1400,1500",
                             "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    port_file = profile / "DevToolsActivePort"
    while not (port_file.exists() and port_file.read_text().strip()):
        assert time.monotonic() < deadline and proc.poll() is None, "Chromium did not open its DevTools port"
        time.sleep(0.05)
    port = port_file.read_text().split()[0]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as r:
        page = next(t for t in orjson.loads(r.read()) if t["type"] == "page")
    return proc, Cdp(page["webSocketDebuggerUrl"])


def _get(url: str, token: str = "") -> dict[str, Any]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(req, timeout=5) as r:
        return dict(orjson.loads(r.read()))


def _num(text: str) -> float:
    return float(text.replace(",", ""))


def test_the_web_view_shows_the_open_position_its_stop_and_the_resting_orders(tmp_path: Path) -> None:
    t_start = time.monotonic()
    state = tmp_path / "state"
    state.mkdir()
    ops_port = free_port()
    sim = Sim(tmp_path, seed=2, symbols=("BTCUSDT",))
    bot = chromium = cdp = None
    try:
        sim.wait_ready()
        # the e2e config (momentum loosened to trade within seconds on the generated market), with stops
        # >= 10 bps and a 60 s time limit: a trade stays open, its stop and targets resting, for a while
        cfg = _config(tmp_path, sim.port, ["BTCUSDT"], on_shutdown="keep_protected", time_limit_s=60.0,
                      min_stop_bps=MIN_STOP_BPS, max_stop_bps=80.0)
        bot = BotProc(tmp_path, cfg, ops_port)
        chromium, cdp = _start_chromium(tmp_path)
        base = f"http://127.0.0.1:{ops_port}"
        deadline = time.monotonic() + 40  # under load (nine test runs on two cores) the start alone took 17 s
        while True:  # the bot is up: its token written, its ops port answering
            token = read_token(str(state))
            try:
                if token and _get(base + "/health"):
                    break
            except OSError as e:
                if getattr(e, "code", None) == 503:  # answering, just not healthy yet
                    break
            assert time.monotonic() < deadline and bot.alive(), bot.log_path.read_text()[-3000:]
            time.sleep(0.1)
        t_ready = time.monotonic() - t_start
        cdp.call("Page.enable")
        cdp.call("Page.navigate", url=f"{base}/view?token={token}")  # once; then the HttpOnly cookie

        found: dict[str, Any] | None = None
        dom: dict[str, Any] = {}
        first_updates = None
        deadline = time.monotonic() + 30
        while found is None:
            assert time.monotonic() < deadline, f"no position with a resting stop on the page: {dom}"
            assert bot.alive(), bot.log_path.read_text()[-3000:]
            time.sleep(0.25)
            dom = orjson.loads(cdp.eval(_DOM) or "{}")
            if first_updates is None and dom.get("updates"):
                first_updates = dom["updates"]
            for pos in dom.get("positions", []):
                sym, stop_text = pos["key"], pos["cells"][4]
                stops = [o for o in dom["orders"] if o["cells"][1] == sym and o["cells"][2] == "stop"]
                if stop_text == "-" or not stops:
                    continue
                # the exchange itself holds that stop, at the price the page shows ...
                held = {a["clientAlgoId"]: a for a in sim_state(sim)["open_algo_orders"]}
                algo = held.get(stops[0]["key"])
                if not (algo and algo["orderType"] == "STOP_MARKET" and _num(algo["triggerPrice"]) == _num(stop_text)):
                    continue
                # ... and the bot's /status says the same, which the terminal view then shows
                status = _get(base + "/status", token)
                spos = next((p for p in status["positions"] if p["symbol"] == sym), None)
                if spos is None or spos.get("stop_price") != _num(stop_text):
                    continue
                found = {"dom": dom, "symbol": sym, "stop": _num(stop_text), "algo": algo, "status": status}
                break
        assert found is not None
        t_found = time.monotonic() - t_start
        dom = found["dom"]
        shot = tmp_path / "webview.png"
        png = base64.b64decode(cdp.call("Page.captureScreenshot", format="png")["data"])
        shot.write_bytes(png)
        print(f"\nweb view screenshot: {shot}")
        if os.environ.get("SCALPER_WEBVIEW_SHOT"):
            shutil.copyfile(shot, os.environ["SCALPER_WEBVIEW_SHOT"])
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
        # the page is live: it keeps updating by itself over the event stream (one event every 0.5 s)
        assert dom["conn"] == "live" and first_updates is not None, dom
        later = time.monotonic() + 10
        while orjson.loads(cdp.eval(_DOM))["updates"] <= dom["updates"]:
            assert time.monotonic() < later, "the page stopped updating"
            time.sleep(0.1)
        assert [b["key"] for b in dom["books"]] == ["BTCUSDT"] and dom["books"][0]["cells"][1] == "LIVE"
        orders = [o for o in dom["orders"] if o["cells"][1] == found["symbol"]]
        roles = {o["cells"][2] for o in orders}
        assert "stop" in roles, orders
        control = dom["control"]  # dt, dd pairs: the order transport of the venue (this config: REST)
        assert control[control.index("orders to binance-usdm") + 1] == "REST", control

        # the terminal view, from the same bot's /status: the stop shown, the resting orders counted
        status = found["status"]
        screen = render(status, {}, [], width=80, height=24)
        assert f"stop {found['stop']:>11,.2f}" in screen, screen
        assert status["open_orders"] and f"open orders ({len(status['open_orders'])})" in screen, screen
        print(f"page: {len(dom['positions'])} position(s), {len(dom['orders'])} resting order(s) "
              f"({sorted(roles)}), stop {found['stop']}; bot ready {t_ready:.1f} s, "
              f"shown {t_found:.1f} s, done {time.monotonic() - t_start:.1f} s")
    finally:
        if cdp is not None:
            cdp._conn.__exit__(None, None, None)
        if chromium is not None:
            chromium.kill()
            chromium.wait(10)
        if bot is not None:
            bot.term(15)
        sim.stop()


def sim_state(sim: Sim) -> dict[str, Any]:
    return _get(sim.base + "/_sim/state")
