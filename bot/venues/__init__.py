"""Venue adapters. ccxt (used by the Binance and Bybit adapters) loads only the exchanges we use: ccxt_lazy.py."""

from bot.venues import ccxt_lazy

ccxt_lazy.install()
