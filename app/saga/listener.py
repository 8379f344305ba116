"""Observer hooks: the service publishes events and shows the current step through them."""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import Any

logger = logging.getLogger(__name__)


class SagaListener:
    """Subclass and override what you need; every hook is awaited after the state is stored.

    Errors raised by a hook are logged and ignored: observers cannot change a saga's outcome.
    """

    async def step_started(self, saga_id: str, step: str, attempt: int) -> None:
        """A step attempt is starting."""

    async def step_succeeded(self, saga_id: str, step: str, result: Any) -> None:
        """A step completed and its result is stored."""

    async def step_failed(self, saga_id: str, step: str, error: BaseException) -> None:
        """A step attempt raised (compensation and a possible retry follow)."""

    async def step_undone(self, saga_id: str, step: str, error: BaseException | None) -> None:
        """A completed step was rolled back; `error` is set when its undo failed."""

    async def saga_finished(self, saga_id: str, status: str, error: dict[str, Any] | None) -> None:
        """The saga ended: status 'succeeded', 'halted' or 'failed' (with the stored error)."""


class SafeListener(SagaListener):
    """Calls a listener's hooks, logging and swallowing the exceptions they raise."""

    def __init__(self, listener: SagaListener | None) -> None:
        self._listener = listener or SagaListener()

    async def step_started(self, saga_id: str, step: str, attempt: int) -> None:
        await _guarded("step_started", self._listener.step_started(saga_id, step, attempt))

    async def step_succeeded(self, saga_id: str, step: str, result: Any) -> None:
        await _guarded("step_succeeded", self._listener.step_succeeded(saga_id, step, result))

    async def step_failed(self, saga_id: str, step: str, error: BaseException) -> None:
        await _guarded("step_failed", self._listener.step_failed(saga_id, step, error))

    async def step_undone(self, saga_id: str, step: str, error: BaseException | None) -> None:
        await _guarded("step_undone", self._listener.step_undone(saga_id, step, error))

    async def saga_finished(self, saga_id: str, status: str, error: dict[str, Any] | None) -> None:
        await _guarded("saga_finished", self._listener.saga_finished(saga_id, status, error))


async def _guarded(hook: str, call: Awaitable[None]) -> None:
    try:
        await call
    except Exception:
        logger.exception("saga listener hook %s failed; ignored", hook)
