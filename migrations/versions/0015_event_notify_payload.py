"""The run_events NOTIFY carries the whole event, so the event hub need not read it back.

The payload is the event as the API shows it (id, run_id, name, payload, correlation_id,
created_at) plus its stream position's `xid`, its run's `owner`, and `xmin`: the oldest
transaction still open when the event was written (when it is the writer's own, the hub need
not ask which older ones are open: app/events/hub.py). NOTIFY payloads must stay under 8000
bytes: an event whose JSON is larger than 7900 bytes is notified by `id`, `xid`, `xmin` and
`run_id` only, and the hub reads that one row.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

EVENTS_CHANNEL = "cerebros_events"
PAYLOAD_LIMIT = 7900

NOTIFY_EVENT_FUNCTION = f"""
CREATE OR REPLACE FUNCTION cerebros_notify_run_event() RETURNS trigger AS $$
DECLARE
    body text;
    oldest xid8 := pg_snapshot_xmin(pg_current_snapshot());  -- the statement's snapshot
BEGIN
    body := json_build_object(
        'id', NEW.id, 'run_id', NEW.run_id, 'name', NEW.name, 'payload', NEW.payload,
        'correlation_id', NEW.correlation_id, 'created_at', NEW.created_at,
        'xid', NEW.xid::text, 'xmin', oldest::text,
        'owner', (SELECT r.owner FROM runs r WHERE r.id = NEW.run_id))::text;
    IF octet_length(body) > {PAYLOAD_LIMIT} THEN
        body := json_build_object(
            'id', NEW.id, 'run_id', NEW.run_id, 'xid', NEW.xid::text, 'xmin', oldest::text)::text;
    END IF;
    PERFORM pg_notify('{EVENTS_CHANNEL}', body);
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
"""

# As migration 0002 left it: the hub read every event back.
PREVIOUS_FUNCTION = f"""
CREATE OR REPLACE FUNCTION cerebros_notify_run_event() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('{EVENTS_CHANNEL}', json_build_object(
        'id', NEW.id, 'run_id', NEW.run_id, 'name', NEW.name)::text);
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
"""


def upgrade() -> None:
    op.execute(NOTIFY_EVENT_FUNCTION)


def downgrade() -> None:
    op.execute(PREVIOUS_FUNCTION)
