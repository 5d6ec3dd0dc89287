"""Read recorded sessions: one raw message a line, errors reported with their line number.

Formats read:
- ours and hftbacktest's: `<receive time ns> <raw JSON>` per line, gzip or plain; REST depth snapshots
  inline (bare, or wrapped by our recorder as {"stream":"<sym>@depthSnapshot","data":...}).
- cryptofeed's raw captures: `.ws.*` files (`<url> <-> <ts>` header, `<ts>: <json>` received lines,
  `<url> <- <ts>: <json>` sent lines, skipped) merged by time with the sibling `.http.*` file of REST
  snapshots (`<url> -> <ts>: <json>`), whose depth answers become snapshot records.

A corrupt line yields a `LineError` and reading goes on; a truncated gzip stream yields one and ends
that file.

Several files are one session (`read_session`): files whose names differ only in their digits (a day
pair, a recorder's rotations: `..._20240718.gz`, `..._20240719.gz`) are read one after the other in the
order given, as one continuous stream (the pu chain crosses the boundary); those streams (one per symbol
file, say) are merged by receive time with a heap over the open readers: streaming, one line per stream
in memory, never a whole file. Within one stream the recorded order is kept as is.
"""

from __future__ import annotations

import gzip
import heapq
import os
import re
import sys
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from typing import NamedTuple

__all__ = ["LineError", "Record", "chains", "check_paths", "read_file", "read_session"]


class Record(NamedTuple):
    path: str
    lineno: int
    ts_recv_ns: int
    raw: bytes


class LineError(NamedTuple):
    path: str
    lineno: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.lineno}: {self.message}"


def _open(path: str):  # type: ignore[no-untyped-def]
    with open(path, "rb") as fh:
        magic = fh.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rb")
    if magic == b"PK":  # Bybit's history files ship as a zip of one JSON-lines file
        zf = zipfile.ZipFile(path)
        return zf.open(zf.namelist()[0])
    return open(path, "rb")


def _lines(path: str) -> Iterator[tuple[int, bytes] | LineError]:
    lineno = 0
    try:
        with _open(path) as fh:
            for lineno, line in enumerate(fh, 1):
                yield lineno, line
    except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as e:
        yield LineError(path, lineno + 1, f"file truncated or corrupt after line {lineno}: {e}")


def _read_ns_lines(path: str) -> Iterator[Record | LineError]:
    for item in _lines(path):
        if isinstance(item, LineError):
            yield item
            return
        lineno, line = item
        line = line.rstrip(b"\r\n")
        if not line:
            continue
        if line[:1] == b"{":
            # Bare JSON lines (Bybit history files): the exchange's own `ts` (ms) stands in for receive time.
            m = _TS_MS.search(line)
            yield Record(path, lineno, int(m.group(1)) * 1_000_000 if m else 0, line)
            continue
        sp = line.find(b" ")
        if sp <= 0:
            yield LineError(path, lineno, "expected '<receive time ns> <json>'")
            continue
        try:
            ts = int(line[:sp])
        except ValueError:
            yield LineError(path, lineno, f"bad receive time {line[:sp][:30]!r}")
            continue
        yield Record(path, lineno, ts, line[sp + 1 :])


_TS_MS = re.compile(rb'"ts":(\d+)')
_CF_DEPTH_URL = re.compile(rb"/depth\?symbol=([A-Za-z0-9]+)")


def _read_cryptofeed(path: str, http: bool) -> Iterator[Record | LineError]:
    for item in _lines(path):
        if isinstance(item, LineError):
            yield item
            return
        lineno, line = item
        line = line.rstrip(b"\r\n")
        if not line or b" <-> " in line[:4000].split(b"{", 1)[0] or b" <- " in line.split(b"{", 1)[0]:
            continue  # connection header or a message we sent
        head, sep, body = line.partition(b": ")
        if not sep:
            yield LineError(path, lineno, "expected '<ts>: <json>'")
            continue
        url = b""
        if b" -> " in head:
            url, _, head = head.partition(b" -> ")
        try:
            ts = int(float(head) * 1e9)
        except ValueError:
            yield LineError(path, lineno, f"bad timestamp {head[:30]!r}")
            continue
        if http:
            m = _CF_DEPTH_URL.search(url)
            if not m:
                continue  # exchangeInfo and other REST answers are not market messages
            body = b'{"stream":"' + m.group(1).lower() + b'@depthSnapshot","data":' + body + b"}"
        yield Record(path, lineno, ts, body)


def read_file(path: str) -> Iterator[Record | LineError]:
    name = os.path.basename(path)
    if ".ws." in name:
        streams: list[Iterable[Record | LineError]] = [_read_cryptofeed(path, http=False)]
        sibling = os.path.join(os.path.dirname(path), name.replace(".ws.", ".http.", 1).rsplit(".", 2)[0])
        for cand in sorted(os.listdir(os.path.dirname(path) or ".")):
            full = os.path.join(os.path.dirname(path), cand)
            if full.startswith(sibling) and ".http." in cand:
                streams.append(_read_cryptofeed(full, http=True))
        # Merge by receive time; errors sort first at their position (ts -1 keeps them in order).
        yield from heapq.merge(*streams, key=lambda r: r.ts_recv_ns if isinstance(r, Record) else -1)
        return
    yield from _read_ns_lines(path)


def check_paths(paths: Iterable[str]) -> list[str]:
    """One line per file that cannot be read at all (missing, a directory, no permission)."""
    problems = []
    for p in paths:
        if not os.path.exists(p):
            problems.append(f"{p}: no such file")
        elif os.path.isdir(p):
            problems.append(f"{p}: is a directory, not a recorded file")
        elif not os.access(p, os.R_OK):
            problems.append(f"{p}: cannot be read (permission denied)")
    return problems


def report_unreadable(paths: Iterable[str]) -> bool:
    """`check_paths` for a command: each unreadable file as one `error:` line on stderr; True when any was
    (the command then exits 2 before reading anything)."""
    missing = check_paths(paths)
    for line in missing:
        print(f"error: {line}", file=sys.stderr)
    return bool(missing)


_DIGITS = re.compile(r"\d+")


def chains(paths: Iterable[str]) -> list[list[str]]:
    """The files grouped into continuous streams: names equal but for their digits go together, in the
    order given (a day pair, rotations); each group is one stream."""
    groups: dict[tuple[str, str], list[str]] = {}
    for p in paths:
        key = (os.path.dirname(p), _DIGITS.sub("#", os.path.basename(p)))
        groups.setdefault(key, []).append(p)
    return list(groups.values())


def _chain(paths: list[str]) -> Iterator[Record | LineError]:
    for p in paths:
        yield from read_file(p)


def _keyed(items: Iterator[Record | LineError]) -> Iterator[tuple[int, Record | LineError]]:
    last = 0
    for it in items:
        if type(it) is Record:
            last = it.ts_recv_ns
        yield last, it  # an error keeps its place in its stream: the time of the record before it


def read_session(paths: Iterable[str]) -> Iterator[Record | LineError]:
    """The records of several files as one session: continuous streams (see `chains`) merged by receive
    time (ties: the stream given first)."""
    groups = chains(paths)
    if len(groups) == 1:
        yield from _chain(groups[0])
        return
    for _, item in heapq.merge(*(_keyed(_chain(g)) for g in groups), key=_first):
        yield item


def _first(pair: tuple[int, Record | LineError]) -> int:
    return pair[0]
