"""Step middleware: code wrapped around every step call, installed on a `SagaRunner`.

Listeners observe; middleware takes part. Each hook gets a `call` to the next layer (the
step itself, innermost) and may run code before or after it, replace its value or raise
instead of calling it. An exception from `around_run` is the step's own exception and one
from `around_undo` is the undo's; one from `before_start` comes from the engine itself,
outside any step: it interrupts the saga with nothing recorded for that attempt. Fault
injection (`app.saga.faults.FaultInjector`) is built on these hooks.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.saga.context import StepContext
    from app.saga.definition import Step

RunCall = Callable[[], Awaitable[Any]]
UndoCall = Callable[[], Awaitable[None]]


class StepMiddleware:
    """Subclass and override the hooks you need; the defaults just pass the call on."""

    async def before_start(self, saga_id: str, step: str, attempt: int) -> None:
        """The engine is about to start `attempt` (1, 2, ...) of `step`; nothing is stored yet."""

    async def around_run(self, step: Step, ctx: StepContext, call: RunCall) -> Any:
        """Wraps one attempt of the step's `run`; returns what the step returns."""
        return await call()

    async def around_undo(
        self, step: Step, ctx: StepContext, call: UndoCall, *, retry: bool
    ) -> None:
        """Wraps the step's `undo`; `retry` is True when an earlier undo of it failed."""
        await call()


class MiddlewareChain(StepMiddleware):
    """Several middlewares as one: the first listed is the outermost."""

    def __init__(self, middleware: Sequence[StepMiddleware] = ()) -> None:
        self.middleware = tuple(middleware)

    async def before_start(self, saga_id: str, step: str, attempt: int) -> None:
        for layer in self.middleware:
            await layer.before_start(saga_id, step, attempt)

    async def around_run(self, step: Step, ctx: StepContext, call: RunCall) -> Any:
        for layer in reversed(self.middleware):
            call = _wrap_run(layer, step, ctx, call)
        return await call()

    async def around_undo(
        self, step: Step, ctx: StepContext, call: UndoCall, *, retry: bool
    ) -> None:
        for layer in reversed(self.middleware):
            call = _wrap_undo(layer, step, ctx, call, retry)
        await call()


def _wrap_run(layer: StepMiddleware, step: Step, ctx: StepContext, call: RunCall) -> RunCall:
    return lambda: layer.around_run(step, ctx, call)


def _wrap_undo(
    layer: StepMiddleware, step: Step, ctx: StepContext, call: UndoCall, retry: bool
) -> UndoCall:
    return lambda: layer.around_undo(step, ctx, call, retry=retry)
