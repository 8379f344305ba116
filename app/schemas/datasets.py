"""Response models of /datasets: an uploaded dataset and the schema inferred from it."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from app.nas.spec import Task

ColumnType = Literal["numeric", "categorical"]
#: A cell as JSON shows it: the sample rows and category labels.
CellValue = str | float | int | bool | None


class NumericSummary(BaseModel):
    mean: float
    std: float
    min: float
    max: float


class DatasetColumn(BaseModel):
    """One feature column: its type (inferred, or as given) and how the model treats it."""

    name: str
    type: ColumnType
    inferred_type: ColumnType = Field(description="What the values looked like")
    missing: int = Field(description="Rows where it has no value")
    encoding: Literal["standardized", "one_hot", "one_hot_top"] = Field(
        description="standardized (numeric); one_hot of every category; one_hot_top: of the "
        "most frequent categories, the rest sharing the 'other' feature"
    )
    missing_values: str | None = Field(
        default=None, description="How a missing value reaches the model (when there are any)"
    )
    summary: NumericSummary | None = None
    distinct: int | None = Field(default=None, description="Distinct values (categorical)")
    distinct_capped: bool = Field(
        default=False, description="There are more distinct values than were counted"
    )
    categories: list[CellValue] | None = Field(
        default=None,
        description="Kept categories, most frequent first. The downloaded model takes a "
        "string category as its position in this list (null: missing or other)",
    )


class ClassCount(BaseModel):
    label: CellValue
    count: int


class TargetRange(BaseModel):
    min: float
    max: float
    mean: float
    std: float


class DatasetTarget(BaseModel):
    column: str
    task: Task
    missing: int = Field(description="Rows without a target value (left out of training)")
    classes: list[ClassCount] | None = Field(
        default=None,
        description="Classification: the classes in label order; /predict answers with "
        "their positions in this list",
    )
    range: TargetRange | None = Field(default=None, description="Regression: the values")


class DatasetSchema(BaseModel):
    """What was inferred from the file (stored with the dataset)."""

    rows: int
    columns: list[DatasetColumn] = Field(description="Feature columns, in file order")
    target: DatasetTarget
    sample_rows: list[dict[str, CellValue]] = Field(description="The first rows, as read")


class DatasetSummary(BaseModel):
    id: str = Field(description="Give it as a run spec's dataset_id")
    name: str
    owner: str
    format: Literal["csv", "parquet", "npz"]
    size_bytes: int
    sha256: str
    task: Task
    target: str
    rows: int
    features: int
    created_at: datetime


class DatasetOut(DatasetSummary):
    columns: list[DatasetColumn]
    target_summary: DatasetTarget
    sample_rows: list[dict[str, CellValue]]


class DatasetPage(BaseModel):
    items: list[DatasetSummary]
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` to get the next (older) page."
    )
