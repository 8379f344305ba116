"""Failures: compensation of the failing step, undo of completed steps, recorded outcomes."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from app.saga import (
    FaultInjector,
    Retry,
    Saga,
    SagaFailed,
    SagaRunner,
    SagaStore,
    Step,
    StepCancelled,
    StepContext,
)
from tests.saga.helpers import Log, new_id, saga_record, states, step_records

CHAIN = ["s0", "s1", "s2", "s3", "s4"]


def chain(log: Log, fail_at: str | None = None) -> Saga:
    steps = []
    for i, name in enumerate(CHAIN):
        deps = (CHAIN[i - 1],) if i else ()
        steps.append(log.step(name, deps, fail=name == fail_at))
    return Saga("chain", steps)


@pytest.mark.parametrize("how", ["raise", "inject"])
@pytest.mark.parametrize("position", range(len(CHAIN)))
async def test_failure_at_each_position_undoes_exactly_the_completed_steps(
    store: SagaStore, position: int, how: str
) -> None:
    log = Log()
    failing = CHAIN[position]
    saga = chain(log, fail_at=failing if how == "raise" else None)
    faults = [FaultInjector.parse({failing})] if how == "inject" else []
    saga_id = new_id()
    with pytest.raises(SagaFailed) as info:
        await SagaRunner(store, middleware=faults).run(saga, saga_id=saga_id, inputs={})

    completed = CHAIN[:position]
    assert log.of("undo") == list(reversed(completed))
    failed = info.value
    assert failed.step == failing
    assert failed.error_type == ("ValueError" if how == "raise" else "InjectedFault")
    assert [(o.step, o.status) for o in failed.undo] == [(s, "undone") for s in reversed(completed)]

    expected = {s: "undone" for s in completed}
    expected[failing] = "failed"
    expected.update({s: "pending" for s in CHAIN[position + 1 :]})
    assert await states(store, saga_id) == expected
    row = await saga_record(store, saga_id)
    assert row.status == "failed"
    assert row.error is not None and row.error["step"] == failing
    assert [u["step"] for u in row.error["undo"]] == list(reversed(completed))


async def test_undo_follows_completion_order_not_declaration_order(
    store: SagaStore,
) -> None:
    log = Log()
    release_slow = asyncio.Event()

    async def fast(ctx: StepContext) -> str:
        release_slow.set()
        return "fast"

    async def slow(ctx: StepContext) -> str:
        await release_slow.wait()  # completes after "fast" although declared first
        await asyncio.sleep(0.02)
        return "slow"

    async def undo(ctx: StepContext, result: Any) -> None:
        log.calls.append(("undo", ctx.step))

    async def boom(ctx: StepContext) -> None:
        raise ValueError("boom")

    saga = Saga(
        "completion-order",
        [
            Step("slow", run=slow, undo=undo),
            Step("fast", run=fast, undo=undo),
            Step("boom", run=boom, after=("slow", "fast")),
        ],
        max_concurrency=2,
    )
    saga_id = new_id()
    with pytest.raises(SagaFailed):
        await SagaRunner(store).run(saga, saga_id=saga_id, inputs={})
    steps = await step_records(store, saga_id)
    assert (steps["fast"].seq, steps["slow"].seq) == (1, 2)
    assert log.of("undo") == ["slow", "fast"]


def flaky(log: Log, failures: int, after: tuple[str, ...] = ()) -> Step:
    """A step failing its first `failures` attempts; its compensation asks to retry."""

    async def run(ctx: StepContext) -> int:
        log.calls.append(("run", ctx.step))
        if ctx.attempt <= failures:
            raise ConnectionError(f"attempt {ctx.attempt} failed")
        return ctx.attempt

    async def compensate(ctx: StepContext, error: Exception) -> Retry:
        log.calls.append(("compensate", f"{ctx.step}:{ctx.attempt}:{error}"))
        return Retry()

    async def undo(ctx: StepContext, result: Any) -> None:
        log.calls.append(("undo", ctx.step))

    return Step("flaky", run=run, compensate=compensate, undo=undo, max_retries=2, after=after)


async def test_compensate_can_retry_until_success(store: SagaStore) -> None:
    log = Log()
    saga = Saga("retry-ok", [log.step("a"), flaky(log, failures=2)])
    saga_id = new_id()
    outcome = await SagaRunner(store).run(saga, saga_id=saga_id, inputs={})
    assert outcome.results["flaky"] == 3
    assert log.of("compensate") == [
        "flaky:1:attempt 1 failed",
        "flaky:2:attempt 2 failed",
    ]
    assert log.of("undo") == []
    steps = await step_records(store, saga_id)
    assert (steps["flaky"].state, steps["flaky"].attempts, steps["flaky"].error) == (
        "succeeded",
        3,
        None,
    )


async def test_retries_stop_at_max_retries_then_earlier_steps_are_undone(
    store: SagaStore,
) -> None:
    log = Log()
    saga = Saga("retry-exhausted", [log.step("a"), flaky(log, failures=99, after=("a",))])
    saga_id = new_id()
    with pytest.raises(SagaFailed) as info:
        await SagaRunner(store).run(saga, saga_id=saga_id, inputs={})
    assert log.count("run")["flaky"] == 3  # first attempt + max_retries=2
    assert len(log.of("compensate")) == 3  # compensate ran for the failing step only...
    assert log.of("undo") == ["a"]  # ...and undo for the completed one, never for "flaky"
    assert (info.value.step, info.value.error_type) == ("flaky", "ConnectionError")
    steps = await step_records(store, saga_id)
    assert (steps["flaky"].state, steps["flaky"].attempts) == ("compensated", 3)
    assert steps["flaky"].error == {"type": "ConnectionError", "message": "attempt 3 failed"}
    assert steps["a"].state == "undone"


async def test_compensate_that_fails_is_recorded(store: SagaStore) -> None:
    async def run(ctx: StepContext) -> None:
        raise ValueError("work failed")

    async def compensate(ctx: StepContext, error: Exception) -> None:
        raise OSError("cleanup failed")

    saga = Saga("comp-fails", [Step("x", run=run, compensate=compensate)])
    saga_id = new_id()
    with pytest.raises(SagaFailed):
        await SagaRunner(store).run(saga, saga_id=saga_id, inputs={})
    x = (await step_records(store, saga_id))["x"]
    assert x.state == "failed"
    assert x.error == {
        "type": "ValueError",
        "message": "work failed",
        "compensate_error": {"type": "OSError", "message": "cleanup failed"},
    }


async def test_failed_undo_is_recorded_and_other_undos_still_run(
    store: SagaStore,
) -> None:
    log = Log()
    saga = Saga(
        "undo-fails",
        [
            log.step("a"),
            log.step("b", ("a",), undo_fails=True),
            log.step("c", ("b",), undo=False),
            log.step("d", ("c",), fail=True),
        ],
    )
    saga_id = new_id()
    with pytest.raises(SagaFailed) as info:
        await SagaRunner(store).run(saga, saga_id=saga_id, inputs={})
    assert log.of("undo") == ["b", "a"]
    assert [(o.step, o.status) for o in info.value.undo] == [
        ("c", "no_undo"),
        ("b", "undo_failed"),
        ("a", "undone"),
    ]
    assert info.value.undo_failed
    steps = await step_records(store, saga_id)
    assert steps["b"].state == "undo_failed"
    assert steps["b"].error == {"type": "RuntimeError", "message": "undo of b broke"}
    assert steps["b"].result == {"step": "b", "inputs": {"a": {"step": "a", "inputs": {}}}}
    assert (steps["a"].state, steps["c"].state, steps["d"].state) == (
        "undone",
        "succeeded",
        "failed",
    )


async def test_running_sibling_is_cancelled_and_compensated(store: SagaStore) -> None:
    log = Log()
    started = asyncio.Event()

    async def long(ctx: StepContext) -> None:
        started.set()
        await asyncio.sleep(30)

    async def compensate_long(ctx: StepContext, error: Exception) -> Retry:
        log.calls.append(("compensate", type(error).__name__))
        return Retry()  # ignored: the saga is already failing

    async def boom(ctx: StepContext) -> None:
        await started.wait()
        raise ValueError("boom")

    saga = Saga(
        "sibling",
        [
            Step("long", run=long, compensate=compensate_long, max_retries=3),
            Step("boom", run=boom),
        ],
        max_concurrency=2,
    )
    saga_id = new_id()
    with pytest.raises(SagaFailed) as info:
        await asyncio.wait_for(SagaRunner(store).run(saga, saga_id=saga_id, inputs={}), 10)
    assert info.value.step == "boom"
    assert log.of("compensate") == [StepCancelled.__name__]
    steps = await step_records(store, saga_id)
    assert steps["long"].state == "compensated"
    assert steps["long"].attempts == 1
    assert steps["long"].error is not None and steps["long"].error["type"] == "StepCancelled"


async def test_a_failed_saga_is_not_rerun(store: SagaStore) -> None:
    log = Log()
    saga = chain(log, fail_at="s2")
    saga_id = new_id()
    runner = SagaRunner(store)
    with pytest.raises(SagaFailed) as first:
        await runner.run(saga, saga_id=saga_id, inputs={})
    calls = list(log.calls)
    with pytest.raises(SagaFailed) as again:
        await runner.run(saga, saga_id=saga_id)
    assert log.calls == calls
    assert again.value.to_dict() == first.value.to_dict()
