"""The sweep's progress line: ETA from the mean rate, drawn only on a terminal (milliseconds)."""

from __future__ import annotations

import io

from bot.research.progress import Progress, eta_s


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_eta_and_terminal_only() -> None:
    assert eta_s(0, 10, 5.0) is None
    assert eta_s(2, 10, 30.0) == 120.0  # 15 s a trial, 8 to go
    tty, pipe = _Tty(), io.StringIO()
    for stream in (tty, pipe):
        p = Progress(10, "sweep", stream=stream, start=4)  # a resumed study: 4 trials were there
        p.update(4)
        p.update(6, "best 0.1")
        p.close()
    assert pipe.getvalue() == ""  # JSON on stdout and logs stay clean when not a terminal
    out = tty.getvalue()
    assert "6/10" in out and "ETA" in out and "best 0.1" in out and out.endswith("\n")
