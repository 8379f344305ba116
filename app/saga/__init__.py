"""A small, generic, durable saga engine (knows nothing of NAS, HTTP or the job queue).

Define steps and their inputs, run them with `SagaRunner(store).run(...)`; state is kept by
a `SagaStore` (`PostgresSagaStore` in production, `InMemorySagaStore` for fast tests) so an
interrupted saga resumes where it stopped. See `Step` for the step callables,
`StepMiddleware` for code wrapped around every step call (`FaultInjector` is one), and
`app.saga.errors` for what each exception means.
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
    StepSuspended,
    UndoIncomplete,
    UndoOutcome,
    UnserializableResult,
)
from app.saga.faults import FaultInjector, FaultPlan
from app.saga.listener import SagaListener
from app.saga.memory_store import InMemorySagaStore
from app.saga.middleware import StepMiddleware
from app.saga.postgres_store import PostgresSagaStore
from app.saga.runner import SagaRunner, run_saga_sync
from app.saga.steps import sub_saga_step
from app.saga.store import SagaRecord, SagaStore, StepRecord

__all__ = [
    "FaultInjector",
    "FaultPlan",
    "Halt",
    "InMemorySagaStore",
    "InjectedFault",
    "Input",
    "PostgresSagaStore",
    "Result",
    "Retry",
    "Saga",
    "SagaDefinitionError",
    "SagaError",
    "SagaFailed",
    "SagaListener",
    "SagaOutcome",
    "SagaRecord",
    "SagaRunner",
    "SagaStore",
    "Step",
    "StepCancelled",
    "StepContext",
    "StepInterrupted",
    "StepMiddleware",
    "StepRecord",
    "StepRejected",
    "StepSuspended",
    "UndoIncomplete",
    "UndoOutcome",
    "UnserializableResult",
    "run_saga_sync",
    "sub_saga_step",
]
