"""Keras models to and from bytes: how models travel through Postgres between hosts."""

from __future__ import annotations

import tempfile
from pathlib import Path

from app.nas.backend import keras

__all__ = ["model_from_bytes", "model_to_bytes"]


def model_to_bytes(model: keras.Model) -> bytes:
    """The ``.keras`` file of ``model`` (compiled models keep their optimizer state)."""
    # Keras 3 saves .keras archives to paths only; a private temporary folder keeps
    # concurrent trials of one host apart.
    with tempfile.TemporaryDirectory(prefix="cerebros-model-") as folder:
        path = Path(folder) / "model.keras"
        model.save(path)
        return path.read_bytes()


def model_from_bytes(data: bytes, *, compile: bool = True) -> keras.Model:
    """Load a model saved by `model_to_bytes` (or any ``.keras`` file's bytes)."""
    with tempfile.TemporaryDirectory(prefix="cerebros-model-") as folder:
        path = Path(folder) / "model.keras"
        path.write_bytes(data)
        return keras.saving.load_model(path, compile=compile)
