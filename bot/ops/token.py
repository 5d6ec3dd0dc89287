"""The control token: /status and /control/* always need one, on loopback too (any local process or
browser tab could otherwise flatten the bot).

Configured (`SCALPER__OPS__TOKEN` or the secrets file's `[ops] token`) it is used as given. Otherwise
the bot creates one at its first start in the state directory, `<app.state_dir>/ops.token`, owner-only
(file 0600, directory 0700), and keeps it across restarts; `scalper status|halt|resume|flatten|
reset-limits` read it from there (bot/cli/control.py).
"""

from __future__ import annotations

import contextlib
import os
import secrets

__all__ = ["TOKEN_FILE", "ensure_token", "owner_only_dir", "read_token", "token_path"]

TOKEN_FILE = "ops.token"


def token_path(state_dir: str) -> str:
    return os.path.join(state_dir, TOKEN_FILE)


def owner_only_dir(state_dir: str) -> None:
    """Create the state directory 0700, or narrow an existing one of ours that others can enter."""
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    with contextlib.suppress(OSError):  # not ours (a shared mount): leave it, the files are 0600 anyway
        if os.stat(state_dir).st_mode & 0o077:
            os.chmod(state_dir, 0o700)


def read_token(state_dir: str) -> str:
    """The token the bot created in `state_dir`, or '' when there is none (or it cannot be read)."""
    try:
        with open(token_path(state_dir), encoding="ascii") as fh:
            return fh.read().strip()
    except (OSError, UnicodeDecodeError):
        return ""


def ensure_token(state_dir: str, configured: str = "") -> str:
    """The configured token, else the state directory's, created (0600) when there is none yet."""
    if configured:
        return configured
    owner_only_dir(state_dir)
    path = token_path(state_dir)
    token = read_token(state_dir)
    if token:
        with contextlib.suppress(OSError):
            if os.stat(path).st_mode & 0o077:
                os.chmod(path, 0o600)
        return token
    token = secrets.token_urlsafe(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # an empty or unreadable file, or another process won the race
        existing = read_token(state_dir)
        if existing:
            return existing
        os.chmod(path, 0o600)
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(token + "\n")
    return token
