"""Step middleware: the hooks the engine calls, and fault injection built on them."""

from __future__ import annotations

from typing import Any

import pytest

from app.saga import (
    FaultInjector,
    InjectedFault,
    Retry,
    Saga,
    SagaFailed,
    SagaRunner,
    SagaStore,
    Step,
    StepContext,
    StepInterrupted,
    StepMiddleware,
    UndoIncomplete,
)
from app.saga.middleware import RunCall, UndoCall
from tests.saga.helpers import Log, new_id, saga_record, states, step_records


class Tracer(StepMiddleware):
    """Records every hook call under its own label; optionally rewrites run values."""

    def __init__(self, label: str, calls: list[str], *, suffix: str = "") -> None:
        self.label, self.calls, self.suffix = label, calls, suffix

    async def before_start(self, saga_id: str, step: str, attempt: int) -> None:
        self.calls.append(f"{self.label}:start:{step}:{attempt}")

    async def around_run(self, step: Step, ctx: StepContext, call: RunCall) -> Any:
        self.calls.append(f"{self.label}:run>{step.name}:{ctx.attempt}")
        value = await call()
        self.calls.append(f"{self.label}:run<{step.name}")
        return f"{value}{self.suffix}" if isinstance(value, str) else value

    async def around_undo(
        self, step: Step, ctx: StepContext, call: UndoCall, *, retry: bool
    ) -> None:
        self.calls.append(f"{self.label}:undo>{step.name}:{retry}")
        await call()


async def test_layers_wrap_in_order_and_may_change_the_value(store: SagaStore) -> None:
    calls: list[str] = []

    async def a(ctx: StepContext) -> str:
        calls.append("a")
        return "a"

    saga = Saga("layers", [Step("a", run=a)])
    runner = SagaRunner(
        store,
        middleware=[Tracer("outer", calls, suffix="!"), Tracer("inner", calls, suffix="?")],
    )
    outcome = await runner.run(saga, saga_id=new_id(), inputs={})
    assert outcome.results == {"a": "a?!"}
    assert calls == [
        "outer:start:a:1",
        "inner:start:a:1",
        "outer:run>a:1",
        "inner:run>a:1",
        "a",
        "inner:run<a",
        "outer:run<a",
    ]


async def test_hooks_see_retries_and_undo(store: SagaStore) -> None:
    calls: list[str] = []

    async def flaky(ctx: StepContext) -> int:
        if ctx.attempt == 1:
            raise ConnectionError("once")
        return ctx.attempt

    async def retry(ctx: StepContext, error: Exception) -> Retry:
        return Retry()

    async def undo(ctx: StepContext, result: Any) -> None:
        calls.append(f"undo:{result}")

    async def boom(ctx: StepContext) -> None:
        raise ValueError("boom")

    saga = Saga(
        "traced",
        [
            Step("flaky", run=flaky, compensate=retry, undo=undo, max_retries=1),
            Step("boom", run=boom, after=("flaky",)),
        ],
    )
    with pytest.raises(SagaFailed):
        await SagaRunner(store, middleware=[Tracer("t", calls)]).run(
            saga, saga_id=new_id(), inputs={}
        )
    assert calls == [
        "t:start:flaky:1",
        "t:run>flaky:1",
        "t:start:flaky:2",
        "t:run>flaky:2",
        "t:run<flaky",
        "t:start:boom:1",
        "t:run>boom:1",
        "t:undo>flaky:False",
        "undo:2",
    ]


def faults(*names: str) -> list[StepMiddleware]:
    return [FaultInjector.parse(names)]


async def test_after_fault_runs_the_step_then_fails_it(store: SagaStore) -> None:
    log = Log()
    saga = Saga("after", [log.step("a"), log.step("b", ("a",))])
    saga_id = new_id()
    with pytest.raises(SagaFailed) as info:
        await SagaRunner(store, middleware=faults("b:after")).run(saga, saga_id=saga_id, inputs={})
    assert log.of("run") == ["a", "b"]
    assert log.of("undo") == ["a"]  # b's effect is b's compensation's to clean up
    assert (info.value.step, info.value.message) == ("b", "fault injected into step 'b' (after)")


async def test_transient_fault_interrupts_every_attempt(store: SagaStore) -> None:
    log = Log()
    saga = Saga("transient", [log.step("a"), log.step("b", ("a",))])
    saga_id = new_id()
    runner = SagaRunner(store, middleware=faults("b:transient"))
    for _ in range(2):
        with pytest.raises(StepInterrupted, match="transient"):
            await runner.run(saga, saga_id=saga_id, inputs={})
    assert log.of("run") == ["a"]
    assert (await saga_record(store, saga_id)).status == "running"
    assert (await step_records(store, saga_id))["b"].attempts == 2


async def test_internal_fault_comes_from_the_engine(store: SagaStore) -> None:
    log = Log()
    saga = Saga("internal", [log.step("a"), log.step("b", ("a",))])
    saga_id = new_id()
    with pytest.raises(InjectedFault, match=r"\(internal\)"):
        await SagaRunner(store, middleware=faults("b:internal")).run(
            saga, saga_id=saga_id, inputs={}
        )
    assert (log.of("run"), log.of("undo")) == (["a"], [])
    assert await states(store, saga_id) == {"a": "succeeded", "b": "pending"}
    assert (await step_records(store, saga_id))["b"].attempts == 0


async def test_undo_fault_fails_the_first_undo_only(store: SagaStore) -> None:
    log = Log()
    saga = Saga("undo-fault", [log.step("a"), log.step("b", ("a",), fail=True)])
    saga_id = new_id()
    runner = SagaRunner(store, middleware=faults("a:undo"), final_attempt=False)
    with pytest.raises(UndoIncomplete):
        await runner.run(saga, saga_id=saga_id, inputs={})
    assert log.of("undo") == []  # the fault fired before a's undo ran
    assert (await states(store, saga_id))["a"] == "undo_failed"
    with pytest.raises(SagaFailed) as info:
        await runner.run(saga, saga_id=saga_id)
    assert log.of("undo") == ["a"]
    assert [(o.step, o.status) for o in info.value.undo] == [("a", "undone")]


def test_unknown_fault_point_is_rejected() -> None:
    with pytest.raises(ValueError, match="point must be one of"):
        FaultInjector.parse({"a:sometimes"})
