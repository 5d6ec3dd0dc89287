"""Checks `scalper run` makes before it connects to anything (or writes anything but the journal's lock file),
each failing as one ConfigError line (exit 2).

The same instrument check runs in `scalper check-config`, so a config that passes there does not fail at `run`
for its symbols. The ops port is tried here, before the venue is contacted, instead of failing with a
traceback after the bot has connected; the journal is locked for the whole run (bot/journal/lock.py).
"""

from __future__ import annotations

import os
import socket
from typing import TYPE_CHECKING, Any

from bot.errors import ConfigError

if TYPE_CHECKING:
    from bot.settings import Settings

__all__ = ["check_instruments", "check_ops_port", "journal_path", "preflight"]


def check_instruments(settings: Settings) -> None:
    """The instrument rules the run path itself looks up (the one function each run path calls), for the
    venues whose rules are local: the simulator and paper mode. A live venue's rules come from the venue at
    start-up and cannot be checked offline."""
    if settings.app.mode == "paper":
        from bot.venues.paper.venue import _instruments as paper_instruments

        paper_instruments(settings.venue.symbols)
    elif settings.venue.name == "sim":
        from bot.app import _instruments as sim_instruments

        sim_instruments(settings)


def check_ops_port(settings: Settings) -> None:
    """Bind the ops host:port once and let it go, with the same SO_REUSEADDR the server uses: a port another
    process listens on fails here with one line."""
    ops = settings.ops
    if not ops.enabled or ops.port == 0:
        return
    try:
        infos = socket.getaddrinfo(ops.host, ops.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as e:
        raise ConfigError(f"ops.host = {ops.host!r}: cannot be resolved ({e}); set ops.host / SCALPER__OPS__HOST"
                          ) from None
    for family, kind, proto, _, addr in infos[:1]:
        with socket.socket(family, kind, proto) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(addr)
            except OSError as e:
                raise ConfigError(f"ops port {ops.host}:{ops.port} is not free ({e.strerror}): another scalper "
                                  "(or another program) listens there; stop it or set ops.port / "
                                  "SCALPER__OPS__PORT") from None


def journal_path(settings: Settings) -> str:
    """Where the app puts its journal (App._journal_path): relative paths live in app.state_dir."""
    p = settings.journal.path
    if p != ":memory:" and not os.path.isabs(p):
        p = os.path.join(settings.app.state_dir, p)
    return p


def preflight(settings: Settings, live: bool) -> Any:
    """All of the above, the live-money guard first (as run_app has it) and the journal lock last: a config
    refused by any check writes nothing. Returns the journal lock, which the caller keeps for the whole run."""
    from bot.guard import check as check_live_guard
    from bot.journal.lock import lock_journal

    check_live_guard(settings, live)
    check_instruments(settings)
    check_ops_port(settings)
    return lock_journal(journal_path(settings))
