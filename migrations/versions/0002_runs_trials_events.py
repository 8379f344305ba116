"""Runs, trials, run events (with NOTIFY on insert) and the nas_run_jobs monitoring view.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

EVENTS_CHANNEL = "cerebros_events"

# NOTIFY from a trigger fires for every insert (also SQL typed by hand), and only once the
# inserting transaction commits, so a listener never sees an event that could roll back.
NOTIFY_FUNCTION = f"""
CREATE FUNCTION cerebros_notify_run_event() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('{EVENTS_CHANNEL}', json_build_object(
        'id', NEW.id, 'run_id', NEW.run_id, 'name', NEW.name)::text);
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
"""

NOTIFY_TRIGGER = """
CREATE TRIGGER run_events_notify AFTER INSERT ON run_events
FOR EACH ROW EXECUTE FUNCTION cerebros_notify_run_event();
"""

NAS_RUN_JOBS_VIEW = """
CREATE VIEW nas_run_jobs AS
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


def _timestamps() -> list[sa.Column[Any]]:
    return [
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.clock_timestamp(),
        ),
    ]


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", pg.UUID(as_uuid=True), primary_key=True),
        sa.Column("owner", sa.String(100), nullable=False, server_default="local"),
        sa.Column("status", sa.String(16), nullable=False, server_default="queued"),
        sa.Column("spec", pg.JSONB(), nullable=False),
        sa.Column("idempotency_key", sa.String(200)),
        sa.Column("request_hash", sa.String(64)),
        sa.Column("job_id", sa.BigInteger()),
        sa.Column("current_step", sa.String(100)),
        sa.Column("result", pg.JSONB()),
        sa.Column("error", pg.JSONB()),
        sa.Column("cancel_requested_at", sa.DateTime(timezone=True)),
        *_timestamps(),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.clock_timestamp(),
        ),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.UniqueConstraint("owner", "idempotency_key", name="uq_runs_owner_idempotency_key"),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')",
            name="ck_runs_status_valid",
        ),
    )
    op.create_index("ix_runs_created_at_id", "runs", ["created_at", "id"])
    op.create_index("ix_runs_owner_status", "runs", ["owner", "status"])
    op.create_index("ix_runs_job_id", "runs", ["job_id"])

    op.create_table(
        "trials",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column(
            "run_id",
            pg.UUID(as_uuid=True),
            sa.ForeignKey("runs.id", ondelete="CASCADE", name="fk_trials_run_id_runs"),
            nullable=False,
        ),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("architecture", pg.JSONB()),
        sa.Column("hyperparameters", pg.JSONB()),
        sa.Column("params_count", sa.BigInteger()),
        sa.Column("score", sa.Float()),
        sa.Column("best_epoch", sa.Integer()),
        sa.Column("epochs_run", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("history", pg.JSONB(), nullable=False, server_default="[]"),
        sa.Column("error", sa.Text()),
        sa.Column("duration_s", sa.Float()),
        sa.Column("record", pg.JSONB()),
        sa.Column(
            "started_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.clock_timestamp(),
        ),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.UniqueConstraint("run_id", "number", name="uq_trials_run_id_number"),
    )

    op.create_table(
        "run_events",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column(
            "run_id",
            pg.UUID(as_uuid=True),
            sa.ForeignKey("runs.id", ondelete="CASCADE", name="fk_run_events_run_id_runs"),
            nullable=False,
        ),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("payload", pg.JSONB(), nullable=False, server_default="{}"),
        sa.Column("correlation_id", sa.String(200)),
        sa.Column("dedup_key", sa.String(300)),
        *_timestamps(),
        sa.UniqueConstraint("run_id", "dedup_key", name="uq_run_events_run_id_dedup_key"),
    )
    op.create_index("ix_run_events_run_id_id", "run_events", ["run_id", "id"])
    op.execute(NOTIFY_FUNCTION)
    op.execute(NOTIFY_TRIGGER)
    op.execute(NAS_RUN_JOBS_VIEW)


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS nas_run_jobs")
    op.execute("DROP TRIGGER IF EXISTS run_events_notify ON run_events")
    op.execute("DROP FUNCTION IF EXISTS cerebros_notify_run_event()")
    op.drop_table("run_events")
    op.drop_table("trials")
    op.drop_table("runs")
