"""ccxt loads only the exchanges the bot uses (bot/venues/ccxt_lazy.py), and the package it gets behaves as the one
ccxt ships: the same public names, exchange classes (not modules) on first access, the same error classes.
Each check runs in a fresh interpreter: this process may have imported ccxt already."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson

from bot.venues.ccxt_lazy import _EXCHANGE_LINE
from tests.conftest import ROOT

# what a package exposes: every public name in __all__ with the kind of object it is
_DESCRIBE = """
import sys, types, orjson, ccxt, ccxt.async_support as a
def kinds(m):
    return {n: "module" if isinstance(getattr(m, n), types.ModuleType) else type(getattr(m, n)).__name__
            for n in m.__all__}
print(orjson.dumps({"sync": kinds(ccxt), "async": kinds(a), "exchanges": a.exchanges}).decode())
"""


def _py(code: str) -> str:
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr[-2000:]
    return p.stdout


def test_the_gateway_modules_load_two_exchanges_and_the_classes_they_use() -> None:
    out = orjson.loads(_py("""
import sys, orjson
import bot.venues.binance_usdm.ccxt_exchange, bot.venues.binance_usdm.wsapi, bot.venues.bybit.exchange
import ccxt.async_support as a
from ccxt.async_support.base.exchange import Exchange
loaded = sorted(m.rsplit(".", 1)[1] for m in sys.modules if m.startswith("ccxt.async_support.") and m.count(".") == 2
                and m.rsplit(".", 1)[1] in a.exchanges)
first = dict(binance=a.binance, binanceusdm=a.binanceusdm, bybit=a.bybit)  # binance: loaded as binanceusdm's base
before = "ccxt.async_support.kraken" in sys.modules
kraken = a.kraken  # any other one on first access
from ccxt.async_support import htx
import ccxt.async_support.okx
print(orjson.dumps(dict(
    kind=type(a).__name__, loaded=loaded, kraken_before=before,
    classes={n: isinstance(c, type) and issubclass(c, Exchange) for n, c in
             {**first, "kraken": kraken, "htx": htx, "okx": a.okx}.items()},
    usdm_is_binance=issubclass(a.binanceusdm, a.binance),
    errors=a.NetworkError is sys.modules["ccxt"].NetworkError is sys.modules["ccxt.base.errors"].NetworkError,
)).decode())
"""))
    assert out["kind"] == "LazyExchanges"
    assert out["loaded"] == ["binance", "binanceusdm", "bybit"]  # of ccxt's 100+, before anything asked for more
    assert out["kraken_before"] is False
    assert all(out["classes"].values()), out["classes"]
    assert out["usdm_is_binance"] and out["errors"]


def test_the_lazy_packages_expose_what_the_shipped_ones_do() -> None:
    shipped = orjson.loads(_py(_DESCRIBE))  # plain `import ccxt`: every exchange imported by its __init__
    lazy = orjson.loads(_py("import bot.venues\n" + _DESCRIBE))
    assert lazy == shipped
    assert shipped["sync"]["binance"] == shipped["async"]["bybit"] == "type" and len(shipped["exchanges"]) > 50


def test_the_pattern_drops_exactly_the_exchange_imports_of_the_installed_ccxt() -> None:
    """A ccxt release laid out differently would load in full (slower, not different): this says so."""
    import importlib.util

    for pkg in ("ccxt", "ccxt.async_support"):
        spec = importlib.util.find_spec(pkg)
        assert spec is not None and spec.origin
        source = Path(spec.origin).read_text(encoding="utf-8")
        names = [m.group("name") for m in _EXCHANGE_LINE.finditer(source)]
        exchanges = [ln.strip().strip("',") for ln in source.split("exchanges = [", 1)[1].split("]", 1)[0].split()]
        assert names == exchanges, pkg
        assert "from ccxt.base.errors import NetworkError" in _EXCHANGE_LINE.sub("", source)
