"""`python -m bot.drill.netwatch AUDIT_FILE -- <scalper arguments>`: run the bot's CLI with a Python audit
hook that writes every outgoing connection and name look-up to AUDIT_FILE (one JSON line each), so a
drill can prove that a refused start-up made no network attempt (there may be no network to fail on).
"""

from __future__ import annotations

import sys
from typing import Any

import orjson

__all__ = ["is_local", "main"]

_LOCAL = ("127.", "::1", "localhost", "0.0.0.0")


def is_local(host: Any) -> bool:
    """Loopback, a Unix socket path, or no host at all (asyncio's internal socket pairs)."""
    if host is None or isinstance(host, (bytes, bytearray)):
        return True
    h = str(host)
    return h == "" or h.startswith("/") or h.startswith(_LOCAL)


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[1] != "--":
        print("usage: python -m bot.drill.netwatch AUDIT_FILE -- <scalper arguments>", file=sys.stderr)
        return 2
    out = open(argv[0], "ab", buffering=0)  # noqa: SIM115 -- open for the process's life

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event == "socket.connect":
            addr = args[1]
            host = addr[0] if isinstance(addr, tuple) else addr
            out.write(orjson.dumps({"event": event, "host": str(host), "local": is_local(host)}) + b"\n")
        elif event == "socket.getaddrinfo":
            out.write(orjson.dumps({"event": event, "host": str(args[0]), "local": is_local(args[0])}) + b"\n")

    sys.addaudithook(hook)
    # uvloop's libuv sockets bypass the socket module and so the audit hook: block its import, the bot
    # then runs on the standard asyncio loop (bot/app.py falls back to asyncio.run)
    sys.modules["uvloop"] = None  # type: ignore[assignment]
    from bot.__main__ import main as scalper

    return scalper(argv[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
