"""Every read and write of the datasets tables (datasets, dataset_chunks).

The file is kept as ordered 1 MiB bytea rows rather than one bytea value or a large
object: a write and a read each hold one chunk at a time (a single bytea is one value
in memory at both ends, up to Postgres' 1 GB field limit), and the chunks go with their
dataset's row (ON DELETE CASCADE), where a large object would outlive a deleted row unless
unlinked, and needs its own privileges and backup care.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import datetime
from typing import IO

from sqlalchemy import delete, insert, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from app.datasets.models import CHUNK_BYTES, DatasetChunk, DatasetRow
from app.db.models import Run, RunStatus
from app.errors import InvalidInput

__all__ = [
    "active_runs_using",
    "chunks",
    "delete_dataset",
    "get_dataset",
    "insert_dataset",
    "list_datasets",
]

ACTIVE = (RunStatus.QUEUED.value, RunStatus.RUNNING.value)


async def insert_dataset(session: AsyncSession, row: DatasetRow, file: IO[bytes]) -> int:
    """Add the dataset's row and its file's chunks (read from ``file`` one at a time).

    Returns the number of chunks. The caller's transaction makes them one.
    """
    session.add(row)
    await session.flush()
    file.seek(0)
    seq = 0
    while chunk := file.read(CHUNK_BYTES):
        await session.execute(insert(DatasetChunk).values(dataset_id=row.id, seq=seq, data=chunk))
        seq += 1
    return seq


async def get_dataset(
    session: AsyncSession, dataset_id: str, owner: str | None, *, lock: str | None = None
) -> DatasetRow | None:
    """The dataset, if ``owner`` may see it (None: any owner's).

    ``lock``: ``"share"`` (a run is being submitted on it: a delete waits) or ``"update"``
    (it is being deleted: a submission waits, then finds it gone).
    """
    stmt = select(DatasetRow).where(DatasetRow.id == dataset_id)
    if owner is not None:
        stmt = stmt.where(DatasetRow.owner == owner)
    if lock == "share":
        stmt = stmt.with_for_update(read=True)
    elif lock == "update":
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


def _encode_cursor(row: DatasetRow) -> str:
    raw = f"{row.created_at.isoformat()}|{row.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created, dataset_id = base64.urlsafe_b64decode(padded).decode().split("|")
        return datetime.fromisoformat(created), dataset_id
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput("cursor is not one this API returned", field="cursor") from exc


async def list_datasets(
    session: AsyncSession, *, owner: str | None, limit: int, cursor: str | None
) -> tuple[list[DatasetRow], str | None]:
    """Newest first, keyset-paginated on (created_at, id)."""
    stmt = (
        select(DatasetRow)
        .order_by(DatasetRow.created_at.desc(), DatasetRow.id.desc())
        .limit(limit + 1)
    )
    if owner is not None:
        stmt = stmt.where(DatasetRow.owner == owner)
    if cursor:
        created, dataset_id = _decode_cursor(cursor)
        stmt = stmt.where(
            tuple_(DatasetRow.created_at, DatasetRow.id) < tuple_(created, dataset_id)
        )
    rows = list((await session.execute(stmt)).scalars())
    next_cursor = _encode_cursor(rows[limit - 1]) if len(rows) > limit else None
    return rows[:limit], next_cursor


async def active_runs_using(session: AsyncSession, dataset_id: str) -> list[str]:
    """Ids of the queued or running runs whose spec names the dataset (any owner's)."""
    stmt = (
        select(Run.id)
        .where(Run.status.in_(ACTIVE), Run.spec["dataset_id"].astext == dataset_id)
        .order_by(Run.created_at)
    )
    return [str(run_id) for run_id in (await session.execute(stmt)).scalars()]


async def delete_dataset(session: AsyncSession, dataset_id: str) -> None:
    """Remove the dataset and its chunks."""
    await session.execute(delete(DatasetRow).where(DatasetRow.id == dataset_id))


async def chunks(session: AsyncSession, dataset_id: str) -> AsyncIterator[bytes]:
    """The dataset's file, chunk after chunk, from a server-side cursor."""
    stmt = (
        select(DatasetChunk.data)
        .where(DatasetChunk.dataset_id == dataset_id)
        .order_by(DatasetChunk.seq)
        .execution_options(yield_per=1)
    )
    result = await session.stream_scalars(stmt)
    async for chunk in result:
        yield chunk
