"""The saga engine's exceptions: one base, `SagaError`, and the control signal `Halt`.

How a caller reads them:
- `SagaFailed`: the saga failed for good; completed steps were undone. Do not retry.
- `SagaDefinitionError`: a programming error in the saga definition or its inputs. Do not retry.
- `StepInterrupted`, or any exception that is not a `SagaError` (a lost database connection
  while recording state, a cancelled task): the saga was interrupted, its state is intact;
  run it again later with the same id to resume.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

UndoStatus = Literal["undone", "undo_failed", "no_undo"]


@dataclass(frozen=True)
class UndoOutcome:
    """What happened to one completed step when its saga failed."""

    step: str
    status: UndoStatus
    error: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.step, "status": self.status, "error": self.error}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UndoOutcome:
        return cls(step=data["step"], status=data["status"], error=data.get("error"))


class SagaError(Exception):
    """Base of every error the saga engine raises on purpose."""


class SagaDefinitionError(SagaError, ValueError):
    """The saga definition is invalid (unknown input, cycle, duplicate name, bad inputs)."""


class InjectedFault(SagaError):
    """Raised by `FaultInjector` where its fault plan says (see `app.saga.faults`)."""

    def __init__(self, step: str, point: str = "before") -> None:
        where = "" if point == "before" else f" ({point})"
        super().__init__(f"fault injected into step {step!r}{where}")
        self.step = step
        self.point = point


class StepCancelled(SagaError):
    """A step running concurrently was cancelled because another step failed."""


class StepInterrupted(SagaError):
    """Raise from a step to stop the saga without failing it; the step reruns on resume.

    Use it for transient trouble (a dependency is down): the runner leaves the saga
    'running' and re-raises, so the caller's queue retries the job later.
    """


class StepSuspended(StepInterrupted):
    """Raise from a step that waits on work done elsewhere (trials as queue jobs).

    Like an interruption the saga stays 'running' and the step reruns on resume, but
    nothing is wrong: the caller ends its job, and whoever finishes the awaited work resumes
    the saga (for the run saga: the trial whose end finds nothing more to queue defers the
    run's next job).
    """


class UndoIncomplete(StepInterrupted):
    """Some undo failed and this is not the caller's last attempt: the saga stays failing.

    Its failure is stored, and the next run retries the undos that did not succeed.
    """


class StepRejected(SagaError):
    """Raise from a pivot step to say its effect was not applied and never will be.

    A pivot's other failures are interruptions (its effect may be committed); this one fails
    the saga and undoes the completed steps, like the failure of an ordinary step.
    """


class UnserializableResult(SagaError):
    """A step returned a value that cannot be stored as JSON."""


class SagaFailed(SagaError):
    """The saga failed for good: `step` failed and completed steps were undone.

    `step` is None when the saga was cancelled from outside (`SagaRunner.cancel`).
    `undo` lists every completed step, most recent first, with what its undo did.
    """

    def __init__(
        self,
        saga_id: str,
        step: str | None,
        error_type: str,
        message: str,
        undo: tuple[UndoOutcome, ...] = (),
    ) -> None:
        super().__init__(f"saga {saga_id!r} failed at step {step!r}: {error_type}: {message}")
        self.saga_id = saga_id
        self.step = step
        self.error_type = error_type
        self.message = message
        self.undo = undo

    @property
    def undo_failed(self) -> bool:
        """True when some undo itself failed (manual cleanup may be needed)."""
        return any(o.status == "undo_failed" for o in self.undo)

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "type": self.error_type,
            "message": self.message,
            "undo": [o.to_dict() for o in self.undo],
        }

    @classmethod
    def from_dict(cls, saga_id: str, data: dict[str, Any]) -> SagaFailed:
        return cls(
            saga_id,
            data.get("step"),
            data.get("type", "Error"),
            data.get("message", ""),
            tuple(UndoOutcome.from_dict(o) for o in data.get("undo", [])),
        )


class Halt(Exception):  # a control signal, not an error
    """Raise (or return) from a step to halt the saga on purpose, e.g. to wait for other jobs.

    The step goes back to 'pending', the saga is stored as 'halted' and `run` returns a
    halted outcome; running the saga again reruns the halting step and continues.
    """

    def __init__(self, reason: str = "") -> None:
        super().__init__(reason)
        self.reason = reason


def describe(error: BaseException) -> dict[str, Any]:
    """The JSON form of an exception stored in the database."""
    return {"type": type(error).__name__, "message": str(error)}
