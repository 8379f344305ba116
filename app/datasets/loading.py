"""An uploaded dataset as training arrays: its file and schema to the model's raw input.

Used by the worker (any host): the file comes from Postgres into a local cache file
(`fetch_file`, named by the dataset's id and checked against its sha256), then is read with
the same readers as the upload (`app.datasets.parsing`), so the columns, missing values and
categories are the ones the schema describes.
"""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path
from typing import IO

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.datasets import store
from app.datasets.models import DatasetRow
from app.datasets.parsing import Column, DatasetFormat, open_table
from app.nas.columns import ColumnKind, FeatureColumn, number_text
from app.schemas.datasets import DatasetColumn, DatasetSchema

__all__ = ["RawTable", "feature_columns", "fetch_file", "raw_table"]


class RawTable:
    """The model's raw input (one float per feature column) and the targets."""

    def __init__(
        self, raw: np.ndarray, y: np.ndarray, columns: tuple[FeatureColumn, ...], n_classes: int
    ) -> None:
        self.raw = raw
        self.y = y
        self.columns = columns
        self.n_classes = n_classes


def feature_columns(schema: DatasetSchema) -> tuple[FeatureColumn, ...]:
    """The schema's feature columns as the model sees them (statistics come later)."""
    return tuple(_feature_column(c) for c in schema.columns)


def _feature_column(column: DatasetColumn) -> FeatureColumn:
    if column.type == "numeric":
        return FeatureColumn(
            name=column.name, kind=ColumnKind.NUMERIC, missing_indicator=column.missing > 0
        )
    categories = [c for c in column.categories or [] if c is not None]
    # Categories listed as numbers were numbers in the file (Parquet, npz): the model
    # takes them as they are; text categories are taken as their position.
    numeric = all(isinstance(c, int | float) and not isinstance(c, bool) for c in categories)
    return FeatureColumn(
        name=column.name,
        kind=ColumnKind.CATEGORICAL,
        categories=tuple(float(c) if numeric else str(c) for c in categories),
        numeric_keys=numeric and bool(categories),
    )


def _numbers(column: Column) -> np.ndarray:
    if isinstance(column, np.ndarray):
        return column
    return np.asarray(["nan" if v is None else v for v in column], dtype=np.float64)


def _encode(column: Column, feature: FeatureColumn) -> np.ndarray:
    if feature.kind == ColumnKind.NUMERIC or feature.numeric_keys:
        return _numbers(column)
    positions = {str(c): float(i) for i, c in enumerate(feature.categories)}
    if isinstance(column, np.ndarray):  # numbers read as text categories
        return np.asarray(
            [math.nan if math.isnan(v) else positions.get(number_text(v), math.nan) for v in column]
        )
    return np.asarray([math.nan if v is None else positions.get(v, math.nan) for v in column])


def raw_table(fmt: DatasetFormat, file: IO[bytes], schema: DatasetSchema) -> RawTable:
    """Read the whole file into the model's raw input (float32) and the targets.

    Rows without a target are left out. Classes become their index in the schema's
    class list (label order).
    """
    reader = open_table(fmt, file)
    columns = feature_columns(schema)
    target = schema.target
    index = reader.names.index(target.column)
    feature_at = [i for i, name in enumerate(reader.names) if name != target.column]
    raw = np.empty((schema.rows, len(columns)), dtype=np.float32)
    y = np.empty(schema.rows, dtype=np.float64)
    classes: dict[str, int] = {}
    if target.classes is not None:
        classes = {_key(c.label): i for i, c in enumerate(target.classes)}
    start = 0
    for batch in reader.batches():
        size = len(batch[0])
        for j, i in enumerate(feature_at):
            raw[start : start + size, j] = _encode(batch[i], columns[j])
        y[start : start + size] = _targets(batch[index], classes)
        start += size
    keep = ~np.isnan(y)
    return RawTable(raw[keep], y[keep], columns, len(classes))


def _key(label: object) -> str:
    """Class labels and target cells compared as text (numbers as `number_text`)."""
    if isinstance(label, int | float) and not isinstance(label, bool):
        return number_text(float(label))
    return str(label)


def _targets(column: Column, classes: dict[str, int]) -> np.ndarray:
    if not classes:
        return _numbers(column)
    numeric = all(_is_number(k) for k in classes)
    out = np.full(len(column), np.nan)
    for r, value in enumerate(column):
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        key = number_text(float(value)) if numeric else _key(value)
        out[r] = classes.get(key, np.nan)
    return out


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


async def fetch_file(
    sessions: async_sessionmaker[AsyncSession], row: DatasetRow, cache_dir: Path
) -> Path:
    """The dataset's file on this host (``cache_dir/uploaded/<id>.<format>``).

    Fetched from Postgres chunk by chunk unless a copy with the right sha256 is there.
    """
    folder = cache_dir / "uploaded"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{row.id}.{row.format}"
    if path.is_file() and path.stat().st_size == row.size_bytes:
        return path  # written under its final name only once its sha256 matched
    digest = hashlib.sha256()
    tmp = path.with_name(f"{path.name}.{os.getpid()}.part")
    try:
        with tmp.open("wb") as fh:
            async with sessions() as session:
                async for chunk in store.chunks(session, row.id):
                    digest.update(chunk)
                    fh.write(chunk)
        if digest.hexdigest() != row.sha256:
            raise OSError(f"dataset {row.id}: the stored file does not match its sha256")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
