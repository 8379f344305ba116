"""Tables of uploaded datasets: one row of metadata each, the file's bytes in chunks."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base

#: Bytes per row of `dataset_chunks`: a write or a read holds one chunk at a time.
CHUNK_BYTES = 1024 * 1024


class DatasetRow(Base):
    """An uploaded dataset: who owns it, what it is, and its inferred schema (JSON)."""

    __tablename__ = "datasets"
    __table_args__ = (
        CheckConstraint("format IN ('csv', 'parquet', 'npz')", name="format_valid"),
        CheckConstraint("task IN ('classification', 'regression')", name="task_valid"),
        Index("ix_datasets_owner_created_at", "owner", "created_at"),
    )
    __mapper_args__ = {"eager_defaults": True}  # noqa: RUF012

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    owner: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(200))
    format: Mapped[str] = mapped_column(String(16))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    task: Mapped[str] = mapped_column(String(16))
    target: Mapped[str] = mapped_column(String(200))
    schema: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.clock_timestamp()
    )


class DatasetChunk(Base):
    """One `CHUNK_BYTES` piece of a dataset's file, in order (`seq` from 0)."""

    __tablename__ = "dataset_chunks"

    dataset_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)
