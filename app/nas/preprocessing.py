"""A run's one data transformation, as built-in Keras layers.

Features are standardised with the training split's mean and standard deviation by a
``keras.layers.Normalization`` layer; regression targets by another, which inverted turns
the network's standard units back into the target's. The same layers standardise the
training arrays (`standardize`, from datasets.py) and wrap the best model at export
(`export_model`, from artifacts.py), so the saved model takes raw feature rows and gives
the answer `POST /runs/{id}/predict` gives. They are built-in layers with their statistics
in the layer config: the file loads with Keras and any backend, without this package.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from app.nas.backend import keras
from app.nas.records import Preprocessing

__all__ = ["FEATURES_LAYER", "TARGET_LAYER", "export_model", "standardize", "standardizer"]

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
    x = standardizer(prep.x_mean, prep.x_std, name=FEATURES_LAYER)(inputs)
    outputs = network(x)
    if prep.task == "regression":
        outputs = standardizer(prep.y_mean, prep.y_std, name=TARGET_LAYER, invert=True)(outputs)
    return keras.Model(inputs=inputs, outputs=outputs, name="cerebros_best")
