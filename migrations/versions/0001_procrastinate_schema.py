"""Apply procrastinate's job-queue schema.

The queue's tables live in the same database as the runs so that a run and its job are
written in one transaction.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from __future__ import annotations

from alembic import op
from procrastinate.schema import SchemaManager

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Dropped by pattern so that a newer procrastinate with more functions still downgrades cleanly.
DROP_PROCRASTINATE = """
DROP TABLE IF EXISTS procrastinate_events, procrastinate_periodic_defers,
    procrastinate_jobs, procrastinate_workers CASCADE;
DO $$
DECLARE fn record;
BEGIN
    FOR fn IN
        SELECT p.oid::regprocedure AS signature
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = current_schema() AND p.proname LIKE 'procrastinate\\_%'
    LOOP
        EXECUTE 'DROP FUNCTION IF EXISTS ' || fn.signature || ' CASCADE';
    END LOOP;
END $$;
DROP TYPE IF EXISTS procrastinate_job_to_defer_v1, procrastinate_job_event_type,
    procrastinate_job_status CASCADE;
"""


def _execute_raw(sql: str) -> None:
    # The raw psycopg connection runs a multi-statement script verbatim (no bind-parameter
    # parsing of the ':' and '%' that procrastinate's SQL contains).
    op.get_bind().connection.driver_connection.execute(sql)  # type: ignore[union-attr]


def upgrade() -> None:
    _execute_raw(SchemaManager.get_schema())


def downgrade() -> None:
    _execute_raw(DROP_PROCRASTINATE)
