"""The `Strategy` interface and the `SearchContext` strategies drive.

A strategy decides *which* candidates to train and *for how many epochs*; the context does
the rest: numbering unique candidates from the seeded sequence, skipping those over the
parameter cap, building/compiling/fitting, reporting, recording, failure accounting and
keeping the best model.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from app.nas.artifacts import ArtifactStore
from app.nas.backend import clear_backend_caches, keras
from app.nas.builder import build_model
from app.nas.datasets import Dataset
from app.nas.limits import ParamsCap
from app.nas.records import ProgressReporter, SearchStatus, TrialRecord, TrialStart, TrialStatus
from app.nas.space import Architecture, Head, architectures
from app.nas.spec import NasSpec
from app.nas.trainer import Cancelled, FitOutcome, TrialFailed, compile_candidate, fit_candidate

__all__ = ["Candidate", "SearchContext", "SearchFailed", "Strategy"]

#: Consecutive duplicate draws after which the space counts as exhausted. Sampling is cheap
#: (well under a millisecond), so this is generous enough not to give up on large spaces.
MAX_CONSECUTIVE_DUPLICATES = 500
#: Consecutive architectures over the parameter cap after which the search stops. Each one is
#: recorded (a trial row and an event), so this is lower than the duplicate bound; a space
#: where even 1 draw in 10 fits gets past it with probability 0.995.
MAX_CONSECUTIVE_OVERSIZED = 50


class SearchFailed(RuntimeError):
    """More than ``parameters.max_failed_trials`` trials failed, or no architecture fits."""


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
    cap: ParamsCap
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
    _numbered: int = 0
    exhausted: bool = False
    exhausted_reason: str = ""

    # -- candidates ---------------------------------------------------------------------
    def candidates(self, count: int) -> list[Candidate]:
        """The first ``count`` unique candidates under the cap (fewer if exhausted).

        Duplicates (same fingerprint) are skipped, so no architecture is trained twice;
        deterministic for a given spec, which is what makes resume by trial number work.
        Every unique architecture gets a number; one over the parameter cap is recorded
        ``failed`` (`TrialRecord.skipped`) without being built, and the next one is drawn in
        its place, so skips do not use up ``max_trials``. A trial an earlier attempt trained
        is kept whatever the cap is now.
        """
        if self._sequence is None:
            self._sequence = architectures(
                self.spec.search_space,
                self.spec.parameters.seed,
                input_dim=self.data.input_dim,
                head=self.head,
            )
        duplicates = oversized = 0
        while len(self._drawn) < count and not self.exhausted:
            arch = next(self._sequence)
            fp = arch.fingerprint()
            if fp in self._seen:
                duplicates += 1
                if duplicates >= MAX_CONSECUTIVE_DUPLICATES:
                    under_cap = " under the cap" if self._numbered > len(self._drawn) else ""
                    self._exhaust(
                        f"search space exhausted: only {len(self._drawn)} distinct "
                        f"architectures{under_cap} found for "
                        f"max_trials={self.spec.budget.max_trials}"
                    )
                continue
            duplicates = 0
            self._seen.add(fp)
            self._numbered += 1
            candidate = Candidate(self._numbered, arch)
            old = self.reused.get(candidate.number)
            if old is not None and old.fingerprint and old.fingerprint != fp:
                raise ValueError(
                    f"completed trial {candidate.number} does not match the architecture this "
                    "spec generates for it; resume needs the same spec and seed"
                )
            trained_before = old is not None and not old.skipped
            refusal = None if trained_before else self.cap.refusal(arch.trainable_params_count())
            if refusal is not None:
                self._skip(candidate, refusal)
                oversized += 1
                if oversized >= MAX_CONSECUTIVE_OVERSIZED:
                    self._exhaust(
                        f"no architecture under the cap of {self.cap.limit:,} trainable "
                        f"parameters after {oversized} draws in a row; {self.cap.remedy('maximum')}"
                    )
                continue
            oversized = 0
            if old is not None and old.skipped:
                del self.reused[candidate.number]  # the cap was raised since: train it now
            self._drawn.append(candidate)
        return self._drawn[:count]

    def _exhaust(self, reason: str) -> None:
        self.exhausted = True
        self.exhausted_reason = reason

    def _skip(self, candidate: Candidate, refusal: str) -> None:
        """Record (and report) a candidate over the cap as a failed trial that never ran."""
        if self.reuse(candidate.number):
            return  # an earlier attempt recorded the same skip
        arch = candidate.architecture
        rec = TrialRecord(
            number=candidate.number,
            status="failed",
            architecture=arch.to_dict(),
            hyperparameters=arch.hyperparameters(),
            params_count=arch.params_count(),
            error=refusal,
            fingerprint=arch.fingerprint(),
            skipped=True,
        )
        self.add(rec)
        if self.reporter is not None:
            self.reporter.trial_finished(rec)

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
        error = ""
        try:
            if outcome is None:
                model = build_model(arch, seed=self.spec.parameters.seed + candidate.number)
                compile_candidate(
                    model, learning_rate=arch.learning_rate, loss=arch.loss, task=self.data.task
                )
                self.trial_start(candidate, model)
            else:
                model = keras.saving.load_model(path)
        except Exception as exc:  # MemoryError included: fail this trial, not the search
            error = f"could not build the model: {type(exc).__name__}: {exc}"
        if error:
            # Raised outside the handler: chained to the original, the error would keep its
            # traceback, whose frames hold the half-built model, alive as long as itself.
            raise TrialFailed(error)

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
        """Free the memory of the models built so far (between trials, and at the end).

        Call it where no exception of the trial is being handled: a traceback's frames hold
        the model, so it would survive the collection. ``clear_session(free_memory=True)``
        already runs ``gc.collect()``, so we do not collect a second time.
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

    def failed(self, candidate: Candidate, error: str, started: float, **kw: Any) -> None:
        """Record a failed trial (the search goes on until too many fail).

        Takes the message, not the exception: call it after the ``except`` block, so that a
        `SearchFailed` raised here is not chained to the trial's error and its frames.
        """
        self.record(
            candidate,
            "failed",
            duration_s=time.monotonic() - started,
            error=f"TrialFailed: {error}",
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
        if rec.status != "failed" or rec.skipped:  # a refused candidate did not fail to train
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
