"""Declaring sagas: steps, where their inputs come from, and graph validation."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.saga.errors import SagaDefinitionError

# Step callables take the context plus one keyword argument per declared input.
RunFn = Callable[..., Awaitable[Any]]
UndoFn = Callable[..., Awaitable[None]]
CompensateFn = Callable[..., Awaitable["Retry | None"]]
ExpandFn = Callable[[Any], Sequence["Step"]]


@dataclass(frozen=True)
class Input:
    """A step input taken from the saga's inputs, by key."""

    name: str


@dataclass(frozen=True)
class Result:
    """A step input taken from another step's (JSON round-tripped) result."""

    step: str


@dataclass(frozen=True)
class Retry:
    """Returned by `compensate` to ask for another attempt of the failed step."""

    delay_s: float = 0.0


@dataclass(frozen=True)
class Step:
    """One named unit of work.

    - `run(ctx, **inputs) -> value`: the work; the value must be JSON-serialisable.
    - `compensate(ctx, error, **inputs) -> Retry | None`: this step failed; clean up its own
      partial work, and return `Retry()` to try again (at most `max_retries` times).
    - `undo(ctx, result, **inputs)`: a later step failed; roll back this completed step.
      It gets the stored result, so it also works in a later process after a crash.
    - `after`: names of steps that must complete first without passing their result.
    - `pivot`: the saga's commit point. Once its effect may be committed the saga can no
      longer be undone, so any failure of a pivot step (but `StepRejected`) interrupts the
      saga instead of failing it: the step reruns on resume and must be idempotent.
    - `expand(result) -> [Step, ...]`: dynamic steps. Called with the step's stored result
      when it succeeds *and again on every resume*, so it must be a pure function of the
      result; the steps it returns join the running saga.
    """

    name: str
    run: RunFn
    inputs: Mapping[str, Input | Result] = field(default_factory=dict)
    compensate: CompensateFn | None = None
    undo: UndoFn | None = None
    max_retries: int = 0
    after: Sequence[str] = ()
    expand: ExpandFn | None = None
    pivot: bool = False

    @property
    def dependencies(self) -> set[str]:
        """Names of the steps that must succeed before this one starts."""
        deps = {src.step for src in self.inputs.values() if isinstance(src, Result)}
        return deps | set(self.after)

    def arguments(
        self, saga_inputs: Mapping[str, Any], results: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The keyword arguments for run/compensate/undo."""
        return {
            key: saga_inputs[src.name] if isinstance(src, Input) else results[src.step]
            for key, src in self.inputs.items()
        }


class Saga:
    """A named set of steps whose order follows their dependencies.

    Raises `SagaDefinitionError` for duplicate or malformed names, unknown dependencies and
    cycles. `max_concurrency` bounds how many ready steps run at the same time (default 1:
    parallelism is opt-in because steps such as model training compete for one machine).
    """

    def __init__(self, name: str, steps: Sequence[Step], *, max_concurrency: int = 1) -> None:
        if max_concurrency < 1:
            raise SagaDefinitionError(f"saga {name!r}: max_concurrency must be >= 1")
        self.name = name
        self.max_concurrency = max_concurrency
        self.steps: dict[str, Step] = {}
        add_steps(self.steps, steps, saga_name=name)

    @property
    def required_inputs(self) -> set[str]:
        """Keys of the saga inputs that the steps read."""
        return {
            src.name
            for step in self.steps.values()
            for src in step.inputs.values()
            if isinstance(src, Input)
        }


def add_steps(existing: dict[str, Step], new: Iterable[Step], *, saga_name: str) -> None:
    """Validate `new` against `existing` and add them (all or nothing)."""
    merged = dict(existing)
    for step in new:
        _check_step(step, saga_name)
        if step.name in merged:
            raise SagaDefinitionError(f"saga {saga_name!r}: duplicate step {step.name!r}")
        merged[step.name] = step
    for step in merged.values():
        unknown = sorted(step.dependencies - merged.keys())
        if unknown:
            raise SagaDefinitionError(
                f"saga {saga_name!r}: step {step.name!r} depends on unknown step(s) {unknown}"
            )
    _check_acyclic(merged, saga_name)
    existing.clear()
    existing.update(merged)


def _check_step(step: Step, saga_name: str) -> None:
    # '/' separates parent and child in sub-saga ids.
    if not step.name or "/" in step.name or len(step.name) > 200:
        raise SagaDefinitionError(f"saga {saga_name!r}: invalid step name {step.name!r}")
    if step.max_retries < 0:
        raise SagaDefinitionError(f"saga {saga_name!r}: step {step.name!r}: max_retries < 0")
    for key, src in step.inputs.items():
        if not isinstance(src, Input | Result):
            raise SagaDefinitionError(
                f"saga {saga_name!r}: step {step.name!r} input {key!r} must be Input or Result"
            )


def _check_acyclic(steps: Mapping[str, Step], saga_name: str) -> None:
    visiting: list[str] = []
    done: set[str] = set()

    def visit(name: str) -> None:
        if name in done:
            return
        if name in visiting:
            cycle = [*visiting[visiting.index(name) :], name]
            raise SagaDefinitionError(f"saga {saga_name!r}: dependency cycle {' -> '.join(cycle)}")
        visiting.append(name)
        for dep in sorted(steps[name].dependencies):
            visit(dep)
        visiting.pop()
        done.add(name)

    for name in steps:
        visit(name)


__all__ = ["Input", "Result", "Retry", "Saga", "Step"]
