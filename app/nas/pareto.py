"""Pareto fronts of trials with several objectives (no keras, no optuna: plain numbers).

A point is a sequence of objective values; ``directions`` says, per objective, whether
larger (``"maximize"``) or smaller (``"minimize"``) is better. Point ``a`` dominates ``b``
when it is at least as good in every objective and better in one. The first front is the
points nobody dominates; removing it, the next front is the non-dominated rest, and so on
(Deb et al. 2002's fast non-dominated sort, O(M N^2)).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

__all__ = [
    "Direction",
    "dominates",
    "hypervolume_2d",
    "non_dominated_sort",
    "pareto_front",
]

Direction = Literal["maximize", "minimize"]
Point = Sequence[float]


def _minimised(point: Point, directions: Sequence[Direction]) -> tuple[float, ...]:
    """``point`` with every objective turned into one to minimise."""
    if len(point) != len(directions):
        raise ValueError(f"point {tuple(point)} has {len(point)} values for {len(directions)}")
    if not all(math.isfinite(v) for v in point):
        raise ValueError(f"point {tuple(point)} is not finite")
    return tuple(-v if d == "maximize" else v for v, d in zip(point, directions, strict=True))


def dominates(a: Point, b: Point, directions: Sequence[Direction]) -> bool:
    """``a`` is at least as good as ``b`` in every objective and better in one."""
    x, y = _minimised(a, directions), _minimised(b, directions)
    return all(p <= q for p, q in zip(x, y, strict=True)) and x != y


def non_dominated_sort(points: Sequence[Point], directions: Sequence[Direction]) -> list[list[int]]:
    """The fronts, best first, each the ascending indices of its points in ``points``.

    Equal points share a front.
    """
    values = [_minimised(p, directions) for p in points]
    n = len(values)
    dominated_by: list[list[int]] = [[] for _ in range(n)]  # i -> the points i dominates
    count = [0] * n  # how many points dominate i
    for i in range(n):
        for j in range(i + 1, n):
            a, b = values[i], values[j]
            if a == b:
                continue
            if all(p <= q for p, q in zip(a, b, strict=True)):
                dominated_by[i].append(j)
                count[j] += 1
            elif all(q <= p for p, q in zip(a, b, strict=True)):
                dominated_by[j].append(i)
                count[i] += 1
    fronts: list[list[int]] = []
    current = [i for i in range(n) if count[i] == 0]
    while current:
        fronts.append(sorted(current))
        following = []
        for i in current:
            for j in dominated_by[i]:
                count[j] -= 1
                if count[j] == 0:
                    following.append(j)
        current = following
    return fronts


def pareto_front(points: Sequence[Point], directions: Sequence[Direction]) -> list[int]:
    """Ascending indices of the points no other point dominates."""
    fronts = non_dominated_sort(points, directions)
    return fronts[0] if fronts else []


def hypervolume_2d(
    points: Sequence[Point], directions: Sequence[Direction], reference: Point
) -> float:
    """The area dominated by ``points`` and bounded by ``reference`` (two objectives).

    ``reference`` is a point worse than any of interest in both objectives (for accuracy
    and parameters: ``(0.0, the cap)``); points not strictly better than it in both add
    nothing. Larger is better; fronts of different runs compare with the same reference.
    """
    if len(directions) != 2:
        raise ValueError("hypervolume_2d needs exactly two objectives")
    rx, ry = _minimised(reference, directions)
    inside = sorted(
        (x, y) for x, y in (_minimised(p, directions) for p in points) if x < rx and y < ry
    )
    volume = 0.0
    ceiling = ry
    for x, y in inside:  # ascending x: each point adds the strip below the lowest y so far
        if y < ceiling:
            volume += (rx - x) * (ceiling - y)
            ceiling = y
    return volume
