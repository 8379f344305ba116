"""The `SagaStore` contract, checked on both stores (see `app.saga.store` for the rules)."""

from __future__ import annotations

import pytest

from app.saga import SagaStore
from tests.saga.helpers import new_id, saga_record, states, step_records


async def opened(store: SagaStore, steps: tuple[str, ...] = ("a", "b", "c")) -> str:
    saga_id = new_id()
    await store.open(saga_id, "contract", {"k": [1, 2]}, None)
    await store.add_steps(saga_id, steps)
    return saga_id


async def test_open_creates_once_and_keeps_what_was_stored(store: SagaStore) -> None:
    saga_id = new_id()
    assert await store.load(saga_id) is None
    record = await store.open(saga_id, "contract", {"k": 1}, None)
    assert (record.id, record.name, record.status, record.inputs) == (
        saga_id,
        "contract",
        "running",
        {"k": 1},
    )
    assert (record.error, record.parent_id, record.steps, record.finished_at) == (
        None,
        None,
        {},
        None,
    )
    again = await store.open(saga_id, "other", {"k": 2}, None)
    assert (again.name, again.inputs) == ("contract", {"k": 1})

    child = await store.open(f"{saga_id}/a", "child", {}, saga_id)
    assert child.parent_id == saga_id


async def test_open_resumes_a_halted_saga_only(store: SagaStore) -> None:
    saga_id = await opened(store)
    await store.saga_finished(saga_id, "halted", {"halted_by": "a", "reason": "wait"})
    halted = await saga_record(store, saga_id)
    assert (halted.status, halted.error, halted.finished_at) == (
        "halted",
        {"halted_by": "a", "reason": "wait"},
        None,
    )
    resumed = await store.open(saga_id, "contract", {}, None)
    assert (resumed.status, resumed.error) == ("running", None)

    await store.saga_finished(saga_id, "succeeded", None)
    assert (await store.open(saga_id, "contract", {}, None)).status == "succeeded"


async def test_add_steps_leaves_known_steps_alone(store: SagaStore) -> None:
    saga_id = await opened(store, ("a",))
    await store.step_running(saga_id, "a", 1)
    await store.add_steps(saga_id, ["a", "b"])
    await store.add_steps(saga_id, [])
    steps = await step_records(store, saga_id)
    assert {n: (s.state, s.attempts, s.seq) for n, s in steps.items()} == {
        "a": ("running", 1, None),
        "b": ("pending", 0, None),
    }


async def test_a_step_runs_then_succeeds(store: SagaStore) -> None:
    saga_id = await opened(store)
    await store.step_running(saga_id, "a", 1)
    running = (await step_records(store, saga_id))["a"]
    assert (running.state, running.attempts, running.finished_at) == ("running", 1, None)
    assert running.started_at is not None

    assert await store.step_succeeded(saga_id, "a", (1, {"x": None})) == 1
    done = (await step_records(store, saga_id))["a"]
    assert (done.state, done.error, done.seq) == ("succeeded", None, 1)
    assert done.result == [1, {"x": None}]  # read back as JSON: the tuple is a list
    assert done.started_at is not None and done.finished_at is not None
    assert done.started_at <= done.finished_at


async def test_seq_counts_completions_per_saga(store: SagaStore) -> None:
    saga_id, other = await opened(store), await opened(store)
    for name in ("c", "a"):
        await store.step_running(saga_id, name, 1)
    assert await store.step_succeeded(saga_id, "c", "c") == 1
    assert await store.step_succeeded(other, "b", "b") == 1
    assert await store.step_succeeded(saga_id, "a", "a") == 2
    assert await store.step_succeeded(saga_id, "b", "b") == 3
    steps = await step_records(store, saga_id)
    assert sorted(steps, key=lambda n: steps[n].seq or 0, reverse=True) == ["b", "a", "c"]


async def test_step_ended_keeps_the_error_unless_given_one(store: SagaStore) -> None:
    saga_id = await opened(store)
    error = {"type": "ValueError", "message": "broke"}
    await store.step_running(saga_id, "a", 2)
    await store.step_ended(saga_id, "a", "compensated", error)
    a = (await step_records(store, saga_id))["a"]
    assert (a.state, a.error, a.attempts) == ("compensated", error, 2)
    assert a.finished_at is not None

    await store.step_succeeded(saga_id, "b", 1)
    finished = (await step_records(store, saga_id))["b"].finished_at
    await store.step_ended(saga_id, "b", "undone", None)
    b = (await step_records(store, saga_id))["b"]
    assert (b.state, b.error, b.result, b.seq, b.finished_at) == ("undone", None, 1, 1, finished)
    await store.step_ended(saga_id, "b", "undo_failed", error)
    await store.step_ended(saga_id, "b", "undone", None)
    b = (await step_records(store, saga_id))["b"]
    assert (b.state, b.error) == ("undone", error)


async def test_step_pending_stores_why(store: SagaStore) -> None:
    saga_id = await opened(store)
    await store.step_running(saga_id, "a", 1)
    await store.step_pending(saga_id, "a", {"type": "Halt", "message": "later"})
    a = (await step_records(store, saga_id))["a"]
    assert (a.state, a.error, a.attempts) == ("pending", {"type": "Halt", "message": "later"}, 1)


async def test_failing_then_failed(store: SagaStore) -> None:
    saga_id = await opened(store)
    await store.saga_failing(saga_id, {"step": "a", "type": "ValueError", "message": "x"})
    failing = await saga_record(store, saga_id)
    assert (failing.status, failing.error, failing.finished_at) == (
        "running",
        {"step": "a", "type": "ValueError", "message": "x"},
        None,
    )
    error = {"step": "a", "type": "ValueError", "message": "x", "undo": []}
    await store.saga_finished(saga_id, "failed", error)
    failed = await saga_record(store, saga_id)
    assert (failed.status, failed.error) == ("failed", error)
    assert failed.finished_at is not None


async def test_succeeded_clears_the_error(store: SagaStore) -> None:
    saga_id = await opened(store)
    await store.saga_finished(saga_id, "halted", {"halted_by": "a", "reason": ""})
    await store.open(saga_id, "contract", {}, None)
    await store.saga_finished(saga_id, "succeeded", None)
    done = await saga_record(store, saga_id)
    assert (done.status, done.error) == ("succeeded", None)
    assert done.finished_at is not None


@pytest.mark.parametrize("state", ["pending", "running", "succeeded", "lost"])
async def test_step_ended_rejects_other_states(store: SagaStore, state: str) -> None:
    saga_id = await opened(store)
    with pytest.raises(ValueError, match="state"):
        await store.step_ended(saga_id, "a", state, None)
    assert (await states(store, saga_id))["a"] == "pending"


@pytest.mark.parametrize("status", ["running", "done"])
async def test_saga_finished_rejects_other_statuses(store: SagaStore, status: str) -> None:
    saga_id = await opened(store)
    with pytest.raises(ValueError, match="state"):
        await store.saga_finished(saga_id, status, None)
    assert (await saga_record(store, saga_id)).status == "running"


async def test_values_are_stored_as_json_copies(store: SagaStore) -> None:
    saga_id = new_id()
    inputs = {"spec": {"layers": [1, 2]}}
    record = await store.open(saga_id, "contract", inputs, None)
    await store.add_steps(saga_id, ["a"])
    result = {"scores": [0.5]}
    await store.step_succeeded(saga_id, "a", result)

    inputs["spec"]["layers"].append(3)  # the caller's objects...
    result["scores"].append(1.0)
    record.inputs["spec"] = None  # ...and a record read earlier
    loaded = await saga_record(store, saga_id)
    loaded.steps["a"].result["scores"].clear()
    loaded.steps["a"].state = "undone"

    again = await saga_record(store, saga_id)
    assert again.inputs == {"spec": {"layers": [1, 2]}}
    assert (again.steps["a"].state, again.steps["a"].result) == ("succeeded", {"scores": [0.5]})
