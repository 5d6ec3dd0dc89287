"""The ways an entry can be handed to the venue, for the interleaved A/B rounds of
`scalper bench latency --venue exchange-sim --ccxt-ab` (the headline is the shipped path, MODES[0]).

Every mode keeps ccxt as the transport contract: its `fetch` (our aiohttp session, timeouts, the
`handle_errors` hook that feeds our limiter and marks 5xx, JSON decoding, ccxt's exception classes that
`binance_usdm.errors.translate` maps). They differ in what runs before it:

- fastpath (shipped, BinanceGateway.submit): the request built by `orders.order_params` (in the gateway
  step), signed by `signer.OrderSigner` (timestamp, recvWindow, the query joined directly, HMAC with the
  key schedule done once) and handed to `ex.fetch`.
- create_order: what the gateway did before: `ex.create_order(*create_args(...))`: the market lookup,
  ccxt's `create_order_request` (unified -> Binance words, price/amount precision by string arithmetic),
  then the implicit endpoint (`sign`: client-id handling, `extend`, urlencode, HMAC) and `fetch`.
- implicit: the fast path's request handed to ccxt's implicit endpoint `fapiPrivatePostOrder` (ccxt signs;
  what the gateway does for RSA/Ed25519 keys).
- fastpath_task: the fast path, but the engine hands the entry to the gateway in a plain task (started at
  the loop's next turn) instead of an eagerly started one (execution/eager.py; what the engine did before).

All three send the same bytes (tests/venues/test_binance_fastpath.py); each returns the venue's order.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from bot.venues.binance_usdm.orders import create_args

__all__ = ["EAGER", "MODES", "send_entry"]

MODES = ("fastpath", "create_order", "implicit", "fastpath_task")
EAGER = {"fastpath": True, "create_order": True, "implicit": True, "fastpath_task": False}


async def send_entry(ex: Any, mode: str, post: Callable[[str, dict[str, Any]], Awaitable[Any]], path: str,
                     params: dict[str, Any], req: Any, inst: Any, ccxt_symbol: str) -> Any:
    """Place one order by `mode`; `post` is the gateway's own sender (OrderSigner.post)."""
    if mode in ("fastpath", "fastpath_task"):
        return await post(path, params)
    if mode == "create_order":
        return (await ex.create_order(*create_args(req, inst, ccxt_symbol))).get("info") or {}
    if mode == "implicit":
        return await ex.fapiPrivatePostOrder(dict(params))
    raise ValueError(f"unknown mode {mode!r}; modes: {', '.join(MODES)}")
