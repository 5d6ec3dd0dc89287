"""Ops HTTP endpoint (aiohttp): /health, /metrics, /status and /control/{halt,resume,flatten,reset-limits}.

Bound to 127.0.0.1:9310 by default (`[ops]`). It only reads RuntimeState and calls the control
callbacks the app registers; it never touches the trading path.

    server = OpsServer(state, settings.ops, alerts=alerts, state_dir=settings.app.state_dir)
    server.on_control("halt", app.halt)          # fn(reason: str) -> dict | None, sync or async
    server.on_control("resume", app.resume)
    server.on_control("flatten", app.flatten)
    server.on_control("reset-limits", app.reset_limits)
    tg.create_task(server.run())                 # or: await server.start(); ...; await server.stop()

Endpoints
- GET /health: JSON {"status": "ok"|"degraded"|"halted", "reasons": [...]}; HTTP 200 when ok, 503
  otherwise (Docker HEALTHCHECK, load balancers and `curl -f` read the code).
- GET /view: the live web view in a browser (bot.ops.web): `/view?token=<token>` once, then a cookie.
- GET /metrics: Prometheus text format (bot.ops.metrics, own registry).
- GET /status: JSON from RuntimeState.status(): positions, open orders, trading state, halted symbols,
  reconciliation, last errors, feeds.
- POST /control/<action> with a JSON body {"reason": "..."} (optional): calls the callback and
  answers {"ok": true, "action": ..., "result": ..., "trading": {...}, "halted_symbols": {...}}; 501 when
  the app registered none. {"symbol": "BTCUSDT"} in the body narrows halt/resume to one symbol: the
  callback is called as fn(reason, symbol="BTCUSDT") (400 when it takes no `symbol`); a callback raises
  ControlError for a request it refuses (an unknown symbol, resume while reconciling): HTTP 400 with the
  message. reset-limits (fresh daily-loss/drawdown baselines) also needs {"confirm": true} in the body.

Security
- /status and /control/* ALWAYS need `Authorization: Bearer <token>`, on loopback too (any local process
  or browser could otherwise flatten the bot); /metrics too with ops.metrics_require_token; /health is
  open. The token: SCALPER__OPS__TOKEN or the secrets file, else the one the bot created at its first
  start in `<app.state_dir>/ops.token` (0600, bot.ops.token), which the CLI reads; without a state
  directory (tests) a random one for this process (`server.token`). Compared in constant time.
- Refuses to bind beyond loopback without a configured token (ConfigError).
- POSTs must be `Content-Type: application/json`: a browser cannot send that cross-origin without a
  CORS preflight this server never grants, so a web page cannot flatten the bot through localhost.
  On a loopback bind the Host header must be a loopback name too (defeats DNS rebinding).
"""

from __future__ import annotations

import asyncio
import hmac
import inspect
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bot.errors import ConfigError
from bot.ops.metrics import build_registry
from bot.ops.state import RuntimeState
from bot.ops.token import ensure_token
from bot.ops.web import WebView
from bot.settings.ops import OpsSection, is_loopback_host

__all__ = ["CONTROL_ACTIONS", "ControlError", "OpsServer"]

CONTROL_ACTIONS = ("halt", "resume", "flatten", "reset-limits")
ControlFn = Callable[..., "Awaitable[Any] | Any"]  # fn(reason) or fn(reason, symbol=...)
_LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]", "::1")


class ControlError(ValueError):
    """A control request the app refuses as asked (unknown symbol, ...): HTTP 400, nothing done."""


def _takes_symbol(fn: ControlFn) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "symbol" or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data, default=str), status=status, content_type="application/json")


class OpsServer:
    def __init__(self, state: RuntimeState, section: OpsSection | None = None, *,
                 clock: Callable[[], int] = time.time_ns, alerts: Any = None,
                 control_timeout_s: float = 30.0, state_dir: str | None = None, token: str = "") -> None:
        self.state = state
        self.section = section or OpsSection()
        self.clock = clock
        self.control_timeout_s = control_timeout_s
        configured = token or self.section.token.get_secret_value()
        self._loopback = is_loopback_host(self.section.host)
        if not self._loopback and not configured:
            raise ConfigError(f"ops.host = {self.section.host!r} is beyond loopback and no ops token is set; "
                              "set SCALPER__OPS__TOKEN or bind 127.0.0.1")
        if state_dir is not None:
            configured = ensure_token(state_dir, configured)
        self.token = configured or secrets.token_urlsafe(32)  # never empty: control always needs it
        self._token = self.token.encode()
        self._controls: dict[str, ControlFn] = {}
        self._registry = build_registry(state, clock, alerts)
        self._runner: web.AppRunner | None = None
        self.port: int | None = None
        self.app = web.Application(middlewares=[self._guard])
        self.app.router.add_get("/health", self._health)
        self.app.router.add_get("/metrics", self._metrics)
        self.app.router.add_get("/status", self._status)
        self.app.router.add_post("/control/{action}", self._control)
        self.web = WebView(self)  # GET /view: the live web view (bot.ops.web), same token

    # ---- wiring ---------------------------------------------------------------------------
    def on_control(self, action: str, fn: ControlFn) -> None:
        """Register the app's handler for halt/resume/flatten/reset-limits: fn(reason) -> JSON-able or None."""
        if action not in CONTROL_ACTIONS:
            raise ValueError(f"unknown control action {action!r}; expected one of {CONTROL_ACTIONS}")
        self._controls[action] = fn

    @property
    def url(self) -> str:
        host = self.section.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"

    async def start(self) -> int:
        """Bind and serve; returns the bound port (useful with port 0)."""
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.section.host, self.section.port, reuse_address=True)
        try:
            await site.start()
        except OSError as e:  # a busy port: one line for the operator (`scalper run` checks it before connecting)
            await self._runner.cleanup()
            self._runner = None
            raise ConfigError(f"ops port {self.section.host}:{self.section.port} is not free ({e.strerror}); "
                              "stop what listens there or set ops.port / SCALPER__OPS__PORT") from None
        addresses = self._runner.addresses  # learn the real port when bound to port 0
        self.port = int(addresses[0][1]) if addresses else self.section.port
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def run(self) -> None:
        """Serve until cancelled (a TaskGroup task)."""
        await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()

    # ---- guards ---------------------------------------------------------------------------
    def _authorised(self, request: web.Request) -> bool:
        got = request.headers.get("Authorization", "")
        scheme, _, value = got.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), self._token)

    @web.middleware
    async def _guard(self, request: web.Request,
                     handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        if self._loopback:
            host = request.host.rsplit(":", 1)[0] if not request.host.endswith("]") else request.host
            if host not in _LOOPBACK_NAMES:
                return _json({"error": "forbidden host header"}, 403)
        path = request.path
        protected = path == "/status" or path.startswith("/control/") or (
            path == "/metrics" and self.section.metrics_require_token)
        if protected and not self._authorised(request):
            return web.Response(status=401, text="missing or wrong bearer token\n",
                                headers={"WWW-Authenticate": "Bearer"})
        if request.method == "POST" and request.content_type != "application/json":
            return _json({"error": "POST needs Content-Type: application/json"}, 415)
        return await handler(request)

    # ---- handlers -------------------------------------------------------------------------
    async def _health(self, request: web.Request) -> web.Response:
        h = self.state.health(self.clock())
        return _json(h, 200 if h["status"] == "ok" else 503)

    async def _metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self._registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _status(self, request: web.Request) -> web.Response:
        return _json(self.state.status(self.clock()))

    async def _control(self, request: web.Request) -> web.Response:
        action = request.match_info["action"]
        if action not in CONTROL_ACTIONS:
            return _json({"ok": False, "error": f"unknown action {action!r}"}, 404)
        fn = self._controls.get(action)
        if fn is None:
            return _json({"ok": False, "error": f"{action} is not available in this bot"}, 501)
        try:
            body = await request.json() if request.can_read_body else {}
        except ValueError:
            return _json({"ok": False, "error": "body is not valid JSON"}, 400)
        body = body if isinstance(body, dict) else {}
        if action == "reset-limits" and body.get("confirm") is not True:
            return _json({"ok": False, "action": action, "error": "reset-limits starts fresh daily-loss and "
                          'drawdown baselines: send {"confirm": true} (scalper reset-limits --yes)'}, 400)
        reason = str(body.get("reason") or f"operator {action} via ops endpoint")[:200]
        symbol = body.get("symbol")
        if symbol is not None and (not isinstance(symbol, str) or not symbol.strip()):
            return _json({"ok": False, "action": action, "error": "symbol must be a non-empty string"}, 400)
        if symbol is not None and not _takes_symbol(fn):
            return _json({"ok": False, "action": action, "error": f"{action} does not take a symbol"}, 400)
        try:
            result = fn(reason) if symbol is None else fn(reason, symbol=symbol.strip().upper())
            if inspect.isawaitable(result):
                result = await asyncio.wait_for(result, self.control_timeout_s)
        except ControlError as e:
            return _json({"ok": False, "action": action, "error": str(e)}, 400)
        except TimeoutError:
            return _json({"ok": False, "action": action,
                          "error": f"{action} did not finish within {self.control_timeout_s:g} s; "
                                   "check /status"}, 504)
        except Exception as e:  # report to the operator; the app's own task is unaffected
            self.state.on_error("ops.control", f"{action} failed: {type(e).__name__}: {e}", self.clock())
            return _json({"ok": False, "action": action, "error": f"{type(e).__name__}: {e}"}, 500)
        st = self.state
        return _json({"ok": True, "action": action, "result": result,
                      "trading": {"state": st.trading_state, "reason": st.trading_reason},
                      "halted_symbols": {sym: dict(h) for sym, h in st.halted_symbols.items()}})
