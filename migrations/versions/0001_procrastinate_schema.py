"""Apply procrastinate's job-queue schema: the baseline, procrastinate 3.1.0's.

The queue's tables live in the same database as the runs so that a run and its job are
written in one transaction. procrastinate's later schema migrations are revisions of their
own (0007 onwards); app/db/queue_schema.py explains the scheme.

Databases migrated before procrastinate was pinned got the whole schema of the procrastinate
3.x installed then from this revision; revision 0006 finds out which of the later files that
schema already has.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from __future__ import annotations

from app.db.queue_schema import apply_baseline, drop_queue_schema

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_baseline()


def downgrade() -> None:
    drop_queue_schema()
