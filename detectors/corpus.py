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
import logging
import os
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from detectors.nab import Window, probationary_length, windows_to_rows
from seamwatch import times
from seamwatch.settings import EVAL_DATA_DIR_ENV
from seamwatch.user_text import is_utf16

logger = logging.getLogger(__name__)

DATA_DIR_ENV = EVAL_DATA_DIR_ENV
DEFAULT_DATA_DIR = Path("..") / "shared" / "data"
WINDOWS_FILE = "combined_windows.json"
SETS = ("nab", "cloud-monitoring")


class SeriesFormatError(ValueError):
    """A series file cannot be read as timestamps and values, or a windows file as windows."""


@dataclass(frozen=True)
class LabelledSeries:
    """One labelled series: row timestamps (UTC), values and scoring windows (rows)."""

    name: str
    kind: str
    timestamps: np.ndarray
    values: np.ndarray
    windows: list[Window]


def resolve_series_dir(flag: str | None) -> Path:
    """Labelled data folder: the flag, then ``SEAMWATCH_EVAL_DATA_DIR``, then
    ``../shared/data``."""
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


def read_series_with_text(path: Path | str) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Like :func:`read_series`, also returning the timestamps as written in the file.

    ``-`` reads standard input."""
    name = "standard input" if str(path) == "-" else str(path)
    frame, extra_fields = _read_frame(name, _read_text(path, name))
    columns: dict[str, object] = {}
    for column in frame.columns:
        columns[str(column).strip().lower()] = column
    for needed in ("timestamp", "value"):
        if needed not in columns:
            found = ", ".join(map(str, frame.columns)) or "none"
            raise SeriesFormatError(f"{name}: no '{needed}' column (columns: {found})")
    text = frame[columns["timestamp"]].astype(str).tolist()
    # both columns, and rows with more fields than the header, are checked before any of it
    # is refused: one round of fixes, not several
    problems = [extra_fields] if extra_fields else []
    try:
        stamps = _timestamps(name, frame[columns["timestamp"]])
    except SeriesFormatError as exc:
        problems.append(str(exc))
    try:
        values = _values(name, frame[columns["value"]])
    except SeriesFormatError as exc:
        problems.append(str(exc))
    if problems:
        raise SeriesFormatError("\n".join(problems))
    return text, stamps, values


# rows named beside the first that has a problem, before the rest are only counted
ALSO_ROWS_SHOWN = 5


def also_rows(rows: np.ndarray) -> str:
    """`` (and data rows 7, 9 and 3 more)``: the rows after the first of ``rows`` (positions
    from 0) that share its problem, so a file is fixed in one round; empty for one row."""
    others = [str(int(row) + 1) for row in rows[1:]]
    if not others:
        return ""
    shown = others[:ALSO_ROWS_SHOWN]
    if len(others) > len(shown):
        listed = f"{', '.join(shown)} and {len(others) - len(shown)} more"
    elif len(shown) == 1:
        listed = shown[0]
    else:
        listed = f"{', '.join(shown[:-1])} and {shown[-1]}"
    plural = "s" if len(others) > 1 else ""
    return f" (and data row{plural} {listed})"


# ISO 8601 only: a date, then a time after "T" or a space with optional seconds, fraction and
# "Z" or UTC offset. Other layouts are ambiguous: 01/03/2024 is 1 March or 3 January.
ISO_TIMESTAMP = re.compile(
    r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?"
    r"(Z|(?P<offset>(?P<sign>[+-])(?P<hours>\d{2}):?(?P<minutes>\d{2})?))?)?"
)
# The UTC offsets in use on Earth, in minutes: -12:00 (Baker Island) to +14:00 (Kiribati).
OFFSET_RANGE = (-12 * 60, 14 * 60)
ISO_ADVICE = (
    "write ISO 8601 such as 2024-01-03 14:00:00 (UTC, or add Z or an offset such as +01:00)"
)
# datetime64[ns] holds 1677-09-21 to 2262-04-11 (a later year would wrap round silently):
# the range every time given to Seamwatch keeps to (seamwatch.times)
EARLIEST = pd.Timestamp(times.EARLIEST)
LATEST = pd.Timestamp(times.LATEST)


def _timestamps(name: str, raw: pd.Series) -> np.ndarray:
    """The timestamp column as naive UTC ``datetime64[ns]``, in time order (a repeated
    timestamp is allowed); every row that breaks a rule is named, each kind of problem on a
    line of the error, so one round of fixes clears them."""
    written = raw.str.strip()
    missing = (written == "").to_numpy()
    iso = written.str.fullmatch(ISO_TIMESTAMP).to_numpy(dtype=bool)
    bad_offset = _bad_offsets(written.where(iso, ""))
    readable = iso & ~bad_offset
    # rows that name no real moment (2024-02-30, 25:00) come back as NaT
    stamps = pd.to_datetime(
        written.where(readable).astype("string"), utc=True, format="ISO8601", errors="coerce"
    )
    parsed = stamps.notna().to_numpy()
    outside = parsed & ((stamps < EARLIEST) | (stamps > LATEST)).to_numpy(dtype=bool)
    problems = [
        describe(name, raw, np.flatnonzero(rows))
        for rows, describe in (
            (missing, _missing),
            (~missing & ~iso, _not_iso),
            (bad_offset, _foreign_offset),
            (readable & ~parsed, _impossible),
            (outside, _out_of_range),
        )
        if rows.any()
    ]
    if problems:
        raise SeriesFormatError("\n".join(problems))
    naive = stamps.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
    backwards = np.flatnonzero(np.diff(naive) < np.timedelta64(0))
    if backwards.size:
        row = int(backwards[0]) + 1
        raise SeriesFormatError(
            f"{name}: timestamps go backwards at data row {row + 1}: {raw.iloc[row]!r} comes "
            f"after {raw.iloc[row - 1]!r} on data row {row}{_in_utc(raw, naive, row)}; "
            "sort the rows by time, oldest first"
        )
    return naive


def _in_utc(raw: pd.Series, naive: np.ndarray, row: int) -> str:
    """The two rows in UTC, for the message, when either is written with another offset:
    "00:01+05:00" after "00:00Z" goes back in time but not as written."""
    offsets = [pd.Timestamp(str(raw.iloc[i]).strip()).utcoffset() for i in (row - 1, row)]
    if not any(offsets):
        return ""
    return f" (in UTC, {_shown(naive[row])} after {_shown(naive[row - 1])})"


def _missing(name: str, raw: pd.Series, rows: np.ndarray) -> str:
    return f"{name}: missing timestamp on data row {rows[0] + 1}{also_rows(rows)}"


def _impossible(name: str, raw: pd.Series, rows: np.ndarray) -> str:
    row = int(rows[0])
    return (
        f"{name}: timestamp {_shown_text(raw, row)!r} on data row {row + 1}{also_rows(rows)} is "
        f"not a real date and time; {ISO_ADVICE}"
    )


def _out_of_range(name: str, raw: pd.Series, rows: np.ndarray) -> str:
    row = int(rows[0])
    return (
        f"{name}: timestamp {raw.iloc[row]!r} on data row {row + 1}{also_rows(rows)} is "
        f"out of range; the year must be from {EARLIEST.year} to {LATEST.year}"
    )


# seconds or milliseconds since 1970: a number cannot say which, so none is guessed
UNIX_TIME = re.compile(r"\d{9,}(\.\d*)?")


def _not_iso(name: str, raw: pd.Series, rows: np.ndarray) -> str:
    row = int(rows[0])
    shown = _shown_text(raw, row)
    unix = " it looks like a Unix time, which is not read;" if UNIX_TIME.fullmatch(shown) else ""
    return (
        f"{name}: timestamp {shown!r} on data row {row + 1}{also_rows(rows)} is not ISO 8601;"
        f"{unix} {ISO_ADVICE}"
    )


def _shown_text(raw: pd.Series, row: int) -> str:
    return str(raw.iloc[row]).strip().replace("\n", " ")[:60]


# Detectors keep their history as float32; a larger magnitude cannot be a measurement.
MAX_VALUE = float(np.finfo(np.float32).max)


def _read_text(path: Path | str, name: str) -> str:
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
    if b"\x00" in data:  # valid UTF-8, but never in a CSV file's text
        raise SeriesFormatError(f"{name} is not UTF-8 text; {_encoding_hint(data)}")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SeriesFormatError(
            f"{name} is not UTF-8 text; {_encoding_hint(data, _where_not_utf8(exc))}"
        ) from None
    if not text.strip():
        raise SeriesFormatError(f"{name} is empty; expected a header with timestamp and value")
    return text


UTF16_HINT = "it is UTF-16 text; save it as CSV UTF-8"
# what a file that is not UTF-8 usually is, by its first bytes, and what to do about it
KNOWN_STARTS = (
    (b"\x1f\x8b", "it is gzip-compressed; decompress it first (gunzip)"),
    (b"PK\x03\x04", "it is a zip archive (an .xlsx workbook?); export the sheet as CSV"),
    (b"\xff\xfe", "it is UTF-16 text (Excel's Unicode text); save it as CSV UTF-8"),
    (b"\xfe\xff", UTF16_HINT),
)


def _encoding_hint(data: bytes, where: str = "") -> str:
    """What a file that is not UTF-8 text seems to be; else where its first byte that is
    not UTF-8 is (``where``), so that a stray byte can be found and fixed."""
    for start, hint in KNOWN_STARTS:
        if data.startswith(start):
            return hint
    if is_utf16(data):
        return UTF16_HINT
    if b"\x00" in data:
        return "it holds NUL bytes, which CSV text never does; expected a CSV file"
    if where:
        return f"{where} cannot be read as UTF-8 (Latin-1?); save the file as CSV UTF-8"
    return "expected a CSV file"


def _where_not_utf8(exc: UnicodeDecodeError) -> str:
    """``byte 0xE9 on line 3, column 12``: the first byte that is not UTF-8, its column
    counted in characters (the text before it on its line is UTF-8)."""
    data, at = exc.object, exc.start
    line_start = data.rfind(b"\n", 0, at) + 1
    column = len(bytes(data[line_start:at]).decode("utf-8")) + 1
    line = data.count(b"\n", 0, at) + 1
    return f"byte 0x{data[at]:02X} on line {line}, column {column}"


def _read_frame(name: str, text: str) -> tuple[pd.DataFrame, str | None]:
    """Parse CSV text into string columns (the header's), and say which rows hold more fields
    than the header (None when none does)."""
    rows = csv.reader(io.StringIO(text))
    try:
        header = next(row for row in rows if row)
        _refuse_other_separators(name, header)
        _refuse_repeated_columns(name, header)
        extra_fields = _extra_fields(name, rows, len(header))
        # usecols: an empty field after the last column (a trailing comma) is dropped on any
        # row; index_col=False keeps such a first row from turning the timestamps into an index
        frame = pd.read_csv(
            io.StringIO(text),
            dtype=str,
            keep_default_na=False,
            index_col=False,
            usecols=range(len(header)),
        )
        return frame, extra_fields
    except (csv.Error, pd.errors.ParserError) as exc:
        unclosed = _UNCLOSED_QUOTE.search(str(exc))
        if unclosed:
            line = int(unclosed.group(1)) + 1  # pandas counts rows from the header's, at 0
            raise SeriesFormatError(
                f"{name}, line {line}: a double quote opened there is never closed; "
                "close it or remove it"
            ) from None
        raise SeriesFormatError(f"cannot parse {name} as CSV: {exc}") from None


_UNCLOSED_QUOTE = re.compile(r"EOF inside string starting at row (\d+)")


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


def _refuse_repeated_columns(name: str, header: list[str]) -> None:
    """Two columns of one name, in any case (as the columns are found), are refused: pandas
    would rename the second ``timestamp.1`` and read the first, silently. Blank names (a
    trailing comma) are no names."""
    first: dict[str, int] = {}
    for number, column in enumerate(header, start=1):
        key = column.strip().lower()
        if not key:
            continue
        if key in first:
            earlier = first[key]
            raise SeriesFormatError(
                f"{name}: two '{key}' columns, {earlier} and {number} "
                f"({header[earlier - 1].strip()!r} and {column.strip()!r}; names are "
                "matched in any case); keep one"
            )
        first[key] = number


def _extra_fields(name: str, rows: Iterator[list[str]], width: int) -> str | None:
    """Which data rows hold more fields than the header, unless the extra ones are empty (a
    trailing comma): ``1,5`` in a value column is a decimal comma, not two values."""
    # blank lines are skipped, as pandas skips them, so row numbers match the other messages
    wide = [
        (number, len(row))
        for number, row in enumerate((row for row in rows if row), start=0)
        if len(row) > width and any(field.strip() for field in row[width:])
    ]
    if not wide:
        return None
    first, fields = wide[0]
    return (
        f"{name}: data row {first + 1}{also_rows(np.array([row for row, _ in wide]))} has "
        f"{fields} fields but the header names {width}; quote a value that holds a comma (a "
        "decimal comma: use a point)"
    )


def _bad_offsets(written: pd.Series) -> np.ndarray:
    """Which rows carry a UTC offset that no place uses (``+14:45``, beyond -12:00 to
    +14:00): taken as written, it moved the row by hours no clock shows."""
    parts = written.str.extract(ISO_TIMESTAMP)
    given = parts["offset"].notna().to_numpy()
    if not given.any():
        return given
    hours = pd.to_numeric(parts["hours"]).fillna(0)
    minutes = hours * 60 + pd.to_numeric(parts["minutes"]).fillna(0)
    signed = minutes.where(parts["sign"] != "-", -minutes)
    return given & ((signed < OFFSET_RANGE[0]) | (signed > OFFSET_RANGE[1])).to_numpy()


def _foreign_offset(name: str, raw: pd.Series, rows: np.ndarray) -> str:
    row = int(rows[0])
    offset = ISO_TIMESTAMP.fullmatch(str(raw.iloc[row]).strip())["offset"]
    return (
        f"{name}: timestamp {raw.iloc[row]!r} on data row {row + 1}{also_rows(rows)} has the "
        f"UTC offset {offset}, which no clock uses; offsets run from -12:00 to +14:00 (or end "
        "the time in Z for UTC)"
    )


def _values(name: str, raw: pd.Series) -> np.ndarray:
    """The value column as floats: blank or NA/NaN is a gap (NaN); anything else that is not a
    finite number of a sensible size is an error naming its row."""
    text = raw.str.strip()
    gap = text.isin(("", "NA", "N/A", "NaN", "nan", "null", "NULL"))
    values = pd.to_numeric(text.mask(gap), errors="coerce")
    # text that is no number, such as 107.01% or 1,107.5; and numbers past float32
    not_number = np.flatnonzero((values.isna() & ~gap).to_numpy())
    too_large = np.flatnonzero((values.abs() > MAX_VALUE).to_numpy())
    problems = []
    if not_number.size:
        row = int(not_number[0])
        problems.append(
            f"{name}: value {raw.iloc[row]!r} on data row {row + 1}{also_rows(not_number)} is "
            "not a plain number; write digits with a point for decimals, without a % sign or "
            "thousands separators (1107.5, not 1,107.5), or leave it blank (or NaN) for a gap"
        )
    if too_large.size:
        row = int(too_large[0])
        problems.append(
            f"{name}: unparsable value {raw.iloc[row]!r} on data row {row + 1}"
            f"{also_rows(too_large)}: expected a finite number of at most {MAX_VALUE:.3g} in "
            "size, or a blank (or NaN) for a gap"
        )
    if problems:
        raise SeriesFormatError("\n".join(problems))
    return values.to_numpy(dtype=float)


Bounds = tuple[np.datetime64, np.datetime64]
WINDOWS_SHAPE = (
    "an object mapping each CSV path, relative to the windows file's folder, to a list of "
    '["start", "end"] timestamp pairs'
)


def read_windows(folder: Path) -> dict[str, list[Bounds]]:
    """Read a set's windows file: CSV paths relative to ``folder`` and their window bounds as
    naive UTC ``datetime64[ns]``. Raises :class:`SeriesFormatError` naming the file and key."""
    path = folder / WINDOWS_FILE
    try:
        content = json.loads(
            path.read_bytes().decode("utf-8-sig"), object_pairs_hook=_refuse_repeated_keys
        )
    except UnicodeDecodeError:
        raise SeriesFormatError(f"{path} is not UTF-8 text; expected {WINDOWS_SHAPE}") from None
    except json.JSONDecodeError as exc:
        raise SeriesFormatError(
            f"{path} is not valid JSON ({exc.msg} on line {exc.lineno}, column {exc.colno}); "
            f"expected {WINDOWS_SHAPE}"
        ) from None
    except _RepeatedKey as exc:
        raise SeriesFormatError(
            f"{path}: key {exc.key!r} is given twice; keep one list of windows per file"
        ) from None
    if not isinstance(content, dict):
        raise SeriesFormatError(
            f"{path}: the top level is {_json_kind(content)}; expected {WINDOWS_SHAPE}"
        )
    return {key: _key_windows(path, key, windows) for key, windows in content.items()}


class _RepeatedKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _refuse_repeated_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    """JSON keeps the last of two equal keys; in a windows file that loses windows silently."""
    content: dict[str, object] = {}
    for key, value in pairs:
        if key in content:
            raise _RepeatedKey(key)
        content[key] = value
    return content


def _key_windows(path: Path, key: str, windows: object) -> list[Bounds]:
    """One key's windows, checked: a path inside the folder and ``[start, end]`` pairs."""
    where = f"{path}, key {key!r}"
    relative = PurePosixPath(key)
    # the key names a file of this set; an absolute path or ".." would read any file
    if not key.strip() or relative.is_absolute() or ".." in relative.parts:
        raise SeriesFormatError(
            f"{where}: not a path inside {path.parent}; keys are CSV paths relative to that "
            "folder, e.g. realTraffic/speed.csv"
        )
    if not isinstance(windows, list):
        raise SeriesFormatError(
            f"{where}: the windows are {_json_kind(windows)}; expected a list of "
            '["start", "end"] timestamp pairs ([] for none)'
        )
    checked = []
    for number, window in enumerate(windows, start=1):
        if not (isinstance(window, list) and len(window) == 2):
            raise SeriesFormatError(
                f"{where}: window {number} is {json.dumps(window)[:60]}; expected a pair "
                '["start", "end"] of timestamp strings'
            )
        start, end = (_bound(where, number, bound) for bound in window)
        if start > end:
            raise SeriesFormatError(
                f"{where}: window {number} starts after it ends ({window[0]} > {window[1]}); "
                "write [start, end]"
            )
        checked.append((start, end))
    return checked


def _bound(where: str, number: int, bound: object) -> np.datetime64:
    """A window bound as naive UTC ``datetime64[ns]``."""
    try:
        if not isinstance(bound, str) or not ISO_TIMESTAMP.fullmatch(bound.strip()):
            raise ValueError(bound)
        stamp = pd.Timestamp(bound.strip())
        if stamp is pd.NaT:
            raise ValueError(bound)
        if stamp.tzinfo is not None:
            stamp = stamp.tz_convert("UTC").tz_localize(None)
        return stamp.as_unit("ns").to_datetime64()
    except (ValueError, TypeError, OverflowError):
        raise SeriesFormatError(
            f"{where}: window {number} bound {json.dumps(bound)[:60]} is not a timestamp; "
            'use a UTC timestamp string from 1678 to 2261, e.g. "2024-01-01 00:00:00"'
        ) from None


def _json_kind(value: object) -> str:
    """How JSON calls a value's type, for messages."""
    if value is None:
        return "null"
    kinds = {bool: "a boolean", dict: "an object", list: "a list", str: "a string"}
    return kinds.get(type(value), "a number")


def load_set(
    data_dir: Path, set_name: str, warn: Callable[[str], None] = logger.warning
) -> list[LabelledSeries]:
    """Load every labelled file of one set, in the order of its windows file.

    A window that cannot be scored (outside the file's time range, between two rows, or in
    the rows the detector learns from) is left out; ``warn`` gets a line naming it."""
    folder = data_dir / set_name
    bounds = read_windows(folder)
    series = []
    for relative_path in sorted(bounds):
        if not (folder / relative_path).exists():
            raise SeriesFormatError(
                f"{folder / WINDOWS_FILE}, key {relative_path!r}: no such file "
                f"{folder / relative_path}; add the file or remove the key"
            )
        stamps, values = read_series(folder / relative_path)
        where = f"{folder / WINDOWS_FILE}, key {relative_path!r}"
        for note in _unscored_windows(where, stamps, bounds[relative_path]):
            warn(note)
        windows = windows_to_rows(stamps, bounds[relative_path])
        series.append(
            LabelledSeries(relative_path, kind_of(relative_path), stamps, values, windows)
        )
    return series


def _unscored_windows(where: str, stamps: np.ndarray, bounds: list[Bounds]) -> Iterator[str]:
    """A line for each window that the scorer leaves out, saying why."""
    learned = probationary_length(len(stamps))
    for number, (start, end) in enumerate(bounds, start=1):
        window = f"{where}: window {number} [{_shown(start)}, {_shown(end)}]"
        if not len(stamps):
            yield f"{window}: the file has no rows; it is not scored"
        elif end < stamps[0] or start > stamps[-1]:
            span = f"{_shown(stamps[0])} to {_shown(stamps[-1])}"
            yield f"{window} lies outside the file's time range ({span}); it is not scored"
        elif not windows_to_rows(stamps, [(start, end)]):
            yield f"{window} falls between two rows and holds none; it is not scored"
        elif windows_to_rows(stamps, [(start, end)])[0][1] < learned:
            yield (
                f"{window} ends within the first {learned} rows, which the detector learns "
                "from; it is not scored"
            )


def _shown(stamp: np.datetime64) -> str:
    return str(stamp.astype("datetime64[s]")).replace("T", " ")
