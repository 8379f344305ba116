"""Durability: crash and resume, halt and resume, finished sagas, lost persistence."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from app.saga import (
    Halt,
    Result,
    Saga,
    SagaFailed,
    SagaRunner,
    SagaStore,
    Step,
    StepContext,
    StepInterrupted,
    StepSuspended,
)
from tests.saga.helpers import Log, SimulatedCrash, new_id, saga_record, states, step_records


def crashing_chain(log: Log, crash_on: set[str]) -> Saga:
    """a -> b -> c; steps in `crash_on` crash the process on their first run only."""

    def step(name: str, deps: tuple[str, ...]) -> Step:
        inner = log.step(name, deps)

        async def run(ctx: StepContext, **kwargs: Any) -> Any:
            if name in crash_on:
                crash_on.discard(name)
                log.calls.append(("crash", name))
                raise SimulatedCrash(name)
            return await inner.run(ctx, **kwargs)

        return Step(name, run=run, undo=inner.undo, inputs=inner.inputs)

    return Saga("crashy", [step("a", ()), step("b", ("a",)), step("c", ("b",))])


async def test_resume_after_crash_skips_succeeded_and_reruns_interrupted(
    store: SagaStore,
) -> None:
    log = Log()
    saga = crashing_chain(log, crash_on={"b"})
    saga_id = new_id()
    with pytest.raises(SimulatedCrash):
        await SagaRunner(store).run(saga, saga_id=saga_id, inputs={"k": 1})
    assert log.of("undo") == []  # a crash is not a failure: nothing is undone
    assert await states(store, saga_id) == {
        "a": "succeeded",
        "b": "running",
        "c": "pending",
    }
    assert (await saga_record(store, saga_id)).status == "running"

    # A new runner (as in a new process), no inputs given: the stored ones are used.
    outcome = await SagaRunner(store).run(saga, saga_id=saga_id)
    assert outcome.status == "succeeded"
    assert log.count("run") == {"a": 1, "b": 1, "c": 1}
    assert log.of("crash") == ["b"]
    assert outcome.results["c"]["inputs"]["b"]["inputs"]["a"] == {"step": "a", "inputs": {}}
    steps = await step_records(store, saga_id)
    assert {n: s.attempts for n, s in steps.items()} == {"a": 1, "b": 2, "c": 1}


async def test_cancelled_runner_leaves_resumable_state(store: SagaStore) -> None:
    log = Log()
    inside = asyncio.Event()
    runs = 0

    async def slow(ctx: StepContext) -> str:
        nonlocal runs
        runs += 1
        if runs == 1:
            inside.set()
            await asyncio.sleep(30)
        return "slow done"

    saga = Saga("cancelled", [log.step("a"), Step("slow", run=slow, after=("a",))])
    saga_id = new_id()
    task = asyncio.create_task(SagaRunner(store).run(saga, saga_id=saga_id, inputs={}))
    await asyncio.wait_for(inside.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await states(store, saga_id) == {"a": "succeeded", "slow": "running"}

    outcome = await SagaRunner(store).run(saga, saga_id=saga_id)
    assert outcome.results["slow"] == "slow done"
    assert (runs, log.count("run")["a"]) == (2, 1)


async def test_finished_saga_returns_stored_outcome_without_running(
    store: SagaStore,
) -> None:
    log = Log()
    saga = Saga("done-once", [log.step("a"), log.step("b", ("a",))])
    saga_id = new_id()
    first = await SagaRunner(store).run(saga, saga_id=saga_id, inputs={})
    again = await SagaRunner(store).run(saga, saga_id=saga_id, inputs={})
    assert log.count("run") == {"a": 1, "b": 1}
    assert again == first


async def test_halt_then_resume_continues(store: SagaStore) -> None:
    log = Log()
    ready = {"value": False}

    async def wait_for_trials(ctx: StepContext, a: Any) -> str:
        log.calls.append(("run", "wait"))
        if not ready["value"]:
            raise Halt("trials still running")
        return "trials done"

    saga = Saga(
        "halting",
        [
            log.step("a"),
            Step("wait", run=wait_for_trials, inputs={"a": Result("a")}),
            log.step("after", ("wait",)),
        ],
    )
    saga_id = new_id()
    runner = SagaRunner(store)
    outcome = await runner.run(saga, saga_id=saga_id, inputs={})
    assert (outcome.status, outcome.halted_by, outcome.reason) == (
        "halted",
        "wait",
        "trials still running",
    )
    assert set(outcome.results) == {"a"}
    assert await states(store, saga_id) == {
        "a": "succeeded",
        "wait": "pending",
        "after": "pending",
    }
    row = await saga_record(store, saga_id)
    assert (row.status, row.error) == (
        "halted",
        {"halted_by": "wait", "reason": "trials still running"},
    )

    # Still waiting: halts again, nothing completed is rerun.
    assert (await runner.run(saga, saga_id=saga_id)).status == "halted"
    ready["value"] = True
    outcome = await runner.run(saga, saga_id=saga_id)
    assert outcome.status == "succeeded"
    assert outcome.results["wait"] == "trials done"
    assert log.count("run") == {"a": 1, "wait": 3, "after": 1}
    row = await saga_record(store, saga_id)
    assert (row.status, row.error) == ("succeeded", None)


async def test_returning_halt_also_halts(store: SagaStore) -> None:
    async def wait(ctx: StepContext) -> Halt:
        return Halt("later")

    saga = Saga("halt-return", [Step("wait", run=wait)])
    outcome = await SagaRunner(store).run(saga, saga_id=new_id(), inputs={})
    assert (outcome.status, outcome.reason) == ("halted", "later")


async def test_step_interrupted_stops_without_failing(store: SagaStore) -> None:
    log = Log()
    calls = 0

    async def needs_service(ctx: StepContext) -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise StepInterrupted("service unavailable")
        return "ok"

    saga = Saga("interrupt", [log.step("a"), Step("svc", run=needs_service, after=("a",))])
    saga_id = new_id()
    with pytest.raises(StepInterrupted):
        await SagaRunner(store).run(saga, saga_id=saga_id, inputs={})
    assert log.of("undo") == []
    assert (await saga_record(store, saga_id)).status == "running"
    outcome = await SagaRunner(store).run(saga, saga_id=saga_id)
    assert outcome.results["svc"] == "ok"


def lose_connection_once(monkeypatch: pytest.MonkeyPatch, store: SagaStore) -> None:
    """The store under test, except that recording a step's end fails once (database gone)."""
    step_ended = store.step_ended
    broken = True

    async def failing_once(saga_id: str, name: str, state: str, error: Any) -> None:
        nonlocal broken
        if broken:
            broken = False
            raise ConnectionError("connection to database lost")
        await step_ended(saga_id, name, state, error)

    monkeypatch.setattr(store, "step_ended", failing_once)


async def test_lost_persistence_raises_original_error_and_resume_continues(
    store: SagaStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = Log()
    failures = {"b": 1}

    async def b(ctx: StepContext, a: Any) -> str:
        log.calls.append(("run", "b"))
        if failures["b"]:
            failures["b"] -= 1
            raise ValueError("transient")
        return "b ok"

    saga = Saga("infra", [log.step("a"), Step("b", run=b, inputs={"a": Result("a")})])
    saga_id = new_id()
    runner = SagaRunner(store)
    lose_connection_once(monkeypatch, store)
    with pytest.raises(ConnectionError):
        await runner.run(saga, saga_id=saga_id, inputs={})
    # The failure could not be recorded, so nothing was undone and the saga can resume.
    assert log.of("undo") == []
    assert await states(store, saga_id) == {"a": "succeeded", "b": "running"}
    row = await saga_record(store, saga_id)
    assert (row.status, row.error) == ("running", None)

    outcome = await SagaRunner(store).run(saga, saga_id=saga_id)
    assert outcome.results["b"] == "b ok"
    assert log.count("run") == {"a": 1, "b": 2}


async def test_crash_during_undo_resumes_the_undo(store: SagaStore) -> None:
    log = Log()
    crash_once = {"a": True}

    async def undo_a(ctx: StepContext, result: Any) -> None:
        log.calls.append(("undo", "a"))
        if crash_once["a"]:
            crash_once["a"] = False
            raise SimulatedCrash("during undo")

    base = log.step("a")
    saga = Saga(
        "undo-crash",
        [
            Step("a", run=base.run, undo=undo_a),
            log.step("b", ("a",)),
            log.step("c", ("b",), fail=True),
        ],
    )
    saga_id = new_id()
    with pytest.raises(SimulatedCrash):
        await SagaRunner(store).run(saga, saga_id=saga_id, inputs={})
    assert await states(store, saga_id) == {
        "a": "succeeded",
        "b": "undone",
        "c": "failed",
    }
    row = await saga_record(store, saga_id)
    assert row.status == "running" and row.error is not None and row.error["step"] == "c"

    with pytest.raises(SagaFailed) as info:
        await SagaRunner(store).run(saga, saga_id=saga_id)
    assert log.of("undo") == ["b", "a", "a"]  # b not undone twice; a's undo retried
    assert log.count("run") == {"a": 1, "b": 1, "c": 1}  # nothing rerun
    assert [(o.step, o.status) for o in info.value.undo] == [("b", "undone"), ("a", "undone")]
    assert (await saga_record(store, saga_id)).status == "failed"


async def test_a_suspended_step_resumes_as_the_same_attempt(store: SagaStore) -> None:
    """`StepSuspended`: the saga stays running, the step reruns on resume, and waiting is not
    counted as an attempt (attempt-keyed events and first-attempt faults see one)."""
    seen: list[int] = []
    waits = [2]

    async def wait_twice(ctx: StepContext) -> str:
        seen.append(ctx.attempt)
        if waits[0]:
            waits[0] -= 1
            raise StepSuspended("waiting on work elsewhere")
        return "done"

    saga = Saga("waits", [Step("w", run=wait_twice)])
    saga_id = new_id()
    for _ in range(2):
        with pytest.raises(StepSuspended):
            await SagaRunner(store).run(saga, saga_id=saga_id, inputs={})
        assert (await saga_record(store, saga_id)).status == "running"
    outcome = await SagaRunner(store).run(saga, saga_id=saga_id)
    assert outcome.status == "succeeded"
    assert seen == [1, 1, 1]
    assert (await step_records(store, saga_id))["w"].attempts == 1
