"""`scalper status|halt|resume|flatten` against a running OpsServer on 127.0.0.1 (port 0)."""

from __future__ import annotations

import asyncio
import json
import socket

from bot.__main__ import main
from bot.ops.server import OpsServer
from bot.ops.state import RuntimeState
from bot.settings.ops import OpsSection


async def _cli(*argv: str) -> int:
    # urllib blocks: run the CLI in a thread so the server keeps serving on this loop.
    return await asyncio.wait_for(asyncio.to_thread(main, list(argv)), 20)


async def test_status_halt_resume_flatten_call_the_registered_callbacks(
        server: OpsServer, state: RuntimeState, clock, capsys):
    calls: list[tuple[str, str]] = []

    def halt(reason):
        calls.append(("halt", reason))
        state.set_trading_state("HALTED", reason, clock[0])

    async def resume(reason):
        calls.append(("resume", reason))
        state.set_trading_state("ACTIVE", reason, clock[0])

    async def flatten(reason):
        calls.append(("flatten", reason))
        state.clear_position("BTCUSDT")
        return {"closed": ["BTCUSDT"]}

    for action, fn in (("halt", halt), ("resume", resume), ("flatten", flatten)):
        server.on_control(action, fn)
    state.set_book_status("BTCUSDT", "LIVE", "in sequence", clock[0])
    state.set_position("BTCUSDT", side="long", qty=0.01, entry_price=60000.0, stop_price=59950.0)
    url = server.url

    assert await _cli("status", "--url", url) == 0
    out = capsys.readouterr().out
    assert "health: OK" in out and "BTCUSDT" in out and "positions: 1" in out

    assert await _cli("halt", "--url", url, "--reason", "CPI print") == 0
    assert "halt: done; trading HALTED (CPI print)" in capsys.readouterr().out
    assert await _cli("status", "--url", url, "--json") == 1  # halted -> non-zero for scripts
    st = json.loads(capsys.readouterr().out)
    assert st["trading"]["state"] == "HALTED" and st["health"]["status"] == "halted"

    assert await _cli("flatten", "--url", url) == 2  # needs --yes
    assert "--yes" in capsys.readouterr().err
    assert await _cli("flatten", "--url", url, "--yes") == 0
    assert 'result: {"closed": ["BTCUSDT"]}' in capsys.readouterr().out
    assert await _cli("resume", "--url", url) == 0
    assert calls == [("halt", "CPI print"), ("flatten", "operator flatten via ops endpoint"),
                     ("resume", "operator resume via ops endpoint")]
    assert state.trading_state == "ACTIVE" and state.positions == {}


async def test_control_failure_is_reported(server: OpsServer, capsys):
    def flatten(reason):
        raise RuntimeError("venue unavailable")

    server.on_control("flatten", flatten)
    assert await _cli("flatten", "--url", server.url, "--yes") == 1
    assert "flatten failed (HTTP 500): RuntimeError: venue unavailable" in capsys.readouterr().err
    assert await _cli("halt", "--url", server.url) == 1  # nothing registered
    assert "HTTP 501" in capsys.readouterr().err


async def test_token_from_environment(monkeypatch, capsys):
    srv = OpsServer(RuntimeState(), OpsSection(port=0, token="tok-123"))
    srv.on_control("halt", lambda reason: None)
    await srv.start()
    try:
        monkeypatch.delenv("SCALPER__OPS__TOKEN", raising=False)
        assert await _cli("halt", "--url", srv.url) == 4
        assert "SCALPER__OPS__TOKEN" in capsys.readouterr().err
        monkeypatch.setenv("SCALPER__OPS__TOKEN", "tok-123")
        assert await _cli("halt", "--url", srv.url) == 0
    finally:
        await srv.stop()


async def test_clear_error_when_the_bot_is_not_running(capsys):
    with socket.socket() as s:  # a port nobody listens on any more
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert await _cli("status", "--url", f"http://127.0.0.1:{port}") == 3
    err = capsys.readouterr().err
    assert f"no bot is answering at http://127.0.0.1:{port}" in err and "Is it running" in err
