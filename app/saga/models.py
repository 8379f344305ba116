"""The `sagas` and `saga_steps` tables (read and written only by `app.saga.postgres_store`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base
from app.saga.store import SAGA_STATUSES, STEP_STATES


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class SagaRow(Base):
    """One saga execution, identified by a caller-given id (sub-sagas: `"{parent}/{step}"`)."""

    __tablename__ = "sagas"
    __table_args__ = (
        CheckConstraint(_in("status", SAGA_STATUSES), name="status_valid"),
        Index("ix_sagas_parent_id", "parent_id"),
    )

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="running")
    inputs: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    # While status is still 'running', a non-null error means "failure decided, undo in
    # progress": a resumed run continues the undo instead of running steps.
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    parent_id: Mapped[str | None] = mapped_column(Text, ForeignKey("sagas.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.clock_timestamp()
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.clock_timestamp()
    )
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class SagaStepRow(Base):
    """The state of one step of one saga; (saga_id, name) is the primary key."""

    __tablename__ = "saga_steps"
    __table_args__ = (
        CheckConstraint(_in("state", STEP_STATES), name="state_valid"),
        Index("ix_saga_steps_saga_id_seq", "saga_id", "seq"),
    )

    saga_id: Mapped[str] = mapped_column(
        Text, ForeignKey("sagas.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    result: Mapped[Any | None] = mapped_column(JSONB)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Completion order within the saga (1, 2, ...): undo runs in descending seq.
    seq: Mapped[int | None] = mapped_column(Integer)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.clock_timestamp()
    )
