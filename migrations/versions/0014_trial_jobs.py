"""Trials as queue jobs: what each queued trial trains, its job, its worker; the nas_trial_jobs view.

A run's trials are `cerebros.run_trial` jobs (any worker, any host trains any trial), so a
trial row exists from the moment it is queued: ``started_at`` is NULL until a worker takes
it. ``request`` is what the planner decided to train (architecture, epochs, parent),
``job_id`` the procrastinate job, ``worker`` the host and pid that trained it last and
``attempts`` how many times a worker started it (a worker killed mid-trial makes it 2).

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

NAS_TRIAL_JOBS_VIEW = """
CREATE VIEW nas_trial_jobs AS
SELECT t.run_id,
       t.number AS trial,
       t.status AS trial_status,
       t.parent,
       t.epochs_target,
       t.job_id,
       j.status AS job_status,
       j.attempts AS job_attempts,
       t.attempts AS trainings,
       t.worker,
       j.worker_id,
       t.queued_at,
       t.started_at,
       t.finished_at,
       t.started_at - t.queued_at AS wait,
       t.finished_at - t.started_at AS duration,
       t.score
FROM trials t
LEFT JOIN procrastinate_jobs j ON j.id = t.job_id;
"""


def upgrade() -> None:
    op.add_column("trials", sa.Column("request", pg.JSONB()))
    op.add_column("trials", sa.Column("job_id", sa.BigInteger()))
    op.add_column("trials", sa.Column("parent", sa.Integer()))
    op.add_column("trials", sa.Column("epochs_target", sa.Integer()))
    op.add_column("trials", sa.Column("worker", sa.String(200)))
    op.add_column("trials", sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
    op.add_column(
        "trials",
        sa.Column(
            "queued_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.clock_timestamp(),
        ),
    )
    op.alter_column("trials", "started_at", nullable=True)
    op.create_index("ix_trials_job_id", "trials", ["job_id"])
    op.execute(NAS_TRIAL_JOBS_VIEW)


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS nas_trial_jobs")
    op.drop_index("ix_trials_job_id", table_name="trials")
    op.execute("UPDATE trials SET started_at = queued_at WHERE started_at IS NULL")
    op.alter_column("trials", "started_at", nullable=False)
    for column in ("queued_at", "attempts", "worker", "epochs_target", "parent", "job_id"):
        op.drop_column("trials", column)
    op.drop_column("trials", "request")
