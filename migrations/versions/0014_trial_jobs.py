"""Trials as queue jobs: what each queued trial trains, its job, its worker; view nas_trial_jobs.

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

#: `nas_run_jobs` (revision 0002) showed the run's first job; a run now has several
#: `cerebros.run_nas` jobs (its first, then its advances, all with the run's lock), so it
#: shows the latest: the one that is waiting, working, or ended the run. Same columns.
NAS_RUN_JOBS_VIEW = """
CREATE OR REPLACE VIEW nas_run_jobs AS
SELECT r.id AS run_id,
       r.owner,
       r.status AS run_status,
       r.current_step,
       r.created_at AS run_created_at,
       r.finished_at AS run_finished_at,
       j.id AS job_id,
       j.status AS job_status,
       j.attempts,
       j.queue_name,
       j.scheduled_at,
       (SELECT min(e.at) FROM procrastinate_events e
         WHERE e.job_id = j.id AND e.type = 'started') AS first_started_at,
       (SELECT max(e.at) FROM procrastinate_events e
         WHERE e.job_id = j.id AND e.type = 'started') AS last_started_at,
       j.worker_id
FROM runs r
LEFT JOIN LATERAL (
    -- Named columns, not *: a queue schema upgraded in place orders its columns differently.
    SELECT pj.id, pj.status, pj.attempts, pj.queue_name, pj.scheduled_at, pj.worker_id
    FROM procrastinate_jobs pj
    WHERE pj.id = r.job_id OR pj.lock = 'cerebros-run:' || r.id::text
    ORDER BY pj.id DESC
    LIMIT 1
) j ON true;
"""

FIRST_JOB_VIEW = """
CREATE OR REPLACE VIEW nas_run_jobs AS
SELECT r.id AS run_id,
       r.owner,
       r.status AS run_status,
       r.current_step,
       r.created_at AS run_created_at,
       r.finished_at AS run_finished_at,
       j.id AS job_id,
       j.status AS job_status,
       j.attempts,
       j.queue_name,
       j.scheduled_at,
       (SELECT min(e.at) FROM procrastinate_events e
         WHERE e.job_id = j.id AND e.type = 'started') AS first_started_at,
       (SELECT max(e.at) FROM procrastinate_events e
         WHERE e.job_id = j.id AND e.type = 'started') AS last_started_at,
       j.worker_id
FROM runs r
LEFT JOIN procrastinate_jobs j ON j.id = r.job_id;
"""

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
    op.execute(NAS_RUN_JOBS_VIEW)


def downgrade() -> None:
    op.execute(FIRST_JOB_VIEW)
    op.execute("DROP VIEW IF EXISTS nas_trial_jobs")
    op.drop_index("ix_trials_job_id", table_name="trials")
    op.execute("UPDATE trials SET started_at = queued_at WHERE started_at IS NULL")
    op.alter_column("trials", "started_at", nullable=False)
    for column in ("queued_at", "attempts", "worker", "epochs_target", "parent", "job_id"):
        op.drop_column("trials", column)
    op.drop_column("trials", "request")
