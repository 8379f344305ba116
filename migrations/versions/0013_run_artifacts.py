"""A run's artifacts in Postgres: run_artifacts (one row per file: best model, history, ...).

Workers, API and CLI share nothing but the database, so the files a run leaves (see
``app/nas/artifact_names.py``) are kept here rather than on the worker's disk; the API
caches what it serves on its own disk.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "run_artifacts",
        sa.Column("run_id", UUID(as_uuid=True), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("media_type", sa.Text(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.now(),
        ),
        sa.PrimaryKeyConstraint("run_id", "name", name="pk_run_artifacts"),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name="fk_run_artifacts_run_id_runs", ondelete="CASCADE"
        ),
        sa.CheckConstraint("name <> ''", name="ck_run_artifacts_name_not_empty"),
        sa.CheckConstraint(
            "size = octet_length(content)", name="ck_run_artifacts_size_matches_content"
        ),
    )


def downgrade() -> None:
    op.drop_table("run_artifacts")
