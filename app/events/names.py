"""Event names the outside world sees (one taxonomy: cerebros.nas.<entity>.<what>)."""

RUN_STARTED = "cerebros.nas.run.started"
RUN_COMPLETED = "cerebros.nas.run.completed"
RUN_FAILED = "cerebros.nas.run.failed"
RUN_CANCELLED = "cerebros.nas.run.cancelled"
STEP_STARTED = "cerebros.nas.step.started"
STEP_SUCCEEDED = "cerebros.nas.step.succeeded"
STEP_FAILED = "cerebros.nas.step.failed"
STEP_UNDONE = "cerebros.nas.step.undone"
TRIAL_STARTED = "cerebros.nas.trial.started"
TRIAL_EPOCH = "cerebros.nas.trial.epoch"
TRIAL_COMPLETED = "cerebros.nas.trial.completed"
TRIAL_FAILED = "cerebros.nas.trial.failed"
TRIAL_PRUNED = "cerebros.nas.trial.pruned"

# After one of these, nothing more is published for the run: streams may close.
TERMINAL_EVENTS = frozenset({RUN_COMPLETED, RUN_FAILED})

EVENTS_CHANNEL = "cerebros_events"
# The hub's own barrier notifications (app/events/hub.py): a snapshot's xmin, sent through the
# same queue as the events.
SYNC_CHANNEL = "cerebros_events_sync"
# A NOTIFY payload must stay under 8000 bytes: an event whose JSON is larger is notified by id
# (and xid) only, and the hub reads it (migration 0015).
NOTIFY_PAYLOAD_LIMIT = 7900
