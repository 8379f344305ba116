"""Cerebros random search: train unique sampled architectures until the budget is used."""

from __future__ import annotations

import time

from app.nas.records import SearchStatus
from app.nas.strategies.base import SearchContext, Strategy
from app.nas.trainer import TrialFailed

__all__ = ["RandomSearch"]


class RandomSearch(Strategy):
    """Train the first max_trials candidates of the seeded, de-duplicated sequence in order.

    Each trial trains for the spec's epochs per trial (early stopping may end it sooner).
    Trials already in ``completed_trials`` are reused, not retrained. Candidates over the
    parameter cap are recorded and replaced by the next ones (`SearchContext.candidates`).
    If the space runs out of new architectures first the result is ``exhausted``.
    """

    name = "random"

    def run(self, ctx: SearchContext) -> SearchStatus:
        max_trials = ctx.spec.budget.max_trials
        epochs = ctx.spec.epochs_per_trial
        for index in range(max_trials):
            candidates = ctx.candidates(index + 1)
            if len(candidates) <= index:
                return "exhausted"
            candidate = candidates[index]
            if ctx.reuse(candidate.number):
                continue
            ctx.check_stop()
            started = time.monotonic()
            error = ""
            try:
                model, outcome = ctx.train(candidate, epochs)
                ctx.record(
                    candidate,
                    "completed",
                    outcome=outcome,
                    params_count=int(model.count_params()),
                    duration_s=time.monotonic() - started,
                    model=model,
                )
                del model
            except TrialFailed as exc:
                error = str(exc)
            # Out of the handler, so the failed trial's frames (and its model) are gone.
            ctx.release()
            if error:
                params = candidate.architecture.params_count()
                ctx.failed(candidate, error, started, outcome=None, params_count=params)
        return "completed"
