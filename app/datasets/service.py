"""Datasets as a resource: upload, list, show, delete, and their use by runs.

The API hands over an upload already spooled to a temporary file; it is read twice from
there (schema inference, then the chunked insert), never held in memory whole. Every check
happens before anything is written, so a rejected upload stores nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, TypeVar

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.datasets import store
from app.datasets.models import DatasetRow
from app.datasets.parsing import DatasetFormat, detect_format, open_table
from app.datasets.schema import infer_schema
from app.errors import Conflict, InvalidInput, NotFound
from app.nas.spec import NasSpec, Task, is_uploaded_dataset
from app.schemas.datasets import (
    ColumnType,
    DatasetOut,
    DatasetSchema,
    DatasetSummary,
)

if TYPE_CHECKING:
    from app.nas.datasets import Dataset

__all__ = [
    "UploadForm",
    "dataset_out",
    "dataset_summary",
    "delete_dataset",
    "get_dataset",
    "list_datasets",
    "load_run_dataset",
    "lock_run_dataset",
    "resolve_run_dataset",
    "upload_dataset",
]

SpecT = TypeVar("SpecT", bound=NasSpec)


@dataclass(frozen=True)
class UploadForm:
    """The upload's fields besides the file (validated by the API)."""

    filename: str | None
    name: str | None = None
    format: str | None = None
    target: str | None = None
    task: Task | None = None
    column_types: dict[str, ColumnType] | None = None


def new_dataset_id() -> str:
    return f"ds_{uuid.uuid4().hex}"


def _infer(fmt: DatasetFormat, file: IO[bytes], form: UploadForm) -> tuple[DatasetSchema, str]:
    reader = open_table(fmt, file)
    schema = infer_schema(reader, form.target, form.column_types, form.task)
    file.seek(0)
    digest = hashlib.sha256()
    while chunk := file.read(1024 * 1024):
        digest.update(chunk)
    return schema, digest.hexdigest()


async def upload_dataset(
    sessions: async_sessionmaker[AsyncSession],
    file: IO[bytes],
    size: int,
    form: UploadForm,
    *,
    owner: str,
) -> DatasetRow:
    """Check and describe the file, then store it (row and chunks in one transaction).

    Raises `InvalidInput` (422, naming the field) for a file or field that cannot be used.
    """
    fmt = detect_format(form.filename, form.format)
    # Parsing is CPU work: off the event loop.
    schema, sha256 = await asyncio.to_thread(_infer, fmt, file, form)
    name = (form.name or Path(form.filename or "").name or fmt.value).strip()[:200]
    row = DatasetRow(
        id=new_dataset_id(),
        owner=owner,
        name=name,
        format=fmt.value,
        size_bytes=size,
        sha256=sha256,
        task=schema.target.task,
        target=schema.target.column,
        schema=schema.model_dump(mode="json"),
    )
    async with sessions.begin() as session:
        await store.insert_dataset(session, row, file)
    return row


def dataset_summary(row: DatasetRow) -> DatasetSummary:
    schema = row.schema
    return DatasetSummary(
        id=row.id,
        name=row.name,
        owner=row.owner,
        format=row.format,
        size_bytes=row.size_bytes,
        sha256=row.sha256,
        task=row.task,
        target=row.target,
        rows=int(schema.get("rows", 0)),
        features=len(schema.get("columns", [])),
        created_at=row.created_at,
    )


def dataset_out(row: DatasetRow) -> DatasetOut:
    schema = DatasetSchema.model_validate(row.schema)
    return DatasetOut(
        **dataset_summary(row).model_dump(),
        columns=schema.columns,
        target_summary=schema.target,
        sample_rows=schema.sample_rows,
    )


async def get_dataset(session: AsyncSession, dataset_id: str, scope: str | None) -> DatasetRow:
    """The dataset; `NotFound` when missing or another owner's (``scope`` None: admin)."""
    row = await store.get_dataset(session, dataset_id, scope)
    if row is None:
        raise NotFound(f"dataset {dataset_id} not found")
    return row


async def list_datasets(
    session: AsyncSession, scope: str | None, limit: int, cursor: str | None
) -> tuple[list[DatasetRow], str | None]:
    return await store.list_datasets(session, owner=scope, limit=limit, cursor=cursor)


async def delete_dataset(
    sessions: async_sessionmaker[AsyncSession], dataset_id: str, scope: str | None
) -> None:
    """Delete the dataset; `Conflict` while a queued or running run uses it.

    The row is locked first: a run submitted meanwhile waits for this transaction
    (`lock_run_dataset`) and then finds the dataset gone.
    """
    async with sessions.begin() as session:
        row = await store.get_dataset(session, dataset_id, scope, lock="update")
        if row is None:
            raise NotFound(f"dataset {dataset_id} not found")
        runs = await store.active_runs_using(session, dataset_id)
        if runs:
            raise Conflict(
                f"dataset {dataset_id} is used by {len(runs)} queued or running run(s) "
                f"({', '.join(runs[:5])}); cancel them or wait until they end",
                field="dataset_id",
            )
        await store.delete_dataset(session, dataset_id)


def _missing(dataset_id: str) -> InvalidInput:
    return InvalidInput(
        f"dataset {dataset_id} not found (upload it with POST /datasets; runs may use their "
        "owner's datasets only)",
        field="dataset_id",
    )


async def resolve_run_dataset(
    sessions: async_sessionmaker[AsyncSession], spec: SpecT, owner: str
) -> SpecT:
    """``spec`` checked against its uploaded dataset (unchanged for a built-in one).

    The dataset must exist and be ``owner``'s (`InvalidInput` at ``dataset_id``); the
    objective must fit its task (`InvalidInput` at ``objective``) and defaults from it.
    """
    if not is_uploaded_dataset(spec.dataset_id):
        return spec
    async with sessions() as session:
        row = await store.get_dataset(session, spec.dataset_id, owner)
    if row is None:
        raise _missing(spec.dataset_id)
    try:
        return spec.for_task(row.task)  # type: ignore[arg-type]
    except ValidationError as exc:
        message = exc.errors(include_url=False)[0]["msg"]
        raise InvalidInput(message, field="objective") from exc


async def lock_run_dataset(session: AsyncSession, dataset_id: str, owner: str) -> None:
    """In the transaction that stores a run: hold the dataset and check it is still there.

    While it is held, a delete of the dataset waits for the transaction.
    """
    if not is_uploaded_dataset(dataset_id):
        return
    if await store.get_dataset(session, dataset_id, owner, lock="share") is None:
        raise _missing(dataset_id)


async def load_run_dataset(
    sessions: async_sessionmaker[AsyncSession], spec: NasSpec, cache_dir: Path
) -> Dataset | None:
    """The training arrays of the run's uploaded dataset (None for a built-in one).

    Raises `DatasetUnavailable` when the dataset is gone.
    """
    if not is_uploaded_dataset(spec.dataset_id):
        return None
    # keras comes with app.nas.datasets: the worker imports it, the API never does.
    from app.datasets.loading import fetch_file, raw_table
    from app.nas.datasets import DatasetUnavailable, cached_dataset, tabular_dataset

    async with sessions() as session:
        row = await store.get_dataset(session, spec.dataset_id, None)
    if row is None:
        raise DatasetUnavailable(f"dataset {spec.dataset_id} was deleted")
    path = await fetch_file(sessions, row, cache_dir)
    schema = DatasetSchema.model_validate(row.schema)
    params = spec.parameters
    task: Task = schema.target.task

    def build() -> Dataset:
        with path.open("rb") as fh:
            table = raw_table(DatasetFormat(row.format), fh, schema)
        return tabular_dataset(
            row.id,
            task,
            table.raw,
            table.y,
            table.columns,
            n_classes=table.n_classes,
            labels=[c.label for c in schema.target.classes or () if c.label is not None],
            options=spec.dataset_options,
            validation_split=params.validation_split,
            seed=params.seed,
        )

    key = (
        row.id,
        row.sha256,
        spec.dataset_options.model_dump_json(),
        params.validation_split,
        params.seed,
    )
    return await asyncio.to_thread(cached_dataset, key, build)
