"""Running sagas (on each store): order, results, persistence, concurrency, hooks."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from app.saga import (
    FaultInjector,
    Input,
    Result,
    Saga,
    SagaDefinitionError,
    SagaFailed,
    SagaListener,
    SagaRunner,
    SagaStore,
    Step,
    StepContext,
    run_saga_sync,
)
from tests.saga.helpers import Log, new_id, saga_record, step_records


async def test_steps_run_in_dependency_order_and_results_flow(store: SagaStore) -> None:
    log = Log()
    # Declared out of order on purpose: the graph, not the list, decides.
    saga = Saga(
        "order",
        [
            log.step("c", ("a", "b")),
            log.step("b", ("a",)),
            log.step("a"),
            log.step("d"),
        ],
    )
    outcome = await SagaRunner(store).run(saga, saga_id=new_id(), inputs={})
    order = log.of("run")
    assert order.index("a") < order.index("b") < order.index("c")
    assert outcome.status == "succeeded"
    assert outcome.results["c"]["inputs"]["b"]["inputs"]["a"] == {"step": "a", "inputs": {}}
    assert set(outcome.results) == {"a", "b", "c", "d"}


async def test_inputs_reach_steps_and_everything_is_persisted(store: SagaStore) -> None:
    seen: dict[str, Any] = {}

    async def first(ctx: StepContext, spec: dict[str, Any]) -> list[int]:
        seen["ctx"] = (ctx.saga_id, ctx.step, ctx.attempt, dict(ctx.inputs))
        return [spec["n"], spec["n"] * 2]

    async def second(ctx: StepContext, numbers: list[int], spec: dict[str, Any]) -> int:
        return sum(numbers) + len(spec)

    saga = Saga(
        "persist",
        [
            Step("first", run=first, inputs={"spec": Input("spec")}),
            Step("second", run=second, inputs={"numbers": Result("first"), "spec": Input("spec")}),
        ],
    )
    saga_id = new_id()
    outcome = await SagaRunner(store).run(saga, saga_id=saga_id, inputs={"spec": {"n": 5}})
    assert outcome.results == {"first": [5, 10], "second": 16}
    assert seen["ctx"] == (saga_id, "first", 1, {"spec": {"n": 5}})

    row = await saga_record(store, saga_id)
    assert (row.name, row.status, row.inputs, row.error) == (
        "persist",
        "succeeded",
        {"spec": {"n": 5}},
        None,
    )
    assert row.finished_at is not None and row.parent_id is None
    steps = await step_records(store, saga_id)
    assert {n: (s.state, s.result, s.attempts, s.seq) for n, s in steps.items()} == {
        "first": ("succeeded", [5, 10], 1, 1),
        "second": ("succeeded", 16, 1, 2),
    }
    assert all(
        s.started_at and s.finished_at and s.started_at <= s.finished_at for s in steps.values()
    )


async def test_results_are_json_round_tripped(store: SagaStore) -> None:
    async def tuple_maker(ctx: StepContext) -> tuple[int, int]:
        return (1, 2)

    got: list[Any] = []

    async def reader(ctx: StepContext, value: Any) -> None:
        got.append(value)

    saga = Saga(
        "roundtrip",
        [Step("t", run=tuple_maker), Step("r", run=reader, inputs={"value": Result("t")})],
    )
    await SagaRunner(store).run(saga, saga_id=new_id(), inputs={})
    assert got == [[1, 2]]  # what a resumed run would read back from JSONB


async def test_concurrency_limit_is_respected(store: SagaStore) -> None:
    active = 0
    peak = 0

    async def work(ctx: StepContext) -> str:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.05)
        active -= 1
        return ctx.step

    saga = Saga("limit", [Step(f"s{i}", run=work) for i in range(6)], max_concurrency=2)
    outcome = await SagaRunner(store).run(saga, saga_id=new_id(), inputs={})
    assert peak == 2
    assert len(outcome.results) == 6


async def test_default_concurrency_is_one(store: SagaStore) -> None:
    active = 0
    peak = 0

    async def work(ctx: StepContext) -> None:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.01)
        active -= 1

    saga = Saga("serial", [Step(f"s{i}", run=work) for i in range(3)])
    await SagaRunner(store).run(saga, saga_id=new_id(), inputs={})
    assert peak == 1


async def test_independent_steps_really_overlap(store: SagaStore) -> None:
    a_started, b_started = asyncio.Event(), asyncio.Event()

    # Each waits for the other to have started: only possible if they run at the same time.
    async def a(ctx: StepContext) -> str:
        a_started.set()
        await asyncio.wait_for(b_started.wait(), 5)
        return "a"

    async def b(ctx: StepContext) -> str:
        b_started.set()
        await asyncio.wait_for(a_started.wait(), 5)
        return "b"

    saga = Saga("overlap", [Step("a", run=a), Step("b", run=b)], max_concurrency=2)
    outcome = await SagaRunner(store).run(saga, saga_id=new_id(), inputs={})
    assert outcome.results == {"a": "a", "b": "b"}


async def test_fault_injection_fails_the_named_step(store: SagaStore) -> None:
    log = Log()
    saga = Saga("fault", [log.step("a"), log.step("b", ("a",)), log.step("c", ("b",))])
    saga_id = new_id()
    runner = SagaRunner(store, middleware=[FaultInjector.parse({"b"})])
    with pytest.raises(SagaFailed) as info:
        await runner.run(saga, saga_id=saga_id, inputs={})
    assert (info.value.step, info.value.error_type) == ("b", "InjectedFault")
    assert log.of("run") == ["a"]  # b's own code never ran
    steps = await step_records(store, saga_id)
    assert steps["b"].error == {"type": "InjectedFault", "message": "fault injected into step 'b'"}


class Recorder(SagaListener):
    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    async def step_started(self, saga_id: str, step: str, attempt: int) -> None:
        self.events.append(("started", step, attempt))

    async def step_succeeded(self, saga_id: str, step: str, result: Any) -> None:
        self.events.append(("succeeded", step))

    async def step_failed(self, saga_id: str, step: str, error: BaseException) -> None:
        self.events.append(("failed", step, type(error).__name__))

    async def step_undone(self, saga_id: str, step: str, error: BaseException | None) -> None:
        self.events.append(("undone", step, error is None))

    async def saga_finished(self, saga_id: str, status: str, error: dict[str, Any] | None) -> None:
        self.events.append(("finished", status))


async def test_listener_sees_every_transition(store: SagaStore) -> None:
    log = Log()
    recorder = Recorder()
    saga = Saga("hooks", [log.step("a"), log.step("b", ("a",), fail=True)])
    with pytest.raises(SagaFailed):
        await SagaRunner(store, listener=recorder).run(saga, saga_id=new_id(), inputs={})
    assert recorder.events == [
        ("started", "a", 1),
        ("succeeded", "a"),
        ("started", "b", 1),
        ("failed", "b", "ValueError"),
        ("undone", "a", True),
        ("finished", "failed"),
    ]


class Broken(SagaListener):
    async def step_started(self, saga_id: str, step: str, attempt: int) -> None:
        raise RuntimeError("observer down")

    async def step_succeeded(self, saga_id: str, step: str, result: Any) -> None:
        raise RuntimeError("observer down")

    async def saga_finished(self, saga_id: str, status: str, error: dict[str, Any] | None) -> None:
        raise RuntimeError("observer down")


async def test_listener_errors_do_not_change_the_saga(store: SagaStore) -> None:
    log = Log()
    saga = Saga("broken-hooks", [log.step("a"), log.step("b", ("a",))])
    saga_id = new_id()
    outcome = await SagaRunner(store, listener=Broken()).run(saga, saga_id=saga_id, inputs={})
    assert outcome.status == "succeeded"
    assert (await saga_record(store, saga_id)).status == "succeeded"
    assert {s.state for s in (await step_records(store, saga_id)).values()} == {"succeeded"}


async def test_unserializable_result_fails_the_step(store: SagaStore) -> None:
    async def bad(ctx: StepContext) -> object:
        return object()

    saga = Saga("unjson", [Step("bad", run=bad)])
    with pytest.raises(SagaFailed) as info:
        await SagaRunner(store).run(saga, saga_id=new_id(), inputs={})
    assert info.value.error_type == "UnserializableResult"


async def test_definition_and_input_errors_at_run(store: SagaStore) -> None:
    async def use(ctx: StepContext, spec: Any) -> None:
        return None

    saga = Saga("needs-spec", [Step("a", run=use, inputs={"spec": Input("spec")})])
    runner = SagaRunner(store)
    with pytest.raises(SagaDefinitionError, match=r"missing inputs \['spec'\]"):
        await runner.run(saga, saga_id=new_id(), inputs={})
    with pytest.raises(SagaDefinitionError, match="not JSON"):
        await runner.run(saga, saga_id=new_id(), inputs={"spec": object()})

    saga_id = new_id()
    await runner.run(saga, saga_id=saga_id, inputs={"spec": 1})
    with pytest.raises(SagaDefinitionError, match="different inputs"):
        await runner.run(saga, saga_id=saga_id, inputs={"spec": 2})
    other = Saga("other", [Step("a", run=use, inputs={"spec": Input("spec")})])
    with pytest.raises(SagaDefinitionError, match="belongs to saga 'needs-spec'"):
        await runner.run(other, saga_id=saga_id, inputs={"spec": 1})


def test_run_saga_sync_runs_in_its_own_loop(database_url: str) -> None:
    log = Log()
    saga = Saga("sync", [log.step("a"), log.step("b", ("a",))])
    outcome = run_saga_sync(saga, database_url=database_url, saga_id=new_id(), inputs={})
    assert outcome.status == "succeeded"
    assert log.of("run") == ["a", "b"]
