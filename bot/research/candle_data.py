"""Freqtrade-format feather candle files (`*.feather`) for `scalper research`: read and checked.

Layout (freqtrade `data download-data --trading-mode futures`, ../shared/data/PROVENANCE.md): one file per
pair and timeframe, named `BASE_QUOTE_SETTLE-<tf>-futures.feather` (optionally with a prefix), columns `date`
(UTC, bar open), `open`, `high`, `low`, `close`, `volume` (base asset). Funding rates sit beside it in
`...-<h>h-funding_rate.feather` (`open` = the rate at `date`).

A file that cannot be read, lacks a column, has an unparsable name, or has a gap (a missing bar) is refused
with one line (`CandleError`): gaps are reported, never bridged, because a bridged gap would turn into a
flat bar the indicators believe in.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from decimal import Decimal

from bot.errors import ConfigError

__all__ = ["COLUMNS", "CandleError", "Candles", "funding_path_of", "read_candles", "symbol_of", "tick_of"]

COLUMNS = ("date", "open", "high", "low", "close", "volume")
_NAME = re.compile(r"([A-Z0-9]+)_([A-Z0-9]+)(?:_[A-Z0-9]+)?-(\d+)([mhd])-(futures|spot)\.feather$")
_TF_NS = {"m": 60_000_000_000, "h": 3_600_000_000_000, "d": 86_400_000_000_000}


class CandleError(ConfigError):
    """A candle file is unusable: fix or replace the named file."""


@dataclass
class Candles:
    path: str
    symbol: str  # BTCUSDT
    interval_ns: int
    t_ns: list[int]  # bar open times
    open: list[float]
    high: list[float]
    low: list[float]
    close: list[float]
    volume: list[float]  # base asset
    funding: list[tuple[int, float]] = field(default_factory=list)  # (venue funding time ns, rate)
    funding_path: str | None = None

    def __len__(self) -> int:
        return len(self.t_ns)


def symbol_of(path: str) -> tuple[str, int, re.Match[str]]:
    m = _NAME.search(os.path.basename(path))
    if m is None:
        raise CandleError(f"{path}: not a freqtrade candle file name (BASE_QUOTE_SETTLE-1m-futures.feather)")
    return m.group(1) + m.group(2), int(m.group(3)) * _TF_NS[m.group(4)], m


def _table(path: str, cols: tuple[str, ...]) -> dict[str, list[object]]:
    try:
        import pyarrow.feather as feather
    except ImportError:
        raise CandleError("reading *.feather needs pyarrow: pip install '.[research]'") from None
    try:
        t = feather.read_table(path)
    except Exception as e:  # arrow raises several types for a corrupt or foreign file
        raise CandleError(f"{path}: unreadable feather file ({type(e).__name__}: {' '.join(str(e).split())[:120]})"
                          ) from None
    missing = [c for c in cols if c not in t.column_names]
    if missing:
        raise CandleError(f"{path}: missing column(s) {', '.join(missing)} (need {', '.join(cols)})")
    out: dict[str, list[object]] = {}
    for c in cols:
        col = t.column(c)
        if c == "date":
            import pyarrow as pa
            import pyarrow.compute as pc

            if not pa.types.is_timestamp(col.type):
                raise CandleError(f"{path}: column date is {col.type}, not a timestamp")
            col = pc.cast(col, pa.timestamp("ns", tz="UTC")).cast(pa.int64())
        if col.null_count:
            raise CandleError(f"{path}: column {c} has {col.null_count} empty value(s)")
        out[c] = col.to_pylist()
    return out


def funding_path_of(path: str) -> str | None:
    """The funding-rate file freqtrade writes beside `path` (`...-8h-funding_rate.feather`), if it is there."""
    m = _NAME.search(os.path.basename(path))
    if m is None:
        return None
    fpath = os.path.join(os.path.dirname(path), os.path.basename(path)[:m.start(3)] + "8h-funding_rate.feather")
    return fpath if os.path.exists(fpath) else None


def read_candles(path: str) -> Candles:
    """The candles of `path`, checked (sorted, no duplicate, no gap), with the sibling funding file if any."""
    symbol, iv, _ = symbol_of(path)
    d = _table(path, COLUMNS)
    t = [int(x) for x in d["date"]]  # type: ignore[call-overload]
    if len(t) < 2:
        raise CandleError(f"{path}: {len(t)} bar(s), need at least 2")
    for i in range(1, len(t)):
        step = t[i] - t[i - 1]
        if step != iv:
            from datetime import UTC, datetime

            at = datetime.fromtimestamp(t[i - 1] / 1e9, UTC).strftime("%Y-%m-%d %H:%M")
            what = (f"a gap of {step // iv - 1} missing bar(s)" if step > iv and step % iv == 0
                    else f"a step of {step / 1e9:g} s (expected {iv / 1e9:g} s)")
            raise CandleError(f"{path}: {what} after {at} UTC (row {i}); gaps are not bridged: "
                              "download the missing range or cut the file")
    c = Candles(path, symbol, iv, t, *(list(map(float, d[k])) for k in COLUMNS[1:]))  # type: ignore[arg-type]
    fpath = funding_path_of(path)
    if fpath is not None:
        f = _table(fpath, ("date", "open"))
        c.funding = [(int(a), float(r)) for a, r in zip(f["date"], f["open"], strict=True)]  # type: ignore[call-overload, arg-type]
        c.funding_path = fpath
    return c


def tick_of(prices: list[float]) -> str:
    """The price grid the candles are on (the smallest decimal step seen in the first prices), e.g. '0.1'."""
    exp = 0
    for p in prices[:2000]:
        e = Decimal(repr(p)).normalize().as_tuple().exponent
        if isinstance(e, int):
            exp = min(exp, e)
    return str(Decimal(1).scaleb(exp))
