"""Event stream order: run_events.xid, and a NOTIFY when a run turns final.

Event ids come from a sequence, so with two writers id n can commit after n + 1: a stream
that resumes "after the last id" skips n for good. Each event now records the id of the
transaction that wrote it (`xid`, xid8). Streams go in (xid, id) order and only deliver
events whose xid is below the snapshot's xmin: every transaction with a smaller xid has
ended, so nothing can later appear before a position already sent.

Existing rows get xid 0: they keep their id order, ahead of every new event.

`runs_notify_final` tells the event hub (channel `cerebros_runs`, with the writing
transaction's xid) that a run's row turned final, so run streams end without polling.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

RUNS_CHANNEL = "cerebros_runs"

NOTIFY_FINAL_FUNCTION = f"""
CREATE FUNCTION cerebros_notify_run_final() RETURNS trigger AS $$
BEGIN
    IF NEW.status IN ('succeeded', 'failed', 'cancelled')
       AND OLD.status IS DISTINCT FROM NEW.status THEN
        PERFORM pg_notify('{RUNS_CHANNEL}', json_build_object(
            'run_id', NEW.id, 'status', NEW.status,
            'xid', pg_current_xact_id()::text)::text);
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
"""

NOTIFY_FINAL_TRIGGER = """
CREATE TRIGGER runs_notify_final AFTER UPDATE OF status ON runs
FOR EACH ROW EXECUTE FUNCTION cerebros_notify_run_final();
"""


def upgrade() -> None:
    # A constant default first (no table rewrite, old rows read 0), then the real one.
    op.execute("ALTER TABLE run_events ADD COLUMN xid xid8 NOT NULL DEFAULT '0'")
    op.execute("ALTER TABLE run_events ALTER COLUMN xid SET DEFAULT pg_current_xact_id()")
    op.create_index("ix_run_events_xid_id", "run_events", ["xid", "id"])
    op.create_index("ix_run_events_run_id_xid_id", "run_events", ["run_id", "xid", "id"])
    op.execute(NOTIFY_FINAL_FUNCTION)
    op.execute(NOTIFY_FINAL_TRIGGER)


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS runs_notify_final ON runs")
    op.execute("DROP FUNCTION IF EXISTS cerebros_notify_run_final()")
    op.drop_index("ix_run_events_run_id_xid_id", table_name="run_events")
    op.drop_index("ix_run_events_xid_id", table_name="run_events")
    op.drop_column("run_events", "xid")
