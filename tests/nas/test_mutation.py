"""Mutations keep every architecture a valid Cerebros DAG of its space (no keras)."""

from __future__ import annotations

import collections
import itertools
from typing import Any

import numpy as np
import pytest

from app.nas.mutation import MUTATIONS, applicable_mutations, mutate
from app.nas.space import Architecture, Unit, architecture_errors, architectures, head_for
from app.nas.spec import SearchSpace

HEAD = head_for("classification", 10, None)
SPACES: dict[str, dict[str, Any]] = {
    "default": {},
    "wide": {
        "minimum_levels": 1,
        "maximum_levels": 6,
        "maximum_units_per_level": 5,
        "activation": ["relu", "tanh", "elu"],
        "learning_rate": [0.0003, 0.001, 0.01],
        "predecessor_level_connection_affinity_factor_main": 0.3,
        "maximum_skip_connection_depth": 2,
    },
    "cerebros rules": {
        "minimum_levels": 1,
        "maximum_levels": 5,
        "maximum_units_per_level": 4,
        "activation": ["relu", "gelu"],
        "activation_scope": "network",
        "orphan_repair": "cerebros",
        "predecessor_level_connection_affinity_factor_final_to_kminus1": 2,
        "neurons_per_unit_choices": [8, 16, 32],
        "learning_rate": [0.001, 0.01],
    },
    "narrow": {
        "minimum_levels": 3,
        "maximum_levels": 4,
        "minimum_units_per_level": 2,
        "maximum_units_per_level": 3,
        "p_lateral_connection": 0.0,
    },
}


def starts(space: SearchSpace, count: int) -> list[Architecture]:
    return list(itertools.islice(architectures(space, 1, input_dim=7, head=HEAD), count))


@pytest.mark.parametrize("name", sorted(SPACES))
def test_chains_of_mutations_stay_valid_over_thousands_of_seeds(name: str) -> None:
    space = SearchSpace.model_validate(SPACES[name])
    parents = starts(space, 100)
    kinds: collections.Counter[str] = collections.Counter()
    for seed in range(2000):
        rng = np.random.default_rng(seed)
        arch = parents[seed % len(parents)]
        for _ in range(3):  # a child of a child of a child
            if not applicable_mutations(arch, space):
                break
            child, kind = mutate(arch, space, rng, head=HEAD)
            kinds[kind] += 1
            errors = architecture_errors(child, head=HEAD, space=space)
            assert errors == [], (seed, kind, errors)
            assert child.fingerprint() != arch.fingerprint(), (seed, kind)
            assert child.input_dim == arch.input_dim and child.loss == arch.loss
            arch = child
    assert set(kinds) == set(applicable_kinds(space)), kinds


def applicable_kinds(space: SearchSpace) -> set[str]:
    kinds = set(MUTATIONS)
    if len(space.activation) == 1:
        kinds.discard("change_activation")
    if len(space.learning_rate) == 1:
        kinds.discard("change_learning_rate")
    if not space.draws_laterals():
        kinds.discard("add_lateral")
    return kinds


@pytest.mark.parametrize("kind", sorted(MUTATIONS))
def test_each_mutation_does_what_it_says(kind: str) -> None:
    space = SearchSpace.model_validate(SPACES["wide"])
    done = 0
    for seed, arch in enumerate(starts(space, 300)):
        if kind not in applicable_mutations(arch, space):
            continue
        child, got = mutate(arch, space, np.random.default_rng(seed), head=HEAD, kind=kind)
        assert got == kind
        check_change(kind, arch, child)
        done += 1
    assert done >= 20, f"{kind} applied only {done} times"


def check_change(kind: str, parent: Architecture, child: Architecture) -> None:
    hidden = [len(level) for level in parent.levels[:-1]]
    child_hidden = [len(level) for level in child.levels[:-1]]
    if kind == "add_level":
        assert child.n_levels == parent.n_levels + 1
    elif kind == "remove_level":
        assert child.n_levels == parent.n_levels - 1
    elif kind == "add_unit":
        assert sum(child_hidden) == sum(hidden) + 1 and child.n_levels == parent.n_levels
    elif kind == "remove_unit":
        assert sum(child_hidden) == sum(hidden) - 1 and child.n_levels == parent.n_levels
    else:  # same shape
        assert child_hidden == hidden
        widths = [[u.neurons for u in level] for level in parent.levels]
        child_widths = [[u.neurons for u in level] for level in child.levels]
        changed = sum(
            a != b
            for x, y in zip(widths, child_widths, strict=True)
            for a, b in zip(x, y, strict=True)
        )
        assert changed == (1 if kind == "change_neurons" else 0)
        if kind == "change_learning_rate":
            assert child.learning_rate != parent.learning_rate
        else:
            assert child.learning_rate == parent.learning_rate
        if kind in ("rewire", "add_predecessor", "add_lateral"):
            edges = edge_set(child) - edge_set(parent)
            assert edges
            if kind == "add_predecessor":
                assert any(j <= k - 2 for k, _, j, _ in edges)
            if kind == "add_lateral":
                assert any(j == k for k, _, j, _ in edges)


def edge_set(arch: Architecture) -> set[tuple[int, int, int, int]]:
    return {
        (k, u, j, i)
        for k, level in enumerate(arch.levels, start=1)
        for u, unit in enumerate(level)
        for j, i in unit.predecessors
    }


def test_activation_changes_for_the_whole_network_under_network_scope() -> None:
    space = SearchSpace.model_validate(SPACES["cerebros rules"])
    for seed, arch in enumerate(starts(space, 200)):
        if "change_activation" not in applicable_mutations(arch, space):
            continue
        child, _ = mutate(
            arch, space, np.random.default_rng(seed), head=HEAD, kind="change_activation"
        )
        before = {u.activation for level in arch.levels[:-1] for u in level}
        after = {u.activation for level in child.levels[:-1] for u in level}
        assert len(before) == len(after) == 1 and before != after


def test_same_rng_same_child() -> None:
    space = SearchSpace.model_validate(SPACES["wide"])
    for arch in starts(space, 50):
        a = mutate(arch, space, np.random.default_rng(7), head=HEAD)
        b = mutate(arch, space, np.random.default_rng(7), head=HEAD)
        assert a == b


def test_a_mutation_that_does_not_apply_is_refused() -> None:
    space = SearchSpace.model_validate({"minimum_levels": 1, "maximum_levels": 1})
    (arch,) = starts(space, 1)
    assert applicable_mutations(arch, space) == []
    with pytest.raises(ValueError, match="no mutation applies"):
        mutate(arch, space, np.random.default_rng(0), head=HEAD)
    wide = SearchSpace.model_validate(SPACES["wide"])
    with pytest.raises(ValueError, match="does not apply"):
        mutate(arch, wide, np.random.default_rng(0), head=HEAD, kind="remove_level")


def test_the_checker_finds_every_broken_rule() -> None:
    unit = Unit(8, "relu", ((0, 0),))
    out = Unit(HEAD.output_dim, HEAD.activation, ((1, 0),))
    good = Architecture(input_dim=3, levels=((unit,), (out,)), learning_rate=0.001)
    assert architecture_errors(good, head=HEAD) == []
    cases = {
        "reads nothing": ((Unit(8, "relu", ()),), (out,)),
        "does not exist": ((Unit(8, "relu", ((0, 1),)),), (out,)),
        "lower-index": (
            (unit, Unit(8, "relu", ((0, 0), (1, 1)))),
            (Unit(10, "softmax", ((1, 0), (1, 1))),),
        ),
        "feeds no later level": ((unit, unit), (out,)),
        "output level has 2 units": ((unit,), (out, out)),
        "does not match the head": ((unit,), (Unit(3, "softmax", ((1, 0),)),)),
    }
    for message, levels in cases.items():
        arch = Architecture(input_dim=3, levels=levels, learning_rate=0.001)
        errors = architecture_errors(arch, head=HEAD)
        assert any(message in e for e in errors), (message, errors)
    space = SearchSpace(minimum_levels=3)
    assert any("levels outside" in e for e in architecture_errors(good, space=space))
