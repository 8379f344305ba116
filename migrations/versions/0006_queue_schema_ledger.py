"""The queue schema's ledger: which procrastinate migration files this database has.

Created here and filled once by inspecting the schema, because revision 0001 used to install
the schema of whatever procrastinate 3.x was installed, so a database may already hold some
of the files that revisions 0007 onwards apply. Those revisions apply a file only if the
ledger lacks it (app/db/queue_schema.py).

Downgrade keeps the ledger: it describes the queue schema, which the procrastinate revisions
do not undo; revision 0001's downgrade drops both.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from __future__ import annotations

from app.db.queue_schema import adopt_queue_schema

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    adopt_queue_schema()


def downgrade() -> None:
    pass
