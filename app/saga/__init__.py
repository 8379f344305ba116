"""A small, generic, durable saga engine (knows nothing of NAS, HTTP or the job queue).

Define steps and their inputs, run them with `SagaRunner(session_factory).run(...)`; state is
stored in Postgres so an interrupted saga resumes where it stopped. See `Step` for the step
callables, `app.saga.errors` for what each exception means.
"""

from app.saga.context import SagaOutcome, StepContext
from app.saga.definition import Input, Result, Retry, Saga, Step
from app.saga.errors import (
    Halt,
    InjectedFault,
    SagaDefinitionError,
    SagaError,
    SagaFailed,
    StepCancelled,
    StepInterrupted,
    StepRejected,
    UndoIncomplete,
    UndoOutcome,
    UnserializableResult,
)
from app.saga.faults import FaultPlan
from app.saga.listener import SagaListener
from app.saga.runner import SagaRunner, run_saga_sync
from app.saga.steps import sub_saga_step

__all__ = [
    "FaultPlan",
    "Halt",
    "InjectedFault",
    "Input",
    "Result",
    "Retry",
    "Saga",
    "SagaDefinitionError",
    "SagaError",
    "SagaFailed",
    "SagaListener",
    "SagaOutcome",
    "SagaRunner",
    "Step",
    "StepCancelled",
    "StepContext",
    "StepInterrupted",
    "StepRejected",
    "UndoIncomplete",
    "UndoOutcome",
    "UnserializableResult",
    "run_saga_sync",
    "sub_saga_step",
]
