"""procrastinate schema migration 03.03.00_01_pre_priority_lock_fetch_job.sql.

Applied as the pinned procrastinate ships it, unless the queue schema's ledger already has it
(written by scripts/add_procrastinate_migrations.py; see app/db/queue_schema.py).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29
"""

from __future__ import annotations

from app.db.queue_schema import apply_procrastinate_migration

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

SQL_FILE = "03.03.00_01_pre_priority_lock_fetch_job.sql"


def upgrade() -> None:
    apply_procrastinate_migration(SQL_FILE)


def downgrade() -> None:
    # Forward only: procrastinate ships no reverse SQL. The ledger keeps the file recorded, so
    # upgrading again skips it; revision 0001's downgrade removes the whole queue schema.
    pass
