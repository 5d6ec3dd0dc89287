"""The live web view, served by the ops server: positions with their stops and targets, orders resting at
the exchange, recent trades with R and costs, equity and drawdown, book health per symbol, halts and
reconciliation, updating by itself over server-sent events. Plain HTML/JS/CSS from bot/ops/web_static
(no build step, no CDN: the VPS may have no internet); the equity chart is inline SVG drawn by the page.

Routes (added to the OpsServer's app; same bind and Host rules as every other endpoint):
- GET /view                the page. With `?token=<ops token>` (once): answers 303 to /view and sets an
                           HttpOnly, SameSite=Strict cookie, so the token leaves the address bar and the
                           history; the browser then sends the cookie with every request of the page.
- GET /view/snapshot       the page's data as JSON (what one event carries).
- GET /view/events         text/event-stream: one `data: <snapshot JSON>` every `interval_s`.
- GET /view/static/<file>  app.js, style.css.

Auth: the same ops token as /status and /control (bot.ops.token): `Authorization: Bearer <token>` or the
view cookie. The cookie holds HMAC-SHA256(token, "scalper-view"), not the token: it opens the read-only
view and nothing else (control needs the bearer header, and a browser never sends that on its own).
SameSite=Strict keeps other sites' pages from using it; the page has no control buttons.

The data: `RuntimeState.status()` (what /status serves) plus `extras()`, a callable the app registers
(bot.app_view.WebFeed: top of book per symbol, the journal's last closed trades, equity from the risk
gate). Equity is sampled once a second into a bounded series, from the server's start on.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
from collections import deque
from collections.abc import AsyncIterator, Callable
from importlib import resources
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

if TYPE_CHECKING:
    from bot.ops.server import OpsServer

__all__ = ["COOKIE", "WebView", "view_cookie_value"]

COOKIE = "scalper_view"
_STATIC = {"app.js": "text/javascript", "style.css": "text/css"}
_SERIES_MAX = 3600  # one sample a second: the last hour
_SERIES_SENT = 300  # points sent per event (thinned evenly): the chart is ~600 px wide
_HEADERS = {
    # no inline script, nothing from elsewhere; no framing (clickjacking); the token never leaks as a referrer
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store",
}


def view_cookie_value(token: str) -> str:
    return hmac.new(token.encode(), b"scalper-view", hashlib.sha256).hexdigest()


def _asset(name: str) -> bytes:
    return resources.files("bot.ops").joinpath("web_static", name).read_bytes()


class WebView:
    def __init__(self, server: OpsServer, *, interval_s: float = 0.5) -> None:
        self.server = server
        self.interval_s = interval_s
        self.extras: Callable[[], dict[str, Any]] | None = None  # the app's WebFeed
        self.series: deque[tuple[int, float]] = deque(maxlen=_SERIES_MAX)  # (ts_ms, equity)
        self._cookie = view_cookie_value(server.token)
        self._closing = asyncio.Event()
        app = server.app
        app.router.add_get("/view", self._page)
        app.router.add_get("/view/snapshot", self._snapshot)
        app.router.add_get("/view/events", self._events)
        app.router.add_get("/view/static/{name}", self._static)
        app.on_shutdown.append(self._on_shutdown)
        app.cleanup_ctx.append(self._sampler)

    # ---- auth -----------------------------------------------------------------------------
    def _authorised(self, request: web.Request) -> bool:
        got = request.cookies.get(COOKIE, "")
        return self.server._authorised(request) or (bool(got) and hmac.compare_digest(got, self._cookie))

    def _denied(self) -> web.Response:
        return web.Response(status=401, content_type="text/html", headers=_HEADERS, text=(
            "<!doctype html><title>scalper: token needed</title><p>Open <code>/view?token=&lt;ops token&gt;</code> "
            "once (the token: <code>SCALPER__OPS__TOKEN</code>, or the file <code>ops.token</code> in the bot's "
            "state directory). The page then keeps a cookie for this view only.</p>"))

    # ---- data -----------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        now = self.server.clock()
        out: dict[str, Any] = {"status": self.server.state.status(now), "books": {}, "trades": [],
                               "equity": None, "interval_s": self.interval_s}
        if self.extras is not None:
            try:
                out.update(self.extras())
            except Exception as e:  # the view must never take the server down; say why on the page
                out["extras_error"] = f"{type(e).__name__}: {e}"
        if out["equity"] is not None:
            s = list(self.series)
            step = max(1, len(s) // _SERIES_SENT)
            thinned = s[::step]
            if s and thinned[-1] != s[-1]:
                thinned.append(s[-1])
            if out["equity"].get("equity") is not None:  # the chart ends at the figure shown, not a second ago
                thinned.append((now // 1_000_000, float(out["equity"]["equity"])))
            out["equity"] = {**out["equity"], "series": thinned}
        return out

    def _sample(self) -> None:
        if self.extras is None:
            return
        with contextlib.suppress(Exception):
            eq = self.extras().get("equity") or {}
            if eq.get("equity") is not None:
                self.series.append((self.server.clock() // 1_000_000, float(eq["equity"])))

    async def _sampler(self, app: web.Application) -> AsyncIterator[None]:
        async def loop() -> None:
            while True:
                self._sample()
                await asyncio.sleep(1.0)

        task = asyncio.create_task(loop())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _on_shutdown(self, app: web.Application) -> None:
        self._closing.set()  # open event streams end now, not at the runner's shutdown timeout

    # ---- handlers -------------------------------------------------------------------------
    async def _page(self, request: web.Request) -> web.StreamResponse:
        given = request.query.get("token")
        if given is not None:
            if not hmac.compare_digest(given.encode(), self.server._token):
                return self._denied()
            resp = web.Response(status=303, headers={**_HEADERS, "Location": "/view"})
            resp.set_cookie(COOKIE, self._cookie, path="/view", httponly=True, samesite="Strict")
            return resp
        if not self._authorised(request):
            return self._denied()
        return web.Response(body=_asset("index.html"), content_type="text/html", headers=_HEADERS)

    async def _static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in _STATIC:
            return web.Response(status=404, text="no such file\n")
        if not self._authorised(request):
            return self._denied()
        return web.Response(body=_asset(name), content_type=_STATIC[name], headers=_HEADERS)

    async def _snapshot(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return self._denied()
        return web.Response(body=orjson.dumps(self.snapshot(), default=str), content_type="application/json",
                            headers=_HEADERS)

    async def _events(self, request: web.Request) -> web.StreamResponse:
        if not self._authorised(request):
            return self._denied()
        resp = web.StreamResponse(headers={**_HEADERS, "Content-Type": "text/event-stream",
                                           "X-Accel-Buffering": "no"})
        await resp.prepare(request)
        seq = 0
        with contextlib.suppress(ConnectionResetError):  # the page was closed
            # retry: the browser reconnects 2 s after the bot restarts (EventSource does so by itself)
            await resp.write(b"retry: 2000\n\n")
            while not self._closing.is_set():
                seq += 1
                body = orjson.dumps(self.snapshot(), default=str)
                await resp.write(b"id: %d\ndata: %s\n\n" % (seq, body))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), self.interval_s)
        return resp
