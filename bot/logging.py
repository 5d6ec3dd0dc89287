"""structlog setup: JSON lines when headless, a readable console on a TTY (architecture.md habit 12).

Fast path: filtering bound logger at the configured level, cached on first use, orjson renderer.
Never log per depth message; bind symbol/trade ids through contextvars.
"""

from __future__ import annotations

import logging as _stdlib_logging
import sys
from typing import Any

import orjson
import structlog

__all__ = ["configure_logging", "get_logger"]

_LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40}


def _orjson_dumps(obj: Any, default: Any = None) -> str:
    return orjson.dumps(obj, default=default or str).decode()


def configure_logging(level: str = "INFO", fmt: str = "auto", stream: Any = None) -> None:
    stream = stream or sys.stderr
    use_console = fmt == "console" or (fmt == "auto" and hasattr(stream, "isatty") and stream.isatty())
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
    ]
    if use_console:
        processors.append(structlog.dev.ConsoleRenderer(colors=False))
        factory: Any = structlog.PrintLoggerFactory(file=stream)
    else:
        processors.append(structlog.processors.JSONRenderer(serializer=_orjson_dumps))
        factory = structlog.PrintLoggerFactory(file=stream)
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS.get(level, 20)),
        logger_factory=factory,
        cache_logger_on_first_use=True,
    )
    # Libraries that use stdlib logging (websockets, aiohttp, ccxt) go to the same stream, quieter.
    _stdlib_logging.basicConfig(level=max(_LEVELS.get(level, 20), 30), stream=stream, force=True)


def get_logger(name: str | None = None, **bind: Any) -> Any:
    log = structlog.get_logger(name) if name else structlog.get_logger()
    return log.bind(**bind) if bind else log
