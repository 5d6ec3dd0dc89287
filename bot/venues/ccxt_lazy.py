"""ccxt without its 100+ exchanges at import: `ccxt` and `ccxt.async_support` load each exchange class on first
use instead of all of them up front.

Why: the two package `__init__`s import every exchange ccxt ships (~3 s CPU per process here, measured with
`python -X importtime -c "import ccxt.async_support"`); the bot uses two of them (binanceusdm, bybit). Every
`scalper run` start paid that before its first book. The meta-path finder below executes each package's own
`__init__.py` source without its `from ccxt[.async_support].<name> import <name>` lines and lets the package
module resolve those names on first access (PEP 562), binding the class exactly where `__init__` would have
(`ccxt.async_support.binanceusdm` is the class, not the module). Everything else of `__init__` (errors, the
`exchanges` list, Exchange, `__all__`) runs unchanged.

The venue modules still `import ccxt.async_support as ccxt` at their top, so the exchange classes the gateways
use are imported when the gateway modules are (app start), never on an order's path. When the pattern matches
no line (a ccxt release laid out differently) the package loads as it ships: slower, never different.
Installed by bot/venues/__init__.py; a process that imported ccxt before it keeps the full package.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import re
import sys
import types
from collections.abc import Sequence
from typing import Any

__all__ = ["PACKAGES", "install"]

PACKAGES = ("ccxt", "ccxt.async_support")
# `from ccxt.binance import binance` and `from ccxt.async_support.binance import binance`, each with a noqa comment
_EXCHANGE_LINE = re.compile(r"^from (?:ccxt|ccxt\.async_support)\.(?P<name>[a-z0-9_]+) import (?P=name)\b[^\n]*$",
                            re.MULTILINE)


class LazyExchanges(types.ModuleType):
    """A ccxt package module whose exchange classes load on first access."""

    _lazy_exchanges: frozenset[str]

    def __getattr__(self, name: str) -> Any:
        if name in self.__dict__.get("_lazy_exchanges", ()):
            importlib.import_module(f"{self.__name__}.{name}")  # binds the class through __setattr__
            return self.__dict__[name]
        raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        # the import system binds a loaded submodule on its package; ccxt's __init__ rebinds the name to the class
        # (`from ccxt.x import x`), so the package attribute is the class, as it is here
        if name in self.__dict__.get("_lazy_exchanges", ()) and isinstance(value, types.ModuleType):
            value = getattr(value, name)
        super().__setattr__(name, value)


class _Loader(importlib.abc.Loader):
    def __init__(self, real: importlib.machinery.SourceFileLoader) -> None:
        self.real = real

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return None  # the default module, re-classed in exec_module

    def exec_module(self, module: types.ModuleType) -> None:
        source = self.real.get_source(module.__name__) or ""
        names = frozenset(m.group("name") for m in _EXCHANGE_LINE.finditer(source))
        if not names:
            self.real.exec_module(module)
            return
        module.__class__ = LazyExchanges
        module.__dict__["_lazy_exchanges"] = names
        code = compile(_EXCHANGE_LINE.sub("", source), self.real.get_filename(module.__name__), "exec")
        exec(code, module.__dict__)


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: types.ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in PACKAGES:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or not isinstance(spec.loader, importlib.machinery.SourceFileLoader):
            return spec
        spec.loader = _Loader(spec.loader)
        return spec


def install() -> None:
    """Put the finder first on sys.meta_path (once). No effect on a ccxt already imported."""
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
