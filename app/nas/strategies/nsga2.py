"""NSGA-II: Optuna's `NSGAIISampler` over the Cerebros space, for several objectives.

The same use of Optuna as `tpe` (a study rebuilt from the history on every ask), with the
spec's objectives (`NasSpec.resolved_objectives`: ``objectives``, else the one objective)
as the study's directions. A trial's values: the Keras metric that ranks the run is its
``score``; ``params`` its architecture's trainable parameters unless measured; every other
objective from `TrialView.objectives`. A finished trial missing one is FAIL (ignored).

NSGA-II works in generations of ``parameters.population_size`` trials. Optuna records a
trial's generation on the trial itself, which a rebuilt study does not have: it is given
back to every trial by replaying Optuna's own rule in trial-number order (a trial belongs to
the latest generation unless that generation already has ``population_size`` completed
trials, then to the next). The first generation is the seeded candidate sequence (random
search's first architectures, as for `tpe`); crossover needs genes every trial has, so the
space is encoded with a fixed number of genes (`OptunaSpace` with ``conditional=False``).

Running trials are left out (NSGA-II ranks completed ones); over-cap trials are FAIL.
Duplicates are asked again, then the next unseen candidate of the sequence is taken. Same
seed and history, same proposal.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import optuna
from optuna.samplers import NSGAIISampler
from optuna.trial import TrialState

from app.nas.strategies.base import Decision, NewTrial, SearchSetup, Strategy, TrialView
from app.nas.strategies.candidates import CandidateSequence
from app.nas.strategies.optuna_space import OptunaSpace, frozen_trial, roots, seed_for
from app.nas.strategies.random import next_candidate

__all__ = ["MAX_RESAMPLES", "NSGA2Search", "objective_values"]

#: Suggestions tried when they repeat an architecture of the run, before the fallback.
MAX_RESAMPLES = 8


def objective_values(setup: SearchSetup, trial: TrialView) -> list[float] | None:
    """``trial``'s value of every objective of the spec, in order; None if one is missing."""
    values = []
    for name, _direction in setup.spec.resolved_objectives:
        if name in trial.objectives:
            values.append(float(trial.objectives[name]))
        elif name == setup.spec.resolved_objective and trial.score is not None:
            values.append(trial.score)
        elif name == "params":
            values.append(float(trial.architecture.trainable_params_count()))
        else:
            return None
    return values


class NSGA2Search(Strategy):
    """Optuna's `NSGAIISampler` on a study rebuilt per ask (see the module docstring)."""

    name = "nsga2"

    def __init__(self, setup: SearchSetup) -> None:
        super().__init__(setup)
        self.candidates = CandidateSequence(setup)
        self.space = OptunaSpace(setup, conditional=False)

    def ask(self, history: Sequence[TrialView]) -> Decision:
        epochs = self.spec.epochs_per_trial
        params = self.spec.parameters
        new = sum(1 for t in history if t.budgeted)
        if new >= self.spec.budget.max_trials or new < params.population_size:
            return next_candidate(self, self.candidates, history, epochs=epochs)
        seen = {t.fingerprint for t in history}
        study = self._study(history, seed_for(params.seed, len(history)))
        for attempt in range(MAX_RESAMPLES):
            genome = self.space.suggest(study.ask())
            rng = np.random.default_rng(seed_for(params.seed, len(history), attempt))
            arch = self.space.build(genome, rng)
            if arch.fingerprint() not in seen:
                return NewTrial(arch, epochs=epochs)
        return next_candidate(self, self.candidates, history, epochs=epochs)

    def _study(self, history: Sequence[TrialView], seed: int) -> optuna.Study:
        size = self.spec.parameters.population_size
        sampler = NSGAIISampler(population_size=size, seed=seed)
        study = optuna.create_study(
            directions=[d for _, d in self.spec.resolved_objectives], sampler=sampler
        )
        key = sampler._get_generation_key()  # where Optuna keeps a trial's generation
        completed: dict[int, int] = {}  # generation -> its completed trials
        for t in roots(history):
            if t.active:
                continue
            genome = self.space.encode(t.architecture)
            if genome is None:
                continue  # not of this space (a warm start from another space)
            latest = max(completed, default=0)
            generation = latest if completed.get(latest, 0) < size else latest + 1
            values = None
            if t.status == "completed" and not t.skipped:
                values = objective_values(self.setup, t)
            attrs = {key: generation}
            if values is None:
                study.add_trial(frozen_trial(genome, TrialState.FAIL, system_attrs=attrs))
                continue
            study.add_trial(
                frozen_trial(genome, TrialState.COMPLETE, values=values, system_attrs=attrs)
            )
            completed[generation] = completed.get(generation, 0) + 1
        return study
