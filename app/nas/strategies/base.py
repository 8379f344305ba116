"""The `Strategy` interface and the `SearchContext` strategies drive.

A strategy decides *which* candidates to train and *for how many epochs*; the context does
the rest: numbering unique candidates from the seeded sequence, building/compiling/fitting,
reporting, recording, failure accounting and keeping the best model.
"""

from __future__ import annotations

import time
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from app.nas.artifacts import ArtifactStore
from app.nas.backend import clear_backend_caches, keras
from app.nas.builder import build_model
from app.nas.datasets import Dataset
from app.nas.records import ProgressReporter, SearchStatus, TrialRecord, TrialStart, TrialStatus
from app.nas.space import Architecture, Head, architectures
from app.nas.spec import NasSpec
from app.nas.trainer import Cancelled, FitOutcome, TrialFailed, compile_candidate, fit_candidate

__all__ = ["Candidate", "SearchContext", "SearchFailed", "Strategy"]

#: Consecutive duplicate draws after which the space counts as exhausted. Sampling is cheap
#: (well under a millisecond), so this is generous enough not to give up on large spaces.
MAX_CONSECUTIVE_DUPLICATES = 500


class SearchFailed(RuntimeError):
    """More than ``parameters.max_failed_trials`` trials failed."""


@dataclass(frozen=True)
class Candidate:
    """A unique architecture with its fixed trial number (1-based)."""

    number: int
    architecture: Architecture


@dataclass
class SearchContext:
    """Shared machinery for one search attempt."""

    spec: NasSpec
    data: Dataset
    head: Head
    store: ArtifactStore
    reporter: ProgressReporter | None = None
    should_stop: Callable[[], bool] | None = None
    deadline: float | None = None  # time.monotonic() value
    reused: dict[int, TrialRecord] = field(default_factory=dict)
    records: dict[int, TrialRecord] = field(default_factory=dict)
    failures: int = 0
    best: TrialRecord | None = None
    _sequence: Any = None
    _seen: set[str] = field(default_factory=set)
    _drawn: list[Candidate] = field(default_factory=list)
    exhausted: bool = False

    # -- candidates ---------------------------------------------------------------------
    def candidates(self, count: int) -> list[Candidate]:
        """The first ``count`` unique candidates of the seeded sequence (fewer if exhausted).

        Duplicates (same fingerprint) are skipped, so no architecture is trained twice;
        deterministic for a given spec, which is what makes resume by trial number work.
        """
        if self._sequence is None:
            self._sequence = architectures(
                self.spec.search_space,
                self.spec.parameters.seed,
                input_dim=self.data.input_dim,
                head=self.head,
            )
        duplicates = 0
        while len(self._drawn) < count and not self.exhausted:
            arch = next(self._sequence)
            fp = arch.fingerprint()
            if fp in self._seen:
                duplicates += 1
                self.exhausted = duplicates >= MAX_CONSECUTIVE_DUPLICATES
                continue
            duplicates = 0
            self._seen.add(fp)
            candidate = Candidate(len(self._drawn) + 1, arch)
            old = self.reused.get(candidate.number)
            if old is not None and old.fingerprint and old.fingerprint != fp:
                raise ValueError(
                    f"completed trial {candidate.number} does not match the architecture this "
                    "spec generates for it; resume needs the same spec and seed"
                )
            self._drawn.append(candidate)
        return self._drawn[:count]

    # -- control ------------------------------------------------------------------------
    def timed_out(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def stop_requested(self) -> bool:
        """True when the caller cancelled or the time budget ran out."""
        return self.timed_out() or bool(self.should_stop and self.should_stop())

    def check_stop(self) -> None:
        if self.stop_requested():
            raise Cancelled("stop requested")

    # -- training -----------------------------------------------------------------------
    def trial_start(self, candidate: Candidate, model: keras.Model) -> None:
        if self.reporter is not None:
            arch = candidate.architecture
            self.reporter.trial_started(
                TrialStart(
                    number=candidate.number,
                    architecture=arch.to_dict(),
                    hyperparameters=arch.hyperparameters(),
                    params_count=int(model.count_params()),
                )
            )

    def train(
        self,
        candidate: Candidate,
        epochs: int,
        *,
        outcome: FitOutcome | None = None,
        checkpoint: bool = False,
    ) -> tuple[keras.Model, FitOutcome]:
        """Train ``candidate`` to ``epochs`` total epochs.

        With a previous ``outcome`` the model is reloaded from its checkpoint (successive
        halving); ``checkpoint=True`` saves it afterwards for a later rung.
        Raises `TrialFailed` or `Cancelled`.
        """
        arch = candidate.architecture
        path = self.store.checkpoint_path(candidate.number)
        try:
            if outcome is None:
                model = build_model(arch, seed=self.spec.parameters.seed + candidate.number)
                compile_candidate(
                    model, learning_rate=arch.learning_rate, loss=arch.loss, task=self.data.task
                )
                self.trial_start(candidate, model)
            else:
                model = keras.saving.load_model(path)
        except Exception as exc:
            raise TrialFailed(f"could not build the model: {type(exc).__name__}: {exc}") from exc

        def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
            if self.reporter is not None:
                self.reporter.epoch_finished(candidate.number, epoch, metrics)

        params = self.spec.parameters
        outcome = fit_candidate(
            model,
            self.data,
            epochs=epochs,
            batch_size=params.batch_size,
            objective=self.spec.resolved_objective,
            direction=self.spec.direction,
            patience=params.early_stopping_patience,
            outcome=outcome,
            on_epoch=on_epoch,
            should_stop=self.stop_requested,
        )
        if checkpoint:
            model.save(path)
        return model, outcome

    def release(self) -> None:
        """Free the memory of the models built so far (between trials).

        ``clear_session(free_memory=True)`` already runs ``gc.collect()`` (about 0.2 s with
        torch loaded), so we do not collect a second time.
        """
        clear_backend_caches()

    # -- records ------------------------------------------------------------------------
    def record(
        self,
        candidate: Candidate,
        status: TrialStatus,
        *,
        outcome: FitOutcome | None,
        params_count: int,
        duration_s: float,
        error: str | None = None,
        model: keras.Model | None = None,
    ) -> TrialRecord:
        """Finalise a trial: store, report, keep the best model, count failures."""
        arch = candidate.architecture
        rec = TrialRecord(
            number=candidate.number,
            status=status,
            architecture=arch.to_dict(),
            hyperparameters=arch.hyperparameters(),
            params_count=params_count,
            score=outcome.score if outcome and status != "failed" else None,
            best_epoch=outcome.best_epoch if outcome and status != "failed" else None,
            epochs_run=outcome.epochs_run if outcome else 0,
            history=list(outcome.history) if outcome else [],
            error=error,
            duration_s=round(duration_s, 4),
            fingerprint=arch.fingerprint(),
        )
        self.add(rec)
        if status == "completed" and model is not None and self._is_best(rec):
            self.store.save_best(model, rec)
            self.best = rec
        self.store.write_history(self.records.values())
        if self.reporter is not None:
            self.reporter.trial_finished(rec)
        self._count_failure(rec)
        return rec

    def reuse(self, number: int) -> bool:
        """Take over the record of an earlier attempt for trial ``number`` if there is one."""
        old = self.reused.get(number)
        if old is None:
            return False
        self.add(old)
        if old.status == "completed" and self._is_best(old):
            self.best = old
        self._count_failure(old)
        return True

    def add(self, rec: TrialRecord) -> None:
        self.records[rec.number] = rec

    def failed(self, candidate: Candidate, exc: BaseException, started: float, **kw: Any) -> None:
        """Record a failed trial (the search goes on until too many fail)."""
        message = f"{type(exc).__name__}: {exc}"
        if not isinstance(exc, TrialFailed):
            message += "\n" + traceback.format_exc(limit=3)
        self.record(
            candidate,
            "failed",
            duration_s=time.monotonic() - started,
            error=message,
            **kw,
        )

    def _is_best(self, rec: TrialRecord) -> bool:
        if rec.score is None:
            return False
        if self.best is None or self.best.score is None:
            return True
        if self.spec.direction == "max":
            return rec.score > self.best.score
        return rec.score < self.best.score

    def _count_failure(self, rec: TrialRecord) -> None:
        if rec.status != "failed":
            return
        self.failures += 1
        limit = self.spec.parameters.max_failed_trials
        if self.failures > limit:
            raise SearchFailed(
                f"{self.failures} trials failed (max_failed_trials={limit}); "
                f"last: trial {rec.number}: {rec.error}"
            )

    @property
    def total_epochs(self) -> int:
        return sum(r.epochs_run for r in self.records.values())


class Strategy(ABC):
    """A search strategy: trains candidates through a `SearchContext`."""

    name: ClassVar[str]

    @abstractmethod
    def run(self, ctx: SearchContext) -> SearchStatus:
        """Run until done; return ``completed`` or ``exhausted``.

        Cancellation and time-outs surface as `Cancelled` from ``ctx``; the engine maps
        them to ``cancelled``/``timed_out``.
        """
