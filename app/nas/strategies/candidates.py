"""The seeded, de-duplicated sequence of Cerebros candidates that several strategies draw from."""

from __future__ import annotations

from collections.abc import Collection, Iterator

from app.nas.space import Architecture, architectures
from app.nas.strategies.base import SearchSetup

__all__ = ["MAX_CONSECUTIVE_DUPLICATES", "CandidateSequence"]

#: Consecutive duplicate draws after which the space counts as exhausted. Sampling is cheap
#: (well under a millisecond), so this is generous enough not to give up on large spaces.
MAX_CONSECUTIVE_DUPLICATES = 500


class CandidateSequence:
    """Unique architectures of the seeded sequence, in order: same seed, same candidates.

    `next_unseen` returns the first candidate whose fingerprint is not in ``seen`` (the
    run's trials), so a strategy that takes candidates only from here proposes, for a given
    seed, the same architectures in the same order whatever crashed or resumed in between.
    """

    def __init__(self, setup: SearchSetup, seed: int | None = None) -> None:
        self._source: Iterator[Architecture] = architectures(
            setup.spec.search_space,
            setup.spec.parameters.seed if seed is None else seed,
            input_dim=setup.input_dim,
            head=setup.head,
        )
        self._unique: list[tuple[str, Architecture]] = []
        self._fingerprints: set[str] = set()
        self.exhausted = False

    def next_unseen(self, seen: Collection[str]) -> Architecture | None:
        """The first unique candidate not in ``seen``; None once the space looks exhausted."""
        for fp, arch in self._unique:
            if fp not in seen:
                return arch
        duplicates = 0
        while duplicates < MAX_CONSECUTIVE_DUPLICATES:
            arch = next(self._source)
            fp = arch.fingerprint()
            if fp in self._fingerprints:
                duplicates += 1
                continue
            duplicates = 0
            self._fingerprints.add(fp)
            self._unique.append((fp, arch))
            if fp not in seen:
                return arch
        self.exhausted = True
        return None
