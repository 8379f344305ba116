"""Tables of runs, their trials and their events."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    cast,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import TypeDecorator, UserDefinedType

from app.db.base import Base


class RunStatus(enum.StrEnum):
    """A run's lifecycle: queued -> running -> succeeded | failed | cancelled."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        """The run ended; its status never changes again."""
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED})
# Queued or running: what counts against an owner's limit of active runs.
ACTIVE_STATUSES = frozenset(set(RunStatus) - FINAL_STATUSES)


class TrialStatus(enum.StrEnum):
    """A trial's lifecycle: queued -> running -> completed | pruned | failed | cancelled.

    The engine ends a trial completed, pruned or failed (`app.nas.records.TrialRecord`); a
    trial that an ended run left queued or running is cancelled.
    """

    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    PRUNED = "pruned"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_finished(self) -> bool:
        """The engine ended it (completed, pruned, failed): it has a final record.

        It counts as done in the run's progress and is not trained again when the run resumes.
        """
        return self in FINISHED_TRIAL_STATUSES

    @property
    def is_final(self) -> bool:
        """It never changes again: finished, or cancelled with its run."""
        return self.is_finished or self is TrialStatus.CANCELLED


FINISHED_TRIAL_STATUSES = frozenset({TrialStatus.COMPLETED, TrialStatus.PRUNED, TrialStatus.FAILED})


def _status_column(enum_type: type[enum.StrEnum]) -> Enum:
    # The enum's values in the existing VARCHAR(16) column (runs keep their CHECK
    # constraint from migration 0002): no native Postgres type, so no migration.
    return Enum(
        enum_type,
        native_enum=False,
        create_constraint=False,
        length=16,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


class Run(Base):
    __tablename__ = "runs"
    __table_args__ = (
        UniqueConstraint("owner", "idempotency_key", name="uq_runs_owner_idempotency_key"),
        CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')",
            name="status_valid",
        ),
        Index("ix_runs_created_at_id", "created_at", "id"),
        Index("ix_runs_owner_status", "owner", "status"),
    )
    # Fetch server-side timestamps with RETURNING so responses need no second query.
    __mapper_args__ = {"eager_defaults": True}  # noqa: RUF012

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    owner: Mapped[str] = mapped_column(String(100), default="local")
    status: Mapped[RunStatus] = mapped_column(_status_column(RunStatus), default=RunStatus.QUEUED)
    spec: Mapped[dict[str, Any]] = mapped_column(JSONB)
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    request_hash: Mapped[str | None] = mapped_column(String(64))
    job_id: Mapped[int | None] = mapped_column(BigInteger)
    current_step: Mapped[str | None] = mapped_column(String(100))
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    cancel_requested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.clock_timestamp()
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True),
        server_default=func.clock_timestamp(),
        onupdate=func.clock_timestamp(),
    )
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Trial(Base):
    __tablename__ = "trials"
    __table_args__ = (UniqueConstraint("run_id", "number", name="uq_trials_run_id_number"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    run_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("runs.id", ondelete="CASCADE")
    )
    number: Mapped[int] = mapped_column(Integer)
    status: Mapped[TrialStatus] = mapped_column(_status_column(TrialStatus))
    architecture: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    hyperparameters: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    params_count: Mapped[int | None] = mapped_column(BigInteger)
    score: Mapped[float | None] = mapped_column(Float)
    best_epoch: Mapped[int | None] = mapped_column(Integer)
    epochs_run: Mapped[int] = mapped_column(Integer, default=0)
    history: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    error: Mapped[str | None] = mapped_column(Text)
    duration_s: Mapped[float | None] = mapped_column(Float)
    record: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # Trials as queue jobs (migration 0014): what to train, its job, who trained it.
    request: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    job_id: Mapped[int | None] = mapped_column(BigInteger)
    parent: Mapped[int | None] = mapped_column(Integer)
    epochs_target: Mapped[int | None] = mapped_column(Integer)
    worker: Mapped[str | None] = mapped_column(String(200))
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    queued_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.clock_timestamp()
    )
    started_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), server_default=func.clock_timestamp()
    )
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class _Xid8Type(UserDefinedType[str]):
    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "XID8"


class Xid8(TypeDecorator[int]):
    """A 64-bit transaction id (xid8): an int in Python, text on the wire.

    Text because psycopg has no xid8 loader; cast where it is bound so comparisons stay typed in
    SQL.
    """

    impl = _Xid8Type
    cache_ok = True

    def process_bind_param(self, value: int | None, dialect: Any) -> str | None:
        return None if value is None else str(value)

    def process_result_value(self, value: str | None, dialect: Any) -> int | None:
        return None if value is None else int(value)

    def bind_expression(self, bindvalue: Any) -> Any:
        return cast(bindvalue, self)


class RunEvent(Base):
    __tablename__ = "run_events"
    __table_args__ = (
        # Publishing the same logical event twice (a retried step) must not duplicate it.
        UniqueConstraint("run_id", "dedup_key", name="uq_run_events_run_id_dedup_key"),
        Index("ix_run_events_run_id_id", "run_id", "id"),
        # Stream order (migration 0005): (xid, id), globally and per run.
        Index("ix_run_events_xid_id", "xid", "id"),
        Index("ix_run_events_run_id_xid_id", "run_id", "xid", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    # The writing transaction: streams deliver in (xid, id) order, an event only once every
    # older transaction has ended (app/events/hub.py).
    xid: Mapped[int] = mapped_column(Xid8, server_default=func.pg_current_xact_id())
    run_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("runs.id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(String(200))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    correlation_id: Mapped[str | None] = mapped_column(String(200))
    dedup_key: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.clock_timestamp()
    )


class RunArtifact(Base):
    """One file a run left (best model, architecture, history, ...), by name (migration 0013).

    Its SQL is in `app.runs.artifacts`, its names in `app.nas.artifact_names`.
    """

    __tablename__ = "run_artifacts"
    __table_args__ = (
        CheckConstraint("name <> ''", name="name_not_empty"),
        CheckConstraint("size = octet_length(content)", name="size_matches_content"),
    )

    run_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(Text, primary_key=True)
    content: Mapped[bytes] = mapped_column(LargeBinary)
    media_type: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
