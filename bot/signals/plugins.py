"""Strategy plug-ins: loading (`[signals.plugins.NAME]` -> an instance) and how each is called.

The loading contract (docs/strategies.md; other tools rely on it, keep it to the letter): a table
`[signals.plugins.NAME]` with `path` (a `.py` file, relative to the config file or absolute) and
`object` (a class defined in it); every other key of the table is passed to the class as a keyword
argument. The instance needs `propose(view)`. It may declare, as attributes (class or instance, so a
keyword argument can set them):
- when it is called: `bar_s` (once per closed bar of that interval, which must be one of
  `signals.bar_intervals_ms`), else `trigger` = "book" (default: after every applied depth event of a
  LIVE book), "trade" (after every print) or "any" (both); `min_interval_ms` throttles either on
  exchange time (at most one call per symbol per interval);
- its execution parameters, the keys of `[signals.plugin_defaults]` (cooldown_s, time_limit_s,
  stop_buffer_bps, min_stop_bps, max_stop_bps, tp_r_multiples, tp_fractions): its own value wins.

Every loading problem is a ConfigError of one line naming the key (the CLI prints it and exits 2).
A plug-in that raises while running is disabled for the run: the engine returns a `PluginFailed`.
"""

from __future__ import annotations

import importlib.util
import inspect
import math
import os
import sys
from typing import TYPE_CHECKING, Any

from bot.errors import ConfigError

if TYPE_CHECKING:  # settings (pydantic) stay out of the core's imports
    from bot.settings.signals import PluginSpec, SetupCommon, SignalsSection

__all__ = ["COMMON_KEYS", "TRIGGERS", "Plugin", "PluginFailed", "describe", "load_plugins"]

COMMON_KEYS = ("cooldown_s", "time_limit_s", "stop_buffer_bps", "min_stop_bps", "max_stop_bps", "tp_r_multiples",
               "tp_fractions")
TRIGGERS = ("book", "trade", "any", "bar")
_MS = 1_000_000


class PluginFailed:
    """A plug-in raised (or returned something that is not a Candidate): it is disabled for the run.
    The app turns this into an alert; the engine has logged it."""

    __slots__ = ("error", "name", "symbol", "ts_ns")

    def __init__(self, name: str, symbol: str, ts_ns: int, error: str) -> None:
        self.name = name
        self.symbol = symbol
        self.ts_ns = ts_ns
        self.error = error

    @property
    def message(self) -> str:
        return f"strategy {self.name!r} disabled for this run: {self.error} (on {self.symbol})"

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "symbol": self.symbol, "ts_ns": self.ts_ns, "error": self.error}


class Plugin:
    """One strategy as the engine runs it: the bound `propose`, when to call it, its setup parameters
    (`cfg`: cooldown, stop rules, take-profit tiers, time limit) and per-symbol call bookkeeping."""

    __slots__ = ("bar_ms", "builtin", "cfg", "last_call_ns", "min_interval_ns", "name", "obj", "on_book",
                 "on_trade", "propose", "source")

    def __init__(self, name: str, obj: Any, cfg: Any, *, bar_ms: int = 0, on_book: bool = True,
                 on_trade: bool = False, min_interval_ms: float = 0.0, builtin: bool = False,
                 source: str = "") -> None:
        self.name = name
        self.obj = obj
        self.propose = obj.propose
        self.cfg = cfg
        self.bar_ms = bar_ms  # > 0: called once per closed bar of this interval
        self.on_book = on_book and not bar_ms
        self.on_trade = on_trade and not bar_ms
        self.min_interval_ns = int(min_interval_ms * _MS)
        self.builtin = builtin
        self.source = source
        self.last_call_ns: dict[str, int] = {}  # symbol -> event time of the last call (throttle)

    @property
    def trigger(self) -> str:
        if self.bar_ms:
            return "bar"
        return "any" if self.on_book and self.on_trade else "trade" if self.on_trade else "book"


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _import(name: str, path: str) -> Any:
    where = f"signals.plugins.{name}.path = {path!r}"
    if not path.endswith(".py"):
        raise ConfigError(f"{where}: must be a .py file")
    full = os.path.abspath(path)
    if not os.path.isfile(full):
        raise ConfigError(f"{where}: file not found ({full})")
    modname = f"scalper_strategy_{name}"
    spec = importlib.util.spec_from_file_location(modname, full)
    if spec is None or spec.loader is None:
        raise ConfigError(f"{where}: cannot be loaded as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[modname] = module  # dataclasses and pickling look the module up by name
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        sys.modules.pop(modname, None)
        raise ConfigError(f"{where}: importing it failed: {_one_line(e)}") from None
    return module


def _instantiate(name: str, spec: PluginSpec) -> Any:
    module = _import(name, spec.path)
    where = f"signals.plugins.{name}.object = {spec.object!r}"
    cls = getattr(module, spec.object, None)
    if cls is None:
        classes = sorted(k for k, v in vars(module).items() if inspect.isclass(v) and v.__module__ == module.__name__)
        raise ConfigError(f"{where}: no such class in {spec.path} (classes there: {', '.join(classes) or 'none'})")
    if not inspect.isclass(cls):
        raise ConfigError(f"{where}: is a {type(cls).__name__}, not a class")
    kwargs = dict(spec.model_extra or {})
    try:
        obj = cls(**kwargs)
    except Exception as e:
        keys = ", ".join(sorted(kwargs)) or "no keys"
        raise ConfigError(f"signals.plugins.{name}: {spec.object}({keys}) failed: {_one_line(e)}") from None
    if not callable(getattr(obj, "propose", None)):
        raise ConfigError(f"{where}: the class has no propose(view) method")
    return obj


def _settings_of(name: str, obj: Any, defaults: SetupCommon) -> Any:
    """The plug-in's execution parameters: [signals.plugin_defaults], overridden by its attributes."""
    data = defaults.model_dump()
    for k in COMMON_KEYS:
        v = getattr(obj, k, None)
        if v is not None:
            data[k] = tuple(v) if isinstance(v, list) else v
    try:
        return type(defaults).model_validate(data)
    except Exception as e:  # pydantic's ValidationError: one line naming the key
        errs = getattr(e, "errors", None)
        if callable(errs):
            first = errs()[0]
            loc = ".".join(str(p) for p in first.get("loc", ())) or "value"
            raise ConfigError(f"signals.plugins.{name}: {loc} = {first.get('input')!r}: {first.get('msg')}") from None
        raise ConfigError(f"signals.plugins.{name}: {_one_line(e)}") from None


def make_plugin(name: str, obj: Any, cfg: Any, bar_intervals_ms: tuple[int, ...], *, builtin: bool = False,
                source: str = "") -> Plugin:
    """Read the call declaration of an instance (bar_s / trigger / min_interval_ms) and wrap it."""
    where = f"signals.plugins.{name}"
    bar_s = getattr(obj, "bar_s", None)
    trigger = getattr(obj, "trigger", None) or ("bar" if bar_s else "book")
    if trigger not in TRIGGERS:
        raise ConfigError(f"{where}: trigger = {trigger!r}: must be one of {', '.join(TRIGGERS)}")
    bar_ms = 0
    if bar_s is not None or trigger == "bar":
        if not isinstance(bar_s, int | float) or not math.isfinite(bar_s) or bar_s <= 0:
            raise ConfigError(f"{where}: bar_s = {bar_s!r}: must be a number of seconds > 0 (trigger 'bar')")
        bar_ms = round(bar_s * 1000)
        if bar_ms not in bar_intervals_ms:
            raise ConfigError(f"{where}: bar_s = {bar_s!r}: {bar_ms} ms is not in signals.bar_intervals_ms "
                              f"{list(bar_intervals_ms)}")
    mi = getattr(obj, "min_interval_ms", 0) or 0
    if not isinstance(mi, int | float) or not math.isfinite(mi) or mi < 0:
        raise ConfigError(f"{where}: min_interval_ms = {mi!r}: must be a number >= 0")
    return Plugin(name, obj, cfg, bar_ms=bar_ms, on_book=trigger in ("book", "any"),
                  on_trade=trigger in ("trade", "any"), min_interval_ms=float(mi), builtin=builtin, source=source)


def load_plugins(signals: SignalsSection) -> list[Plugin]:
    """Every `[signals.plugins.NAME]`, in config order: imported, instantiated, checked. ConfigError
    (one line) on the first problem."""
    out = []
    for name, spec in signals.plugins.items():
        obj = _instantiate(name, spec)
        cfg = _settings_of(name, obj, signals.plugin_defaults)
        out.append(make_plugin(name, obj, cfg, signals.bar_intervals_ms, source=f"{spec.path}:{spec.object}"))
    return out


def describe(p: Plugin) -> dict[str, Any]:
    """What check-config shows of a loaded plug-in."""
    c = p.cfg
    when = {"bar": f"every closed {p.bar_ms / 1000:g} s bar", "book": "every applied depth event",
            "trade": "every trade", "any": "every depth event and trade"}[p.trigger]
    if p.min_interval_ns and not p.bar_ms:
        when += f", at most every {p.min_interval_ns / _MS:g} ms"
    return {"name": p.name, "source": p.source or "built-in", "called": when, "cooldown_s": c.cooldown_s,
            "time_limit_s": c.time_limit_s, "stop_buffer_bps": c.stop_buffer_bps, "min_stop_bps": c.min_stop_bps,
            "max_stop_bps": c.max_stop_bps, "tp_r_multiples": list(c.tp_r_multiples),
            "tp_fractions": list(c.tp_fractions)}
