"""Saga definitions are validated when built (no database needed)."""

from __future__ import annotations

from typing import Any

import pytest

from app.saga import Input, Result, Saga, SagaDefinitionError, Step, StepContext


async def noop(ctx: StepContext, **kwargs: Any) -> None:
    return None


def test_unknown_result_input_is_rejected() -> None:
    with pytest.raises(SagaDefinitionError, match=r"'b' depends on unknown step\(s\) \['nope'\]"):
        Saga("s", [Step("a", run=noop), Step("b", run=noop, inputs={"x": Result("nope")})])


def test_unknown_after_is_rejected() -> None:
    with pytest.raises(SagaDefinitionError, match="unknown step"):
        Saga("s", [Step("a", run=noop, after=("ghost",))])


def test_cycle_is_rejected_and_named() -> None:
    steps = [
        Step("a", run=noop, inputs={"x": Result("c")}),
        Step("b", run=noop, inputs={"x": Result("a")}),
        Step("c", run=noop, after=("b",)),
    ]
    with pytest.raises(SagaDefinitionError, match="cycle") as info:
        Saga("s", steps)
    assert "a -> c -> b -> a" in str(info.value)


def test_self_dependency_is_a_cycle() -> None:
    with pytest.raises(SagaDefinitionError, match="cycle a -> a"):
        Saga("s", [Step("a", run=noop, after=("a",))])


def test_duplicate_and_invalid_names() -> None:
    with pytest.raises(SagaDefinitionError, match="duplicate step 'a'"):
        Saga("s", [Step("a", run=noop), Step("a", run=noop)])
    with pytest.raises(SagaDefinitionError, match="invalid step name"):
        Saga("s", [Step("x/y", run=noop)])
    with pytest.raises(SagaDefinitionError, match="max_retries"):
        Saga("s", [Step("a", run=noop, max_retries=-1)])
    with pytest.raises(SagaDefinitionError, match="max_concurrency"):
        Saga("s", [Step("a", run=noop)], max_concurrency=0)


def test_input_sources_must_be_declared_types() -> None:
    with pytest.raises(SagaDefinitionError, match="must be Input or Result"):
        Saga("s", [Step("a", run=noop, inputs={"x": "spec"})])  # type: ignore[dict-item]


def test_required_inputs_and_dependencies() -> None:
    saga = Saga(
        "s",
        [
            Step("a", run=noop, inputs={"spec": Input("spec")}),
            Step("b", run=noop, inputs={"a": Result("a"), "n": Input("n")}, after=("a",)),
        ],
    )
    assert saga.required_inputs == {"spec", "n"}
    assert saga.steps["b"].dependencies == {"a"}
    assert saga.steps["b"].arguments({"n": 3, "spec": {}}, {"a": 1}) == {"a": 1, "n": 3}
