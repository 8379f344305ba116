"""The names of a run's artifacts: one place for the files' names and their media types.

A run's artifacts are named like files relative to its artifacts folder
(`app.nas.artifacts.ArtifactStore` writes them there; `app.runs.artifacts` keeps them in
Postgres under the same names). No imports beyond the standard library: the engine, the
pipeline and the API all read these.
"""

from __future__ import annotations

__all__ = [
    "ARCHITECTURE",
    "BEST_MODEL",
    "CHECKPOINTS",
    "HISTORY",
    "KERAS_MEDIA_TYPE",
    "PREPROCESSING",
    "RESULT",
    "RUN_ARTIFACTS",
    "checkpoint_name",
    "media_type_of",
]

BEST_MODEL = "best_model.keras"
ARCHITECTURE = "architecture.json"
HISTORY = "history.csv"
PREPROCESSING = "preprocessing.json"
RESULT = "result.json"
#: Successive-halving candidates waiting between rungs (`checkpoint_name`).
CHECKPOINTS = "checkpoints"
#: What a finished run keeps (checkpoints are dropped at the end of a search).
RUN_ARTIFACTS = (BEST_MODEL, ARCHITECTURE, HISTORY, PREPROCESSING, RESULT)

#: A `.keras` file is a zip archive; served as bytes to download.
KERAS_MEDIA_TYPE = "application/octet-stream"
_MEDIA_TYPES = {".keras": KERAS_MEDIA_TYPE, ".json": "application/json", ".csv": "text/csv"}


def checkpoint_name(trial_number: int) -> str:
    """The name of a trial's checkpoint: ``checkpoint_name(7) == "checkpoints/trial_0007.keras"``.

    Delete them all with the prefix ``CHECKPOINTS + "/"``.
    """
    if trial_number < 0:
        raise ValueError(f"trial numbers are not negative: {trial_number}")
    return f"{CHECKPOINTS}/trial_{trial_number:04d}.keras"


def media_type_of(name: str) -> str:
    """The media type an artifact of this name is stored with (by its suffix)."""
    for suffix, media_type in _MEDIA_TYPES.items():
        if name.endswith(suffix):
            return media_type
    return "application/octet-stream"
