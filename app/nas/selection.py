"""Which completed trial a run names as its model: the spec's ``selection`` rule (issue 14).

Pydantic and the standard library only (the API validates specs with it). Two rules:

* ``best`` (the default): the completed trial with the best score, the run's objective
  (``objective``, which is the first Keras metric of ``objectives``); among equal scores
  the lowest trial number.
* ``smallest_within_tolerance``: among the completed trials whose score is within
  ``tolerance`` of the best score (absolute, in the objective's own units: ``0.02`` of
  ``val_accuracy`` is two points of accuracy, of ``val_loss`` two hundredths of loss), the
  one with the fewest trainable parameters; ties go to the better score, then to the lower
  trial number.

Scores are float32 metrics: "within" allows `SLACK` of the best score's magnitude more, so a
tolerance of exactly one validation row (``1/36``) keeps a trial one row behind.

Storing the chosen model while a run is still going needs more than the current choice:
under the tolerance rule a later, better trial can narrow the window and make an earlier
trial the choice again. `keepers` are the trials that can still become the choice, whatever
trials come later: those within the tolerance of the best score that no other trial beats
on both score and size (with the choice's tie-breaks). The choice is always among them; a
trial dropped from them never returns.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Literal

from pydantic import BaseModel, Field, model_validator

from app.nas.spec_space import STRICT, field_error

__all__ = [
    "SLACK",
    "Choice",
    "Contender",
    "Selection",
    "SelectionRule",
    "choose",
    "decide",
    "keepers",
]

SelectionRule = Literal["best", "smallest_within_tolerance"]
Direction = Literal["max", "min"]

#: Relative slack on "within tolerance": float32 metrics round at about 6e-8.
SLACK = 1e-6


class Selection(BaseModel):
    """The spec's ``selection``: which completed trial is the run's model."""

    model_config = STRICT

    rule: SelectionRule = Field(
        default="best",
        description="best: the best score (the run's objective); smallest_within_tolerance: "
        "the fewest trainable parameters among the trials within `tolerance` of the best score",
    )
    tolerance: float | None = Field(
        default=None,
        ge=0,
        description="smallest_within_tolerance only: how far below the best score (above, for "
        "minimised objectives) a trial may be, absolute, in the objective's units",
    )

    @model_validator(mode="after")
    def _tolerance_fits_rule(self) -> Selection:
        if self.rule == "smallest_within_tolerance" and self.tolerance is None:
            raise field_error(
                type(self).__name__,
                "tolerance",
                None,
                "tolerance_required",
                "selection.tolerance is required by the rule smallest_within_tolerance",
            )
        if self.rule == "best" and self.tolerance is not None:
            raise field_error(
                type(self).__name__,
                "tolerance",
                self.tolerance,
                "tolerance_unused",
                "selection.tolerance is only read by the rule smallest_within_tolerance",
            )
        return self


@dataclass(frozen=True)
class Contender:
    """A completed trial as the rule sees it: its number, score and trainable parameters."""

    number: int
    score: float
    params: int

    @classmethod
    def maybe(
        cls, number: int, status: str, score: float | None, params: int | None
    ) -> Contender | None:
        """The trial as a contender; None unless it completed with a finite score."""
        if status != "completed" or score is None or not math.isfinite(score):
            return None
        return cls(number=number, score=float(score), params=int(params or 0))


def _gain(score: float, direction: Direction) -> float:
    """The score as a value where larger is better."""
    return score if direction == "max" else -score


def _top(contenders: Sequence[Contender], direction: Direction) -> Contender:
    return min(contenders, key=lambda c: (-_gain(c.score, direction), c.number))


def choose(
    contenders: Iterable[Contender], selection: Selection, direction: Direction
) -> Contender | None:
    """The trial ``selection`` names among ``contenders`` (None when there is none)."""
    pool = list(contenders)
    if not pool:
        return None
    top = _top(pool, direction)
    if selection.rule == "best":
        return top
    within = _window(pool, selection, direction)
    return min(within, key=lambda c: (c.params, -_gain(c.score, direction), c.number))


def _window(
    pool: Sequence[Contender], selection: Selection, direction: Direction
) -> list[Contender]:
    """The contenders within the tolerance of the best score (the best among them)."""
    if not pool:
        return []
    top = _top(pool, direction)
    tolerance = selection.tolerance or 0.0
    floor = _gain(top.score, direction) - tolerance - SLACK * max(1.0, abs(top.score))
    return [c for c in pool if _gain(c.score, direction) >= floor]


@dataclass(frozen=True)
class Choice:
    """What the rule chose, recorded in the run's result: the trial and the rule that chose it.

    ``top_trial``/``top_score``: the trial with the best score, the choice under ``best``.
    """

    rule: SelectionRule
    tolerance: float | None
    trial: int
    score: float
    params: int
    top_trial: int
    top_score: float

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def decide(
    contenders: Iterable[Contender], selection: Selection, direction: Direction
) -> Choice | None:
    """`choose`, with what the result records of it."""
    pool = list(contenders)
    chosen = choose(pool, selection, direction)
    if chosen is None:
        return None
    top = _top(pool, direction)
    return Choice(
        rule=selection.rule,
        tolerance=selection.tolerance,
        trial=chosen.number,
        score=chosen.score,
        params=chosen.params,
        top_trial=top.number,
        top_score=top.score,
    )


def _beats(a: Contender, b: Contender, direction: Direction) -> bool:
    """``a`` would be chosen over ``b`` by either rule, whatever other trials exist.

    At least as good a score and at most as many parameters, and preferred by the
    tie-breaks (better score, fewer parameters, or else the lower number).
    """
    ga, gb = _gain(a.score, direction), _gain(b.score, direction)
    if ga < gb or a.params > b.params:
        return False
    return ga > gb or a.params < b.params or a.number < b.number


def keepers(
    contenders: Iterable[Contender], selection: Selection, direction: Direction
) -> set[int]:
    """Numbers of the trials that can be ``selection``'s choice now or after more trials.

    Under ``best`` only the current choice: the best score only improves. Under
    ``smallest_within_tolerance`` the trials within the tolerance of the best score (the
    best only improves, so a trial out of the window stays out) that no other trial beats
    on both score and size: a beaten trial is within the window whenever the trial beating
    it is, and is never preferred to it, so it can never be chosen; an unbeaten one can (a
    later best may push every smaller trial out of the window).
    """
    pool = list(contenders)
    if selection.rule == "best":
        chosen = choose(pool, selection, direction)
        return set() if chosen is None else {chosen.number}
    window = _window(pool, selection, direction)
    return {c.number for c in window if not any(_beats(o, c, direction) for o in window)}
