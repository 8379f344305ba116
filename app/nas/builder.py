"""Architecture -> keras functional Model.

Each unit is ``Concatenate`` (only when it has more than one input) -> ``BatchNormalization``
-> ``Dense(neurons, activation)``, as Cerebros' DenseUnit with ``bnorm``; the output level's
single unit is the same with ``Dense(output_dim, final_activation)``. Layer names are derived
from (level, unit), so building the same architecture twice gives the same graph.
"""

from __future__ import annotations

from app.nas.backend import keras
from app.nas.space import Architecture

__all__ = ["build_model"]


def build_model(arch: Architecture, *, seed: int | None = None) -> keras.Model:
    """Build (uncompiled) the keras model for ``arch``.

    ``seed`` seeds the weight initialisers so a trial is reproducible.
    """
    if seed is not None:
        keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape=(arch.input_dim,), name="input")
    tensors: dict[tuple[int, int], object] = {(0, 0): inputs}
    for level_number, level in enumerate(arch.levels, start=1):
        # Units in index order: a lateral predecessor always has a lower index.
        for index, unit in enumerate(level):
            name = f"l{level_number}_u{index}"
            feeds = [tensors[p] for p in unit.predecessors]
            merged = (
                keras.layers.Concatenate(axis=-1, name=f"{name}_cat")(feeds)
                if len(feeds) > 1
                else feeds[0]
            )
            normed = keras.layers.BatchNormalization(name=f"{name}_bn")(merged)
            is_output = level_number == arch.n_levels
            tensors[(level_number, index)] = keras.layers.Dense(
                unit.neurons,
                activation=unit.activation,
                name="output" if is_output else f"{name}_dense",
            )(normed)
    outputs = tensors[(arch.n_levels, 0)]
    return keras.Model(inputs=inputs, outputs=outputs, name="cerebros_candidate")
