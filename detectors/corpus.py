"""Labelled public series for judging detectors (NAB subset, cloud-monitoring set).

Each set is a folder with CSV files and a ``combined_windows.json`` in NAB's format that
maps a file's relative path to its ``[start, end]`` window bounds (UTC). The kind of
signal decides which product detector judges a file: the cloud-monitoring latency folder
is ``latency``, its crash-rate folders are ``error_rate``; NAB's mixed metrics (latency,
CPU, traffic, travel time) are ``generic`` and are judged by the latency detector.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from detectors.nab import Window, windows_to_rows

DATA_DIR_ENV = "SEAMWATCH_EVAL_DATA_DIR"
DEFAULT_DATA_DIR = Path("..") / "shared" / "data"
WINDOWS_FILE = "combined_windows.json"
SETS = ("nab", "cloud-monitoring")


class SeriesFormatError(ValueError):
    """A series file cannot be read as timestamps and values."""


@dataclass(frozen=True)
class LabelledSeries:
    """One labelled series: row timestamps (UTC), values and scoring windows (rows)."""

    name: str
    kind: str
    timestamps: np.ndarray
    values: np.ndarray
    windows: list[Window]


def resolve_data_dir(flag: str | None) -> Path:
    """Data folder: the flag, then ``SEAMWATCH_EVAL_DATA_DIR``, then ``../shared/data``."""
    chosen = flag or os.environ.get(DATA_DIR_ENV) or str(DEFAULT_DATA_DIR)
    return Path(chosen)


def kind_of(relative_path: str) -> str:
    """Signal kind of a file from its folder name."""
    folder = relative_path.split("/")[0].lower()
    if "latency" in folder:
        return "latency"
    if any(word in folder for word in ("crash", "error", "unavail", "exception")):
        return "error_rate"
    return "generic"


def read_series(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a CSV with a timestamp and a value column (any case; other columns ignored).

    Returns UTC timestamps as naive ``datetime64[ns]`` and values as floats (NaN where
    empty). Raises :class:`SeriesFormatError` naming the problem.
    """
    _, stamps, values = read_series_with_text(path)
    return stamps, values


def read_series_with_text(path: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Like :func:`read_series`, also returning the timestamps as written in the file."""
    if not Path(path).is_file():
        raise SeriesFormatError(f"no such file: {path}")
    try:
        frame = pd.read_csv(path, dtype={0: str}, keep_default_na=True)
    except FileNotFoundError as exc:
        raise SeriesFormatError(f"no such file: {path}") from exc
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise SeriesFormatError(f"cannot parse {path} as CSV: {exc}") from exc
    columns = {str(c).strip().lower(): c for c in frame.columns}
    for needed in ("timestamp", "value"):
        if needed not in columns:
            found = ", ".join(map(str, frame.columns)) or "none"
            raise SeriesFormatError(f"{path}: no '{needed}' column (columns: {found})")
    try:
        stamps = pd.to_datetime(frame[columns["timestamp"]], utc=True, format="mixed")
    except (ValueError, TypeError) as exc:
        raise SeriesFormatError(f"{path}: unparsable timestamp: {exc}") from exc
    values = pd.to_numeric(frame[columns["value"]], errors="coerce")
    bad = values.isna() & frame[columns["value"]].notna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raw = frame[columns["value"]].iloc[row]
        raise SeriesFormatError(f"{path}: unparsable value {raw!r} on data row {row + 1}")
    if stamps.isna().any():
        row = int(np.flatnonzero(stamps.isna().to_numpy())[0])
        raise SeriesFormatError(f"{path}: missing timestamp on data row {row + 1}")
    naive = stamps.dt.tz_convert("UTC").dt.tz_localize(None)
    text = frame[columns["timestamp"]].astype(str).tolist()
    return text, naive.to_numpy(dtype="datetime64[ns]"), values.to_numpy(dtype=float)


def load_set(data_dir: Path, set_name: str) -> list[LabelledSeries]:
    """Load every labelled file of one set, in the order of its windows file."""
    folder = data_dir / set_name
    bounds = json.loads((folder / WINDOWS_FILE).read_text())
    series = []
    for relative_path in sorted(bounds):
        stamps, values = read_series(folder / relative_path)
        windows = windows_to_rows(stamps, bounds[relative_path])
        series.append(
            LabelledSeries(relative_path, kind_of(relative_path), stamps, values, windows)
        )
    return series
