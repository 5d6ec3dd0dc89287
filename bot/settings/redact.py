"""Config errors that never show a secret.

A validation error names the key and, for an ordinary key, the value it got. It never shows:
- the value of a secret field (every `SecretStr` of Settings: venue api key/secret, ops token, alert bot
  token and webhook URL) nor of any key whose name looks secret (key/secret/token/password/webhook/
  passphrase);
- the value of an unknown key (a misspelled `tokne = ...` may well be a secret: it is never echoed);
- the input of a whole section (a section-level validator's input holds every key of it, secrets too).
Then, as a last line of defence, every secret value the configuration was given (the TOML, the secrets
file, the SCALPER__* environment, raw or inside a JSON section value) is cut out of the message text.
"""

from __future__ import annotations

import difflib
import json
import os
from typing import Any

from pydantic import BaseModel, SecretStr, ValidationError

__all__ = ["collect_secret_values", "env_paths", "format_validation_error", "looks_secret", "scrub", "secret_paths"]

_SECRET_WORDS = ("key", "secret", "token", "password", "passw", "webhook", "passphrase", "credential")
_MIN_SCRUB_LEN = 4  # shorter "secrets" would cut letters out of every word of the message
REDACTED = "<redacted>"


def looks_secret(name: str) -> bool:
    n = name.lower()
    return any(w in n for w in _SECRET_WORDS)


def _model_of(annotation: Any) -> type[BaseModel] | None:
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def secret_paths(model: type[BaseModel], prefix: str = "") -> dict[str, str]:
    """'ops.alerts.webhook_url' -> 'webhook_url' for every SecretStr field (recursing into sections)."""
    out: dict[str, str] = {}
    for name, f in model.model_fields.items():
        path = f"{prefix}{name}"
        if f.annotation is SecretStr:
            out[path] = name
        sub = _model_of(f.annotation)
        if sub is not None:
            out.update(secret_paths(sub, path + "."))
    return out


def field_paths(model: type[BaseModel], prefix: str = "") -> list[str]:
    out: list[str] = []
    for name, f in model.model_fields.items():
        sub = _model_of(f.annotation)
        out += field_paths(sub, f"{prefix}{name}.") if sub is not None else [f"{prefix}{name}"]
    return out


def _walk_values(x: Any, secret: bool, out: set[str]) -> None:
    if isinstance(x, dict):
        for k, v in x.items():
            _walk_values(v, secret or looks_secret(str(k)), out)
    elif isinstance(x, list | tuple):
        for v in x:
            _walk_values(v, secret, out)
    elif secret and isinstance(x, str | int | float) and not isinstance(x, bool):
        out.add(str(x))
    elif isinstance(x, SecretStr):
        out.add(x.get_secret_value())


def collect_secret_values(data: dict[str, Any], env: dict[str, str] | None = None) -> set[str]:
    """Every value given to a secret-looking key: in `data` (TOML + secrets file + overrides) and in the
    SCALPER__* environment (a variable named like a secret, or a JSON section value with such keys)."""
    out: set[str] = set()
    _walk_values(data, False, out)
    for k, v in (os.environ if env is None else env).items():
        if not k.upper().startswith("SCALPER__") or not v:
            continue
        if looks_secret(k):
            out.add(v)
        elif v.lstrip().startswith(("{", "[")):
            try:
                _walk_values(json.loads(v), False, out)
            except ValueError:
                out.add(v)  # an unparsable section value: unknown content, never shown
    return {v for v in out if len(v) >= _MIN_SCRUB_LEN}


def scrub(text: str, secrets: set[str]) -> str:
    for v in sorted(secrets, key=len, reverse=True):  # longest first: a secret containing another
        text = text.replace(v, REDACTED)
    return text


def _shown(key: str, val: Any, secret_keys: set[str]) -> str:
    if isinstance(val, dict):
        return "(section)"  # never a section's whole input: it holds its secrets too
    if any(isinstance(v, dict) for v in val) if isinstance(val, list | tuple) else False:
        return "(list)"
    if key in secret_keys or looks_secret(key.rsplit(".", 1)[-1]):
        return REDACTED
    r = repr(val)
    return r if len(r) <= 120 else r[:117] + "..."


def _did_you_mean(key: str, val: Any, model: type[BaseModel]) -> str:
    """An unknown key (or section) that names a known key elsewhere: a misplaced secrets-file section
    (`[alerts] webhook_url` instead of `[ops.alerts]`) or a key in the wrong section."""
    leaves = [key.rsplit(".", 1)[-1]] + (list(val) if isinstance(val, dict) else [])
    known = field_paths(model)
    hits = sorted({p for p in known for leaf in leaves if p.rsplit(".", 1)[-1] == leaf and p != key})
    if not hits:  # a misspelling within its section: `ops.tokne` -> ops.token
        section = key.rpartition(".")[0]
        siblings = [p for p in known if p.rpartition(".")[0] == section]
        hits = difflib.get_close_matches(key, siblings, n=2, cutoff=0.8)
    return f" (did you mean {', '.join(hits[:4])}?)" if hits else ""


def env_paths(env: dict[str, str] | None = None) -> dict[str, str]:
    """'SCALPER__RISK__MAX_LEVERAGE' -> 'risk.max_leverage' for every SCALPER__ variable set (names are
    case-insensitive, as Settings reads them)."""
    out = {}
    for k in (os.environ if env is None else env):
        if k.upper().startswith("SCALPER__") and len(k) > len("SCALPER__"):
            out[k] = ".".join(k[len("SCALPER__"):].lower().split("__"))
    return out


def _env_var_for(key: str, paths: dict[str, str]) -> str | None:
    """The variable a key's value came from: the environment beats the file, so a variable naming the key
    (or the section it sits in, as a JSON value) is where the bad value was."""
    best = None
    for var, p in paths.items():
        if (key == p or key.startswith(p + ".")) and (best is None or len(p) > len(paths[best])):
            best = var
    return best


def format_validation_error(err: ValidationError, source: str, model: type[BaseModel],
                            secrets: set[str]) -> str:
    secret_keys = set(secret_paths(model))
    paths = env_paths()
    lines: list[str] = []
    env_vars: list[str | None] = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"])
        val = e.get("input")
        ctx = e.get("ctx") or {}
        allowed = ctx.get("expected")
        env_vars.append(_env_var_for(key, paths))
        if e["type"] == "extra_forbidden":
            # the value of an unknown key is never shown: a misspelled secret is still a secret
            hint = _did_you_mean(key, val, model)
            lines.append(f"  {key}: unknown key (check the spelling; see config/default.toml for every key){hint}")
            continue
        shown = "" if isinstance(val, dict) else f" = {_shown(key, val, secret_keys)}"
        lines.append(f"  {key}{shown}: {e['msg']}"
                     + (f" (allowed: {allowed})" if allowed else ""))
    if len(lines) == 1 and env_vars[0]:
        # one bad override: the environment's, not the config file's; one line that leads with the variable
        text = f"invalid configuration in the environment: {env_vars[0]}: {lines[0].strip()}"
    else:
        head = "the environment" if env_vars and all(env_vars) else source
        text = "\n".join([f"invalid configuration in {head}:",
                          *(ln + (f" (from {v})" if v else "") for ln, v in zip(lines, env_vars))])
    return scrub(text, secrets)
