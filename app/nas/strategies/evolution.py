"""Regularized (aging) evolution (Real, Aggarwal, Huang and Le, AAAI 2019).

The population is the ``parameters.population_size`` most recent trials that completed with
a score (by trial number: the oldest leaves first, whatever its score, which is what
"aging" means). Each ask draws ``parameters.sample_size`` of them uniformly without
replacement (a tournament), takes the best and proposes it changed by one mutation
(`app.nas.mutation`). The first ``population_size`` trials are the seeded candidate
sequence (random search's), as in the paper's random initial population; until a trial
has completed there is nothing to mutate, so candidates keep coming from the sequence.

Asynchronous like the paper's workers: a proposal never waits for running trials. A child
the run already has (same fingerprint) is mutated again, `MAX_MUTATION_TRIES` times, then
the next unseen candidate of the sequence is taken. The random draws (tournament,
mutation) come from a generator seeded with ``parameters.seed`` and the number of trials in
the history: same seed and history, same proposal.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from app.nas.mutation import mutate
from app.nas.strategies.base import Decision, NewTrial, SearchSetup, Strategy, TrialView
from app.nas.strategies.candidates import CandidateSequence
from app.nas.strategies.optuna_space import seed_for
from app.nas.strategies.random import next_candidate

__all__ = ["MAX_MUTATION_TRIES", "RegularizedEvolution", "population", "tournament"]

#: Mutations tried when a child repeats an architecture of the run, before the fallback.
MAX_MUTATION_TRIES = 10


def population(history: Sequence[TrialView], size: int) -> list[TrialView]:
    """The ``size`` most recent trials (by number) that completed with a score."""
    scored = [t for t in history if t.is_new and t.status == "completed" and t.score is not None]
    return sorted(scored, key=lambda t: t.number)[-size:]


def tournament(
    setup: SearchSetup, members: Sequence[TrialView], sample_size: int, rng: np.random.Generator
) -> TrialView:
    """The best of ``sample_size`` members drawn without replacement (ties: the older)."""
    drawn = rng.choice(len(members), size=min(sample_size, len(members)), replace=False)
    sample = [members[int(i)] for i in sorted(drawn)]
    return min(sample, key=lambda t: setup.sort_key(t.score))


class RegularizedEvolution(Strategy):
    """Aging evolution over Cerebros architectures (see the module docstring)."""

    name = "evolution"

    def __init__(self, setup: SearchSetup) -> None:
        super().__init__(setup)
        self.candidates = CandidateSequence(setup)

    def ask(self, history: Sequence[TrialView]) -> Decision:
        params = self.spec.parameters
        epochs = self.spec.epochs_per_trial
        new = sum(1 for t in history if t.budgeted)
        members = population(history, params.population_size)
        if new >= self.spec.budget.max_trials or new < params.population_size or not members:
            return next_candidate(self, self.candidates, history, epochs=epochs)
        rng = np.random.default_rng(seed_for(params.seed, len(history)))
        seen = {t.fingerprint for t in history}
        for _ in range(MAX_MUTATION_TRIES):
            parent = tournament(self.setup, members, params.sample_size, rng)
            try:
                child, _kind = mutate(
                    parent.architecture, self.spec.search_space, rng, head=self.setup.head
                )
            except ValueError:  # no mutation applies: a space of one architecture
                break
            if child.fingerprint() not in seen:
                return NewTrial(child, epochs=epochs)
        return next_candidate(self, self.candidates, history, epochs=epochs)
