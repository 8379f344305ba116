"""The pure helpers of benchmarks/trials_to_best.py and benchmarks/pareto_front.py (no training)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from optuna._hypervolume import compute_hypervolume

from benchmarks.pareto_front import REFERENCE, front_points, hypervolume
from benchmarks.trials_to_best import first_reach, goal_for, median_over_all, verdict


def test_goal_is_one_row_below_a_maximised_best_and_a_relative_margin_above_a_minimised_one():
    assert goal_for(0.9, "max", row=0.1, rel_tol=0.01) == pytest.approx(0.8)
    assert goal_for(2.0, "min", row=None, rel_tol=0.01) == pytest.approx(2.02)
    with pytest.raises(ValueError):
        goal_for(0.9, "max", row=None, rel_tol=0.01)


def test_first_reach_counts_distinct_trials_and_epochs_up_to_the_first_hit():
    # (trial, value) per epoch: trial 1 (2 epochs), trial 2 (1 epoch), promoted trial 1 again.
    trace = [(1, 0.5), (1, 0.6), (2, 0.7), (3, 0.9), (3, 0.95)]
    assert first_reach(trace, 0.9, "max") == (3, 4)
    assert first_reach(trace, 0.6, "max") == (1, 2)
    assert first_reach(trace, 0.99, "max") is None
    losses = [(1, 3.0), (2, 2.0), (2, 1.0)]
    assert first_reach(losses, 2.0, "min") == (2, 2)


def test_a_seed_not_reached_counts_as_infinitely_slow():
    assert median_over_all([0.2, None, 0.4]) == pytest.approx(0.4)
    assert median_over_all([0.2, None, None]) == math.inf
    assert verdict(0.5, 1 / 2) == "met"
    assert verdict(0.34, 1 / 3) == "missed"


def test_front_keeps_the_non_dominated_trials_on_a_log_scale():
    trials = [(0.9, 1000.0), (0.95, 10000.0), (0.8, 10000.0), (0.9, 100.0)]
    assert front_points(trials) == [(0.9, 2.0), (0.95, 4.0)]


def test_hypervolume_is_the_area_to_the_reference_and_agrees_with_optuna():
    trials = [(0.9, 100.0), (0.95, 10000.0)]
    # (0.9 - 0) x (5 - 2) + (0.95 - 0.9) x (5 - 4)
    assert hypervolume(trials) == pytest.approx(0.9 * 3 + 0.05 * 1)
    losses = np.array([[-acc, math.log10(p)] for acc, p in trials])
    reference = np.array([-REFERENCE[0], REFERENCE[1]])
    assert hypervolume(trials) == pytest.approx(compute_hypervolume(losses, reference))
    assert hypervolume([(0.9, 1e6)]) == 0.0  # beyond the reference's size: adds nothing
