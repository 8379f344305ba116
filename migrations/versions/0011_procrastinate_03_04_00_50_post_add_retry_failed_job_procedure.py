"""procrastinate schema migration 03.04.00_50_post_add_retry_failed_job_procedure.sql.

Applied as the pinned procrastinate ships it, unless the queue schema's ledger already has it
(written by scripts/add_procrastinate_migrations.py; see app/db/queue_schema.py).

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-29
"""

from __future__ import annotations

from app.db.queue_schema import apply_procrastinate_migration

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

SQL_FILE = "03.04.00_50_post_add_retry_failed_job_procedure.sql"


def upgrade() -> None:
    apply_procrastinate_migration(SQL_FILE)


def downgrade() -> None:
    # Forward only: procrastinate ships no reverse SQL. The ledger keeps the file recorded, so
    # upgrading again skips it; revision 0001's downgrade removes the whole queue schema.
    pass
