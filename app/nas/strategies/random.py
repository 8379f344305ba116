"""Cerebros random search: train unique sampled architectures until the budget is used."""

from __future__ import annotations

import time

from app.nas.records import SearchStatus
from app.nas.strategies.base import SearchContext, Strategy
from app.nas.trainer import TrialFailed

__all__ = ["RandomSearch"]


class RandomSearch(Strategy):
    """Train candidates 1..max_trials of the seeded, de-duplicated sequence in order.

    Each trial trains for the spec's epochs per trial (early stopping may end it sooner).
    Trials already in ``completed_trials`` are reused, not retrained. If the space runs out
    of new architectures first the result is ``exhausted``.
    """

    name = "random"

    def run(self, ctx: SearchContext) -> SearchStatus:
        max_trials = ctx.spec.budget.max_trials
        epochs = ctx.spec.epochs_per_trial
        number = 0
        while number < max_trials:
            candidates = ctx.candidates(number + 1)
            if len(candidates) <= number:
                return "exhausted"
            candidate = candidates[number]
            number += 1
            if ctx.reuse(candidate.number):
                continue
            ctx.check_stop()
            started = time.monotonic()
            model = None
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
            except TrialFailed as exc:
                params = candidate.architecture.params_count()
                ctx.failed(candidate, exc, started, outcome=None, params_count=params)
            finally:
                del model
                ctx.release()
        return "completed"
