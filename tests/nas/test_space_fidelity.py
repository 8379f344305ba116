"""The real Cerebros code's rules, as optional space fields, and what stays as it was."""

from __future__ import annotations

import collections
import hashlib
import itertools

import numpy as np
import pytest
from pydantic import ValidationError

from app.nas.space import (
    Architecture,
    architecture_errors,
    architectures,
    head_for,
    repair_orphans,
)
from app.nas.spec import NasSpec, SearchSpace

HEAD = head_for("classification", 10, None)


def draw(space: SearchSpace, count: int, seed: int = 0) -> list[Architecture]:
    return list(itertools.islice(architectures(space, seed, input_dim=5, head=HEAD), count))


def test_the_default_sequence_is_the_one_stored_runs_were_drawn_from() -> None:
    """Resume re-draws a run's candidates: the defaults must keep drawing the same ones.

    The digest is of the first 200 default architectures of seed 0, computed with the
    sampler as it was before the real code's rules were added (commit 2435b47).
    """
    fingerprints = "".join(a.fingerprint() for a in draw(SearchSpace(), 200))
    digest = hashlib.sha256(fingerprints.encode()).hexdigest()[:16]
    assert digest == DEFAULT_SEQUENCE_DIGEST


DEFAULT_SEQUENCE_DIGEST = "6bf1339cb9966630"


def test_new_fields_default_to_the_old_behaviour() -> None:
    space = SearchSpace()
    assert space.activation_scope == "unit"
    assert space.predecessor_level_connection_affinity_factor_final_to_kminus1 is None
    assert space.orphan_repair == "clipped"
    assert space.number_of_tries_per_architecture_moiety == 1
    assert (space.optimizer, space.weight_decay) == ("adamw", 0.004)


def test_activation_once_per_network() -> None:
    space = SearchSpace(activation=["relu", "tanh", "elu"], activation_scope="network")
    seen = set()
    for arch in draw(space, 300):
        activations = {u.activation for level in arch.levels[:-1] for u in level}
        assert len(activations) <= 1
        seen |= activations
        assert architecture_errors(arch, head=HEAD, space=space) == []
    assert seen == {"relu", "tanh", "elu"}


@pytest.mark.parametrize("factor", [None, 1, 2, 4])
def test_final_unit_picks_from_the_level_below(
    factor: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``factor * n`` picks with replacement of the n units below, before the usual ones.

    Orphan repair is switched off to see the picks alone: with one main pick per level
    (a tiny affinity), the output then reads 6 (1 - (5/6) ** (6 factor + 1)) of 6 units.
    """
    from app.nas import space as space_module

    monkeypatch.setattr(space_module, "repair_orphans", lambda *args: None)
    space = SearchSpace(
        predecessor_level_connection_affinity_factor_main=0.01,
        predecessor_level_connection_affinity_factor_final_to_kminus1=factor,
        p_lateral_connection=0.0,
    )
    rng = np.random.default_rng(1)
    reached = [len(space_module.wire(space, rng, [1, 6, 1])[1][0] - {(0, 0)}) for _ in range(3000)]
    picks = 6 * (factor or 0) + 1
    assert np.mean(reached) == pytest.approx(6 * (1 - (5 / 6) ** picks), abs=0.1)


def test_final_to_kminus1_changes_the_sequence_and_stays_valid() -> None:
    on = SearchSpace(predecessor_level_connection_affinity_factor_final_to_kminus1=2)
    archs = draw(on, 300)
    assert archs != draw(SearchSpace(), 300)
    for arch in archs:
        assert architecture_errors(arch, head=HEAD, space=on) == []


def orphan_depths(space: SearchSpace, n_levels: int, draws: int = 4000) -> collections.Counter[int]:
    """How far above an orphan on level 1 the repair wires it."""
    counts = [1] + [1] * n_levels
    depths: collections.Counter[int] = collections.Counter()
    rng = np.random.default_rng(3)
    for _ in range(draws):
        preds: list[list[set[tuple[int, int]]]] = [[set()] for _ in range(n_levels)]
        for k in range(2, n_levels + 1):  # everything above reads the level below it ...
            preds[k - 1][0].add((k - 1, 0))
        preds[1][0].discard((1, 0))  # ... except that nothing reads level 1
        repair_orphans(space, rng, preds, counts)
        (target,) = [k for k in range(2, n_levels + 1) if (1, 0) in preds[k - 1][0]]
        depths[target - 1] += 1
    return depths


def test_cerebros_orphan_repair_draws_the_successor_level_like_the_real_code() -> None:
    # Five levels above level 1 (L = 6), max depth 7, min depth 1: depths 2..5 uniformly.
    real = orphan_depths(SearchSpace(orphan_repair="cerebros", maximum_levels=6), 6)
    assert set(real) == {2, 3, 4, 5}
    assert min(real.values()) > 0.2 * 4000
    # Max depth 3: depths 2..3; min depth 2: depth 3 only.
    assert set(
        orphan_depths(SearchSpace(orphan_repair="cerebros", maximum_skip_connection_depth=3), 6)
    ) == {2, 3}
    two = SearchSpace(
        orphan_repair="cerebros", minimum_skip_connection_depth=2, maximum_skip_connection_depth=3
    )
    assert set(orphan_depths(two, 6)) == {3}
    # Only the next level above: depth 1 (the real code's arange(0, 1)).
    assert set(orphan_depths(SearchSpace(orphan_repair="cerebros"), 2)) == {1}
    # Where the real code's range is empty (max depth 1), the deepest allowed: depth 1.
    assert set(
        orphan_depths(SearchSpace(orphan_repair="cerebros", maximum_skip_connection_depth=1), 6)
    ) == {1}


def test_clipped_orphan_repair_piles_up_on_the_output_level() -> None:
    clipped = orphan_depths(SearchSpace(), 4)
    # Depth 1..7 clipped to the output (depth 3): 5 of 7 draws land there.
    assert set(clipped) == {1, 2, 3}
    assert clipped[3] > 0.6 * 4000


def test_tries_per_moiety_rewire_the_same_moiety() -> None:
    space = SearchSpace(
        number_of_tries_per_architecture_moiety=3,
        maximum_units_per_level=4,
        activation=["relu", "tanh"],
        learning_rate=[0.001, 0.01],
    )
    archs = draw(space, 30)
    for i in range(0, 30, 3):
        group = archs[i : i + 3]
        shapes = {
            (
                a.learning_rate,
                tuple(tuple((u.neurons, u.activation) for u in lv) for lv in a.levels),
            )
            for a in group
        }
        assert len(shapes) == 1
        for a in group:
            assert architecture_errors(a, head=HEAD, space=space) == []
    # The first of each group is what one try per moiety draws first.
    assert (
        archs[0]
        == draw(
            SearchSpace(**{**space.model_dump(), "number_of_tries_per_architecture_moiety": 1}), 1
        )[0]
    )


def test_field_validation() -> None:
    with pytest.raises(ValidationError, match="minimum_skip_connection_depth"):
        SearchSpace(minimum_skip_connection_depth=5, maximum_skip_connection_depth=3)
    for bad in (
        {"activation_scope": "level"},
        {"orphan_repair": "nearest"},
        {"optimizer": "sgd"},
        {"predecessor_level_connection_affinity_factor_final_to_kminus1": 0},
        {"number_of_tries_per_architecture_moiety": 0},
    ):
        with pytest.raises(ValidationError):
            SearchSpace.model_validate(bad)
    spec = NasSpec.model_validate(
        {"dataset_id": "digits", "search_space": {"optimizer": "adam", "orphan_repair": "cerebros"}}
    )
    assert NasSpec.model_validate(spec.model_dump()) == spec
