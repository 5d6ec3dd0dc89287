"""The base config a study runs on: the TOML file's data, checked once by the settings loader."""

from __future__ import annotations

import tomllib
from typing import Any

from bot.errors import ConfigError
from bot.research.space import Param, overrides

__all__ = ["base_config", "check_space"]


def base_config(path: str | None) -> dict[str, Any]:
    """The config file's data, as the workers merge trial keys onto it (plug-in paths made absolute).
    load_settings(path) runs first: every check of the file itself (secrets, values) happens here once."""
    from bot.settings import load_settings
    from bot.settings.signals import resolve_plugin_paths

    load_settings(path)
    if path is None:
        return {}
    with open(path, "rb") as fh:
        data = tomllib.load(fh)
    resolve_plugin_paths(data, path)
    return data


def check_space(space: list[Param], base: dict[str, Any]) -> None:
    """Each key at its bounds / each choice through the settings loader: an unknown key or a value out of
    the key's range is the loader's own one-line error, prefixed with the space key."""
    from bot.research.space import deep_merge
    from bot.settings import load_settings

    for p in space:
        for v in p.values():
            try:
                load_settings(None, deep_merge(base, overrides({p.key: v})))
            except ConfigError as e:
                raise ConfigError(f"space [\"{p.key}\"] = {v!r}: {e}") from None
