"""One run of one saga: schedules ready steps, records every change, undoes on failure.

All persistence happens here in the coordinating task, never inside step tasks, so
cancelling a step never interrupts a database write. Any exception from the store
propagates unchanged (the caller retries the job and the next run resumes); undo is only
attempted once the failure itself has been recorded.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from app.saga.context import SagaOutcome, StepContext
from app.saga.definition import Retry, Step, add_steps
from app.saga.errors import (
    Halt,
    SagaError,
    SagaFailed,
    StepCancelled,
    StepInterrupted,
    StepRejected,
    StepSuspended,
    UndoIncomplete,
    UndoOutcome,
    UnserializableResult,
    describe,
)
from app.saga.store import SagaRecord, StepRecord, json_roundtrip

if TYPE_CHECKING:
    from app.saga.definition import Saga
    from app.saga.runner import SagaRunner


class Execution:
    """The state of one saga while the runner drives it."""

    def __init__(self, runner: SagaRunner, saga: Saga, record: SagaRecord) -> None:
        self.runner = runner
        self.store = runner.store
        self.listener = runner.listener
        self.middleware = runner.middleware
        self.saga = saga
        self.saga_id = record.id
        self.inputs = record.inputs
        self.steps: dict[str, Step] = dict(saga.steps)
        self.records: dict[str, StepRecord] = record.steps
        self.results: dict[str, Any] = {}
        self.running: dict[asyncio.Task[Any], str] = {}
        self.retries: dict[str, int] = {}
        self.cancelling = False
        self.halt: tuple[str, str] | None = None
        # A stored error on a still-running saga: the failure was decided, undo unfinished.
        self.failure: dict[str, Any] | None = record.error if record.status == "running" else None

    async def prepare(self) -> None:
        """Replay stored results, recreate dynamic steps, and record unknown steps."""
        for name, rec in self.records.items():
            if rec.seq is not None:
                self.results[name] = rec.result
        expanded: set[str] = set()
        while True:
            todo = [n for n, s in self.steps.items() if s.expand and n in self.results]
            todo = [n for n in todo if n not in expanded]
            if not todo:
                break
            for name in todo:
                expanded.add(name)
                expand = self.steps[name].expand
                assert expand is not None
                add_steps(self.steps, expand(self.results[name]), saga_name=self.saga.name)
        await self._record_new_steps()
        if self.failure is None:
            # Crash between storing a step's failure and storing the saga's: finish failing.
            for name, rec in self.records.items():
                if rec.state in ("failed", "compensated") and rec.error is not None:
                    self.failure = {"step": name, **rec.error}
                    await self.store.saga_failing(self.saga_id, self.failure)
                    break

    async def _record_new_steps(self) -> None:
        new = [n for n in self.steps if n not in self.records]
        await self.store.add_steps(self.saga_id, new)
        for name in new:
            self.records[name] = StepRecord(name, "pending")

    async def run(self) -> SagaOutcome:
        """Drive the saga to success, halt or failure (raises `SagaFailed`)."""
        await self.prepare()
        try:
            if self.failure is None:
                await self._drive()
        except BaseException:
            # Crash, cancellation or lost persistence: leave the stored state as it is
            # (interrupted steps stay 'running' and rerun on resume); undo nothing.
            await self._abandon()
            raise
        if self.failure is not None:
            raise await self.fail_saga()
        if self.halt is not None:
            step, reason = self.halt
            info = {"halted_by": step, "reason": reason}
            await self.store.saga_finished(self.saga_id, "halted", info)
            await self.listener.saga_finished(self.saga_id, "halted", info)
            return SagaOutcome(self.saga_id, "halted", dict(self.results), step, reason)
        await self.store.saga_finished(self.saga_id, "succeeded", None)
        await self.listener.saga_finished(self.saga_id, "succeeded", None)
        return SagaOutcome(self.saga_id, "succeeded", dict(self.results))

    async def _drive(self) -> None:
        while True:
            if self.failure is None and self.halt is None:
                await self._start_ready()
            if not self.running:
                break
            done, _ = await asyncio.wait(self.running, return_when=asyncio.FIRST_COMPLETED)
            for task in [t for t in self.running if t in done]:  # in start order
                await self._settle(task)
            if self.failure is not None and not self.cancelling:
                self.cancelling = True
                for task in self.running:
                    task.cancel()
        if self.failure is None and self.halt is None:
            stuck = [n for n, r in self.records.items() if r.state != "succeeded"]
            if stuck:  # unreachable for a validated graph; never report a false success
                raise SagaError(f"saga {self.saga_id!r}: steps never became ready: {stuck}")

    async def _start_ready(self) -> None:
        active = set(self.running.values())
        for name, step in self.steps.items():
            if len(self.running) >= self.saga.max_concurrency:
                return
            # 'running' without a task: interrupted by a crash in an earlier run; rerun it.
            if self.records[name].state not in ("pending", "running") or name in active:
                continue
            if all(self.records[d].state == "succeeded" for d in step.dependencies):
                await self._start(name)

    def context(self, name: str) -> StepContext:
        rec = self.records[name]
        return StepContext(
            self.saga_id, name, rec.attempts, self.inputs, self.runner, failure=self.failure
        )

    def _arguments(self, step: Step) -> dict[str, Any]:
        return step.arguments(self.inputs, self.results)

    async def _start(self, name: str, delay_s: float = 0.0) -> None:
        rec = self.records[name]
        await self.middleware.before_start(self.saga_id, name, rec.attempts + 1)
        rec.attempts += 1
        rec.state = "running"
        await self.store.step_running(self.saga_id, name, rec.attempts)
        await self.listener.step_started(self.saga_id, name, rec.attempts)
        task = asyncio.create_task(
            self._invoke(self.steps[name], self.context(name), delay_s),
            name=f"saga:{self.saga_id}:{name}",
        )
        self.running[task] = name

    async def _invoke(self, step: Step, ctx: StepContext, delay_s: float) -> Any:
        if delay_s > 0:
            await asyncio.sleep(delay_s)
        return await self.middleware.around_run(
            step, ctx, lambda: step.run(ctx, **self._arguments(step))
        )

    async def _settle(self, task: asyncio.Task[Any]) -> None:
        name = self.running.pop(task)
        if task.cancelled():
            if self.cancelling:
                cancelled = StepCancelled(f"cancelled because step {self.failure_step} failed")
                await self._step_failed(name, cancelled, allow_retry=False)
                return
            raise StepInterrupted(f"step {name!r} was cancelled")
        error = task.exception()
        if error is None:
            value = task.result()
            if isinstance(value, Halt):
                await self._step_halted(name, value)
            else:
                await self._step_succeeded(name, value)
        elif isinstance(error, Halt):
            await self._step_halted(name, error)
        elif isinstance(error, StepInterrupted) or not isinstance(error, Exception):
            if isinstance(error, StepSuspended):
                # Waiting is not an attempt: its resumption is the same attempt, so attempt
                # counts (and attempt-keyed events, and first-attempt faults) see one.
                rec = self.records[name]
                rec.attempts -= 1
                await self.store.step_running(self.saga_id, name, rec.attempts)
            raise error  # a crash (BaseException) or a request to stop and resume later
        elif self.steps[name].pivot and not isinstance(error, StepRejected):
            # Its effect may be committed: never undo past a pivot; rerun it on resume.
            raise StepInterrupted(f"pivot step {name!r} failed; it reruns on resume") from error
        else:
            await self._step_failed(name, error)

    @property
    def failure_step(self) -> str | None:
        return None if self.failure is None else self.failure.get("step")

    async def _step_succeeded(self, name: str, value: Any) -> None:
        step = self.steps[name]
        try:
            stored = json_roundtrip(value)
        except (TypeError, ValueError) as exc:
            message = f"step {name!r} returned a value that is not JSON: {exc}"
            await self._step_failed(name, UnserializableResult(message))
            return
        merged = dict(self.steps)
        try:
            if step.expand is not None:
                add_steps(merged, step.expand(stored), saga_name=self.saga.name)
        except Exception as exc:  # a bad expansion is this step's failure
            await self._step_failed(name, exc)
            return
        rec = self.records[name]
        rec.seq = await self.store.step_succeeded(self.saga_id, name, stored)
        rec.state, rec.result, rec.error = "succeeded", stored, None
        self.results[name] = stored
        self.steps = merged
        await self._record_new_steps()
        await self.listener.step_succeeded(self.saga_id, name, stored)

    async def _step_halted(self, name: str, halt: Halt) -> None:
        self.records[name].state = "pending"
        await self.store.step_pending(self.saga_id, name, describe(halt))
        if self.halt is None:
            self.halt = (name, halt.reason)

    async def _step_failed(self, name: str, exc: Exception, *, allow_retry: bool = True) -> None:
        step, rec = self.steps[name], self.records[name]
        error = describe(exc)
        await self.listener.step_failed(self.saga_id, name, exc)
        state = "failed"
        if step.compensate is not None:
            try:
                decision = await step.compensate(self.context(name), exc, **self._arguments(step))
            except Exception as cexc:
                error["compensate_error"] = describe(cexc)
            else:
                state = "compensated"
                used = self.retries.get(name, 0)
                if (
                    isinstance(decision, Retry)
                    and allow_retry
                    and self.failure is None
                    and used < step.max_retries
                ):
                    self.retries[name] = used + 1
                    rec.error = error
                    await self.store.step_ended(self.saga_id, name, "compensated", error)
                    await self._start(name, decision.delay_s)
                    return
        rec.state, rec.error = state, error
        await self.store.step_ended(self.saga_id, name, state, error)
        if self.failure is None:
            self.failure = {"step": name, **error}
            await self.store.saga_failing(self.saga_id, self.failure)

    async def _abandon(self) -> None:
        tasks = list(self.running)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self.running.clear()

    async def fail_saga(self) -> SagaFailed:
        """Undo every completed step, newest first, record the failure and return it."""
        assert self.failure is not None
        for name, rec in self.records.items():
            if rec.state == "running":  # interrupted by a crash while the saga was failing
                interrupted = StepCancelled("interrupted while the saga was failing")
                await self._step_failed(name, interrupted, allow_retry=False)
        completed = [n for n, r in self.records.items() if r.seq is not None]
        completed.sort(key=lambda n: self.records[n].seq or 0, reverse=True)
        outcomes = [await self._undo(name) for name in completed]
        failed = [o.step for o in outcomes if o.status == "undo_failed"]
        if failed and not self.runner.final_attempt:
            # The failure is stored (saga_failing): the next run comes back here and retries.
            raise UndoIncomplete(f"saga {self.saga_id!r}: undo failed for {failed}; will retry")
        error = {**self.failure, "undo": [o.to_dict() for o in outcomes]}
        await self.store.saga_finished(self.saga_id, "failed", error)
        await self.listener.saga_finished(self.saga_id, "failed", error)
        return SagaFailed.from_dict(self.saga_id, error)

    async def _undo(self, name: str) -> UndoOutcome:
        rec, step = self.records[name], self.steps.get(name)
        if rec.state == "undone":  # already done by an earlier, interrupted run
            return UndoOutcome(name, "undone")
        # 'undo_failed' from an earlier run is tried again: the cause may be gone.
        if step is None or step.undo is None:
            return UndoOutcome(name, "no_undo")
        undo, ctx = step.undo, self.context(name)
        try:
            await self.middleware.around_undo(
                step,
                ctx,
                lambda: undo(ctx, rec.result, **self._arguments(step)),
                retry=rec.state == "undo_failed",  # an earlier run's undo of it failed
            )
        except Exception as exc:
            rec.state, rec.error = "undo_failed", describe(exc)
            await self.store.step_ended(self.saga_id, name, "undo_failed", rec.error)
            await self.listener.step_undone(self.saga_id, name, exc)
            return UndoOutcome(name, "undo_failed", rec.error)
        rec.state = "undone"
        await self.store.step_ended(self.saga_id, name, "undone", None)
        await self.listener.step_undone(self.saga_id, name, None)
        return UndoOutcome(name, "undone")
