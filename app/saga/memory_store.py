"""`InMemorySagaStore`: the `SagaStore` contract in a Python process, for fast tests.

It keeps what `PostgresSagaStore` keeps, by the same rules (see `app.saga.store`): JSON
values are stored and returned as JSON copies, so neither a caller's later mutation nor a
change to a loaded record reaches the stored state. Each method runs without awaiting, so
it is atomic within one event loop. It is stricter than the tables in one way: a step or
saga that was never stored raises `KeyError` instead of being silently skipped.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from app.saga.store import (
    ENDED_STATES,
    FINISHED_STATUSES,
    SagaRecord,
    StepRecord,
    check_state,
    json_roundtrip,
)


class InMemorySagaStore:
    """Saga state in dictionaries; one instance plays one database."""

    def __init__(self) -> None:
        self._sagas: dict[str, SagaRecord] = {}

    async def open(
        self, saga_id: str, name: str, inputs: dict[str, Any], parent_id: str | None
    ) -> SagaRecord:
        saga = self._sagas.get(saga_id)
        if saga is None:
            if parent_id is not None and parent_id not in self._sagas:
                raise KeyError(f"parent saga {parent_id!r} is not stored")
            saga = SagaRecord(saga_id, name, "running", json_roundtrip(inputs), None, parent_id)
            self._sagas[saga_id] = saga
        elif saga.status == "halted":
            saga.status, saga.error = "running", None
        return copy.deepcopy(saga)

    async def load(self, saga_id: str) -> SagaRecord | None:
        saga = self._sagas.get(saga_id)
        return None if saga is None else copy.deepcopy(saga)

    async def add_steps(self, saga_id: str, names: Iterable[str]) -> None:
        steps = self._saga(saga_id).steps
        for name in names:
            steps.setdefault(name, StepRecord(name, "pending"))

    async def step_running(self, saga_id: str, name: str, attempts: int) -> None:
        step = self._step(saga_id, name)
        step.state, step.attempts = "running", attempts
        step.started_at, step.finished_at = _now(), None

    async def step_succeeded(self, saga_id: str, name: str, result: Any) -> int:
        stored = json_roundtrip(result)
        steps = self._saga(saga_id).steps
        step = self._step(saga_id, name)
        seq = max((s.seq for s in steps.values() if s.seq is not None), default=0) + 1
        step.state, step.result, step.error, step.seq = "succeeded", stored, None, seq
        step.finished_at = _now()
        return seq

    async def step_ended(
        self, saga_id: str, name: str, state: str, error: dict[str, Any] | None
    ) -> None:
        check_state(state, ENDED_STATES)
        stored = None if error is None else json_roundtrip(error)
        step = self._step(saga_id, name)
        step.state = state
        if stored is not None:
            step.error = stored
        if state in ("failed", "compensated"):
            step.finished_at = _now()

    async def step_pending(self, saga_id: str, name: str, error: dict[str, Any]) -> None:
        stored = json_roundtrip(error)
        step = self._step(saga_id, name)
        step.state, step.error = "pending", stored

    async def saga_failing(self, saga_id: str, error: dict[str, Any]) -> None:
        stored = json_roundtrip(error)
        self._saga(saga_id).error = stored

    async def saga_finished(self, saga_id: str, status: str, error: dict[str, Any] | None) -> None:
        check_state(status, FINISHED_STATUSES)
        stored = None if error is None else json_roundtrip(error)
        saga = self._saga(saga_id)
        saga.status, saga.error = status, stored
        saga.finished_at = None if status == "halted" else _now()

    def _saga(self, saga_id: str) -> SagaRecord:
        try:
            return self._sagas[saga_id]
        except KeyError:
            raise KeyError(f"saga {saga_id!r} is not stored") from None

    def _step(self, saga_id: str, name: str) -> StepRecord:
        try:
            return self._saga(saga_id).steps[name]
        except KeyError:
            raise KeyError(f"saga {saga_id!r} has no step {name!r}") from None


def _now() -> datetime:
    return datetime.now(UTC)
