"""The spec's selection rule: which completed trial is the run's model (pure: no Keras)."""

from __future__ import annotations

import random
from typing import Any

import pytest
from pydantic import ValidationError

from app.nas.selection import Contender, Direction, Selection, choose, decide, keepers
from app.nas.spec import NasSpec

BEST = Selection()


def within(tolerance: float) -> Selection:
    return Selection(rule="smallest_within_tolerance", tolerance=tolerance)


def c(number: int, score: float, params: int) -> Contender:
    return Contender(number=number, score=score, params=params)


def chosen(pool: list[Contender], selection: Selection, direction: Direction = "max") -> int:
    found = choose(pool, selection, direction)
    assert found is not None
    return found.number


def test_best_is_the_top_score_and_the_lower_number_among_equals() -> None:
    pool = [c(1, 0.80, 10), c(2, 0.90, 500), c(3, 0.90, 20)]
    assert chosen(pool, BEST) == 2
    assert chosen(pool, BEST, "min") == 1  # a loss: smaller is better
    assert choose([], BEST, "max") is None


def test_smallest_within_tolerance_of_the_best() -> None:
    pool = [c(1, 0.90, 500), c(2, 0.86, 40), c(3, 0.89, 90), c(4, 0.70, 5)]
    assert chosen(pool, within(0.05)) == 2  # 0.86 >= 0.90 - 0.05; trial 4 is too far
    assert chosen(pool, within(0.02)) == 3  # 0.86 is out now
    assert chosen(pool, within(0.0)) == 1  # zero tolerance: the best itself
    assert chosen(pool, within(1.0)) == 4  # everything is within: the smallest


def test_minimised_objectives_count_the_tolerance_upwards() -> None:
    losses = [c(1, 0.30, 500), c(2, 0.34, 40), c(3, 0.40, 10)]
    assert chosen(losses, within(0.05), "min") == 2
    assert chosen(losses, within(0.10), "min") == 3


def test_ties_go_to_the_better_score_then_the_lower_number() -> None:
    pool = [c(1, 0.95, 300), c(2, 0.91, 50), c(3, 0.93, 50), c(4, 0.93, 50)]
    assert chosen(pool, within(0.05)) == 3
    assert keepers(pool, within(0.05), "max") == {1, 3}  # 2 and 4 are beaten by 3


def test_one_validation_row_of_float32_accuracy_is_within_a_one_row_tolerance() -> None:
    # Keras reports float32 metrics: 35/36 and 34/36 as float32, one row apart.
    import numpy as np

    best, behind = float(np.float32(35 / 36)), float(np.float32(34 / 36))
    assert best - behind > 1 / 36  # the rounding that would push it out without slack
    assert chosen([c(1, best, 900), c(2, behind, 30)], within(1 / 36)) == 2


def test_an_earlier_trial_becomes_the_choice_when_a_later_one_raises_the_best() -> None:
    tolerance = within(0.05)
    history = [c(1, 0.90, 100), c(2, 0.85, 50), c(3, 0.88, 500), c(4, 0.92, 900)]
    choices, kept = [], []
    for end in range(1, len(history) + 1):
        pool = history[:end]
        choices.append(chosen(pool, tolerance))
        kept.append(keepers(pool, tolerance, "max"))
    # Trial 2 (smaller) is chosen once it comes; trial 4 raises the best to 0.92, which
    # leaves trial 2 outside the window: the choice goes back to trial 1.
    assert choices == [1, 2, 2, 1]
    # 3 is beaten by 1 (better and smaller); 2 is out of the window for good.
    assert kept == [{1}, {1, 2}, {1, 2}, {1, 4}]
    choice = decide(history, tolerance, "max")
    assert choice is not None
    assert (choice.trial, choice.score, choice.params) == (1, 0.90, 100)
    assert (choice.top_trial, choice.top_score) == (4, 0.92)
    assert choice.to_dict()["rule"] == "smallest_within_tolerance"


def test_under_best_only_the_choice_is_kept() -> None:
    pool = [c(1, 0.80, 10), c(2, 0.90, 500), c(3, 0.85, 20)]
    assert keepers(pool, BEST, "max") == {2}
    assert keepers([], BEST, "max") == set()


@pytest.mark.parametrize("seed", range(60))
def test_keeping_the_keepers_always_keeps_every_later_choice(seed: int) -> None:
    """Soundness of storing only the keepers' models, checked against brute force.

    At every point of a random run the choice is a keeper; once a trial stops being a
    keeper it is never chosen (nor kept) again, so its deleted model is never needed.
    """
    rng = random.Random(seed)
    direction: Direction = rng.choice(["max", "min"])
    selection = within(rng.choice([0.0, 0.01, 0.05, 0.2]))
    pool: list[Contender] = []
    dropped: set[int] = set()
    for number in range(1, 40):
        # Coarse values so that equal scores and sizes happen.
        pool.append(c(number, rng.randint(0, 30) / 100, rng.randint(1, 12) * 10))
        rng.shuffle(pool)  # the order trials end in must not matter
        kept = keepers(pool, selection, direction)
        now = chosen(pool, selection, direction)
        assert now in kept and now not in dropped
        assert not (kept & dropped)
        dropped |= {p.number for p in pool} - kept


def spec(**fields: Any) -> NasSpec:
    return NasSpec.model_validate({"dataset_id": "digits", **fields})


def test_the_spec_field() -> None:
    assert spec().selection == Selection(rule="best", tolerance=None)
    chosen_spec = spec(selection={"rule": "smallest_within_tolerance", "tolerance": 0.02})
    assert chosen_spec.selection.tolerance == 0.02
    assert chosen_spec.model_dump(mode="json")["selection"] == {
        "rule": "smallest_within_tolerance",
        "tolerance": 0.02,
    }
    assert spec(selection={"rule": "smallest_within_tolerance", "tolerance": 0}).selection


@pytest.mark.parametrize(
    ("selection", "where", "message"),
    [
        ({"rule": "smallest_within_tolerance", "tolerance": -0.1}, "tolerance", "greater than"),
        ({"rule": "smallest_within_tolerance"}, "tolerance", "required"),
        ({"rule": "best", "tolerance": 0.1}, "tolerance", "only read"),
        ({"rule": "smallest"}, "rule", ""),
        ({"rule": "smallest_within_tolerance", "tolerance": "0.1"}, "tolerance", ""),
        ({"rule": "smallest_within_tolerance", "tolerance": float("nan")}, "tolerance", ""),
        ({"tolerence": 0.1}, "tolerence", ""),
    ],
)
def test_bad_selections_name_the_field(selection: dict[str, Any], where: str, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        spec(selection=selection)
    error = info.value.errors()[0]
    assert error["loc"] == ("selection", where)
    assert message in error["msg"]
