"""Eager tasks: a task whose coroutine starts at once, inside the caller's step, and runs as that task up
to its first suspension; the rest runs as a normal task. What `asyncio.eager_task_factory` /
`Task(eager_start=True)` do from Python 3.12, for 3.11.

Why: the engine hands an entry to the gateway in a task of its own (a slow acknowledgement must never
stall the caller, the update stream or the timers). A plain task only starts at the loop's next turn,
behind every callback already queued (the market-data tasks of the same burst): 70 us median and up to
0.5 ms at p99 between the journal commit and the gateway, against the loopback exchange. Started eagerly,
the gateway builds, signs and hands the request to the transport before the caller goes on; the task
still owns the wait for the answer.

While the first step runs, `asyncio.current_task()` is the new task (entered with asyncio's own
`_enter_task` / `_leave_task`, as 3.12's eager start does), so what registers the current task (aiohttp's
timeouts, `asyncio.timeout`) registers the right one. The step runs in the task's own context copy. An
exception of the first step, or the coroutine's return, is delivered by the task as if it had run there.
"""

from __future__ import annotations

import asyncio
import contextvars
from asyncio.tasks import _enter_task, _leave_task  # type: ignore[attr-defined]
from collections.abc import Callable, Coroutine, Generator
from typing import Any, TypeVar

__all__ = ["spawn_eager"]

T = TypeVar("T")

_NONE, _YIELDED, _RETURNED, _RAISED = range(4)


class _Started(Coroutine[Any, Any, T]):
    """The task's coroutine: replays the first step's outcome, then forwards to the real coroutine."""

    __slots__ = ("_coro", "_kind", "_value")

    def __init__(self, coro: Coroutine[Any, Any, T]) -> None:
        self._coro = coro
        self._kind = _NONE  # what the first step left to replay (_NONE: nothing, forward everything)
        self._value: Any = None

    def first_step(self) -> None:
        try:
            self._value = self._coro.send(None)
            self._kind = _YIELDED
        except StopIteration as e:
            self._kind, self._value = _RETURNED, e.value
        except BaseException as e:  # the task's outcome: the task raises it when it runs
            self._kind, self._value = _RAISED, e

    def send(self, value: Any) -> Any:
        kind = self._kind
        if kind == _NONE:
            return self._coro.send(value)
        first, self._kind, self._value = self._value, _NONE, None
        if kind == _YIELDED:
            return first  # the future the first step waits on: the task now waits on it
        if kind == _RETURNED:
            raise StopIteration(first)
        raise first

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:  # type: ignore[override]
        # e.g. the task cancelled before its first turn: the coroutine (suspended, or already done: then
        # the exception comes straight back) gets it, as it would have in a plain task
        self._kind, self._value = _NONE, None
        if val is None and tb is None:
            return self._coro.throw(typ)
        return self._coro.throw(typ, val, tb)

    def close(self) -> None:
        self._coro.close()

    def __await__(self) -> Generator[Any, None, T]:
        return self  # type: ignore[return-value]

    def __iter__(self) -> _Started[T]:
        return self

    def __next__(self) -> Any:
        return self.send(None)


def spawn_eager(create_task: Callable[..., asyncio.Task[T]], coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
    """`create_task(coro)` (the loop's or a TaskGroup's), with the coroutine's first step run now."""
    loop = asyncio.get_running_loop()
    ctx = contextvars.copy_context()
    started = _Started(coro)
    task = create_task(started, context=ctx)
    prev = asyncio.current_task(loop)
    if prev is not None:
        _leave_task(loop, prev)
    _enter_task(loop, task)
    try:
        ctx.run(started.first_step)
    finally:
        _leave_task(loop, task)
        if prev is not None:
            _enter_task(loop, prev)
    return task
