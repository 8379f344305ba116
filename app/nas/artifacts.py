"""Per-run artifacts directory.

Layout (only what must be kept):

* ``best_model.keras`` - the best trial's trained model (saved from its own trial when it
  became the best so far; never retrained),
* ``architecture.json`` - that trial's architecture plus its trial number and score,
* ``history.csv`` - one row per (trial, epoch) with every metric, like Cerebros' oracle.csv,
* ``preprocessing.json`` - feature/target standardisation for `predict`,
* ``result.json`` - the `SearchResult` (written at the end of a search).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from app.nas.records import TrialRecord

__all__ = [
    "ArtifactStore",
    "load_best_model",
    "predict",
    "remove_artifacts",
]

BEST_MODEL = "best_model.keras"
ARCHITECTURE = "architecture.json"
HISTORY = "history.csv"
PREPROCESSING = "preprocessing.json"
RESULT = "result.json"
WORK_DIR = ".work"  # successive-halving checkpoints between rungs; removed at the end


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    os.replace(tmp, path)  # readers never see a half-written file


class ArtifactStore:
    """Writes one run's artifacts under ``root`` (created on first use)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    @property
    def best_model_path(self) -> Path:
        return self.root / BEST_MODEL

    @property
    def work_dir(self) -> Path:
        path = self.root / WORK_DIR
        path.mkdir(exist_ok=True)
        return path

    def checkpoint_path(self, number: int) -> Path:
        """Where a successive-halving candidate waits between rungs."""
        return self.work_dir / f"trial_{number:04d}.keras"

    def saved_best_number(self) -> int | None:
        """Trial number of the best model already on disk (from an earlier attempt)."""
        path = self.root / ARCHITECTURE
        if not path.exists() or not self.best_model_path.exists():
            return None
        try:
            return int(json.loads(path.read_text())["trial_number"])
        except (ValueError, KeyError, TypeError):
            return None

    def save_best(self, model: Any, record: TrialRecord) -> None:
        """Save ``model`` as the best so far, with its architecture."""
        tmp = self.root / "best_model.tmp.keras"  # keras insists on the .keras suffix
        model.save(tmp)
        os.replace(tmp, self.best_model_path)
        _write_json(
            self.root / ARCHITECTURE,
            {
                "trial_number": record.number,
                "score": record.score,
                "best_epoch": record.best_epoch,
                "params_count": record.params_count,
                "hyperparameters": record.hyperparameters,
                "architecture": record.architecture,
            },
        )

    def write_preprocessing(self, data: dict[str, Any]) -> None:
        _write_json(self.root / PREPROCESSING, data)

    def write_result(self, data: dict[str, Any]) -> None:
        _write_json(self.root / RESULT, data)

    def write_history(self, trials: Iterable[TrialRecord]) -> None:
        """Rewrite history.csv from all records (small: trials x epochs rows)."""
        rows: list[dict[str, Any]] = []
        for trial in sorted(trials, key=lambda t: t.number):
            for metrics in trial.history:
                row: dict[str, Any] = {"trial": trial.number, "status": trial.status}
                row.update(metrics)
                row["epoch"] = int(metrics.get("epoch", 0))
                rows.append(row)
        fields = ["trial", "status", "epoch"]
        for row in rows:
            fields.extend(k for k in row if k not in fields)
        tmp = self.root / (HISTORY + ".tmp")
        with tmp.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, self.root / HISTORY)

    def drop_work_dir(self) -> None:
        shutil.rmtree(self.root / WORK_DIR, ignore_errors=True)

    def paths(self) -> dict[str, str]:
        """Artifact name -> path, for the files that exist."""
        names = {
            "dir": self.root,
            "best_model": self.best_model_path,
            "architecture": self.root / ARCHITECTURE,
            "history": self.root / HISTORY,
            "preprocessing": self.root / PREPROCESSING,
            "result": self.root / RESULT,
        }
        return {k: str(v) for k, v in names.items() if v.exists()}


def remove_artifacts(path: Path | str) -> None:
    """Delete a run's artifacts directory. Idempotent (a missing directory is fine)."""
    shutil.rmtree(Path(path), ignore_errors=True)


def load_best_model(artifacts_dir: Path | str) -> Any:
    """Load the best model of a run (imports keras)."""
    from app.nas.backend import keras

    path = Path(artifacts_dir) / BEST_MODEL
    if not path.exists():
        raise FileNotFoundError(f"no best model in {artifacts_dir}")
    return keras.saving.load_model(path)


def load_preprocessing(artifacts_dir: Path | str) -> dict[str, Any]:
    """The feature/target standardisation saved with a run's best model."""
    data: dict[str, Any] = json.loads((Path(artifacts_dir) / PREPROCESSING).read_text())
    return data


def predict_with_model(
    model: Any, preprocessing: dict[str, Any], rows: Sequence[Sequence[float]]
) -> list[Any]:
    """Predict raw feature rows with an already loaded model and its preprocessing.

    Returns class indices (classification; in the dataset's sorted label order) or values
    in the original target units (regression).
    """
    prep = preprocessing
    raw = np.asarray(rows, dtype=np.float32).reshape(len(rows), -1)
    mean = np.asarray(prep["x_mean"], dtype=np.float32)
    std = np.asarray(prep["x_std"], dtype=np.float32)
    x = ((raw - mean) / std).astype(np.float32)
    out = np.asarray(model.predict(x, verbose=0))
    if prep["task"] == "regression":
        return (out.reshape(-1) * prep["y_std"] + prep["y_mean"]).tolist()
    if out.shape[-1] == 1:  # binary head: one sigmoid unit
        return (out.reshape(-1) >= 0.5).astype(int).tolist()
    return out.argmax(axis=-1).astype(int).tolist()


def predict(artifacts_dir: Path | str, rows: Sequence[Sequence[float]]) -> list[Any]:
    """Predict raw feature rows with a run's best model (loads it on every call)."""
    return predict_with_model(
        load_best_model(artifacts_dir), load_preprocessing(artifacts_dir), rows
    )
