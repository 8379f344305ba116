"""Every read and write of the run_artifacts table: a run's files, kept in Postgres.

Workers, API and CLI share nothing but the database, so what a run leaves (its best model,
architecture, history, preprocessing and result; `app.nas.artifact_names`) is stored here,
one bytea row per name, and goes with its run (ON DELETE CASCADE). Every function works in
the caller's session and transaction: it neither commits nor rolls back.

A row holds its whole file as one value (a best model is at most a few tens of MiB under
the parameter cap, far below Postgres' 1 GB field limit); ``size`` and ``sha256`` are
computed here, so readers can check a cached copy without fetching the content.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, literal, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import RunArtifact
from app.nas.artifact_names import (
    ARCHITECTURE,
    BEST_MODEL,
    CHECKPOINTS,
    HISTORY,
    KERAS_MEDIA_TYPE,
    PREPROCESSING,
    RESULT,
    RUN_ARTIFACTS,
    checkpoint_name,
    media_type_of,
)

__all__ = [
    "ARCHITECTURE",
    "BEST_MODEL",
    "CHECKPOINTS",
    "DEFAULT_MEDIA_TYPE",
    "HISTORY",
    "KERAS_MEDIA_TYPE",
    "PREPROCESSING",
    "RESULT",
    "RUN_ARTIFACTS",
    "ArtifactInfo",
    "StoredArtifact",
    "artifact_info",
    "checkpoint_name",
    "copy_artifact",
    "delete_artifacts",
    "get_artifact",
    "list_artifacts",
    "media_type_of",
    "put_artifact",
]

DEFAULT_MEDIA_TYPE = "application/octet-stream"


@dataclass(frozen=True)
class ArtifactInfo:
    """What is known of a stored artifact without reading its content."""

    name: str
    media_type: str
    size: int
    sha256: str
    created_at: datetime


@dataclass(frozen=True)
class StoredArtifact(ArtifactInfo):
    """A stored artifact with its content."""

    content: bytes


_INFO_COLUMNS = (
    RunArtifact.name,
    RunArtifact.media_type,
    RunArtifact.size,
    RunArtifact.sha256,
    RunArtifact.created_at,
)


def _info(name: str, media_type: str, size: int, sha256: str, created_at: datetime) -> ArtifactInfo:
    return ArtifactInfo(name, media_type, size, sha256, created_at)


async def put_artifact(
    session: AsyncSession,
    run_id: uuid.UUID,
    name: str,
    content: bytes,
    media_type: str = DEFAULT_MEDIA_TYPE,
) -> None:
    """Store ``content`` as the run's artifact ``name``, replacing one of that name.

    ``size`` and ``sha256`` are computed from ``content``; ``created_at`` becomes the time of
    this write. The run must exist (foreign key). ``media_type_of(name)`` gives the usual
    media type of a name.
    """
    if not name:
        raise ValueError("an artifact needs a name")
    content = bytes(content)
    values = {
        "media_type": media_type,
        "size": len(content),
        "sha256": hashlib.sha256(content).hexdigest(),
        "content": content,
    }
    stmt = insert(RunArtifact).values(run_id=run_id, name=name, **values)
    stmt = stmt.on_conflict_do_update(
        index_elements=[RunArtifact.run_id, RunArtifact.name],
        set_={**values, "created_at": func.now()},
    )
    await session.execute(stmt)


async def copy_artifact(session: AsyncSession, run_id: uuid.UUID, source: str, target: str) -> bool:
    """Store the run's artifact ``source`` also as ``target`` (replacing one of that name).

    Copied inside Postgres (INSERT ... SELECT): a model of tens of MiB never travels to the
    caller and back. False, and nothing written, when there is no ``source``.
    """
    columns = (RunArtifact.media_type, RunArtifact.size, RunArtifact.sha256, RunArtifact.content)
    picked = select(RunArtifact.run_id, literal(target, RunArtifact.name.type), *columns).where(
        RunArtifact.run_id == run_id, RunArtifact.name == source
    )
    stmt = insert(RunArtifact).from_select(
        ["run_id", "name", "media_type", "size", "sha256", "content"], picked
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[RunArtifact.run_id, RunArtifact.name],
        set_={
            "media_type": stmt.excluded.media_type,
            "size": stmt.excluded.size,
            "sha256": stmt.excluded.sha256,
            "content": stmt.excluded.content,
            "created_at": func.now(),
        },
    )
    return (await session.execute(stmt.returning(RunArtifact.name))).first() is not None


async def get_artifact(
    session: AsyncSession, run_id: uuid.UUID, name: str
) -> StoredArtifact | None:
    """The run's artifact ``name`` with its content, or None if there is none."""
    row = (
        await session.execute(
            select(*_INFO_COLUMNS, RunArtifact.content).where(
                RunArtifact.run_id == run_id, RunArtifact.name == name
            )
        )
    ).one_or_none()
    if row is None:
        return None
    name_, media_type, size, sha256, created_at, content = row
    return StoredArtifact(name_, media_type, size, sha256, created_at, content=bytes(content))


async def artifact_info(session: AsyncSession, run_id: uuid.UUID, name: str) -> ArtifactInfo | None:
    """The run's artifact ``name`` without its content, or None if there is none."""
    row = (
        await session.execute(
            select(*_INFO_COLUMNS).where(RunArtifact.run_id == run_id, RunArtifact.name == name)
        )
    ).one_or_none()
    return None if row is None else _info(*row)


async def list_artifacts(session: AsyncSession, run_id: uuid.UUID) -> list[ArtifactInfo]:
    """Every artifact of the run, without content, by name."""
    rows = await session.execute(
        select(*_INFO_COLUMNS).where(RunArtifact.run_id == run_id).order_by(RunArtifact.name)
    )
    return [_info(*row) for row in rows]


async def delete_artifacts(
    session: AsyncSession, run_id: uuid.UUID, *, prefix: str | None = None
) -> int:
    """Delete the run's artifacts (only those whose name starts with ``prefix``, if given).

    Returns how many were deleted; idempotent (0 when there are none). ``prefix`` is taken
    literally (no wildcards), e.g. ``CHECKPOINTS + "/"`` for every checkpoint.
    """
    stmt = delete(RunArtifact).where(RunArtifact.run_id == run_id)
    if prefix is not None:
        stmt = stmt.where(func.starts_with(RunArtifact.name, prefix))
    return int((await session.execute(stmt)).rowcount)  # type: ignore[attr-defined]
