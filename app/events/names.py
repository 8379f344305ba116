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
