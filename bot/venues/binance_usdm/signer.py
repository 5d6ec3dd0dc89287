"""Signed order placement for Binance USD-M without ccxt's per-call request machinery (the entry hot path).

ccxt's `create_order` spends ~470 us per entry on this machine before the request leaves (the market
lookup, `create_order_request`'s unified -> Binance translation and string-arithmetic precision, `sign`'s
`extend`/`urlencode`/HMAC key schedule), against ~180 us for the same bytes built here (bench latency
--venue exchange-sim --ccxt-ab). `orders.order_params` builds the request ccxt would build; this module
signs it exactly as ccxt's `binance.sign` does and hands it to ccxt's own `fetch`, so the transport contract
is unchanged: our aiohttp session, ccxt's timeouts, `handle_errors` (our limiter hook, 5xx marking, ccxt's
exception classes that errors.translate maps), JSON decoding.

The signed query, as `binance.sign` makes it for a private POST (exchange-facts A2):
`timestamp=<nonce()>` first, then the request's parameters in order, then `recvWindow` (options), urlencoded
with `urllib.parse.quote` (nothing is safe: '/' and ':' of a client id are escaped), then
`&signature=<hex HMAC-SHA256 of that query>`; headers X-MBX-APIKEY and the form content type.

Only HMAC keys are signed here. An RSA or Ed25519 key (a secret holding "PRIVATE KEY", which ccxt signs
differently) goes through ccxt's implicit endpoint with the same parameters: one request builder, two
signers.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import socket
from typing import Any
from urllib.parse import quote

import aiohttp
import yarl
from ccxt.base import errors as ccxt_errors

__all__ = ["OrderSigner", "encode_query", "nonce_ms"]

# RFC 3986 unreserved (what urllib's quote leaves as it is with safe=''), plus the query's own separators
_PLAIN_QUERY = re.compile(r"[A-Za-z0-9_.~=&-]*")
_PATHS = {"order": "fapiPrivatePostOrder", "algoOrder": "fapiPrivatePostAlgoOrder"}
_FORM = "application/x-www-form-urlencoded"


def _text(v: Any) -> str:
    if v is True:
        return "true"
    if v is False:
        return "false"
    return v if v.__class__ is str else str(v)


def nonce_ms(ex: Any) -> int:
    """ccxt binance's `nonce()` (`milliseconds() - options['timeDifference']`, exchange-facts A2) without its
    `safe_integer` walk (~5-10 us cold on the entry path); a missing offset goes to ccxt, which raises."""
    td = ex.options.get("timeDifference")
    if td is None or (td.__class__ is not int and td.__class__ is not float):
        return int(ex.nonce())
    return int(ex.milliseconds()) - int(td)


def encode_query(params: dict[str, Any]) -> str:
    """`Exchange.urlencode(params)` for str/int/float/bool values (bools as 'true'/'false', keys and values
    quoted with urllib's quote, safe=''), without its per-character work when nothing needs escaping:
    the query is joined as is and checked once; one '=' per pair and one '&' between pairs prove that no
    key or value held a separator."""
    # order_params gives strings: the check inline instead of a call per value
    parts = [k + "=" + (v if v.__class__ is str else _text(v)) for k, v in params.items()]
    query = "&".join(parts)
    n = len(parts)
    if _PLAIN_QUERY.fullmatch(query) is not None and query.count("=") == n and query.count("&") == n - 1:
        return query
    return "&".join(quote(k, safe="") + "=" + quote(_text(v), safe="") for k, v in params.items())


class OrderSigner:
    """POST /fapi/v1/order and /fapi/v1/algoOrder for one ccxt exchange object (its keys, URLs, clock).

    The exchange's `timeDifference` (our measured clock offset, gateway.sync_clock) and `recvWindow` are
    read per request, as ccxt's `nonce()` and `sign` read them."""

    def __init__(self, ex: Any) -> None:
        self._ex = ex
        secret = str(ex.secret or "")
        # ccxt signs these with RSA / Ed25519 (binance.sign): leave them to it
        self._mac = None if "PRIVATE KEY" in secret else hmac.new(secret.encode(), digestmod=hashlib.sha256)
        self._api_key = ex.apiKey
        self._prep: dict[tuple[Any, ...], tuple[Any, str, dict[str, str], Any, bool]] = {}

    @property
    def hmac(self) -> bool:
        return self._mac is not None

    def body(self, params: dict[str, Any]) -> str:
        """The signed form body of `params` (not modified), with a fresh timestamp."""
        ex = self._ex
        signed: dict[str, Any] = {"timestamp": nonce_ms(ex)}
        signed.update(params)
        rw = ex.options.get("recvWindow")
        if rw is not None:
            signed["recvWindow"] = int(rw)
        query = encode_query(signed)
        assert self._mac is not None
        h = self._mac.copy()  # the key schedule is done once; copying it is ~1 us, redoing it ~5 us cold
        h.update(query.encode())
        return query + "&signature=" + h.hexdigest()

    def warm(self, path: str, params: dict[str, Any]) -> None:
        """`post`'s synchronous part (the signed body, the prepared request), built and dropped
        (execution/warm.py). An RSA / Ed25519 key is ccxt's to sign: nothing to warm here."""
        if self._mac is not None:
            self.body(params)
            if self._ex.session is not None:
                self._prepared(path)

    async def post(self, path: str, params: dict[str, Any]) -> Any:
        """Sign and send; returns the decoded JSON answer. Raises what ccxt raises for the request."""
        ex = self._ex
        if self._mac is None:
            return await getattr(ex, _PATHS[path])(dict(params))
        body = self.body(params)
        prep = self._prepared(path) if ex.session is not None else None
        if prep is not None and prep[4]:
            return await self._fetch(prep, body)
        # a fresh headers dict per request: ccxt's prepare_request_headers updates the one it is given
        headers = {"X-MBX-APIKEY": self._api_key, "Content-Type": _FORM}
        return await ex.fetch(ex.urls["api"]["fapiPrivate"] + "/" + path, "POST", headers, body)

    async def _fetch(self, prep: tuple[Any, str, dict[str, str], Any, bool], body: str) -> Any:
        """ccxt's `fetch` for this POST without its per-call preamble (~40-85 us before aiohttp: request
        headers merged from the session, ccxt's and the user agent, the proxy checks, the URL parsed, a
        timeout object): those are the same for every order, so they are made once per path and timeout
        (`_prepared`). The answer is handled exactly as ccxt's `fetch` handles it (the same hooks, JSON,
        error checks and exception classes, the same session). Only without proxies (`_direct_ok`)."""
        ex = self._ex
        url, url_s, headers, timeout, _ = prep
        request_headers = dict(headers)  # ccxt hands its own copy to the hooks: so do we
        ex.last_request_headers = request_headers
        try:
            async with ex.session.post(url, data=body.encode(), headers=request_headers, timeout=timeout,
                                       proxy=None) as response:
                http_response = await response.text(errors="replace")
                raw_headers = response.headers
                resp_headers: dict[str, str] = {}
                for header in raw_headers:
                    if header in resp_headers:
                        resp_headers[header] = resp_headers[header] + ", " + raw_headers[header]
                    else:
                        resp_headers[header] = raw_headers[header]
                status, reason = response.status, response.reason
                http_response = ex.on_rest_response(status, reason, url_s, "POST", resp_headers, http_response,
                                                     request_headers, body)
                json_response = ex.parse_json(http_response)
                if ex.enableLastHttpResponse:
                    ex.last_http_response = http_response
                if ex.enableLastResponseHeaders:
                    ex.last_response_headers = resp_headers
                if ex.enableLastJsonResponse:
                    ex.last_json_response = json_response
                if json_response and not isinstance(json_response, list) and ex.returnResponseHeaders:
                    json_response["responseHeaders"] = resp_headers
        except socket.gaierror as e:
            raise ccxt_errors.ExchangeNotAvailable(f"{ex.id} POST {url}") from e
        except TimeoutError as e:  # asyncio's and concurrent.futures' are this one since 3.11
            raise ccxt_errors.RequestTimeout(f"{ex.id} POST {url}") from e
        except aiohttp.ClientConnectionError as e:
            raise ccxt_errors.ExchangeNotAvailable(f"{ex.id} POST {url}") from e
        except aiohttp.ClientError as e:
            raise ccxt_errors.ExchangeError(f"{ex.id} POST {url}") from e
        ex.handle_errors(status, reason, url_s, "POST", resp_headers, http_response, json_response, request_headers,
                         body)
        ex.handle_http_status_code(status, reason, url_s, "POST", http_response)
        if json_response is not None:
            return json_response
        return http_response

    def _prepared(self, path: str) -> tuple[Any, str, dict[str, str], Any, bool]:
        """(URL, its text, request headers, timeout, direct) of a POST to `path`, made once per path, timeout, base
        URL and session. `direct` is False when ccxt's fetch would route the request differently (a proxy of
        any kind, verbose logging): then it goes through ccxt's fetch."""
        ex = self._ex
        key = (path, ex.timeout, ex.urls["api"]["fapiPrivate"], id(ex.session))
        hit = self._prep.get(key)
        if hit is None:
            url_s = ex.urls["api"]["fapiPrivate"] + "/" + path
            headers = ex.prepare_request_headers({"X-MBX-APIKEY": self._api_key, "Content-Type": _FORM})
            direct = (ex.check_proxy_url_settings(url_s, "POST", headers, None) is None
                      and not any(ex.check_proxy_settings(url_s, "POST", headers, None))
                      and not ex.aiohttp_proxy and not ex.verbose)
            t = ex.timeout / 1000
            hit = self._prep[key] = (yarl.URL(url_s, encoded=True), url_s, headers,
                                     aiohttp.ClientTimeout(total=t, sock_connect=t, sock_read=t), direct)
        return hit
