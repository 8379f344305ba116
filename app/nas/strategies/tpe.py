"""TPE: Optuna's Tree-structured Parzen Estimator over the Cerebros space, as a library.

On every ask an in-memory study is rebuilt from the run's trials and ``study.ask()``
suggests the next architecture's parameters (`app.nas.strategies.optuna_space`: levels,
units per level, neurons per unit, activation, learning rate, connectivity), which the
Cerebros rules then wire. Nothing is kept between asks: a fresh instance asking with the
same history answers the same.

* Warm-up: the first `startup_trials` completed trials come from the seeded candidate
  sequence (the architectures random search trains first), so TPE starts from Cerebros'
  own distribution rather than Optuna's uniform one.
* Running trials are given to the study as RUNNING: Optuna's constant liar counts them as
  bad until they report, so parallel workers are not all sent to the same region.
* Trials over the parameter cap (never built) count as the worst score seen, so the
  sampler learns to avoid the sizes that do not fit; failed and cancelled trials are
  FAIL (ignored by TPE); pruned ones are PRUNED with their score at their epochs.
* A suggestion whose architecture the run already has is asked again (`MAX_RESAMPLES`
  times; the duplicate stays RUNNING in the throwaway study so the next one moves away),
  then the next unseen candidate of the sequence is taken instead.
* Continuations (a trial's `parent`) are not part of the study: TPE never proposes them.

The sampler's seed mixes ``parameters.seed`` with the number of trials in the history, and
the wiring's random draws with the same and the attempt number: same seed and same history,
same proposal.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import optuna
from optuna.samplers import TPESampler
from optuna.trial import TrialState

from app.nas.strategies.base import Decision, NewTrial, SearchSetup, Strategy, TrialView
from app.nas.strategies.candidates import CandidateSequence
from app.nas.strategies.optuna_space import OptunaSpace, frozen_trial, roots, seed_for
from app.nas.strategies.random import next_candidate

__all__ = ["MAX_RESAMPLES", "TPESearch", "startup_trials"]

#: Suggestions tried when they repeat an architecture of the run, before the fallback.
MAX_RESAMPLES = 8


def startup_trials(max_trials: int) -> int:
    """Completed trials from the random sequence before TPE models: a sixth, 3 to 10.

    Optuna's default is 10 whatever the budget. On the synthetic landscape of
    tests/nas/test_strategy_search.py, 30 trials, 30 seeds: 5 random trials first gave a
    median best of -0.100 (better than random search in 22 seeds, worse in 8), 10 gave
    -0.137 (16 and 12), random search -0.140.
    """
    return max(3, min(10, max_trials // 6))


class TPESearch(Strategy):
    """Optuna's `TPESampler` (multivariate, constant liar) on a study rebuilt per ask."""

    name = "tpe"

    def __init__(self, setup: SearchSetup) -> None:
        super().__init__(setup)
        self.candidates = CandidateSequence(setup)
        self.space = OptunaSpace(setup, conditional=True)
        self.startup = startup_trials(setup.spec.budget.max_trials)

    def ask(self, history: Sequence[TrialView]) -> Decision:
        epochs = self.spec.epochs_per_trial
        new = sum(1 for t in history if t.budgeted)
        completed = sum(1 for t in history if t.is_new and t.score is not None)
        if new >= self.spec.budget.max_trials or completed < self.startup:
            return next_candidate(self, self.candidates, history, epochs=epochs)
        seen = {t.fingerprint for t in history}
        seed = self.spec.parameters.seed
        study = self._study(history, seed_for(seed, len(history)))
        for attempt in range(MAX_RESAMPLES):
            genome = self.space.suggest(study.ask())
            rng = np.random.default_rng(seed_for(seed, len(history), attempt))
            arch = self.space.build(genome, rng)
            if arch.fingerprint() not in seen:
                return NewTrial(arch, epochs=epochs)
        return next_candidate(self, self.candidates, history, epochs=epochs)

    def _study(self, history: Sequence[TrialView], seed: int) -> optuna.Study:
        maximize = self.setup.direction == "max"
        sampler = TPESampler(
            seed=seed, n_startup_trials=self.startup, multivariate=True, constant_liar=True
        )
        study = optuna.create_study(
            direction="maximize" if maximize else "minimize", sampler=sampler
        )
        scores = [t.score for t in history if t.status == "completed" and t.score is not None]
        worst = (min(scores) if maximize else max(scores)) if scores else None
        for t in roots(history):
            genome = self.space.encode(t.architecture)
            if genome is None:
                continue  # not of this space (a warm start from another space)
            if t.skipped:
                if worst is None:
                    study.add_trial(frozen_trial(genome, TrialState.FAIL))
                else:
                    study.add_trial(frozen_trial(genome, TrialState.COMPLETE, values=[worst]))
            elif t.active:
                study.add_trial(frozen_trial(genome, TrialState.RUNNING))
            elif t.status == "completed" and t.score is not None:
                study.add_trial(frozen_trial(genome, TrialState.COMPLETE, values=[t.score]))
            elif t.status == "pruned" and t.score is not None:
                study.add_trial(
                    frozen_trial(genome, TrialState.PRUNED, intermediate={t.epochs: t.score})
                )
            else:
                study.add_trial(frozen_trial(genome, TrialState.FAIL))
        return study
