"""The entry points: `SagaRunner` (awaited from a queue job) and `run_saga_sync` (CLI, tests)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.saga.context import SagaOutcome
from app.saga.definition import Saga
from app.saga.errors import SagaDefinitionError, SagaFailed, UndoOutcome
from app.saga.execution import Execution
from app.saga.listener import SafeListener, SagaListener
from app.saga.middleware import MiddlewareChain, StepMiddleware
from app.saga.postgres_store import PostgresSagaStore
from app.saga.store import SagaRecord, SagaStore, json_roundtrip


class SagaRunner:
    """Runs sagas durably against a `SagaStore`.

    `store` is a `SagaStore` (`PostgresSagaStore`, `InMemorySagaStore`); a session factory
    is shorthand for `PostgresSagaStore(session_factory)`. `listener` receives observer
    hooks (its errors are ignored). `middleware` wraps every step call, the first listed
    outermost (see `app.saga.middleware`; fault injection is one); it applies to sub-sagas
    too. `final_attempt=False` says the caller will run the saga again later (a queue job
    with attempts left): an undo that fails then leaves the saga failing and raises
    `UndoIncomplete`, so the next run retries it; on the final attempt undo failures are
    recorded and the saga fails for good. One saga id must not be run by two runners at once
    (the run lock guarantees it).
    """

    def __init__(
        self,
        store: SagaStore | async_sessionmaker[AsyncSession],
        *,
        listener: SagaListener | None = None,
        middleware: Sequence[StepMiddleware] = (),
        final_attempt: bool = True,
    ) -> None:
        if isinstance(store, async_sessionmaker):
            store = PostgresSagaStore(store)
        self.store: SagaStore = store
        self.listener = SafeListener(listener)
        self.middleware = MiddlewareChain(middleware)
        self.final_attempt = final_attempt

    async def run(
        self,
        saga: Saga,
        *,
        saga_id: str,
        inputs: Mapping[str, Any] | None = None,
        parent_id: str | None = None,
    ) -> SagaOutcome:
        """Run the saga, or resume it if `saga_id` is already stored.

        Returns an outcome with status 'succeeded' or 'halted'. Raises `SagaFailed` when it
        failed (now or in an earlier run: a finished saga is never re-run) and
        `SagaDefinitionError` for a wrong definition or inputs. Any other exception means it
        was interrupted with its state intact: run it again later to resume. On resume the
        stored inputs are used; `inputs` may be omitted but must not differ.
        """
        data = self._check_inputs(saga, inputs)
        record = await self.store.open(saga_id, saga.name, data or {}, parent_id)
        self._check_record(saga, record, data)
        if record.status == "succeeded":
            return SagaOutcome(saga_id, "succeeded", _stored_results(record))
        if record.status == "failed":
            raise SagaFailed.from_dict(saga_id, record.error or {})
        missing = sorted(saga.required_inputs - record.inputs.keys())
        if missing:
            raise SagaDefinitionError(f"saga {saga_id!r}: missing inputs {missing}")
        return await Execution(self, saga, record).run()

    async def cancel(
        self,
        saga: Saga,
        *,
        saga_id: str,
        reason: str,
        failure: Mapping[str, Any] | None = None,
    ) -> tuple[UndoOutcome, ...]:
        """Fail a stored saga that is not executing now (halted, succeeded, interrupted).

        Undoes its completed steps newest first and stores it as failed with `failure`
        (default: error type 'SagaCancelled' with `reason`); a saga already failing keeps
        its first failure. Returns the undo outcomes (those stored, if it had failed
        already). Unknown ids return an empty tuple. Raises `UndoIncomplete` as `run` does.
        """
        record = await self.store.load(saga_id)
        if record is None:
            return ()
        self._check_record(saga, record, None)
        if record.status == "failed":
            return SagaFailed.from_dict(saga_id, record.error or {}).undo
        execution = Execution(self, saga, record)
        if execution.failure is None:
            execution.failure = dict(failure or {}) or {
                "step": None,
                "type": "SagaCancelled",
                "message": reason,
            }
            await self.store.saga_failing(saga_id, execution.failure)
        await execution.prepare()
        return (await execution.fail_saga()).undo

    @staticmethod
    def _check_inputs(saga: Saga, inputs: Mapping[str, Any] | None) -> dict[str, Any] | None:
        if inputs is None:
            return None
        try:
            data: dict[str, Any] = json_roundtrip(dict(inputs))
        except (TypeError, ValueError) as exc:
            raise SagaDefinitionError(f"saga {saga.name!r}: inputs are not JSON: {exc}") from exc
        missing = sorted(saga.required_inputs - data.keys())
        if missing:
            raise SagaDefinitionError(f"saga {saga.name!r}: missing inputs {missing}")
        return data

    @staticmethod
    def _check_record(saga: Saga, record: SagaRecord, inputs: dict[str, Any] | None) -> None:
        if record.name != saga.name:
            raise SagaDefinitionError(
                f"saga id {record.id!r} belongs to saga {record.name!r}, not {saga.name!r}"
            )
        if inputs is not None and inputs != record.inputs:
            raise SagaDefinitionError(
                f"saga {record.id!r} was started with different inputs; resume without "
                "inputs or with the same ones"
            )


def _stored_results(record: SagaRecord) -> dict[str, Any]:
    return {n: s.result for n, s in record.steps.items() if s.state == "succeeded"}


def run_saga_sync(
    saga: Saga,
    *,
    database_url: str,
    saga_id: str,
    inputs: Mapping[str, Any] | None = None,
    listener: SagaListener | None = None,
    middleware: Sequence[StepMiddleware] = (),
) -> SagaOutcome:
    """Run a saga to its end in a fresh event loop (for the CLI and synchronous tests)."""
    from app.db.session import create_engine, create_session_factory

    async def main() -> SagaOutcome:
        engine = create_engine(database_url, pool_size=2)
        try:
            runner = SagaRunner(
                create_session_factory(engine), listener=listener, middleware=middleware
            )
            return await runner.run(saga, saga_id=saga_id, inputs=inputs)
        finally:
            await engine.dispose()

    return asyncio.run(main())
