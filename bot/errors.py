"""Errors named by what the caller must do (architecture.md habit 7, after freqtrade's exceptions.py)."""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DataFileError",
    "MalformedMessage",
    "ScalperError",
]


class ScalperError(Exception):
    """Base class of the bot's own errors."""


class ConfigError(ScalperError):
    """The configuration is invalid: fix the named key; the bot does not start."""


class MalformedMessage(ScalperError):
    """A venue message could not be decoded. Skip it and count it; a depth message that is skipped
    breaks the sequence, which the book sync detects and repairs by itself."""


class DataFileError(ScalperError):
    """A recorded data file is unreadable, truncated or corrupt at a line; the reader reports the line
    number and goes on with the rest."""
