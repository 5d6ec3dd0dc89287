"""The space file: one TOML table per config key, named by its dotted path.

    ["signals.momentum.cooldown_s"]
    low = 10
    high = 60            # optional: log = true, step = 5

    ["signals.momentum.bar_ms"]
    choices = [1000, 5000]

low/high both integers (and an integer step, if any) -> an integer parameter; otherwise a float.
Every key is checked by the settings loader itself (unknown key, out of range: the usual ConfigError),
at low, at high and at each choice, before any trial runs.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from typing import Any

from bot.errors import ConfigError

__all__ = ["Param", "deep_merge", "distributions", "grid_space", "load_space", "overrides", "parse_space"]


@dataclass(frozen=True)
class Param:
    key: str  # dotted config path, e.g. "signals.momentum.cooldown_s"
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple[Any, ...] | None = None

    @property
    def is_int(self) -> bool:
        return all(isinstance(v, int) and not isinstance(v, bool) for v in (self.low, self.high)) and (
            self.step is None or isinstance(self.step, int))

    def values(self) -> list[Any]:
        """The values the settings loader must accept: the bounds, or each choice."""
        return list(self.choices) if self.choices is not None else [self.low, self.high]


def _leaves(d: dict[str, Any], prefix: str = "") -> list[tuple[str, dict[str, Any]]]:
    # ["a.b.c"] (a quoted key) and [a.b.c] (nested tables) mean the same key
    out = []
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else k
        if not isinstance(v, dict):
            raise ConfigError(f"space: {key} = {v!r}: expected a table with low/high or choices")
        if {"low", "high", "choices"} & set(v):
            out.append((key, v))
        else:
            out += _leaves(v, key)
    return out


def parse_space(data: dict[str, Any]) -> list[Param]:
    params = []
    for key, t in _leaves(data):
        extra = set(t) - {"low", "high", "log", "step", "choices"}
        if extra:
            raise ConfigError(f"space: [\"{key}\"]: unknown field(s) {', '.join(sorted(extra))}; "
                              "allowed: low, high, log, step, choices")
        if "choices" in t:
            if set(t) - {"choices"}:
                raise ConfigError(f"space: [\"{key}\"]: choices cannot be combined with low/high/log/step")
            ch = t["choices"]
            if not isinstance(ch, list) or not ch:
                raise ConfigError(f"space: [\"{key}\"]: choices must be a non-empty list")
            params.append(Param(key, choices=tuple(ch)))
            continue
        if "low" not in t or "high" not in t:
            raise ConfigError(f"space: [\"{key}\"]: needs both low and high (or choices)")
        low, high, log, step = t["low"], t["high"], t.get("log", False), t.get("step")
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (low, high)):
            raise ConfigError(f"space: [\"{key}\"]: low and high must be numbers")
        if not low < high:
            raise ConfigError(f"space: [\"{key}\"]: low ({low}) must be below high ({high})")
        if log and (low <= 0 or step is not None):
            raise ConfigError(f"space: [\"{key}\"]: log = true needs low > 0 and no step")
        if step is not None and (not isinstance(step, int | float) or step <= 0):
            raise ConfigError(f"space: [\"{key}\"]: step must be a positive number")
        params.append(Param(key, low, high, bool(log), step))
    if not params:
        raise ConfigError("space: no parameter (one table per config key, e.g. [\"signals.momentum.cooldown_s\"])")
    return params


def load_space(path: str) -> list[Param]:
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"space file not found: {path}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    return parse_space(data)


def overrides(params: dict[str, Any]) -> dict[str, Any]:
    """{"signals.momentum.cooldown_s": 30} -> {"signals": {"momentum": {"cooldown_s": 30}}}."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        node = out
        *head, last = key.split(".")
        for part in head:
            node = node.setdefault(part, {})
        node[last] = value
    return out


def deep_merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def distributions(space: list[Param]) -> dict[str, Any]:
    """Optuna distributions for `study.ask(fixed_distributions)`."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out: dict[str, Any] = {}
    for p in space:
        if p.choices is not None:
            out[p.key] = CategoricalDistribution(list(p.choices))
        elif p.is_int:
            out[p.key] = IntDistribution(int(p.low), int(p.high), log=p.log,  # type: ignore[arg-type]
                                         step=int(p.step or 1))
        else:
            out[p.key] = FloatDistribution(float(p.low), float(p.high), log=p.log,  # type: ignore[arg-type]
                                           step=None if p.step is None else float(p.step))
    return out


def grid_space(space: list[Param]) -> dict[str, list[Any]]:
    """The grid sampler's points: each choice, or low..high by step (a range without step has no grid)."""
    out: dict[str, list[Any]] = {}
    for p in space:
        if p.choices is not None:
            out[p.key] = list(p.choices)
            continue
        if p.step is None:
            raise ConfigError(f"space: [\"{p.key}\"]: --sampler grid needs a step (or choices)")
        low, high, step = float(p.low), float(p.high), float(p.step)  # type: ignore[arg-type]
        vals = [low + i * step for i in range(round((high - low) / step) + 1)]
        out[p.key] = [int(v) if p.is_int else round(v, 12) for v in vals if v <= high + 1e-12]
    return out
