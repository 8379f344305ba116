"""Asynchronous successive halving (ASHA) and Hyperband-style brackets of it.

Li et al., "A System for Massively Parallel Hyperparameter Tuning" (MLSys 2020): rung ``k``
trains to ``min_epochs * reduction_factor**k`` epochs (the last rung to the spec's epochs
per trial). Whenever a worker asks, the strategy promotes, top rung first, a trial that is
in the best ``1/reduction_factor`` of the trials finished at its rung and not promoted yet;
otherwise it starts a new candidate at the bottom rung. No worker ever waits for a rung to
fill, so it scales with the workers; the price is that early promotions are decided on
fewer results than synchronous halving would have.

A promotion is a new trial (its own number) that continues the parent's saved model,
optimizer state included, from the parent's epochs: as keras-tuner's Hyperband does with
``tuner/trial_id``. So every trial number trains once and ends once, and the trials table
shows the promotion tree through ``parent``.

Hyperband (Li et al., JMLR 2018) runs brackets that start at different rungs (bracket ``b``
starts at rung ``b``: fewer, longer-trained candidates); new candidates go to the brackets
in turn. One bracket is ASHA.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from app.nas.strategies.base import Decision, NewTrial, SearchSetup, Strategy, TrialView
from app.nas.strategies.candidates import CandidateSequence
from app.nas.strategies.random import next_candidate

__all__ = ["ASHA", "Hyperband", "rung_epochs"]


def rung_epochs(min_epochs: int, max_epochs: int, eta: int) -> list[int]:
    """Total epochs at each rung: min_epochs * eta**k, the last one max_epochs."""
    rungs = []
    epochs = min(min_epochs, max_epochs)
    while epochs < max_epochs:
        rungs.append(epochs)
        epochs *= eta
    rungs.append(max_epochs)
    return rungs


class Hyperband(Strategy):
    """Brackets of asynchronous successive halving."""

    name = "hyperband"

    def __init__(self, setup: SearchSetup, brackets: int | None = None) -> None:
        super().__init__(setup)
        params = self.spec.parameters
        self.eta = params.reduction_factor
        self.rungs = rung_epochs(params.min_epochs, self.spec.epochs_per_trial, self.eta)
        wanted = brackets if brackets is not None else (params.brackets or len(self.rungs))
        self.n_brackets = max(1, min(wanted, len(self.rungs)))
        self.candidates = CandidateSequence(setup)

    def bracket_rungs(self, bracket: int) -> list[int]:
        return self.rungs[bracket:]

    def ask(self, history: Sequence[TrialView]) -> Decision:
        by_number = {t.number: t for t in history}
        roots = [t for t in history if t.budgeted]
        bracket_of_root = {t.number: i % self.n_brackets for i, t in enumerate(roots)}

        def bracket(t: TrialView) -> int:
            while t.parent is not None and t.parent in by_number:
                t = by_number[t.parent]
            return bracket_of_root.get(t.number, 0)

        promoted = {t.parent for t in history if t.parent is not None}
        finished: dict[tuple[int, int], list[TrialView]] = defaultdict(list)
        for t in history:
            if t.status == "completed" and t.score is not None and not t.prior:
                finished[(bracket(t), t.epochs)].append(t)
        # Top rung first: the trials closest to done get the workers (ASHA's get_job).
        for level in reversed(range(len(self.rungs) - 1)):
            for b in range(self.n_brackets):
                rungs = self.bracket_rungs(b)
                k = level - b
                if k < 0 or k >= len(rungs) - 1:
                    continue
                pool = sorted(
                    finished.get((b, rungs[k]), []),
                    key=lambda t: (self.setup.sort_key(t.score), t.number),
                )
                for t in pool[: len(pool) // self.eta]:
                    if t.number not in promoted:
                        return NewTrial(
                            t.architecture,
                            epochs=rungs[k + 1],
                            parent=t.number,
                            initial_epoch=t.epochs,
                            checkpoint=k + 1 < len(rungs) - 1,
                        )
        rungs = self.bracket_rungs(len(roots) % self.n_brackets)
        return next_candidate(
            self, self.candidates, history, epochs=rungs[0], checkpoint=len(rungs) > 1
        )


class ASHA(Hyperband):
    """Asynchronous successive halving: one bracket."""

    name = "asha"

    def __init__(self, setup: SearchSetup) -> None:
        super().__init__(setup, brackets=1)
