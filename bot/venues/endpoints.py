"""Each venue's default endpoints per environment (pure data, no I/O): what the venue code connects to
when no `venue.*_url` override is given. One table, read by the venue code (re-exported there under its
old names) and by the live-money guard (bot/guard.py), which must judge exactly those URLs and may not
import a venue (issue 12 item 6)."""

from __future__ import annotations

__all__ = ["BINANCE_USDM", "BINANCE_USDM_PRIVATE_WS", "BINANCE_USDM_WS_API", "BYBIT_PRIVATE_WS", "BYBIT_PUBLIC_LINEAR"]

# environment -> (REST, ws /public root, ws /market root). exchange-facts A2; the demo websocket host is
# undocumented ([3P][?]: demo-fstream.binance.com is what most bots use). exchange-sim is our loopback server.
BINANCE_USDM: dict[str, tuple[str, str, str]] = {
    "mainnet": ("https://fapi.binance.com", "wss://fstream.binance.com/public", "wss://fstream.binance.com/market"),
    "demo": ("https://demo-fapi.binance.com", "wss://demo-fstream.binance.com/public",
             "wss://demo-fstream.binance.com/market"),
    "testnet": ("https://testnet.binancefuture.com", "wss://fstream.binancefuture.com/public",
                "wss://fstream.binancefuture.com/market"),
    "exchange-sim": ("http://127.0.0.1:18080", "ws://127.0.0.1:18080/public", "ws://127.0.0.1:18080/market"),
}

# environment -> private websocket root (A2; the demo and testnet hosts are [?] in exchange-facts).
BINANCE_USDM_PRIVATE_WS: dict[str, str] = {
    "mainnet": "wss://fstream.binance.com/private",
    "demo": "wss://demo-fstream.binance.com/private",
    "testnet": "wss://fstream.binancefuture.com/private",
    "exchange-sim": "ws://127.0.0.1:18080/private",
}

# environment -> the WebSocket API for order entry (A2 table; demo: the testnet host ccxt pro uses [3P][?]);
# exchange-sim: the host of venue.rest_url, path /ws-fapi/v1 (binance_usdm/wsapi.ws_api_url), which the guard
# judges as the REST URL
BINANCE_USDM_WS_API: dict[str, str] = {
    "mainnet": "wss://ws-fapi.binance.com/ws-fapi/v1",
    "demo": "wss://testnet.binancefuture.com/ws-fapi/v1",
    "testnet": "wss://testnet.binancefuture.com/ws-fapi/v1",
}

# environment -> public linear websocket (B2)
BYBIT_PUBLIC_LINEAR: dict[str, str] = {
    "mainnet": "wss://stream.bybit.com/v5/public/linear",
    "demo": "wss://stream.bybit.com/v5/public/linear",  # demo trading reads mainnet public data (B2)
    "testnet": "wss://stream-testnet.bybit.com/v5/public/linear",
    "exchange-sim": "ws://127.0.0.1:18080/v5/public/linear",
}

# environment -> private websocket (B2; exchange-sim: a loopback fake must be given as ws_private_url)
BYBIT_PRIVATE_WS: dict[str, str] = {
    "mainnet": "wss://stream.bybit.com/v5/private",
    "testnet": "wss://stream-testnet.bybit.com/v5/private",
    "demo": "wss://stream-demo.bybit.com/v5/private",
    "exchange-sim": "ws://127.0.0.1:18080/v5/private",
}
