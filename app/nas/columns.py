"""Feature columns of a tabular dataset, and raw rows as the model's numeric input.

No keras here: the API imports this to check and encode `/predict` rows.

A Keras model on the torch backend cannot take strings (torch has no string tensors, and
keras' ``StringLookup``/``Hashing`` layers need TensorFlow), so the exported model takes one
float per feature column, in column order:

* numeric column: the value itself; NaN for a missing value (the model imputes the
  training mean and sets the column's missing indicator);
* categorical column of strings: the value's position in the column's ``categories``
  (most frequent first); NaN for a missing value or one that is not among them;
* categorical column of numbers (a Parquet or npz numeric column declared categorical): the
  value itself.

`encode_rows` turns raw rows (strings, numbers, None; lists in column order or objects by
column name) into that input; `POST /runs/{id}/predict` uses it, so its answers and the
downloaded model's agree.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "ColumnKind",
    "FeatureColumn",
    "RowError",
    "encode_model_input",
    "encode_rows",
    "number_text",
    "plain_rows",
]

#: A raw cell: what a CSV, Parquet or JSON row may hold.
Cell = str | int | float | bool | None


class ColumnKind(enum.StrEnum):
    NUMERIC = "numeric"
    CATEGORICAL = "categorical"


class RowError(ValueError):
    """A raw row that cannot be given to the model; `field` names where (``rows.3.color``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def number_text(value: float) -> str:
    """How a number reads as a CSV cell: ``3`` for 3.0, so 3 finds the category "3"."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


@dataclass(frozen=True)
class FeatureColumn:
    """One feature column and how the model treats it.

    ``mean``/``std``: numeric columns are standardised with the training split's; a missing
    value is replaced by ``mean``, and ``missing_indicator`` adds a 0/1 feature that says it
    was missing (for columns with missing values). ``categories``: a categorical column's
    kept values, most frequent first (one one-hot feature each, plus one for "missing or
    other"); ``numeric_keys``: they are numbers and given to the model as themselves.
    """

    name: str
    kind: ColumnKind
    mean: float = 0.0
    std: float = 1.0
    missing_indicator: bool = False
    categories: tuple[str | float, ...] = field(default=())
    numeric_keys: bool = False

    @property
    def keys(self) -> list[float]:
        """The model-input values of ``categories``, in order."""
        if self.numeric_keys:
            return [float(c) for c in self.categories]
        return [float(i) for i in range(len(self.categories))]

    @property
    def width(self) -> int:
        """Features this column becomes inside the model."""
        if self.kind == ColumnKind.NUMERIC:
            return 1 + int(self.missing_indicator)
        return len(self.categories) + 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind.value,
            "mean": self.mean,
            "std": self.std,
            "missing_indicator": self.missing_indicator,
            "categories": list(self.categories),
            "numeric_keys": self.numeric_keys,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureColumn:
        return cls(
            name=str(data["name"]),
            kind=ColumnKind(data["kind"]),
            mean=float(data.get("mean", 0.0)),
            std=float(data.get("std", 1.0)),
            missing_indicator=bool(data.get("missing_indicator", False)),
            categories=tuple(data.get("categories", ())),
            numeric_keys=bool(data.get("numeric_keys", False)),
        )

    def encode(self, value: Cell, where: str) -> float:
        """``value`` as this column's model input (see the module docstring)."""
        if value is None:
            return math.nan
        if self.kind == ColumnKind.NUMERIC:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise RowError(where, f"column {self.name!r} is numeric: give a number or null")
            return float(value)
        if isinstance(value, bool):
            raise RowError(where, f"column {self.name!r} takes a string, a number or null")
        if self.numeric_keys:
            try:
                return float(value)
            except ValueError:
                return math.nan  # not one of its categories: "other"
        text = value if isinstance(value, str) else number_text(value)
        return float(self._positions().get(text, math.nan))

    def _positions(self) -> dict[str, int]:
        cached: dict[str, int] | None = self.__dict__.get("_position_cache")
        if cached is None:
            cached = {str(c): i for i, c in enumerate(self.categories)}
            object.__setattr__(self, "_position_cache", cached)
        return cached


def encode_rows(
    columns: Sequence[FeatureColumn], rows: Sequence[Sequence[Cell] | Mapping[str, Cell]]
) -> np.ndarray:
    """Raw rows as the model's float32 input (one column per feature column).

    A row is a list in column order (every column) or an object keyed by column name (a
    column left out is missing). Raises `RowError` naming the first bad row or cell.
    """
    names = {c.name: i for i, c in enumerate(columns)}
    out = np.full((len(rows), len(columns)), np.nan, dtype=np.float32)
    for r, row in enumerate(rows):
        if isinstance(row, Mapping):
            unknown = sorted(set(row) - names.keys())
            if unknown:
                raise RowError(f"rows.{r}", f"unknown column(s) {unknown}; columns: {list(names)}")
            for name, value in row.items():
                i = names[name]
                out[r, i] = columns[i].encode(value, f"rows.{r}.{name}")
            continue
        if len(row) != len(columns):
            raise RowError(
                "rows", f"rows must each have {len(columns)} values; row {r} has {len(row)}"
            )
        for i, value in enumerate(row):
            out[r, i] = columns[i].encode(value, f"rows.{r}.{i}")
    return out


def plain_rows(width: int, rows: Sequence[Sequence[Cell] | Mapping[str, Cell]]) -> np.ndarray:
    """Rows of a dataset without named columns (the built-in ones): lists of numbers only."""
    out = np.empty((len(rows), width), dtype=np.float32)
    for r, row in enumerate(rows):
        if isinstance(row, Mapping):
            raise RowError(f"rows.{r}", "this model's columns have no names: give a list")
        if len(row) != width:
            raise RowError("rows", f"rows must each have {width} values; row {r} has {len(row)}")
        for i, value in enumerate(row):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise RowError(f"rows.{r}.{i}", "Input should be a valid number")
            out[r, i] = value
    return out


def encode_model_input(
    columns: Sequence[FeatureColumn],
    width: int,
    rows: Sequence[Sequence[Cell] | Mapping[str, Cell]],
) -> np.ndarray:
    """Raw rows as a model's input; `RowError` names a bad row or cell.

    By ``columns`` (uploaded tables), else plain number rows of ``width`` values (the
    built-in datasets). `/predict` and the predictor bundle both encode with this.
    """
    if columns:
        return encode_rows(columns, rows)
    return plain_rows(width, rows)
