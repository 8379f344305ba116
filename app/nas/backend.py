"""Import keras through here, never directly, so the backend is chosen before keras loads.

Keras reads ``KERAS_BACKEND`` once, at its first import. Without a default it would pick
tensorflow, which this project does not install; torch is the installed, supported backend.
`setdefault` keeps the choice switchable (``KERAS_BACKEND=jax`` still wins).
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras

BACKEND: str = keras.backend.backend()

#: torch intra-op threads. The service runs on small machines (2 cores); torch's default of
#: one thread per core plus inter-op threads oversubscribes them while the job queue and API
#: also need CPU, and small dense nets gain nothing from more threads. Override with
#: CEREBROS_TORCH_THREADS.
TORCH_THREADS: int = int(os.environ.get("CEREBROS_TORCH_THREADS", "2"))

if BACKEND == "torch":
    import torch

    torch.set_num_threads(TORCH_THREADS)


def clear_backend_caches() -> None:
    """Release per-model state held by keras and the backend after a trial."""
    keras.backend.clear_session(free_memory=True)
    if BACKEND == "jax":  # pragma: no cover - jax not installed in CI
        import jax

        # jax keeps compiled executables for every traced model shape; they never go away
        # on their own and grow the RSS with every trial.
        jax.clear_caches()


__all__ = ["BACKEND", "TORCH_THREADS", "clear_backend_caches", "keras"]
