"""The real processes of a drill: `python -m bot exchange-sim` on a free loopback port, `python -m bot run
-c config/exchange-sim.toml --no-view` pointed at it through SCALPER__ overrides, an alert webhook on
127.0.0.1, and a read-only look at the bot's journal. Shared by `scalper drill` and the restart drills
in tests/test_restart_drills.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

__all__ = ["ROOT", "Bot", "Hook", "Sim", "env", "free_port", "rows", "until", "webhook"]

ROOT = Path(__file__).resolve().parent.parent.parent
JOURNAL = "journal-exchange-sim.sqlite"  # config/exchange-sim.toml's journal.path, under the state dir


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env(**extra: str) -> dict[str, str]:
    """The parent's environment without any SCALPER__ override (the caller's own config must not leak
    into a drill), plus `extra`."""
    out = {k: v for k, v in os.environ.items() if not k.startswith("SCALPER__")}
    out["PYTHONPATH"] = str(ROOT)
    out.update(extra)
    return out


class Sim:
    """`python -m bot exchange-sim` on a free port; its output in `<tmp>/sim.log`."""

    def __init__(self, tmp: Path, seed: int = 7, symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT")) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = open(tmp / "sim.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen([sys.executable, "-m", "bot", "exchange-sim", "--port", str(self.port),
                                      "--seed", str(seed), "--symbols", ",".join(symbols)], cwd=ROOT, env=env(),
                                     stdout=self.log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while True:  # bounded: the server is up well under 2 s
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.stop()
                    raise RuntimeError(f"exchange-sim did not start (log {self.log.name})") from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


# the generated market trades within seconds with these (config/default.toml's demo pace)
FAST_SIGNALS = dict(
    SCALPER__SIGNALS__MOMENTUM__BAR_MS="1000", SCALPER__SIGNALS__MOMENTUM__COOLDOWN_S="20",
    SCALPER__SIGNALS__RSI_SNAPBACK__BAR_MS="1000", SCALPER__SIGNALS__RSI_SNAPBACK__COOLDOWN_S="20",
    SCALPER__SIGNALS__BREAKOUT_FADE__COOLDOWN_S="20", SCALPER__SIGNALS__ABSORPTION__COOLDOWN_S="20",
    SCALPER__RISK__MAX_CONSECUTIVE_LOSSES="50", SCALPER__RISK__SETUP_COOLDOWN_S="0",
)


class Bot:
    """One `scalper run` process against `sim`; its JSON log in `<state>/bot-N.log`. `over` are more
    SCALPER__ overrides (they win over the defaults here); `launcher` replaces `python -m bot` (e.g. the
    network-watching wrapper bot.drill.netwatch)."""

    n = 0

    def __init__(self, sim: Sim, state: Path, hook: str, launcher: list[str] | None = None, **over: str) -> None:
        Bot.n += 1
        self.log_path = state / f"bot-{Bot.n}.log"
        p = sim.port
        base = dict(
            SCALPER__VENUE__REST_URL=sim.base, SCALPER__VENUE__WS_PUBLIC_URL=f"ws://127.0.0.1:{p}/public",
            SCALPER__VENUE__WS_MARKET_URL=f"ws://127.0.0.1:{p}/market",
            SCALPER__VENUE__WS_PRIVATE_URL=f"ws://127.0.0.1:{p}/private",
            SCALPER__VENUE__API_KEY="sim-key", SCALPER__VENUE__API_SECRET="sim-secret",
            SCALPER__APP__STATE_DIR=str(state), SCALPER__OPS__ENABLED="false", SCALPER__LOG__FORMAT="json",
            SCALPER__OPS__ALERTS__WEBHOOK_URL=hook, **FAST_SIGNALS,
            # the restart drills are about restarts, not the confirm deadline: a loaded 2-core box can miss
            # 500 ms on a later trade, whose flatten + symbol halt would then be mistaken for a restart fault
            SCALPER__EXECUTION__STOP_CONFIRM_TIMEOUT_MS="3000")
        base.update(over)
        self.env = base
        self.out = open(self.log_path, "wb")  # noqa: SIM115
        cmd = launcher or [sys.executable, "-m", "bot"]
        self.proc = subprocess.Popen([*cmd, "run", "-c", str(ROOT / "config/exchange-sim.toml"), "--no-view"],
                                     cwd=ROOT, env=env(**base), stdout=self.out, stderr=subprocess.STDOUT)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.out.close()

    def term(self, timeout_s: float = 25.0) -> int:
        """SIGTERM, wait; returns the exit code (a process that did not stop in time is killed: -9)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            return self.proc.returncode
        finally:
            self.out.close()

    def events(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log_path.read_bytes().splitlines():
            with contextlib.suppress(orjson.JSONDecodeError):
                ev = orjson.loads(line)
                if isinstance(ev, dict):
                    out.append(ev)
        return out

    def alive(self) -> bool:
        return self.proc.poll() is None


class Hook:
    """The alert webhook: every JSON body it receives."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.url = ""

    def texts(self, kind: str) -> list[str]:
        return [b["text"] for b in self.bodies if b.get("kind") == kind]


@contextlib.asynccontextmanager
async def webhook() -> AsyncIterator[Hook]:
    hook = Hook()

    async def post(request: web.Request) -> web.Response:
        with contextlib.suppress(ValueError):
            hook.bodies.append(await request.json())
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/hook", post)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    hook.url = f"http://127.0.0.1:{port}/hook"
    try:
        yield hook
    finally:
        await runner.cleanup()


def rows(state: Path, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    """Read-only look at the bot's journal (WAL: readers never block the writer)."""
    path = state / JOURNAL
    if not path.exists():
        return []
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2)
    db.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in db.execute(sql, params)]
    except sqlite3.OperationalError:  # not created yet
        return []
    finally:
        db.close()


async def until(what: str, fn: Callable[[], Any], timeout_s: float, bot: Bot | None = None,
                step_s: float = 0.1) -> Any:
    """Poll `fn` (sync or async) until it returns something truthy; AssertionError on timeout or when
    `bot` exits meanwhile."""
    deadline = time.monotonic() + timeout_s
    while True:
        got = fn()
        if asyncio.iscoroutine(got):
            got = await got
        if got:
            return got
        if bot is not None and not bot.alive():
            raise AssertionError(f"{what}: the bot exited ({bot.proc.returncode}); log {bot.log_path}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s} s" + (f"; log {bot.log_path}" if bot else ""))
        await asyncio.sleep(step_s)
