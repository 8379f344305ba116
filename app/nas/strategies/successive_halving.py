"""Successive halving over Cerebros candidates.

``max_trials`` candidates are drawn up front. Rung 0 trains each for ``min_epochs`` epochs;
each later rung keeps the best ``1/reduction_factor`` (at least one) and continues *the same
models* (checkpointed between rungs, optimizer state included) to ``reduction_factor`` times
more epochs, the last rung reaching the spec's epochs per trial. Candidates dropped at a
rung are recorded ``pruned`` with the epochs they reached; the survivors of the last rung
are ``completed``.

Resume granularity: whole trials. Trials with a record in ``completed_trials`` (pruned,
failed or completed) are not trained again; every other candidate restarts from epoch 0 and
goes through the rungs again. Previously ``completed`` trials keep their places among the
survivors, so they take promotion slots at every rung.
"""

from __future__ import annotations

import math
import time

from app.nas.records import SearchStatus
from app.nas.strategies.base import Candidate, SearchContext, Strategy
from app.nas.trainer import FitOutcome, TrialFailed

__all__ = ["SuccessiveHalving", "rung_schedule"]


def rung_schedule(n: int, min_epochs: int, max_epochs: int, eta: int) -> list[tuple[int, int]]:
    """(candidates, total epochs) per rung: n, n/eta, ... with min_epochs * eta**i epochs."""
    rungs: list[tuple[int, int]] = []
    epochs = min(min_epochs, max_epochs)
    count = n
    while True:
        if epochs >= max_epochs or count <= 1:
            rungs.append((count, max_epochs))
            return rungs
        rungs.append((count, epochs))
        epochs = min(epochs * eta, max_epochs)
        count = max(1, count // eta)


class SuccessiveHalving(Strategy):
    """Train many candidates briefly, promote the best 1/eta to longer training."""

    name = "successive_halving"

    def run(self, ctx: SearchContext) -> SearchStatus:
        spec = ctx.spec
        params = spec.parameters
        candidates = ctx.candidates(spec.budget.max_trials)
        status: SearchStatus = (
            "exhausted" if len(candidates) < spec.budget.max_trials else "completed"
        )
        alive: list[Candidate] = []
        reserved = 0  # previously completed trials: survivors of every rung
        for candidate in candidates:
            if ctx.reuse(candidate.number):
                reserved += ctx.records[candidate.number].status == "completed"
            else:
                alive.append(candidate)
        outcomes: dict[int, FitOutcome] = {}
        started: dict[int, float] = {}
        schedule = rung_schedule(
            len(candidates), params.min_epochs, spec.epochs_per_trial, params.reduction_factor
        )
        try:
            for rung, (_, epochs) in enumerate(schedule):
                last = rung == len(schedule) - 1
                for candidate in list(alive):
                    ctx.check_stop()
                    t0 = time.monotonic()
                    started.setdefault(candidate.number, t0)
                    error = ""
                    try:
                        model, outcome = ctx.train(
                            candidate,
                            epochs,
                            outcome=outcomes.get(candidate.number),
                            checkpoint=not last,
                        )
                        outcomes[candidate.number] = outcome
                        if last:
                            ctx.record(
                                candidate,
                                "completed",
                                outcome=outcome,
                                params_count=candidate.architecture.params_count(),
                                duration_s=time.monotonic() - started[candidate.number],
                                model=model,
                            )
                        del model
                    except TrialFailed as exc:
                        error = str(exc)
                    # Out of the handler, so the failed trial's frames (and its model) are gone.
                    ctx.release()
                    if error:
                        alive.remove(candidate)
                        ctx.failed(
                            candidate,
                            error,
                            started[candidate.number],
                            outcome=None,
                            params_count=candidate.architecture.params_count(),
                        )
                if last:
                    break
                keep = max(0, schedule[rung + 1][0] - reserved)
                alive = self._promote(ctx, alive, outcomes, keep, started)
        finally:
            ctx.store.drop_work_dir()
        return status

    @staticmethod
    def _promote(
        ctx: SearchContext,
        alive: list[Candidate],
        outcomes: dict[int, FitOutcome],
        keep: int,
        started: dict[int, float],
    ) -> list[Candidate]:
        """Keep the ``keep`` best, record the rest as pruned."""
        sign = -1.0 if ctx.spec.direction == "max" else 1.0

        def rank(c: Candidate) -> tuple[float, int]:
            score = outcomes[c.number].score
            return (math.inf if score is None else sign * score, c.number)

        ordered = sorted(alive, key=rank)
        for candidate in ordered[keep:]:
            ctx.record(
                candidate,
                "pruned",
                outcome=outcomes[candidate.number],
                params_count=candidate.architecture.params_count(),
                duration_s=time.monotonic() - started[candidate.number],
            )
        return ordered[:keep]
