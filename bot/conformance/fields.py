"""Which response fields the bot relies on, derived from the bot's own parsers (no second hand-kept list).

A response is handed to the bot's parser wrapped in `Watched`: a dict (and list) that notes every key the
parser reads (`[]`, `.get`). A key the parser reads that the response lacks (or holds as null) is a field
the bot relies on and the venue did not send: `missing` lists it by its path (`o.X`, `symbols[].filters[]
.tickSize`). So a parser that starts reading a new field is checked from that day on, and one that stops
reading a field stops being checked for it.

A parser's fallback (`o.get("updateTime") or o.get("time")`) reads the second key only when the first is
absent: both are then reported, the first one first. A field a parser reads when present and does
without on purpose (an algo order's placement answer has no fill fields) is declared optional next to the
parser (orders.ALGO_OPTIONAL, ORDER_OPTIONAL, userevents.USER_EVENT_OPTIONAL): the one exception list.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["FieldLog", "Watched", "missing_fields", "watch"]


class FieldLog:
    """The paths read (in order) and those read but absent or null."""

    __slots__ = ("missing", "read")

    def __init__(self) -> None:
        self.read: list[str] = []
        self.missing: list[str] = []

    def note(self, path: str, present: bool) -> None:
        self.read.append(path)
        if not present and path not in self.missing:
            self.missing.append(path)


def watch(value: Any, path: str, log: FieldLog) -> Any:
    if isinstance(value, dict) and not isinstance(value, Watched):
        return Watched(value, path, log)
    if isinstance(value, list) and not isinstance(value, _WatchedList):
        return _WatchedList(value, path, log)
    return value


class Watched(dict[str, Any]):
    """A dict that reports the keys read from it to a FieldLog (membership tests `in` are not reads)."""

    def __init__(self, d: dict[str, Any], path: str, log: FieldLog) -> None:
        super().__init__(d)
        self._path = path
        self._log = log

    def _key(self, k: Any) -> str:
        return f"{self._path}.{k}" if self._path else str(k)

    def __getitem__(self, k: Any) -> Any:
        present = dict.__contains__(self, k) and dict.__getitem__(self, k) is not None
        self._log.note(self._key(k), present)
        return watch(dict.__getitem__(self, k), self._key(k), self._log)  # KeyError as the plain dict

    def get(self, k: Any, default: Any = None) -> Any:
        present = dict.__contains__(self, k) and dict.__getitem__(self, k) is not None
        self._log.note(self._key(k), present)
        if not dict.__contains__(self, k):
            return default
        return watch(dict.__getitem__(self, k), self._key(k), self._log)


class _WatchedList(list[Any]):
    def __init__(self, items: list[Any], path: str, log: FieldLog) -> None:
        super().__init__(items)
        self._path = f"{path}[]"
        self._log = log

    def __iter__(self) -> Iterator[Any]:
        for v in list.__iter__(self):
            yield watch(v, self._path, self._log)

    def __getitem__(self, i: Any) -> Any:
        return watch(list.__getitem__(self, i), self._path, self._log)


def missing_fields(parse: Callable[[Any], object], body: Any, optional: frozenset[str] = frozenset()
                   ) -> tuple[list[str], str]:
    """(fields the parser read that `body` lacks, the parser's own error or ''). `optional`: paths the
    parser's module declares it reads when present and does without (e.g. orders.ALGO_OPTIONAL). The
    parser runs on a copy; what it returns is not kept."""
    log = FieldLog()
    err = ""
    try:
        parse(watch(body, "", log))
    except Exception as e:  # the parser's refusal is part of the verdict, whatever it raised
        err = f"{type(e).__name__}: {e}"
    return [m for m in log.missing if m not in optional], err
