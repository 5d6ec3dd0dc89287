"""The decision path of one depth message is synchronous (issue 12 item 1): from the market-event dispatch to
the entry handed to the gateway, no loop callback (task switch) runs in between."""

from __future__ import annotations

import time

from bench.latency_hops import count_hops
from tests.conftest import SESSIONS, needs_data


@needs_data
def test_one_depth_message_reaches_the_gateway_without_a_task_switch() -> None:
    t0 = time.monotonic()
    res = count_hops(str(SESSIONS["btcusdt_20240808"][0]))
    assert res["entries_reaching_gateway"] == 1, res
    assert res["loop_callbacks_between"] == 0, res  # before issue 12: 1 (a task per market event)
    # the path really was traced: parse, book, signals, risk, planning and the engine's send; the journal's
    # record of the entry comes after the hand-off (engine.on_intent), outside the path
    files = set(res["project_file_list"])
    for f in ("bot/pipeline.py", "bot/market/session.py", "bot/signals/engine.py", "bot/risk/manager.py",
              "bot/execution/planner.py", "bot/execution/sending.py"):
        assert f in files, (f, sorted(files))
    assert "bot/journal/store.py" not in files, sorted(files)
    assert 50 < res["python_calls"] < 2000, res
    assert time.monotonic() - t0 < 60
