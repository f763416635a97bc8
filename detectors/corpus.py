"""Labelled public series for judging detectors (NAB subset, cloud-monitoring set).

Each set is a folder with CSV files and a ``combined_windows.json`` in NAB's format that
maps a file's relative path to its ``[start, end]`` window bounds (UTC). The kind of
signal decides which product detector judges a file: the cloud-monitoring latency folder
is ``latency``, its crash-rate folders are ``error_rate``; NAB's mixed metrics (latency,
CPU, traffic, travel time) are ``generic`` and are judged by the latency detector.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import sys
from collections.abc import Iterator
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
    """Like :func:`read_series`, also returning the timestamps as written in the file.

    ``-`` reads standard input."""
    name = "standard input" if str(path) == "-" else str(path)
    frame = _read_frame(name, _read_text(path, name))
    columns: dict[str, object] = {}
    for column in frame.columns:
        column_name = str(column).strip().lower()
        if column_name in columns and column_name in ("timestamp", "value"):
            raise SeriesFormatError(f"{name}: two '{column_name}' columns; keep one")
        columns[column_name] = column
    for needed in ("timestamp", "value"):
        if needed not in columns:
            found = ", ".join(map(str, frame.columns)) or "none"
            raise SeriesFormatError(f"{name}: no '{needed}' column (columns: {found})")
    text = frame[columns["timestamp"]].astype(str).tolist()
    stamps = _timestamps(name, frame[columns["timestamp"]])
    return text, stamps, _values(name, frame[columns["value"]])


# pandas reads these as the current time or as a time of day today: not points in time
RELATIVE_TIME = re.compile(r"now|today|\d{1,2}:\d{2}\S*", re.IGNORECASE)
# datetime64[ns] holds 1677-09-21 to 2262-04-11; a later year would wrap round silently
EARLIEST = pd.Timestamp.min.tz_localize("UTC")
LATEST = pd.Timestamp.max.tz_localize("UTC")


def _timestamps(name: str, raw: pd.Series) -> np.ndarray:
    """The timestamp column as naive UTC ``datetime64[ns]``, in time order (a repeated
    timestamp is allowed); a row that breaks a rule is an error naming it."""
    relative = raw.str.strip().str.fullmatch(RELATIVE_TIME)
    if relative.any():
        raise SeriesFormatError(_unparsable(name, raw, int(np.flatnonzero(relative)[0])))
    try:
        stamps = pd.to_datetime(raw.astype("string"), utc=True, format="mixed")
    except (ValueError, TypeError, OverflowError):
        raise SeriesFormatError(_first_bad_timestamp(name, raw)) from None
    if stamps.isna().any():
        row = int(np.flatnonzero(stamps.isna().to_numpy())[0])
        raise SeriesFormatError(f"{name}: missing timestamp on data row {row + 1}")
    outside = ((stamps < EARLIEST) | (stamps > LATEST)).to_numpy()
    if outside.any():
        row = int(np.flatnonzero(outside)[0])
        raise SeriesFormatError(
            f"{name}: timestamp {raw.iloc[row]!r} on data row {row + 1} is out of range; "
            f"the year must be from {EARLIEST.year + 1} to {LATEST.year - 1}"
        )
    naive = stamps.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
    backwards = np.flatnonzero(np.diff(naive) < np.timedelta64(0))
    if backwards.size:
        row = int(backwards[0]) + 1
        raise SeriesFormatError(
            f"{name}: timestamps go backwards at data row {row + 1}: {raw.iloc[row]!r} comes "
            f"after {raw.iloc[row - 1]!r} on data row {row}; sort the rows by time, oldest first"
        )
    return naive


def _first_bad_timestamp(name: str, raw: pd.Series) -> str:
    """Which row's timestamp cannot be read, for the error message."""
    for row, text in enumerate(raw.tolist()):
        try:
            pd.to_datetime(str(text), utc=True)
        except (ValueError, TypeError, OverflowError):
            return _unparsable(name, raw, row)
    return f"{name}: the timestamps mix formats that cannot be read together; use ISO 8601"


def _unparsable(name: str, raw: pd.Series, row: int) -> str:
    shown = str(raw.iloc[row]).replace("\n", " ")[:60]
    return (
        f"{name}: unparsable timestamp {shown!r} on data row {row + 1}; "
        "use ISO 8601 with a date, e.g. 2024-01-01T00:00:00Z"
    )


# Detectors keep their history as float32; a larger magnitude cannot be a measurement.
MAX_VALUE = float(np.finfo(np.float32).max)


def _read_text(path: Path, name: str) -> str:
    """The whole input as text. Standard input is read once into memory, so that it is parsed
    exactly like a file."""
    if str(path) == "-":
        data = sys.stdin.buffer.read()
    else:
        path = Path(path)
        if path.is_dir():
            raise SeriesFormatError(f"{name} is a folder; pass the CSV file itself")
        if not path.exists():
            raise SeriesFormatError(f"no such file: {name}")
        # a pipe (``<(command)``) is read like a file; a device such as /dev/zero never ends
        if not (path.is_file() or path.is_fifo()):
            raise SeriesFormatError(f"{name} is not a regular file; pass a CSV file")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise SeriesFormatError(f"cannot read {name}: {exc.strerror}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise SeriesFormatError(f"{name} is not UTF-8 text; expected a CSV file") from None
    if not text.strip():
        raise SeriesFormatError(f"{name} is empty; expected a header with timestamp and value")
    return text


def _read_frame(name: str, text: str) -> pd.DataFrame:
    """Parse CSV text into string columns, refusing a row with more fields than the header."""
    rows = csv.reader(io.StringIO(text))
    try:
        header = next(row for row in rows if row)
        _refuse_other_separators(name, header)
        _refuse_extra_fields(name, rows, len(header))
        # usecols: an empty field after the last column (a trailing comma) is dropped on any
        # row; index_col=False keeps such a first row from turning the timestamps into an index
        return pd.read_csv(
            io.StringIO(text),
            dtype=str,
            keep_default_na=False,
            index_col=False,
            usecols=range(len(header)),
        )
    except (csv.Error, pd.errors.ParserError) as exc:
        raise SeriesFormatError(f"cannot parse {name} as CSV: {exc}") from None


def _refuse_other_separators(name: str, header: list[str]) -> None:
    """A header in one field that holds a semicolon or a tab is not comma-separated."""
    if len(header) != 1:
        return
    for separator, word in ((";", "semicolon"), ("\t", "tab")):
        if separator in header[0]:
            raise SeriesFormatError(
                f"{name}: the header {header[0]!r} looks {word}-separated; "
                "separate the fields with commas"
            )


def _refuse_extra_fields(name: str, rows: Iterator[list[str]], width: int) -> None:
    """A data row with more fields than the header is an error unless the extra ones are
    empty (a trailing comma): ``1,5`` in a value column is a decimal comma, not two values."""
    # blank lines are skipped, as pandas skips them, so row numbers match the other messages
    for number, row in enumerate((row for row in rows if row), start=1):
        if len(row) > width and any(field.strip() for field in row[width:]):
            raise SeriesFormatError(
                f"{name}: data row {number} has {len(row)} fields but the header names "
                f"{width}; quote a value that holds a comma (a decimal comma: use a point)"
            )


def _values(name: str, raw: pd.Series) -> np.ndarray:
    """The value column as floats: blank or NA/NaN is a gap (NaN); anything else that is not a
    finite number of a sensible size is an error naming its row."""
    text = raw.str.strip()
    gap = text.isin(("", "NA", "N/A", "NaN", "nan", "null", "NULL"))
    values = pd.to_numeric(text.mask(gap), errors="coerce")
    bad = (values.isna() & ~gap) | (values.abs() > MAX_VALUE)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise SeriesFormatError(
            f"{name}: unparsable value {raw.iloc[row]!r} on data row {row + 1}: expected a "
            f"finite number of at most {MAX_VALUE:.3g} in size, or a blank for a gap"
        )
    return values.to_numpy(dtype=float)


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
