"""Ask/tell: a strategy only chooses what to train next, from the run's trial history.

The shape follows keras-tuner's ``Oracle`` (``populate_space`` answers a trial to run or
"stop"/"idle"; ``base_tuner`` is the one loop that trains) and Optuna's ``BaseSampler``
(a sampler reads the study's trials and suggests; ``_optimize`` runs them). Here:

* `Strategy.ask(history)` answers a `NewTrial` (a new candidate, or a continuation of a
  finished trial to more epochs: a promotion), `Wait` (nothing to start until a running
  trial reports) or `Done`. It never trains, writes SQL or saves files, and it keeps no
  state that the history does not hold: resume after a crash is "ask again from the table".
* The planner (`app.nas.planner`) is the one loop around it: numbering, the parameter cap,
  failure accounting and how many trials may run at once. The serial engine
  (`app.nas.engine`) and the distributed coordinator (`app.pipeline.coordinator`) both
  drive strategies through it.

To add a strategy: one new module with a `Strategy` subclass, registered in
`app.nas.strategies.STRATEGIES`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import ClassVar, Literal

from app.nas.limits import ParamsCap
from app.nas.space import Architecture, Head
from app.nas.spec import NasSpec

__all__ = [
    "Decision",
    "Done",
    "NewTrial",
    "SearchFailed",
    "SearchSetup",
    "Strategy",
    "TrialState",
    "TrialView",
    "Wait",
]

TrialState = Literal["queued", "running", "completed", "pruned", "failed", "cancelled"]
ACTIVE_STATES: frozenset[str] = frozenset({"queued", "running"})


class SearchFailed(RuntimeError):
    """More than ``parameters.max_failed_trials`` trials failed, or no architecture fits."""


@dataclass(frozen=True)
class TrialView:
    """What a strategy sees of one trial (a row of the trials table, or the serial loop's).

    ``epochs`` is the total number of epochs the trial trains the network to (its fidelity);
    a continuation starts at ``initial_epoch`` from ``parent``'s saved model. ``score`` is
    the best objective value it reached (None until finished, or if it failed).
    ``objectives`` holds every measured objective (for multi-objective strategies).
    """

    number: int
    status: TrialState
    architecture: Architecture
    epochs: int
    initial_epoch: int = 0
    parent: int | None = None
    score: float | None = None
    skipped: bool = False
    objectives: Mapping[str, float] = field(default_factory=dict)
    error: str | None = None
    #: A trial of an earlier run (``parameters.warm_start_run_id``): history to learn from,
    #: not part of this run (no budget, no checkpoint to continue); its number is negative.
    prior: bool = False

    @cached_property
    def fingerprint(self) -> str:
        return self.architecture.fingerprint()

    @property
    def active(self) -> bool:
        """Queued or running: its outcome is still to come."""
        return self.status in ACTIVE_STATES

    @property
    def finished(self) -> bool:
        return self.status in ("completed", "pruned", "failed")

    @property
    def budgeted(self) -> bool:
        """Uses up ``budget.max_trials``: a new candidate of this run that was not skipped."""
        return self.is_new and not self.skipped and not self.prior

    @property
    def is_new(self) -> bool:
        """A candidate of its own (not a continuation of another trial)."""
        return self.parent is None


@dataclass(frozen=True)
class NewTrial:
    """Train ``architecture`` to ``epochs`` total epochs.

    With ``parent``, continue that finished trial's saved model from ``initial_epoch`` (its
    epochs) instead of building a fresh one. ``checkpoint``: save the trained model so a
    later trial can continue it.
    """

    architecture: Architecture
    epochs: int
    parent: int | None = None
    initial_epoch: int = 0
    checkpoint: bool = False


@dataclass(frozen=True)
class Wait:
    """Nothing to start until an active trial finishes."""


@dataclass(frozen=True)
class Done:
    """The search is over (``completed``: budget used; ``exhausted``: nothing new to try)."""

    status: Literal["completed", "exhausted"] = "completed"
    reason: str = ""


Decision = NewTrial | Wait | Done


@dataclass(frozen=True)
class SearchSetup:
    """What a strategy is built with: the spec and the facts of the run's data."""

    spec: NasSpec
    input_dim: int
    head: Head
    cap: ParamsCap

    @property
    def direction(self) -> Literal["max", "min"]:
        return self.spec.direction

    def better(self, a: float | None, b: float | None) -> bool:
        """``a`` is a better score than ``b`` (None is worse than anything)."""
        if a is None:
            return False
        if b is None:
            return True
        return a > b if self.direction == "max" else a < b

    def sort_key(self, score: float | None) -> float:
        """Ascending key: best first."""
        if score is None:
            return float("inf")
        return -score if self.direction == "max" else score


class Strategy(ABC):
    """A search strategy: chooses, from the history, what to train next."""

    name: ClassVar[str]

    def __init__(self, setup: SearchSetup) -> None:
        self.setup = setup

    @property
    def spec(self) -> NasSpec:
        return self.setup.spec

    @abstractmethod
    def ask(self, history: Sequence[TrialView]) -> Decision:
        """The next decision for ``history`` (every trial of the run, by number).

        Must not answer `Wait` when no trial is active, and should not answer it while a
        new candidate or a promotion could start.
        """
