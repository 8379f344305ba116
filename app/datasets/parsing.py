"""Reading an uploaded file (CSV, Parquet, NumPy ``.npz``) in batches of columns.

The same readers serve the upload (schema inference, in the API) and the worker (the
training arrays), so both see the same columns, missing values and errors. A batch is a
list of columns, one per column name: a float64 array (NaN for missing) for typed numeric
data (Parquet, npz), a list of ``str | None`` for text (CSV cells, Parquet strings).

Memory: CSV and Parquet are read a batch of rows at a time. An ``.npz`` member can only be
read whole (it is a zipped ``.npy``), so an npz dataset is in memory while it is read.
"""

from __future__ import annotations

import contextlib
import csv
import enum
import io
import zipfile
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import IO, Any

import numpy as np

from app.errors import InvalidInput

__all__ = [
    "MISSING_TOKENS",
    "Column",
    "DatasetFormat",
    "ParseError",
    "TableReader",
    "detect_format",
    "open_table",
]

BATCH_ROWS = 4096
MAX_COLUMNS = 10_000
#: CSV cells read as missing values (pandas' usual set, and the empty cell).
MISSING_TOKENS = frozenset(
    {"", "NA", "N/A", "n/a", "NaN", "nan", "NAN", "null", "NULL", "None", "none", "?", "-"}
)
NPZ_FEATURES, NPZ_TARGET = "x", "y"

#: One column of a batch.
Column = np.ndarray | list[str | None]


class DatasetFormat(enum.StrEnum):
    CSV = "csv"
    PARQUET = "parquet"
    NPZ = "npz"

    @property
    def is_table(self) -> bool:
        """Named columns, one of them the target (npz has arrays x and y instead)."""
        return self != DatasetFormat.NPZ


_SUFFIXES = {
    ".csv": DatasetFormat.CSV,
    ".parquet": DatasetFormat.PARQUET,
    ".pq": DatasetFormat.PARQUET,
    ".npz": DatasetFormat.NPZ,
}


class ParseError(InvalidInput):
    """The file cannot be read as its format (a 422 naming ``file``)."""

    def __init__(self, detail: str, field: str = "file") -> None:
        super().__init__(detail, field=field)


def detect_format(filename: str | None, declared: str | None) -> DatasetFormat:
    """The format given (``format``), else the one the file name's suffix says."""
    if declared:
        try:
            return DatasetFormat(declared.lower())
        except ValueError:
            raise ParseError(
                f"unknown format {declared!r}; use csv, parquet or npz", field="format"
            ) from None
    name = (filename or "").lower()
    for suffix, fmt in _SUFFIXES.items():
        if name.endswith(suffix):
            return fmt
    raise ParseError(
        f"cannot tell the format of {filename!r}: name it .csv, .parquet or .npz, or send "
        "a format field (csv, parquet, npz)"
    )


@dataclass
class TableReader:
    """Column names, and the rows in batches (`batches` may be called more than once)."""

    fmt: DatasetFormat
    file: IO[bytes]
    names: list[str]

    def batches(self) -> Iterator[list[Column]]:
        self.file.seek(0)
        if self.fmt == DatasetFormat.CSV:
            yield from _csv_batches(self.file, len(self.names))
        elif self.fmt == DatasetFormat.PARQUET:
            yield from _parquet_batches(self.file)
        else:
            yield from _npz_batches(self.file)


def open_table(fmt: DatasetFormat, file: IO[bytes]) -> TableReader:
    """A reader of ``file``; its header (or arrays) checked. Raises `ParseError`."""
    file.seek(0, io.SEEK_END)
    if file.tell() == 0:
        raise ParseError("the file is empty")
    file.seek(0)
    if fmt == DatasetFormat.CSV:
        names = _csv_header(file)
    elif fmt == DatasetFormat.PARQUET:
        names = _parquet_names(file)
    else:
        names = _npz_names(file)
    if len(names) > MAX_COLUMNS:
        raise ParseError(f"the file has {len(names)} columns; at most {MAX_COLUMNS} are taken")
    return TableReader(fmt, file, names)


# --- CSV --------------------------------------------------------------------------------------


def _text(file: IO[bytes]) -> io.TextIOWrapper:
    # utf-8-sig: a byte-order mark (spreadsheet exports) is not part of the first name.
    return io.TextIOWrapper(file, encoding="utf-8-sig", errors="strict", newline="")


def _csv_rows(file: IO[bytes]) -> Generator[tuple[int, list[str]], None, None]:
    """(line number, cells) of every non-blank row; encoding and syntax errors as ParseError."""
    text = _text(file)
    reader = csv.reader(text, strict=True)
    try:
        for row in reader:
            if row:  # blank lines
                yield reader.line_num, row
    except UnicodeDecodeError as exc:
        raise ParseError(
            f"the file is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} near line "
            f"{reader.line_num + 1}); save it as UTF-8"
        ) from None
    except csv.Error as exc:
        raise ParseError(f"CSV syntax error on line {reader.line_num}: {exc}") from None
    finally:
        with contextlib.suppress(ValueError):  # the file was closed first
            text.detach()  # the binary file stays open for the next pass


def _csv_header(file: IO[bytes]) -> list[str]:
    for _, header in _csv_rows(file):
        names = [name.strip() for name in header]
        if any(not name for name in names):
            raise ParseError("the header row has an empty column name")
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ParseError(f"the header row repeats column name(s) {duplicates}")
        return names
    raise ParseError("the file has no header row (it is blank)")


def _csv_batches(file: IO[bytes], width: int) -> Iterator[list[Column]]:
    batch: list[list[str]] = []
    with contextlib.closing(_csv_rows(file)) as rows:
        next(rows)  # the header
        for line, row in rows:
            if len(row) != width:
                raise ParseError(
                    f"line {line} has {len(row)} fields; the header has {width} (ragged rows)"
                )
            batch.append(row)
            if len(batch) == BATCH_ROWS:
                yield _csv_columns(batch, width)
                batch = []
    if batch:
        yield _csv_columns(batch, width)


def _csv_columns(batch: list[list[str]], width: int) -> list[Column]:
    columns: list[Column] = []
    for i in range(width):
        cells = [row[i].strip() for row in batch]
        columns.append([None if cell in MISSING_TOKENS else cell for cell in cells])
    return columns


# --- Parquet ----------------------------------------------------------------------------------


def _parquet_file(file: IO[bytes]) -> Any:
    import pyarrow.parquet as pq  # only Parquet needs it: imported when one comes

    try:
        return pq.ParquetFile(file)
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ... for a bad file
        raise ParseError(f"the file is not a readable Parquet file: {exc}") from None


def _parquet_kind(arrow_type: Any) -> str | None:
    import pyarrow.types as pt

    if pt.is_integer(arrow_type) or pt.is_floating(arrow_type) or pt.is_boolean(arrow_type):
        return "number"
    if pt.is_decimal(arrow_type):
        return "number"
    if pt.is_string(arrow_type) or pt.is_large_string(arrow_type):
        return "text"
    if pt.is_dictionary(arrow_type):
        return _parquet_kind(arrow_type.value_type)
    return None


def _parquet_names(file: IO[bytes]) -> list[str]:
    schema = _parquet_file(file).schema_arrow
    for field in schema:
        if _parquet_kind(field.type) is None:
            raise ParseError(
                f"column {field.name!r} has type {field.type}; numbers and strings are taken"
            )
    names = list(schema.names)
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ParseError(f"the file repeats column name(s) {duplicates}")
    return names


def _parquet_batches(file: IO[bytes]) -> Iterator[list[Column]]:
    import pyarrow as pa
    import pyarrow.compute as pc

    parquet = _parquet_file(file)
    kinds = [_parquet_kind(field.type) for field in parquet.schema_arrow]
    try:
        for batch in parquet.iter_batches(batch_size=BATCH_ROWS):
            columns: list[Column] = []
            for kind, array in zip(kinds, batch.columns, strict=True):
                if kind == "number":
                    floats = pc.cast(array, pa.float64())
                    columns.append(floats.to_numpy(zero_copy_only=False))  # nulls: NaN
                else:
                    if pa.types.is_dictionary(array.type):
                        array = array.dictionary_decode()
                    columns.append(array.to_pylist())
            yield columns
    except ParseError:
        raise
    except Exception as exc:
        raise ParseError(f"the Parquet file could not be read: {exc}") from None


# --- npz --------------------------------------------------------------------------------------


def _npz_arrays(file: IO[bytes]) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(file, allow_pickle=False) as npz:
            keys = set(npz.files)
            if not {NPZ_FEATURES, NPZ_TARGET} <= keys:
                raise ParseError(
                    f"an .npz dataset holds arrays {NPZ_FEATURES!r} (features, one row per "
                    f"sample) and {NPZ_TARGET!r} (targets); this one has {sorted(keys)}"
                )
            x, y = npz[NPZ_FEATURES], npz[NPZ_TARGET]
    except ParseError:
        raise
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        # ValueError also covers object arrays, refused without pickle.
        raise ParseError(f"the file is not a readable .npz of numeric arrays: {exc}") from None
    if x.dtype.kind not in "biuf" or x.ndim < 1 or len(x) == 0:
        raise ParseError(f"array {NPZ_FEATURES!r} must hold numbers, one row per sample")
    if y.dtype.kind not in "biufU" or y.ndim not in (1, 2) or (y.ndim == 2 and y.shape[1] != 1):
        raise ParseError(f"array {NPZ_TARGET!r} must be one number or string per sample")
    if len(y) != len(x):
        raise ParseError(f"{NPZ_FEATURES!r} has {len(x)} rows but {NPZ_TARGET!r} has {len(y)}")
    return x.reshape(len(x), -1), y.reshape(-1)


def _npz_names(file: IO[bytes]) -> list[str]:
    x, _ = _npz_arrays(file)
    return [f"{NPZ_FEATURES}{i}" for i in range(x.shape[1])] + [NPZ_TARGET]


def _npz_batches(file: IO[bytes]) -> Iterator[list[Column]]:
    x, y = _npz_arrays(file)
    for start in range(0, len(x), BATCH_ROWS):
        rows = x[start : start + BATCH_ROWS].astype(np.float64)
        labels = y[start : start + BATCH_ROWS]
        target: Column = (
            [str(v) for v in labels] if labels.dtype.kind == "U" else labels.astype(np.float64)
        )
        yield [*(rows[:, i] for i in range(rows.shape[1])), target]
