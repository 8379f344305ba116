"""Cerebros connection rules, checked structurally over many seeds (no keras)."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest

from app.nas.space import (
    Architecture,
    architectures,
    head_for,
    predecessor_count,
    sample_architecture,
)
from app.nas.spec import SearchSpace

SEEDS = range(200)
HEAD = head_for("classification", 10, None)
SPACE = SearchSpace(
    minimum_levels=1,
    maximum_levels=6,
    minimum_units_per_level=1,
    maximum_units_per_level=5,
    minimum_neurons_per_unit=2,
    maximum_neurons_per_unit=40,
    activation=["relu", "tanh", "gelu"],
    learning_rate=[0.001, 0.01],
    predecessor_level_connection_affinity_factor_main=0.4,
    maximum_skip_connection_depth=2,
)


def sample(seed: int, space: SearchSpace = SPACE) -> Architecture:
    return sample_architecture(space, np.random.default_rng(seed), input_dim=7, head=HEAD)


@pytest.mark.parametrize("seed", SEEDS)
def test_sampled_structure_obeys_the_rules(seed: int) -> None:
    arch = sample(seed)
    assert SPACE.minimum_levels <= arch.n_levels <= SPACE.maximum_levels
    assert arch.learning_rate in SPACE.learning_rate
    out = arch.output_unit
    assert len(arch.levels[-1]) == 1
    assert (out.neurons, out.activation) == (HEAD.output_dim, HEAD.activation)
    for level in arch.levels[:-1]:
        assert SPACE.minimum_units_per_level <= len(level) <= SPACE.maximum_units_per_level
        for unit in level:
            assert unit.neurons in SPACE.neuron_choices()
            assert unit.activation in SPACE.activation
    for k, level in enumerate(arch.levels, start=1):
        for u, unit in enumerate(level):
            assert list(unit.predecessors) == sorted(set(unit.predecessors))
            for j, index in unit.predecessors:
                assert 0 <= j <= k
                assert 0 <= index < arch.units_on(j)
                if j == k:
                    assert index < u, "lateral connections only go to lower-index units"
            # Every earlier level (the input included) feeds every unit.
            assert {j for j, _ in unit.predecessors if j < k} == set(range(k))
    # Orphan repair: every unit below the output is read by some unit on a later level.
    for k in range(1, arch.n_levels):
        for u in range(arch.units_on(k)):
            readers = [
                (k2, u2)
                for k2 in range(k + 1, arch.n_levels + 1)
                for u2 in range(arch.units_on(k2))
                if (k, u) in arch.unit(k2, u2).predecessors
            ]
            assert readers, f"unit {(k, u)} feeds nothing downstream"


@pytest.mark.parametrize("seed", range(50))
def test_small_affinity_picks_one_per_level_plus_repairs(seed: int) -> None:
    space = SPACE.model_copy(
        update={
            "predecessor_level_connection_affinity_factor_first": 0.01,
            "predecessor_level_connection_affinity_factor_main": 0.01,
            "p_lateral_connection": 0.0,
        }
    )
    arch = sample(seed, space)
    cross = sum(
        sum(1 for j, _ in unit.predecessors if j < k)
        for k, level in enumerate(arch.levels, start=1)
        for unit in level
    )
    base = sum(k * len(level) for k, level in enumerate(arch.levels, start=1))
    non_output_units = sum(len(level) for level in arch.levels[:-1])
    # One pick per earlier level, plus at most one repair edge per orphan.
    assert base <= cross <= base + non_output_units


@pytest.mark.parametrize("seed", range(50))
def test_large_affinity_connects_everything_below(seed: int) -> None:
    space = SPACE.model_copy(
        update={
            "maximum_levels": 4,
            "predecessor_level_connection_affinity_factor_main": 100.0,
            "p_lateral_connection": 0.0,
        }
    )
    arch = sample(seed, space)
    for k, level in enumerate(arch.levels, start=1):
        for unit in level:
            expected = {(j, i) for j in range(k) for i in range(arch.units_on(j))}
            assert set(unit.predecessors) == expected


def test_predecessor_count_formula() -> None:
    space = SearchSpace(
        predecessor_level_connection_affinity_factor_first=2.5,
        predecessor_level_connection_affinity_factor_main=0.7,
        predecessor_level_connection_affinity_factor_decay_main=0.7,
    )
    assert predecessor_count(space, 1, 0, 1) == 3  # ceil(2.5 * 1), no decay on level 1
    assert predecessor_count(space, 2, 1, 4) == 2  # ceil(0.7 * 0.7 * 4 = 1.96)
    assert predecessor_count(space, 3, 1, 3) == 2  # ceil(0.7 * 0.49 * 3 = 1.029)
    assert predecessor_count(space, 5, 0, 1) == 1  # ceil(0.7 * 0.7**5) -> at least 1
    assert predecessor_count(space, 2, 1, 10) == math.ceil(0.7 * 0.7 * 10)


@pytest.mark.parametrize("cap", [0, 1, 2])
@pytest.mark.parametrize("seed", range(30))
def test_lateral_connections_respect_probability_and_cap(cap: int, seed: int) -> None:
    space = SPACE.model_copy(
        update={
            "maximum_units_per_level": 8,
            "minimum_units_per_level": 6,
            "minimum_levels": 2,
            "p_lateral_connection": 1.0,
            "max_consecutive_lateral_connections": cap,
            "num_lateral_connection_tries_per_unit": 1,
        }
    )
    arch = sample(seed, space)
    for k, level in enumerate(arch.levels, start=1):
        for u, unit in enumerate(level):
            distances = sorted(u - i for j, i in unit.predecessors if j == k)
            run = longest = 0
            for d in range(1, u + 1):
                run = run + 1 if d in distances else 0
                longest = max(longest, run)
            assert longest <= cap
            if cap == 0:
                assert distances == []


def test_no_lateral_connections_when_probability_is_zero() -> None:
    space = SPACE.model_copy(update={"p_lateral_connection": 0.0})
    for seed in range(50):
        arch = sample(seed, space)
        for k, level in enumerate(arch.levels, start=1):
            for unit in level:
                assert all(j < k for j, _ in unit.predecessors)


def test_lateral_connections_happen_with_high_probability() -> None:
    space = SPACE.model_copy(update={"minimum_units_per_level": 4, "minimum_levels": 2})
    laterals = sum(
        1
        for seed in range(20)
        for k, level in enumerate(sample(seed, space).levels, start=1)
        for unit in level
        for j, _ in unit.predecessors
        if j == k
    )
    assert laterals > 0


def test_same_seed_same_sequence_and_different_seed_differs() -> None:
    def fingerprints(seed: int) -> list[str]:
        seq = architectures(SPACE, seed, input_dim=7, head=HEAD)
        return [a.fingerprint() for a in itertools.islice(seq, 10)]

    assert fingerprints(3) == fingerprints(3)
    assert fingerprints(3) != fingerprints(4)


def test_json_round_trip_and_fingerprint() -> None:
    for seed in range(20):
        arch = sample(seed)
        again = Architecture.from_dict(json.loads(json.dumps(arch.to_dict())))
        assert again == arch
        assert again.fingerprint() == arch.fingerprint()
    assert sample(0).fingerprint() != sample(1).fingerprint()


def test_heads_per_task() -> None:
    assert head_for("regression", 0, None).output_dim == 1
    assert head_for("classification", 2, None).loss == "binary_crossentropy"
    multi = head_for("classification", 5, None)
    assert (multi.output_dim, multi.activation) == (5, "softmax")
