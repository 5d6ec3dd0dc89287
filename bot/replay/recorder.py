"""Record raw venue messages: one a line, `<receive time ns> <raw JSON exactly as received>`, gzip.

The format of the real sessions in ../shared/data/binance_usdm (hftbacktest's), so our recordings and
theirs replay through the same reader. REST depth snapshots are written inline when received, wrapped
as {"stream":"<symbol lower>@depthSnapshot","data":<raw REST body>} so a multi-symbol file says whose
snapshot it is (the reader and parser understand both that and the bare form).

Writing is off the receive path: `write()` is one queue put; a writer thread drains the queue in
batches, compresses and rotates. `close()` drains every queued line and closes the gzip member
properly, so a clean shutdown (SIGINT/SIGTERM) loses nothing and leaves a file `gzip -t` accepts.

Rotation (by compressed size and/or age): parts are named FILE-0001.gz, FILE-0002.gz, ... for an
output FILE.gz, so a shell glob lists them in order; without rotation the output is FILE.gz itself.
"""

from __future__ import annotations

import gzip
import os
import queue
import threading
import time
from typing import BinaryIO

__all__ = ["Recorder", "part_path"]

_BATCH = 4096  # lines per write; bounded so a flood cannot hold the writer for long


def part_path(path: str, index: int) -> str:
    """FILE.gz, 3 -> FILE-0003.gz (also for FILE.jsonl.gz -> FILE-0003.jsonl.gz)."""
    head, tail = os.path.split(path)
    stem, dot, ext = tail.partition(".")
    return os.path.join(head, f"{stem}-{index:04d}{dot}{ext}")


class Recorder:
    def __init__(self, path: str, rotate_bytes: int = 0, rotate_s: float = 0.0, compresslevel: int = 6,
                 clock_s: object = time.monotonic) -> None:
        self.path = path
        self.rotate_bytes = rotate_bytes
        self.rotate_s = rotate_s
        self.compresslevel = compresslevel
        self._clock = clock_s
        self.rotating = bool(rotate_bytes or rotate_s)
        self.paths: list[str] = []
        self.lines = 0
        self.bytes_raw = 0
        self._q: queue.SimpleQueue[tuple[int, bytes] | None] = queue.SimpleQueue()
        self._closed = False
        self._error: BaseException | None = None
        self._raw: BinaryIO | None = None
        self._gz: gzip.GzipFile | None = None
        self._opened_at = -1.0
        self._part_lines = 0
        self._open_next()  # fail here, in the caller, if the path is not writable
        self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ receive path
    def write(self, raw: bytes, ts_recv_ns: int) -> None:
        """Queue one message (O(1), thread-safe). Raises if the writer thread died (disk full...)."""
        if self._error is not None:
            raise RuntimeError(f"recorder writer failed: {self._error!r}") from self._error
        self._q.put((ts_recv_ns, raw))

    def close(self) -> None:
        """Drain everything queued, close the gzip member and the file. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._q.put(None)
        self._thread.join()
        if self._error is not None:
            raise RuntimeError(f"recorder writer failed: {self._error!r}") from self._error

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ writer thread
    def _open_next(self) -> None:
        self._close_current()
        path = part_path(self.path, len(self.paths) + 1) if self.rotating else self.path
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self._raw = open(path, "wb")  # noqa: SIM115 - closed in _close_current
        self._gz = gzip.GzipFile(fileobj=self._raw, mode="wb", compresslevel=self.compresslevel)
        self._opened_at = -1.0  # the part's age counts from its first line, not from opening the file
        self._part_lines = 0
        self.paths.append(path)

    def _close_current(self) -> None:
        if self._gz is not None:
            self._gz.close()  # writes the gzip trailer (CRC, size): the member is complete
            self._gz = None
        if self._raw is not None:
            self._raw.flush()
            os.fsync(self._raw.fileno())
            self._raw.close()
            self._raw = None

    def _due(self) -> bool:
        assert self._raw is not None
        if not self._part_lines:
            return False  # never leave an empty part behind
        if self.rotate_bytes and self._raw.tell() >= self.rotate_bytes:
            return True
        return bool(self.rotate_s and self._clock() - self._opened_at >= self.rotate_s)  # type: ignore[operator]

    def _run(self) -> None:
        q = self._q
        try:
            done = False
            while not done:
                item = q.get()
                batch: list[bytes] = []
                n = 0
                while True:
                    if item is None:
                        done = True
                        break
                    ts, raw = item
                    if b"\n" in raw or b"\r" in raw:
                        # JSON allows raw newlines only as whitespace between tokens: keep one message a line.
                        raw = raw.replace(b"\r", b" ").replace(b"\n", b" ")
                    batch.append(b"%d %s\n" % (ts, raw))
                    n += 1
                    if n >= _BATCH:
                        break
                    try:
                        item = q.get_nowait()
                    except queue.Empty:
                        break
                if not batch:
                    continue
                if self.rotating and self._due():
                    self._open_next()  # before writing, so a part never ends up empty
                if self._opened_at < 0:
                    self._opened_at = self._clock()  # type: ignore[operator]
                data = b"".join(batch)
                assert self._gz is not None
                self._gz.write(data)
                self._part_lines += n
                self.lines += n
                self.bytes_raw += len(data)
        except BaseException as e:  # surfaced to the caller by write()/close(); the thread must not die silently
            self._error = e
        finally:
            try:
                self._close_current()
            except OSError as e:
                self._error = self._error or e
