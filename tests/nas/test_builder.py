"""Architecture -> keras model: structure, param count, one training step, JSON rebuild."""

from __future__ import annotations

import json

import numpy as np
import pytest

from app.nas.backend import keras
from app.nas.builder import build_model
from app.nas.space import Architecture, head_for, sample_architecture
from app.nas.spec import SearchSpace
from app.nas.trainer import compile_candidate

SPACE = SearchSpace(
    minimum_levels=1,
    maximum_levels=5,
    minimum_units_per_level=1,
    maximum_units_per_level=4,
    minimum_neurons_per_unit=1,
    maximum_neurons_per_unit=24,
    activation=["relu", "elu", "gelu", "selu", "tanh", "sigmoid", "swish", "softsign"],
    learning_rate=[0.001],
)


def sample(seed: int, task: str = "classification") -> Architecture:
    head = head_for(task, 3 if task == "classification" else 0, None)
    return sample_architecture(SPACE, np.random.default_rng(seed), input_dim=6, head=head)


def graph(model: keras.Model) -> list[tuple[str, str, list[str]]]:
    """(layer name, class, inbound layer names) for every layer."""
    out = []
    for layer in model.layers:
        inbound: list[str] = []
        for node in layer._inbound_nodes:
            inbound.extend(t._keras_history[0].name for t in node.input_tensors)
        out.append((layer.name, type(layer).__name__, sorted(inbound)))
    return sorted(out)


@pytest.mark.parametrize("seed", range(0, 200, 5))
def test_builds_with_the_computed_param_count(seed: int) -> None:
    arch = sample(seed)
    model = build_model(arch)
    assert model.count_params() == arch.params_count()
    assert model.output_shape == (None, 3)
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert len(dense) == sum(len(level) for level in arch.levels)
    # Units with several inputs concatenate them; single-input units do not.
    concats = [layer for layer in model.layers if isinstance(layer, keras.layers.Concatenate)]
    multi = sum(1 for level in arch.levels for unit in level if len(unit.predecessors) > 1)
    assert len(concats) == multi
    keras.backend.clear_session(free_memory=False)  # gc per test is slow


@pytest.mark.parametrize("seed", range(12))
def test_every_sampled_architecture_trains_one_step(seed: int) -> None:
    task = "classification" if seed % 2 else "regression"
    arch = sample(seed, task)
    model = build_model(arch, seed=seed)
    compile_candidate(model, learning_rate=arch.learning_rate, loss=arch.loss, task=task)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(16, 6)).astype("float32")
    y = rng.integers(0, 3, size=16) if task == "classification" else rng.normal(size=16)
    before = [w.copy() for w in model.get_weights()]
    logs = model.train_on_batch(x, y, return_dict=True)
    assert np.isfinite(logs["loss"])
    after = model.get_weights()
    assert any(not np.array_equal(a, b) for a, b in zip(before, after, strict=True))
    keras.backend.clear_session(free_memory=False)  # gc per test is slow


@pytest.mark.parametrize("seed", range(10))
def test_rebuild_from_json_gives_the_same_structure(seed: int) -> None:
    arch = sample(seed)
    first = build_model(arch)
    first_graph, first_params = graph(first), first.count_params()
    keras.backend.clear_session(free_memory=False)  # gc per test is slow
    again = build_model(Architecture.from_dict(json.loads(json.dumps(arch.to_dict()))))
    assert graph(again) == first_graph
    assert again.count_params() == first_params
    keras.backend.clear_session(free_memory=False)  # gc per test is slow


def test_same_seed_gives_same_initial_weights() -> None:
    arch = sample(5)
    w1 = build_model(arch, seed=1).get_weights()
    w2 = build_model(arch, seed=1).get_weights()
    w3 = build_model(arch, seed=2).get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(w1, w2, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(w1, w3, strict=True))
