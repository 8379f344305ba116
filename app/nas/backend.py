"""Import keras through here, never directly, so the backend is chosen before keras loads.

Keras reads ``KERAS_BACKEND`` once, at its first import. Without a default it would pick
tensorflow, which this project does not install; torch is the installed, supported backend.
The choice comes from `Settings.keras_backend` (``KERAS_BACKEND``, default torch), written to
the variable just before keras is imported, so ``KERAS_BACKEND=jax`` still wins.
"""

from __future__ import annotations

import ctypes
import gc
import os

from app.config import get_settings

# Read at import, not passed in: this module is where keras is first imported, and keras
# takes its backend from the environment at that moment.
_settings = get_settings()
os.environ["KERAS_BACKEND"] = _settings.keras_backend

import keras  # noqa: E402

BACKEND: str = keras.backend.backend()

#: torch intra-op threads (`Settings.torch_threads`). One by default: the service runs on
#: small machines (2 cores) shared with the API, the job queue and Postgres, and these small
#: dense nets gain nothing from intra-op parallelism. Measured on 2 busy cores
#: (docs/benchmarks.md, "Speed fixes"): 2 threads made a 10-trial digits search ~5x slower
#: than 1, because torch's worker threads spin waiting for a core. Override with
#: CEREBROS_TORCH_THREADS on an idle, larger machine.
TORCH_THREADS: int = _settings.torch_threads

if BACKEND == "torch":
    import torch

    torch.set_num_threads(TORCH_THREADS)


_heap_frozen = False
#: glibc's ``malloc_trim`` (None on other C libraries). Freed tensors of a few MB go back to
#: malloc's heap, not to the system: after a 4.5 M-parameter trial the RSS stayed ~80 MiB up
#: until trimmed (docs/benchmarks.md, "Parameter cap").
_MALLOC_TRIM = getattr(ctypes.CDLL(None), "malloc_trim", None)


def freeze_heap() -> None:
    """Move what is alive now to the permanent generation, once per process.

    ``clear_session(free_memory=True)`` runs a full ``gc.collect()``, which must scan every
    tracked object: ~380 000 after importing keras and torch, ~0.45 s per trial. What is
    alive before the first trial (modules, the dataset) lives on, so after one collection it
    is frozen; later collections scan only what trials created (well under 10 ms).

    Call it before a search builds its first model, never between trials: a frozen object is
    never collected again, so a model alive at that moment (held, say, by the traceback of a
    trial that is failing or being cancelled) would stay in memory for good.
    """
    global _heap_frozen
    if not _heap_frozen:
        gc.collect()
        gc.freeze()
        _heap_frozen = True


def clear_backend_caches() -> None:
    """Release per-model state held by keras and the backend after a trial.

    Runs a full ``gc.collect()`` (inside ``clear_session``), cheap once `freeze_heap` ran,
    then hands the freed heap back to the system, so a worker's memory falls back after a
    large trial, failed or not.
    """
    keras.backend.clear_session(free_memory=True)
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)
    if BACKEND == "jax":  # pragma: no cover - jax not installed in CI
        import jax

        # jax keeps compiled executables for every traced model shape; they never go away
        # on their own and grow the RSS with every trial.
        jax.clear_caches()


__all__ = ["BACKEND", "TORCH_THREADS", "clear_backend_caches", "freeze_heap", "keras"]
