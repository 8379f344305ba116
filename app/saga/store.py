"""What the engine stores: the `SagaStore` contract and the records it reads back.

Two implementations keep the same contract: `PostgresSagaStore` (`app.saga.postgres_store`,
the `sagas`/`saga_steps` tables) and `InMemorySagaStore` (`app.saga.memory_store`, for fast
tests). `tests/saga/test_store_contract.py` runs the same checks against both.

The rules every store follows:
- every call is its own atomic change, so the stored state is the last thing that really
  happened; an exception means the change was not recorded;
- JSON values (inputs, results, errors) read back as JSON (`json_roundtrip`) and are
  copies: mutating a record or a value passed in never changes the stored state;
- a saga's status is one of `SAGA_STATUSES`, a step's state one of `STEP_STATES`; any other
  value raises `ValueError` and changes nothing;
- `step_succeeded` numbers completions within a saga 1, 2, ... (`seq`): undo runs in
  descending `seq`;
- the step methods and `saga_failing`/`saga_finished` expect a saga opened with `open` (and
  steps added with `add_steps`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol, get_args

SagaStatus = Literal["running", "halted", "succeeded", "failed"]
StepState = Literal[
    "pending", "running", "succeeded", "failed", "compensated", "undone", "undo_failed"
]
SAGA_STATUSES: tuple[str, ...] = get_args(SagaStatus)
STEP_STATES: tuple[str, ...] = get_args(StepState)
# States `step_ended` records; 'failed' and 'compensated' end the step's last attempt.
ENDED_STATES = ("failed", "compensated", "undone", "undo_failed")
FINISHED_STATUSES = ("succeeded", "failed", "halted")


def json_roundtrip(value: Any) -> Any:
    """The value as it will read back from the store (so a fresh run and a resume agree).

    Raises `TypeError` or `ValueError` for a value that is not JSON (NaN included).
    """
    return json.loads(json.dumps(value, allow_nan=False))


def check_state(state: str, allowed: tuple[str, ...] = STEP_STATES) -> None:
    """Raise `ValueError` unless `state` is one of `allowed`."""
    if state not in allowed:
        raise ValueError(f"state {state!r} is not one of {list(allowed)}")


@dataclass
class StepRecord:
    """Stored state of one step (a copy: changing it changes nothing stored)."""

    name: str
    state: str
    result: Any = None
    error: dict[str, Any] | None = None
    attempts: int = 0
    seq: int | None = None  # completion order within the saga, set when it succeeds
    started_at: datetime | None = None  # of the last attempt
    finished_at: datetime | None = None  # of the last attempt: succeeded, failed, compensated


@dataclass
class SagaRecord:
    """Stored state of one saga and its steps (a copy: changing it changes nothing stored)."""

    id: str
    name: str
    status: str
    inputs: dict[str, Any]
    # While status is 'running', an error means "failure decided, undo in progress";
    # for 'halted' it says which step halted and why.
    error: dict[str, Any] | None
    parent_id: str | None
    steps: dict[str, StepRecord] = field(default_factory=dict)
    finished_at: datetime | None = None  # set by a final status; None while running or halted


class SagaStore(Protocol):
    """Durable saga state, as the engine reads and writes it (see the module's rules)."""

    async def open(
        self, saga_id: str, name: str, inputs: dict[str, Any], parent_id: str | None
    ) -> SagaRecord:
        """Create the saga ('running') if new, turn 'halted' back into 'running', and return it.

        Turning it back clears its error. A known saga keeps its stored name and inputs.
        """
        ...

    async def load(self, saga_id: str) -> SagaRecord | None:
        """The stored saga with its steps, or None."""
        ...

    async def add_steps(self, saga_id: str, names: Iterable[str]) -> None:
        """Record steps as 'pending' with no attempts; known steps are left as they are."""
        ...

    async def step_running(self, saga_id: str, name: str, attempts: int) -> None:
        """An attempt starts: state 'running', `attempts` stored, a new `started_at`."""
        ...

    async def step_succeeded(self, saga_id: str, name: str, result: Any) -> int:
        """Store the result (clearing the error) and return the step's new `seq`."""
        ...

    async def step_ended(
        self, saga_id: str, name: str, state: str, error: dict[str, Any] | None
    ) -> None:
        """Store a final non-success state: failed, compensated, undone, undo_failed.

        A None `error` keeps the stored one; 'failed' and 'compensated' set `finished_at`.
        """
        ...

    async def step_pending(self, saga_id: str, name: str, error: dict[str, Any]) -> None:
        """Put a halted step back to 'pending' with `error` (it reruns on resume)."""
        ...

    async def saga_failing(self, saga_id: str, error: dict[str, Any]) -> None:
        """Record that the saga is failing (status stays 'running'); undo follows."""
        ...

    async def saga_finished(self, saga_id: str, status: str, error: dict[str, Any] | None) -> None:
        """Store a final status: succeeded, failed, or halted (which clears `finished_at`)."""
        ...
