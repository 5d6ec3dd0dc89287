"""Every finished trial's parameters and metrics: CSV, JSON, and parquet when pyarrow is installed
(it is not a dependency: `.parquet` without it is a clear error)."""

from __future__ import annotations

import csv
import json
from typing import Any

from bot.errors import ConfigError

__all__ = ["export_trials", "flat_rows"]


def flat_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One flat dict per trial: number, value, params (by dotted key), metrics (prefixed m.)."""
    out = []
    for r in rows:
        flat: dict[str, Any] = {"number": r["number"], "value": r["value"]}
        flat.update(r["params"])
        flat.update({f"m.{k}": v for k, v in r["metrics"].items()})
        out.append(flat)
    return out


def export_trials(rows: list[dict[str, Any]], path: str) -> None:
    flat = flat_rows(rows)
    cols: list[str] = []
    for f in flat:
        cols += [k for k in f if k not in cols]
    if path.endswith(".json"):
        with open(path, "w") as fh:
            json.dump(rows, fh, indent=1)
    elif path.endswith(".csv"):
        with open(path, "w", newline="") as fh:
            w = csv.DictWriter(fh, cols)
            w.writeheader()
            w.writerows(flat)
    elif path.endswith(".parquet"):
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise ConfigError(f"--export {path}: parquet needs pyarrow (pip install pyarrow); "
                              "or export .csv / .json") from None
        pq.write_table(pa.Table.from_pylist([{c: f.get(c) for c in cols} for f in flat]), path)
    else:
        raise ConfigError(f"--export {path}: expected a .csv, .json or .parquet file")
