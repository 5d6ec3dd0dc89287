"""Where trials run: a local process pool (default) or Ray (optional extra `pip install '.[ray]'`).

The recorded sessions are shipped to the workers once, not per trial: the driver reads the files' bytes
once; the local pool hands them to each worker process through its initializer, Ray puts them in its
object store once (`ray.put`) and each worker process materialises them once (cached by object id).
A worker writes them to its own temporary directory, so a Ray node needs no shared file system.
Both backends run the same function (objective.evaluate) on the same inputs: same numbers.
"""

from __future__ import annotations

import atexit
import concurrent.futures as cf
import multiprocessing
import os
import shutil
import tempfile
from collections.abc import Callable
from typing import Any

from bot.research.objective import evaluate

__all__ = ["Backend", "LocalBackend", "RayBackend", "make_backend", "pack_sessions"]

Sessions = list[tuple[str, bytes]]  # (file name, bytes) in the order given on the command line


def pack_sessions(paths: list[str]) -> Sessions:
    out = []
    for i, p in enumerate(paths):
        with open(p, "rb") as fh:
            # the index keeps names unique; the suffix keeps the reader's gzip detection
            out.append((f"{i:03d}_{os.path.basename(p)}", fh.read()))
        if p.endswith(".feather"):  # candles: their funding file travels with them (same prefix, same folder)
            from bot.research.candle_data import funding_path_of

            fp = funding_path_of(p)
            if fp is not None:
                with open(fp, "rb") as fh:
                    out.append((f"{i:03d}_{os.path.basename(fp)}", fh.read()))
    return out


def _materialise(sessions: Sessions) -> list[str]:
    d = tempfile.mkdtemp(prefix="scalper-research-")
    atexit.register(shutil.rmtree, d, True)
    paths = []
    for name, data in sessions:
        path = os.path.join(d, name)
        with open(path, "wb") as fh:
            fh.write(data)
        paths.append(path)
    return paths


class Backend:
    """submit(key, params) runs one trial; wait() returns one finished (key, result | exception)."""

    workers: int

    def submit(self, key: int, params: dict[str, Any]) -> None:
        raise NotImplementedError

    def wait(self) -> tuple[int, dict[str, Any] | BaseException]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


# ---- local process pool
_LOCAL: dict[str, Any] = {}


def _local_init(sessions: Sessions, base: dict[str, Any]) -> None:
    _LOCAL["paths"] = _materialise(sessions)
    _LOCAL["base"] = base


def _local_run(params: dict[str, Any]) -> dict[str, Any]:
    return evaluate(_LOCAL["paths"], _LOCAL["base"], params)


class LocalBackend(Backend):
    def __init__(self, sessions: Sessions, base: dict[str, Any], workers: int) -> None:
        self.workers = max(1, workers)
        # fork where there is one: the workers start with the bot already imported (spawn re-imports it,
        # seconds per worker on a loaded machine); the driver starts no thread of its own before this
        ctx = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        self._pool = cf.ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context(ctx),
                                            initializer=_local_init, initargs=(sessions, base))
        self._futures: dict[cf.Future[dict[str, Any]], int] = {}

    def submit(self, key: int, params: dict[str, Any]) -> None:
        self._futures[self._pool.submit(_local_run, params)] = key

    def wait(self) -> tuple[int, dict[str, Any] | BaseException]:
        done, _ = cf.wait(list(self._futures), return_when=cf.FIRST_COMPLETED)
        fut = min(done, key=lambda f: self._futures[f])
        key = self._futures.pop(fut)
        err = fut.exception()
        return key, err if err is not None else fut.result()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


# ---- Ray
_RAY_CACHE: dict[str, list[str]] = {}


def _ray_run(refs: list[Any], base: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    import ray

    # refs is wrapped in a list so Ray does not resolve it per call: fetched once per worker process
    key = refs[0].hex()
    if key not in _RAY_CACHE:
        _RAY_CACHE[key] = _materialise(ray.get(refs[0]))
    return evaluate(_RAY_CACHE[key], base, params)


class RayBackend(Backend):
    def __init__(self, sessions: Sessions, base: dict[str, Any], workers: int | None, address: str | None) -> None:
        try:
            import ray
        except ImportError:
            from bot.errors import ConfigError

            raise ConfigError("--backend ray needs Ray: pip install '.[ray]'") from None
        self._ray = ray
        self._own = not ray.is_initialized()
        if self._own:
            ray.init(address=address, include_dashboard=False, log_to_driver=False,
                     configure_logging=False)
        self.workers = max(1, workers or int(ray.cluster_resources().get("CPU", 1)))
        self._refs = [ray.put(sessions)]  # once, into the object store
        self._base = ray.put(base)
        self._remote: Callable[..., Any] = ray.remote(num_cpus=1, max_retries=0)(_ray_run).remote
        self._tasks: dict[Any, int] = {}

    def submit(self, key: int, params: dict[str, Any]) -> None:
        self._tasks[self._remote(self._refs, self._base, params)] = key

    def wait(self) -> tuple[int, dict[str, Any] | BaseException]:
        ready, _ = self._ray.wait(list(self._tasks), num_returns=1)
        ref = ready[0]
        key = self._tasks.pop(ref)
        try:
            return key, self._ray.get(ref)
        except Exception as e:  # the trial failed on the worker: the sweep records it as FAIL
            return key, e

    def close(self) -> None:
        for ref in self._tasks:
            self._ray.cancel(ref, force=True)
        self._tasks.clear()
        if self._own:
            self._ray.shutdown()


def make_backend(name: str, sessions: Sessions, base: dict[str, Any], workers: int | None,
                 ray_address: str | None = None) -> Backend:
    if name == "local":
        return LocalBackend(sessions, base, workers or 1)
    if name == "ray":
        return RayBackend(sessions, base, workers, ray_address)
    raise ValueError(f"unknown backend {name!r}")
