"""Cerebros random search: the seeded sequence of unique architectures, in order."""

from __future__ import annotations

from collections.abc import Sequence

from app.nas.strategies.base import Decision, Done, NewTrial, SearchSetup, Strategy, TrialView, Wait
from app.nas.strategies.candidates import CandidateSequence

__all__ = ["RandomSearch", "next_candidate"]


def next_candidate(
    strategy: Strategy,
    candidates: CandidateSequence,
    history: Sequence[TrialView],
    *,
    epochs: int,
    checkpoint: bool = False,
) -> Decision:
    """A new candidate from ``candidates`` while ``budget.max_trials`` is not used up.

    Skipped candidates (over the parameter cap) do not use up the budget. When it is used
    up, or the space has no new architecture, the answer is `Wait` while trials are active
    and `Done` after.
    """
    budget = strategy.spec.budget.max_trials
    new = sum(1 for t in history if t.budgeted)
    active = any(t.active for t in history)
    if new >= budget:
        return Wait() if active else Done()
    arch = candidates.next_unseen({t.fingerprint for t in history})
    if arch is None:
        if active:
            return Wait()
        return Done(
            "exhausted",
            f"search space exhausted: only {new} distinct architectures found for "
            f"max_trials={budget}",
        )
    return NewTrial(arch, epochs=epochs, checkpoint=checkpoint)


class RandomSearch(Strategy):
    """Train the first ``max_trials`` unique candidates of the seeded sequence.

    Each trains for the spec's epochs per trial (early stopping may end it sooner). Same
    seed, same architectures in the same order, whatever the number of workers.
    """

    name = "random"

    def __init__(self, setup: SearchSetup) -> None:
        super().__init__(setup)
        self.candidates = CandidateSequence(setup)

    def ask(self, history: Sequence[TrialView]) -> Decision:
        return next_candidate(self, self.candidates, history, epochs=self.spec.epochs_per_trial)
