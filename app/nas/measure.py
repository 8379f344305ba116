"""Objectives measured on a trained model rather than reported by Keras (issue 14, point 4).

``params`` is `Architecture.trainable_params_count` (no model needed); ``inference_ms`` is
measured here, on a fixed batch, so that trials of one run compare on the same input.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

__all__ = ["INFERENCE_REPEATS", "measure_inference_ms"]

#: Timed predictions per measure; the median of them is the result.
INFERENCE_REPEATS = 7


def measure_inference_ms(model: Any, x_batch: Any, *, repeats: int = INFERENCE_REPEATS) -> float:
    """Median wall time, in milliseconds, of one prediction on ``x_batch``.

    One untimed call first (the backend traces or compiles the graph on its first call),
    then ``repeats`` timed calls of ``model.predict_on_batch``: no callbacks, no batching
    of our own, no progress bar, so the figure is the network's forward pass plus the
    backend's per-call overhead, which is what serving one request of that size costs.
    The median keeps a stray scheduling pause from deciding the result.
    """
    if repeats < 1:
        raise ValueError("repeats must be at least 1")
    model.predict_on_batch(x_batch)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        model.predict_on_batch(x_batch)
        times.append((time.perf_counter() - started) * 1000.0)
    return float(statistics.median(times))
