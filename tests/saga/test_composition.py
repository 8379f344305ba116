"""Sub-sagas and dynamic steps."""

from __future__ import annotations

from typing import Any

import pytest

from app.saga import (
    Halt,
    Input,
    Result,
    Saga,
    SagaFailed,
    SagaRunner,
    SagaStore,
    Step,
    StepContext,
    sub_saga_step,
)
from tests.saga.helpers import Log, SimulatedCrash, new_id, saga_record, states, step_records


async def test_sub_saga_failure_undoes_child_then_parent(store: SagaStore) -> None:
    log = Log()
    child = Saga("child", [log.step("c1"), log.step("c2", ("c1",), fail=True)])

    async def run_child(ctx: StepContext, p1: Any) -> Any:
        log.calls.append(("run", "p2"))
        return (await ctx.run_saga(child, {"from": "parent"})).results

    parent = Saga(
        "parent",
        [
            log.step("p1"),
            Step("p2", run=run_child, inputs={"p1": Result("p1")}),
            log.step("p3", ("p2",)),
        ],
    )
    saga_id = new_id()
    with pytest.raises(SagaFailed) as info:
        await SagaRunner(store).run(parent, saga_id=saga_id, inputs={})
    assert log.of("undo") == ["c1", "p1"]  # the child's own undo first, then the parent's
    assert (info.value.step, info.value.error_type) == ("p2", "SagaFailed")
    assert "c2" in info.value.message

    child_id = f"{saga_id}/p2"
    child_row = await saga_record(store, child_id)
    assert (child_row.parent_id, child_row.status, child_row.inputs) == (
        saga_id,
        "failed",
        {"from": "parent"},
    )
    assert await states(store, child_id) == {"c1": "undone", "c2": "failed"}
    assert await states(store, saga_id) == {
        "p1": "undone",
        "p2": "failed",
        "p3": "pending",
    }


async def test_sub_saga_step_is_undone_when_a_later_parent_step_fails(
    store: SagaStore,
) -> None:
    log = Log()

    async def c1(ctx: StepContext, size: int) -> int:
        log.calls.append(("run", "c1"))
        return size * 2

    async def undo_c1(ctx: StepContext, result: int, size: int) -> None:
        log.calls.append(("undo", f"c1:{result}:{size}"))

    child = Saga("child2", [Step("c1", run=c1, undo=undo_c1, inputs={"size": Input("size")})])
    parent = Saga(
        "parent2",
        [
            log.step("p1", value=21),
            sub_saga_step("train", child, {"size": Result("p1")}),
            log.step("boom", ("train",), fail=True),
        ],
    )
    saga_id = new_id()
    with pytest.raises(SagaFailed) as info:
        await SagaRunner(store).run(parent, saga_id=saga_id, inputs={})
    assert log.of("undo") == ["c1:42:21", "p1"]
    assert [(o.step, o.status) for o in info.value.undo] == [
        ("train", "undone"),
        ("p1", "undone"),
    ]
    child_row = await saga_record(store, f"{saga_id}/train")
    assert child_row.status == "failed"
    assert child_row.error is not None and child_row.error["type"] == "SagaCancelled"
    assert (await step_records(store, saga_id))["train"].result == {"c1": 42}


async def test_resumed_parent_does_not_rerun_finished_sub_saga(store: SagaStore) -> None:
    log = Log()
    child = Saga("child3", [log.step("c1")])
    crash = {"after": True}

    async def after(ctx: StepContext, sub: Any) -> str:
        if crash["after"]:
            crash["after"] = False
            raise SimulatedCrash("after")
        return "done"

    parent = Saga(
        "parent3",
        [sub_saga_step("sub", child), Step("after", run=after, inputs={"sub": Result("sub")})],
    )
    saga_id = new_id()
    with pytest.raises(SimulatedCrash):
        await SagaRunner(store).run(parent, saga_id=saga_id, inputs={})
    outcome = await SagaRunner(store).run(parent, saga_id=saga_id)
    assert outcome.results == {"sub": {"c1": {"step": "c1", "inputs": {}}}, "after": "done"}
    assert log.count("run") == {"c1": 1}


def trial_steps(log: Log, crash_once: set[str]) -> Saga:
    """'plan' decides how many trials to run; expand() turns its result into steps."""

    async def plan(ctx: StepContext, n: int) -> dict[str, int]:
        log.calls.append(("run", "plan"))
        return {"trials": n}

    def make_trial(i: int) -> Step:
        async def trial(ctx: StepContext, plan: dict[str, int]) -> int:
            log.calls.append(("run", ctx.step))
            if ctx.step in crash_once:
                crash_once.discard(ctx.step)
                raise SimulatedCrash(ctx.step)
            return i * 10

        return Step(f"trial_{i}", run=trial, inputs={"plan": Result("plan")})

    async def collect(ctx: StepContext, **scores: int) -> int:
        log.calls.append(("run", "collect"))
        return sum(scores.values())

    def expand(result: dict[str, int]) -> list[Step]:
        trials = [make_trial(i) for i in range(result["trials"])]
        inputs: dict[str, Input | Result] = {t.name: Result(t.name) for t in trials}
        return [*trials, Step("collect", run=collect, inputs=inputs)]

    return Saga(
        "dynamic",
        [Step("plan", run=plan, inputs={"n": Input("n")}, expand=expand)],
        max_concurrency=1,
    )


async def test_dynamic_steps_run_and_persist(store: SagaStore) -> None:
    log = Log()
    saga_id = new_id()
    outcome = await SagaRunner(store).run(trial_steps(log, set()), saga_id=saga_id, inputs={"n": 3})
    assert outcome.results["collect"] == 0 + 10 + 20
    assert log.of("run") == ["plan", "trial_0", "trial_1", "trial_2", "collect"]
    rows = await step_records(store, saga_id)
    assert {n: (r.state, r.result) for n, r in rows.items()} == {
        "plan": ("succeeded", {"trials": 3}),
        "trial_0": ("succeeded", 0),
        "trial_1": ("succeeded", 10),
        "trial_2": ("succeeded", 20),
        "collect": ("succeeded", 30),
    }


async def test_dynamic_steps_are_recreated_on_resume(store: SagaStore) -> None:
    log = Log()
    saga_id = new_id()
    crash = {"trial_1"}
    with pytest.raises(SimulatedCrash):
        await SagaRunner(store).run(trial_steps(log, crash), saga_id=saga_id, inputs={"n": 2})
    assert await states(store, saga_id) == {
        "plan": "succeeded",
        "trial_0": "succeeded",
        "trial_1": "running",
        "collect": "pending",
    }
    outcome = await SagaRunner(store).run(trial_steps(log, crash), saga_id=saga_id)
    assert outcome.results["collect"] == 10
    assert log.count("run") == {"plan": 1, "trial_0": 1, "trial_1": 2, "collect": 1}


async def test_invalid_expansion_fails_the_expanding_step(store: SagaStore) -> None:
    async def plan(ctx: StepContext) -> int:
        return 1

    async def noop(ctx: StepContext) -> None:
        return None

    def expand(result: int) -> list[Step]:
        return [Step("plan", run=noop)]  # duplicate name

    saga = Saga("bad-dynamic", [Step("plan", run=plan, expand=expand)])
    with pytest.raises(SagaFailed) as info:
        await SagaRunner(store).run(saga, saga_id=new_id(), inputs={})
    assert (info.value.step, info.value.error_type) == ("plan", "SagaDefinitionError")
    assert "duplicate step 'plan'" in info.value.message


async def test_halted_sub_saga_halts_parent_and_resumes(store: SagaStore) -> None:
    log = Log()
    ready = {"value": False}

    async def wait(ctx: StepContext) -> str:
        log.calls.append(("run", "wait"))
        if not ready["value"]:
            raise Halt("not yet")
        return "ready"

    child = Saga("child4", [log.step("c1"), Step("wait", run=wait, after=("c1",))])
    parent = Saga("parent4", [log.step("p1"), sub_saga_step("sub", child, after=("p1",))])
    saga_id = new_id()
    runner = SagaRunner(store)
    outcome = await runner.run(parent, saga_id=saga_id, inputs={})
    assert (outcome.status, outcome.halted_by) == ("halted", "sub")
    assert (await saga_record(store, f"{saga_id}/sub")).status == "halted"

    ready["value"] = True
    outcome = await runner.run(parent, saga_id=saga_id)
    assert outcome.status == "succeeded"
    assert outcome.results["sub"]["wait"] == "ready"
    assert log.count("run") == {"p1": 1, "c1": 1, "wait": 2}
