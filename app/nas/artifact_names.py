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
    "CANDIDATES",
    "CHECKPOINTS",
    "HISTORY",
    "KERAS_MEDIA_TYPE",
    "PREPROCESSING",
    "RESULT",
    "RUN_ARTIFACTS",
    "candidate_name",
    "candidate_number",
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
#: Under the selection rule ``smallest_within_tolerance``: the exported models of the trials
#: that may still become the run's choice (`app.nas.selection.keepers`); dropped at the end.
CANDIDATES = "candidates"
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


def candidate_name(trial_number: int) -> str:
    """The name of a trial's kept model: ``candidate_name(7) == "candidates/trial_0007.keras"``."""
    if trial_number < 0:
        raise ValueError(f"trial numbers are not negative: {trial_number}")
    return f"{CANDIDATES}/trial_{trial_number:04d}.keras"


def candidate_number(name: str) -> int | None:
    """The trial number of a `candidate_name`; None for any other name."""
    prefix, suffix = f"{CANDIDATES}/trial_", ".keras"
    if not (name.startswith(prefix) and name.endswith(suffix)):
        return None
    digits = name[len(prefix) : -len(suffix)]
    return int(digits) if digits.isdigit() else None


def media_type_of(name: str) -> str:
    """The media type an artifact of this name is stored with (by its suffix)."""
    for suffix, media_type in _MEDIA_TYPES.items():
        if name.endswith(suffix):
            return media_type
    return "application/octet-stream"
