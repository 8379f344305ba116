"""A run's one data transformation, as built-in Keras layers.

Features are standardised with the training split's mean and standard deviation by a
``keras.layers.Normalization`` layer; regression targets by another, which inverted turns
the network's standard units back into the target's. The same layers standardise the
training arrays (`standardize`, from datasets.py) and wrap the best model at export
(`export_model`, from artifacts.py), so the saved model takes raw feature rows and gives
the answer `POST /runs/{id}/predict` gives. They are built-in layers with their statistics
in the layer config: the file loads with Keras and any backend, without this package.

Uploaded tables (`Preprocessing.columns`) take one float per raw column instead
(`app.nas.columns` says which: strings become their category's position, since a torch
model cannot take strings), and `tabular_features` turns that row into the network's
features with keras ops the saved model serialises with it: numeric columns have a missing
value (NaN) replaced by the training mean, a 0/1 indicator where the column had missing
values, and are standardised (a ``Normalization`` layer); categorical columns become one-hot
features of their kept categories plus one for "missing or other".
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from app.nas.backend import keras
from app.nas.columns import ColumnKind, FeatureColumn
from app.nas.records import Preprocessing

__all__ = [
    "FEATURES_LAYER",
    "TARGET_LAYER",
    "export_model",
    "standardize",
    "standardizer",
    "tabular_features",
    "tabular_transform",
]

FEATURES_LAYER = "standardize_features"
TARGET_LAYER = "target_units"


def standardizer(
    mean: npt.ArrayLike, std: npt.ArrayLike, *, name: str, invert: bool = False
) -> keras.layers.Normalization:
    """``(x - mean) / std`` per column (or ``x * std + mean`` with ``invert``).

    ``std`` must have no zeros (datasets.py sets constant columns' to 1).
    """
    std32 = np.asarray(std, dtype=np.float32)
    return keras.layers.Normalization(
        mean=np.asarray(mean, dtype=np.float32),
        variance=np.square(std32),
        invert=invert,
        name=name,
    )


def standardize(layer: keras.layers.Normalization, values: np.ndarray) -> np.ndarray:
    """Apply ``layer`` to a whole array (2-D: rows of columns), as a float32 numpy array."""
    return np.asarray(keras.ops.convert_to_numpy(layer(values.astype(np.float32, copy=False))))


def export_model(model: keras.Model, prep: Preprocessing) -> keras.Model:
    """``model`` (trained on standardised data) as a model of raw rows.

    Raw rows -> standardise features -> ``model`` -> (regression) back to target units.
    Classification outputs stay what the network gives: class probabilities (one sigmoid
    column for a binary head). The result is not compiled: it is for inference.
    """
    # An uncompiled copy of the network: a compiled one would save its optimizer, whose
    # class lives in the backend's module (keras.src.backend.torch...), and ``model`` itself
    # is left as it is (calling it here would add a node to its graph).
    network = keras.Model.from_config(model.get_config())
    network.set_weights(model.get_weights())
    inputs = keras.Input(shape=(prep.input_dim,), name="features")
    if prep.columns:
        x = tabular_features(prep.columns, inputs)
    else:
        x = standardizer(prep.x_mean, prep.x_std, name=FEATURES_LAYER)(inputs)
    outputs = network(x)
    if prep.task == "regression":
        outputs = standardizer(prep.y_mean, prep.y_std, name=TARGET_LAYER, invert=True)(outputs)
    return keras.Model(inputs=inputs, outputs=outputs, name="cerebros_best")


def tabular_features(
    columns: tuple[FeatureColumn, ...], raw: keras.KerasTensor
) -> keras.KerasTensor:
    """The network's features from ``raw`` (one float per column, `app.nas.columns`).

    Numeric columns first (imputed, standardised, then their missing indicators), then each
    categorical column's one-hot block; the order `Dataset` arrays were made in.
    """
    ops = keras.ops
    numeric = [i for i, c in enumerate(columns) if c.kind == ColumnKind.NUMERIC]
    parts: list[keras.KerasTensor] = []
    if numeric:
        values = ops.take(raw, np.asarray(numeric, dtype=np.int32), axis=1)
        means = np.asarray([[columns[i].mean for i in numeric]], dtype=np.float32)
        missing = ops.isnan(values)
        filled = ops.where(missing, means, values)
        stds = [columns[i].std for i in numeric]
        parts.append(standardizer(means[0], stds, name=FEATURES_LAYER)(filled))
        flagged = [j for j, i in enumerate(numeric) if columns[i].missing_indicator]
        if flagged:
            picked = ops.take(missing, np.asarray(flagged, dtype=np.int32), axis=1)
            parts.append(ops.cast(picked, "float32"))
    for i, column in enumerate(columns):
        if column.kind != ColumnKind.CATEGORICAL:
            continue
        value = raw[:, i : i + 1]
        keys = np.asarray([column.keys], dtype=np.float32)
        one_hot = ops.cast(ops.equal(value, keys), "float32")  # NaN equals nothing
        other = 1.0 - ops.sum(one_hot, axis=1, keepdims=True)
        parts.extend([one_hot, other])
    if len(parts) == 1:
        return parts[0]
    return keras.layers.Concatenate(name="tabular_features")(parts)


def tabular_transform(columns: tuple[FeatureColumn, ...], raw: np.ndarray) -> np.ndarray:
    """Apply `tabular_features` to a whole raw array, in batches (float32 numpy)."""
    inputs = keras.Input(shape=(len(columns),), name="features")
    model = keras.Model(inputs, tabular_features(columns, inputs))
    batches = [
        np.asarray(keras.ops.convert_to_numpy(model(raw[start : start + 8192])))
        for start in range(0, len(raw), 8192)
    ]
    return np.concatenate(batches).astype(np.float32, copy=False)
