"""Typed, frozen settings (architecture.md habit 11). The only package that imports pydantic.

Sources, strongest first: environment (`SCALPER__SECTION__KEY`), the TOML file, defaults. Secrets
come only from the environment or the venue's `secrets_file`; a config file that carries one is an
error. A bad value is a ConfigError that names the key, the value and what is allowed.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
import stat
import tomllib
from typing import Any

from pydantic import ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError

from bot.errors import ConfigError
from bot.settings.core import AppSection, LogSection, MarketSection, VenueSection
from bot.settings.execution import ExecutionSection
from bot.settings.journal import JournalSection
from bot.settings.ops import OpsSection
from bot.settings.redact import collect_secret_values, env_paths, format_validation_error, scrub
from bot.settings.risk import RiskSection
from bot.settings.shadow import ShadowSection
from bot.settings.signals import SignalsSection, resolve_plugin_paths
from bot.settings.sim import SimSection

__all__ = ["Settings", "load_settings", "redacted"]

_SECRET_KEYS = ("api_key", "api_secret", "token", "webhook_url", "bot_token", "password", "passphrase")
_ENV_PREFIX = "SCALPER__"
_log = logging.getLogger("bot.settings")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SCALPER__", env_nested_delimiter="__", frozen=True, extra="forbid", case_sensitive=False
    )

    app: AppSection = AppSection()
    log: LogSection = LogSection()
    venue: VenueSection = VenueSection()
    market: MarketSection = MarketSection()
    sim: SimSection = SimSection()
    signals: SignalsSection = SignalsSection()
    risk: RiskSection = RiskSection()
    execution: ExecutionSection = ExecutionSection()
    journal: JournalSection = JournalSection()
    ops: OpsSection = OpsSection()
    shadow: ShadowSection = ShadowSection()  # app.mode = "shadow": where the market data come from

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment beats the file (init kwargs carry the parsed TOML).
        return env_settings, init_settings


def _find_secrets(d: dict[str, Any], path: str = "") -> list[str]:
    found = []
    for k, v in d.items():
        p = f"{path}.{k}" if path else k
        if isinstance(v, dict):
            found += _find_secrets(v, p)
        elif k in _SECRET_KEYS and v:
            found.append(p)
    return found


def _read_secrets_file(path: str) -> dict[str, Any]:
    """A TOML file of secrets: [venue] api_key/api_secret, [alerts] ... Warn when others can read it."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError as e:
        raise ConfigError(f"venue.secrets_file = {path!r}: file not found") from e
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        # One line through the logger (before logging is configured Python prints just the message), never a
        # raw UserWarning with its source line.
        _log.warning("warning: secrets file %s is readable by group/others; chmod 600 it", path)
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except OSError as e:
        raise ConfigError(f"venue.secrets_file = {path!r}: cannot be read ({e.strerror})") from None
    except tomllib.TOMLDecodeError as e:
        # Only where: the parser's message quotes the offending text, which here is a secret.
        where = re.search(r"\(at line \d+, column \d+\)|\(at end of document\)", str(e))
        raise ConfigError(f"venue.secrets_file = {path!r}: not valid TOML {where.group(0) if where else ''}; "
                          "its content is not shown (it holds secrets)") from None


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_settings(path: str | None = None, overrides: dict[str, Any] | None = None) -> Settings:
    """Load a TOML config (or the defaults when path is None), then the environment on top."""
    data: dict[str, Any] = {}
    source = path or "<defaults>"
    if path is not None:
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError as e:
            raise ConfigError(f"config file not found: {path}") from e
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path}: not valid TOML: {e}") from e
        resolve_plugin_paths(data, path)  # a strategy's `path` is relative to its config file
        leaked = _find_secrets(data)
        if leaked:
            raise ConfigError(f"{path}: {', '.join(leaked)} must not be in a config file; " + _secret_hint(leaked))
    _check_env_sections()
    if overrides:
        data = _merge(data, overrides)
    secrets_file = os.environ.get("SCALPER__VENUE__SECRETS_FILE") or data.get("venue", {}).get("secrets_file")
    if secrets_file:
        data = _merge(data, _read_secrets_file(secrets_file))
    try:
        return Settings(**data)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, source, Settings, collect_secret_values(data))) from None
    except SettingsError as e:  # a SCALPER__<SECTION> variable that is not valid JSON: never shown
        field = re.search(r'field "(\w+)"', str(e))
        var = next((k for k, p in env_paths().items() if field and p == field.group(1)), None)
        what = f"{var} is not a JSON object for [{field.group(1)}] (field \"{field.group(1)}\"); set one key " \
               f"as {var}__KEY instead" if var and field else str(e)
        raise ConfigError(scrub(f"invalid configuration in the environment: {what}", collect_secret_values(data))
                          ) from None


def _secret_hint(leaked: list[str]) -> str:
    """Where each leaked secret belongs: its own SCALPER__ variable, or its section in the secrets file."""
    hints = []
    for p in leaked:
        section, _, key = p.rpartition(".")
        var = _ENV_PREFIX + p.upper().replace(".", "__")
        hints.append(f"set {var} in the environment or put {key} under [{section}] in venue.secrets_file"
                     if section else f"set {var} in the environment")
    return "; ".join(hints)


def _check_env_sections() -> None:
    """A SCALPER__<SECTION>__... variable whose section does not exist would be ignored without a word:
    refuse it, naming the variable (its value is never shown: it may be a secret)."""
    sections = list(Settings.model_fields)
    for var, path in sorted(env_paths().items()):
        section = path.split(".", 1)[0]
        if section and section not in sections:
            near = difflib.get_close_matches(section, sections, n=1, cutoff=0.6)
            hint = f" (did you mean {_ENV_PREFIX}{near[0].upper()}{var[len(_ENV_PREFIX) + len(section):]}?)" \
                if near else ""
            raise ConfigError(f"environment variable {var}: unknown config section {section!r}{hint}; "
                              f"sections: {', '.join(sections)}")


def redacted(settings: Settings) -> dict[str, Any]:
    """The effective config as plain data with every secret replaced by '***' (or '' when unset)."""
    d = settings.model_dump(mode="python")

    def walk(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: walk(v) for k, v in x.items()}
        if isinstance(x, tuple | list):
            return [walk(v) for v in x]
        if hasattr(x, "get_secret_value"):
            return "***" if x.get_secret_value() else ""
        return x

    return walk(d)
