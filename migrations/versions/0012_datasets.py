"""Uploaded datasets: datasets (metadata, schema) and dataset_chunks (the file, 1 MiB rows).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("owner", sa.String(100), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("task", sa.String(16), nullable=False),
        sa.Column("target", sa.String(200), nullable=False),
        sa.Column("schema", JSONB(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.clock_timestamp(),
        ),
        sa.PrimaryKeyConstraint("id", name="pk_datasets"),
        sa.CheckConstraint("format IN ('csv', 'parquet', 'npz')", name="ck_datasets_format_valid"),
        sa.CheckConstraint(
            "task IN ('classification', 'regression')", name="ck_datasets_task_valid"
        ),
    )
    op.create_index("ix_datasets_owner_created_at", "datasets", ["owner", "created_at"])
    op.create_table(
        "dataset_chunks",
        sa.Column("dataset_id", sa.String(40), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("dataset_id", "seq", name="pk_dataset_chunks"),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["datasets.id"],
            name="fk_dataset_chunks_dataset_id_datasets",
            ondelete="CASCADE",
        ),
    )


def downgrade() -> None:
    op.drop_table("dataset_chunks")
    op.drop_index("ix_datasets_owner_created_at", table_name="datasets")
    op.drop_table("datasets")
