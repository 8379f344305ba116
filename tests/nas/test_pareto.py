"""Pareto fronts and 2-D hypervolume, checked against brute force."""

from __future__ import annotations

import itertools
import random

import pytest

from app.nas.pareto import Direction, dominates, hypervolume_2d, non_dominated_sort, pareto_front

MAX_MIN: list[Direction] = ["maximize", "minimize"]


def test_dominance_follows_the_directions() -> None:
    assert dominates((0.9, 100), (0.8, 200), MAX_MIN)
    assert dominates((0.9, 100), (0.9, 200), MAX_MIN)
    assert not dominates((0.9, 100), (0.9, 100), MAX_MIN)  # equal: neither dominates
    assert not dominates((0.9, 300), (0.8, 200), MAX_MIN)  # a trade-off
    assert dominates((1, 1), (2, 2), ["minimize", "minimize"])
    assert dominates((2, 2), (1, 1), ["maximize", "maximize"])


def test_bad_points_are_refused() -> None:
    with pytest.raises(ValueError, match="values for"):
        pareto_front([(1.0, 2.0, 3.0)], MAX_MIN)
    with pytest.raises(ValueError, match="not finite"):
        pareto_front([(float("nan"), 1.0)], MAX_MIN)


@pytest.mark.parametrize("seed", range(40))
def test_sort_matches_brute_force(seed: int) -> None:
    rng = random.Random(seed)
    n_objectives = rng.choice([2, 3])
    directions: list[Direction] = [
        rng.choice(["maximize", "minimize"]) for _ in range(n_objectives)
    ]
    points = [tuple(float(rng.randint(0, 6)) for _ in range(n_objectives)) for _ in range(30)]
    fronts = non_dominated_sort(points, directions)
    assert sorted(itertools.chain.from_iterable(fronts)) == list(range(len(points)))
    remaining = set(range(len(points)))
    for front in fronts:
        expected = {
            i
            for i in remaining
            if not any(dominates(points[j], points[i], directions) for j in remaining)
        }
        assert set(front) == expected
        remaining -= expected
    assert pareto_front(points, directions) == fronts[0]


def test_hypervolume_of_known_fronts() -> None:
    # Minimise both, reference (4, 4): the staircase (1,3), (2,2), (3,1) covers 3 + 2 + 1.
    both_min: list[Direction] = ["minimize", "minimize"]
    assert hypervolume_2d([(1, 3), (2, 2), (3, 1)], both_min, (4, 4)) == pytest.approx(6.0)
    # Dominated points and points outside the reference add nothing.
    more = [(1, 3), (2, 2), (3, 1), (3, 3), (5, 0), (0, 5)]
    assert hypervolume_2d(more, both_min, (4, 4)) == pytest.approx(6.0)
    # Accuracy up, parameters down.
    points = [(0.9, 1000.0), (0.8, 500.0)]
    expected = 0.9 * (2000 - 1000) + 0.8 * (1000 - 500)
    assert hypervolume_2d(points, MAX_MIN, (0.0, 2000.0)) == pytest.approx(expected)
    assert hypervolume_2d([], MAX_MIN, (0.0, 2000.0)) == 0.0


@pytest.mark.parametrize("seed", range(20))
def test_hypervolume_matches_a_grid_count(seed: int) -> None:
    rng = random.Random(seed)
    points = [(rng.randint(0, 9), rng.randint(0, 9)) for _ in range(8)]
    both_min: list[Direction] = ["minimize", "minimize"]
    covered = sum(
        any(x >= px and y >= py for px, py in points) for x in range(10) for y in range(10)
    )
    assert hypervolume_2d(points, both_min, (10, 10)) == pytest.approx(covered)
