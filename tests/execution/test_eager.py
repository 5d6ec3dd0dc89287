"""spawn_eager (bot/execution/eager.py): the coroutine's synchronous prefix runs before the call returns,
as the new task (current_task, timeouts, context), and everything after its first suspension, its result
and its exceptions belong to the task."""

from __future__ import annotations

import asyncio
import contextvars

import pytest

from bot.execution.eager import spawn_eager

VAR: contextvars.ContextVar[str] = contextvars.ContextVar("VAR", default="caller")


async def test_runs_the_prefix_now_as_the_new_task_and_the_rest_in_it():
    log: list[tuple[str, asyncio.Task | None]] = []
    gate = asyncio.Event()

    async def work() -> int:
        log.append(("prefix", asyncio.current_task()))
        VAR.set("task")
        await gate.wait()
        log.append(("rest", asyncio.current_task()))
        return 42

    caller = asyncio.current_task()
    task = spawn_eager(asyncio.get_running_loop().create_task, work())
    assert [k for k, _ in log] == ["prefix"] and log[0][1] is task  # ran before we got the task back
    assert asyncio.current_task() is caller and VAR.get() == "caller"  # the caller's task and context are back
    gate.set()
    assert await asyncio.wait_for(task, 1) == 42
    assert log[1] == ("rest", task)


async def test_return_and_exception_before_any_suspension_are_the_task_s():
    async def done() -> str:
        return "ok"

    async def boom() -> None:
        raise ValueError("refused")

    create = asyncio.get_running_loop().create_task
    t1 = spawn_eager(create, done())
    t2 = spawn_eager(create, boom())  # does not raise here: the task does
    assert await asyncio.wait_for(t1, 1) == "ok"
    with pytest.raises(ValueError, match="refused"):
        await asyncio.wait_for(t2, 1)


async def test_cancel_reaches_the_coroutine_whether_the_task_ran_or_not():
    seen: list[str] = []

    async def wait_forever(tag: str) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            seen.append(tag)
            raise

    create = asyncio.get_running_loop().create_task
    early = spawn_eager(create, wait_forever("early"))
    early.cancel()  # before the task's first turn: the coroutine is suspended inside its prefix's await
    late = spawn_eager(create, wait_forever("late"))
    await asyncio.sleep(0)
    late.cancel()
    for t in (early, late):
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(t, 1)
    assert sorted(seen) == ["early", "late"]


async def test_a_timeout_entered_in_the_prefix_cancels_the_new_task_not_the_caller():
    async def slow() -> None:
        async with asyncio.timeout(0.01):  # registers asyncio.current_task(): must be the new task
            await asyncio.sleep(5)

    task = spawn_eager(asyncio.get_running_loop().create_task, slow())
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(task, 2)
    await asyncio.sleep(0.02)  # the caller is still alive and not cancelled
    assert not asyncio.current_task().cancelling()  # type: ignore[union-attr]


async def test_works_with_a_task_group():
    out: list[int] = []

    async def work(i: int) -> None:
        out.append(i)
        await asyncio.sleep(0)
        out.append(i + 10)

    async with asyncio.TaskGroup() as tg:
        spawn_eager(tg.create_task, work(1))
        assert out == [1]
    assert out == [1, 11]
