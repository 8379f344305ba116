"""Schema inference: one pass over the batches, column types, target classes or range.

Memory stays bounded whatever the file's size: per column a few running sums and at most
`DISTINCT_CAP` counted values; rows are never kept (but the first few, as samples).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from app.datasets.parsing import Column, DatasetFormat, ParseError, TableReader
from app.errors import InvalidInput
from app.nas.columns import number_text
from app.nas.spec import Task
from app.schemas.datasets import (
    CellValue,
    ClassCount,
    ColumnType,
    DatasetColumn,
    DatasetSchema,
    DatasetTarget,
    NumericSummary,
    TargetRange,
)

__all__ = ["DISTINCT_CAP", "MAX_CLASSES", "ONE_HOT_LIMIT", "infer_schema"]

#: Categories one-hot encoded per column; a column with more keeps its most frequent ones.
ONE_HOT_LIMIT = 50
#: Distinct values counted per column (enough to rank the kept categories).
DISTINCT_CAP = 10_000
MAX_CLASSES = 1_000
#: A numeric target with at most this many distinct whole numbers is taken as classes.
CLASS_GUESS_LIMIT = 20
SAMPLE_ROWS = 5


@dataclass
class ColumnStats:
    """Running statistics of one column."""

    typed: bool = False  # numbers from the format itself (Parquet, npz), not text
    present: int = 0
    missing: int = 0
    numeric: bool = True  # every value seen so far is a finite number
    integral: bool = True
    not_numeric_example: str | None = None
    total: float = 0.0
    squares: float = 0.0
    low: float = math.inf
    high: float = -math.inf
    counts: Counter[str | float] = field(default_factory=Counter)
    capped: bool = False

    def add(self, column: Column) -> None:
        if isinstance(column, np.ndarray):
            self.typed = True
            missing = np.isnan(column)
            self.missing += int(missing.sum())
            self._numbers(column[~missing])
            self._count(column[~missing].tolist())
            return
        values = [v for v in column if v is not None]
        self.missing += len(column) - len(values)
        if self.numeric and values:
            try:
                numbers = np.asarray(values, dtype=np.float64)
            except ValueError:
                numbers = None
            if numbers is None or not np.isfinite(numbers).all():
                self.numeric = False
                self.not_numeric_example = next(v for v in values if not _finite_text(v))
            else:
                self._numbers(numbers)
        self._count(values)

    def _numbers(self, numbers: np.ndarray) -> None:
        if not len(numbers):
            return
        self.present += len(numbers) if self.typed else 0
        self.total += float(numbers.sum())
        self.squares += float(np.square(numbers).sum())
        self.low = min(self.low, float(numbers.min()))
        self.high = max(self.high, float(numbers.max()))
        self.integral = self.integral and bool((numbers == np.round(numbers)).all())

    def _count(self, values: list[str] | list[float]) -> None:
        if not self.typed:
            self.present += len(values)
        batch: Counter[str | float] = Counter(values)
        if len(self.counts) < DISTINCT_CAP:
            self.counts.update(batch)
        else:
            known = {k: n for k, n in batch.items() if k in self.counts}
            self.counts.update(known)
            self.capped = self.capped or len(known) < len(batch)
        if len(self.counts) > DISTINCT_CAP:
            self.capped = True

    @property
    def inferred(self) -> ColumnType:
        return "numeric" if self.numeric else "categorical"

    def summary(self) -> NumericSummary | None:
        if not self.numeric or not self.present:
            return None
        mean = self.total / self.present
        variance = max(self.squares / self.present - mean * mean, 0.0)
        return NumericSummary(mean=mean, std=math.sqrt(variance), min=self.low, max=self.high)

    def numeric_counts(self) -> Counter[float]:
        """Counts by number (text columns: "1" and "1.0" are one value)."""
        out: Counter[float] = Counter()
        for key, n in self.counts.items():
            out[float(key)] += n
        return out


def _finite_text(value: str) -> bool:
    try:
        return math.isfinite(float(value))
    except ValueError:
        return False


def _label(value: str | float) -> CellValue:
    """A category or class as JSON shows it: whole numbers as integers."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _categories(stats: ColumnStats) -> list[str | float]:
    """The kept categories, most frequent first (ties: in value order)."""
    ranked = sorted(stats.counts.items(), key=lambda kv: (-kv[1], str(kv[0])))
    return [key for key, _ in ranked[:ONE_HOT_LIMIT]]


def _feature(name: str, stats: ColumnStats, declared: ColumnType | None) -> DatasetColumn:
    kind = declared or stats.inferred
    if kind == "numeric" and not stats.numeric:
        raise InvalidInput(
            f"column {name!r} is declared numeric but has non-numeric values such as "
            f"{stats.not_numeric_example!r}",
            field="column_types",
        )
    if kind == "numeric":
        return DatasetColumn(
            name=name,
            type="numeric",
            inferred_type=stats.inferred,
            missing=stats.missing,
            encoding="standardized",
            missing_values=(
                "imputed with the training mean, plus a 0/1 'was missing' feature"
                if stats.missing
                else None
            ),
            summary=stats.summary(),
        )
    categories = _categories(stats)
    distinct = len(stats.counts)
    return DatasetColumn(
        name=name,
        type="categorical",
        inferred_type=stats.inferred,
        missing=stats.missing,
        encoding="one_hot" if distinct <= ONE_HOT_LIMIT and not stats.capped else "one_hot_top",
        missing_values="the 'missing or other' one-hot feature" if stats.missing else None,
        distinct=distinct,
        distinct_capped=stats.capped,
        categories=[_label(c) for c in categories],
    )


def _task(stats: ColumnStats, declared: Task | None, target: str) -> Task:
    if declared == "regression" and not stats.numeric:
        raise InvalidInput(
            f"a regression target must be numeric; column {target!r} has values such as "
            f"{stats.not_numeric_example!r}",
            field="target",
        )
    if declared is not None:
        return declared
    if not stats.numeric:
        return "classification"
    few = not stats.capped and len(stats.numeric_counts()) <= CLASS_GUESS_LIMIT
    return "classification" if stats.integral and few else "regression"


def _target(name: str, stats: ColumnStats, task: Task) -> DatasetTarget:
    if stats.present == 0:
        raise InvalidInput(f"the target column {name!r} has no values", field="target")
    if task == "regression":
        summary = stats.summary()
        assert summary is not None
        return DatasetTarget(
            column=name,
            task=task,
            missing=stats.missing,
            range=TargetRange(min=summary.min, max=summary.max, mean=summary.mean, std=summary.std),
        )
    if stats.capped or len(stats.counts) > MAX_CLASSES:
        raise InvalidInput(
            f"the target column {name!r} has more than {MAX_CLASSES} classes; for a numeric "
            "target send task=regression",
            field="target",
        )
    counts: Mapping[str | float, int] = (
        {float(k): n for k, n in stats.numeric_counts().items()} if stats.numeric else stats.counts
    )
    if len(counts) < 2:
        only = next(iter(counts))
        raise InvalidInput(
            f"the target column {name!r} has one class only ({_label(only)!r}); "
            "classification needs at least two",
            field="target",
        )
    return DatasetTarget(
        column=name,
        task=task,
        missing=stats.missing,
        classes=[ClassCount(label=_label(k), count=n) for k, n in sorted(counts.items())],
    )


def _sample(names: list[str], batch: list[Column]) -> list[dict[str, CellValue]]:
    rows: list[dict[str, CellValue]] = []
    count = min(SAMPLE_ROWS, len(batch[0]) if batch else 0)
    for r in range(count):
        row: dict[str, CellValue] = {}
        for name, column in zip(names, batch, strict=True):
            value = column[r]
            if isinstance(value, np.floating | float):
                number = float(value)
                row[name] = None if math.isnan(number) else _label(number)
            else:
                row[name] = value
        rows.append(row)
    return rows


def infer_schema(
    reader: TableReader,
    target: str | None,
    column_types: Mapping[str, ColumnType] | None = None,
    task: Task | None = None,
) -> DatasetSchema:
    """Read every batch once and describe the dataset.

    Raises `InvalidInput` naming the field at fault (``target``, ``column_types``, ``task``,
    ``file``).
    """
    names = reader.names
    if reader.fmt == DatasetFormat.NPZ:
        if target not in (None, names[-1]):
            raise InvalidInput(
                f"an .npz dataset's target is its {names[-1]!r} array", field="target"
            )
        target = names[-1]
    if not target:
        raise InvalidInput("name the target column (target)", field="target")
    if target not in names:
        raise InvalidInput(
            f"no column {target!r} in the file; its columns: {names[:50]}", field="target"
        )
    declared = dict(column_types or {})
    unknown = sorted(set(declared) - set(names))
    if unknown:
        raise InvalidInput(f"column_types names unknown column(s) {unknown}", field="column_types")
    if target in declared:
        raise InvalidInput(
            "column_types is for feature columns; the target's type follows from the task",
            field="column_types",
        )
    if len(names) < 2:
        raise ParseError("the file has no feature column besides the target")
    stats = [ColumnStats() for _ in names]
    rows = 0
    sample: list[dict[str, CellValue]] = []
    for batch in reader.batches():
        if not sample:
            sample = _sample(names, batch)
        rows += len(batch[0])
        for column_stats, column in zip(stats, batch, strict=True):
            column_stats.add(column)
    if rows == 0:
        raise ParseError("the file has no data rows")
    by_name = dict(zip(names, stats, strict=True))
    resolved_task = _task(by_name[target], task, target)
    return DatasetSchema(
        rows=rows,
        columns=[
            _feature(name, by_name[name], declared.get(name)) for name in names if name != target
        ],
        target=_target(target, by_name[target], resolved_task),
        sample_rows=sample,
    )


def category_label(value: str | float) -> str:
    """The text form of a category key, as CSV cells and `FeatureColumn.encode` match it."""
    return value if isinstance(value, str) else number_text(value)
