"""Saga engine state: sagas and saga_steps.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

SAGA_STATUSES = "status IN ('running', 'halted', 'succeeded', 'failed')"
STEP_STATES = (
    "state IN ('pending', 'running', 'succeeded', 'failed', 'compensated', 'undone', 'undo_failed')"
)


def _now() -> sa.sql.functions.Function[Any]:
    return sa.func.clock_timestamp()


def upgrade() -> None:
    op.create_table(
        "sagas",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="running"),
        sa.Column("inputs", pg.JSONB(), nullable=False, server_default="{}"),
        sa.Column("error", pg.JSONB()),
        sa.Column("parent_id", sa.Text()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=_now()),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("id", name="pk_sagas"),
        sa.ForeignKeyConstraint(
            ["parent_id"], ["sagas.id"], ondelete="CASCADE", name="fk_sagas_parent_id_sagas"
        ),
        sa.CheckConstraint(SAGA_STATUSES, name="ck_sagas_status_valid"),
    )
    op.create_index("ix_sagas_parent_id", "sagas", ["parent_id"])

    op.create_table(
        "saga_steps",
        sa.Column("saga_id", sa.Text(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("state", sa.String(16), nullable=False, server_default="pending"),
        sa.Column("result", pg.JSONB()),
        sa.Column("error", pg.JSONB()),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("seq", sa.Integer()),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=_now()),
        sa.PrimaryKeyConstraint("saga_id", "name", name="pk_saga_steps"),
        sa.ForeignKeyConstraint(
            ["saga_id"], ["sagas.id"], ondelete="CASCADE", name="fk_saga_steps_saga_id_sagas"
        ),
        sa.CheckConstraint(STEP_STATES, name="ck_saga_steps_state_valid"),
    )
    op.create_index("ix_saga_steps_saga_id_seq", "saga_steps", ["saga_id", "seq"])


def downgrade() -> None:
    op.drop_table("saga_steps")
    op.drop_table("sagas")
