"""Per-run artifacts directory.

Layout (only what must be kept):

* ``best_model.keras`` - the best trial's trained model (saved from its own trial when it
  became the best so far; never retrained), wrapped in the run's preprocessing layers: it
  takes raw feature rows (`app.nas.preprocessing.export_model`),
* ``architecture.json`` - that trial's architecture plus its trial number and score,
* ``history.csv`` - one row per (trial, epoch) with every metric, like Cerebros' oracle.csv,
* ``preprocessing.json`` - the task and the feature/target standardisation (the model
  carries the same; runs saved before it did need this file to be predicted),
* ``result.json`` - the `SearchResult` (written at the end of a search).
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from app.nas.artifact_names import ARCHITECTURE, BEST_MODEL, HISTORY, PREPROCESSING, RESULT
from app.nas.predictor import decode_outputs
from app.nas.records import Preprocessing, TrialRecord

__all__ = [
    "ARCHITECTURE",  # defined in app.nas.artifact_names, re-exported for older imports
    "BEST_MODEL",
    "HISTORY",
    "PREPROCESSING",
    "RESULT",
    "ArtifactStore",
    "decode_outputs",
    "load_best_model",
    "load_preprocessing",
    "model_outputs",
    "predict",
    "predict_with_model",
    "remove_artifacts",
]

WORK_DIR = ".work"  # successive-halving checkpoints between rungs; removed at the end


def history_csv(trials: Iterable[TrialRecord]) -> str:
    """history.csv: one row per (trial, epoch) with every metric, like Cerebros' oracle.csv."""
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
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def architecture_doc(record: TrialRecord) -> dict[str, Any]:
    """architecture.json: the best trial's architecture with its number and score."""
    return {
        "trial_number": record.number,
        "score": record.score,
        "best_epoch": record.best_epoch,
        "params_count": record.params_count,
        "hyperparameters": record.hyperparameters,
        "architecture": record.architecture,
    }


def best_model_bytes(model: Any, preprocessing: Preprocessing) -> bytes:
    """The best_model.keras file of ``model``: wrapped in the run's preprocessing, uncompiled."""
    from app.nas.model_bytes import model_to_bytes  # keras: lazily, for the API
    from app.nas.preprocessing import export_model

    return model_to_bytes(export_model(model, preprocessing))


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    os.replace(tmp, path)  # readers never see a half-written file


class ArtifactStore:
    """Writes one run's artifacts under ``root`` (created on first use)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.preprocessing: Preprocessing | None = None

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

    def write_checkpoint(self, number: int, data: bytes) -> None:
        """Keep trial ``number``'s model (with its optimizer) for a later continuation."""
        path = self.checkpoint_path(number)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)

    def read_checkpoint(self, number: int | None) -> bytes | None:
        """Trial ``number``'s saved model, or None if there is none."""
        if number is None:
            return None
        path = self.checkpoint_path(number)
        return path.read_bytes() if path.exists() else None

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
        """Save ``model`` as the best so far, with its architecture.

        What is saved is ``model`` wrapped in the run's preprocessing layers, a model of raw
        rows, so `write_preprocessing` must have been called first.
        """
        from app.nas.preprocessing import export_model  # imports keras: lazily, for the API

        if self.preprocessing is None:
            raise RuntimeError("write_preprocessing must come before save_best")
        tmp = self.root / "best_model.tmp.keras"  # keras insists on the .keras suffix
        export_model(model, self.preprocessing).save(tmp)
        os.replace(tmp, self.best_model_path)
        _write_json(self.root / ARCHITECTURE, architecture_doc(record))

    def candidate_path(self, number: int) -> Path:
        """Where trial ``number``'s exported model waits while the selection rule may choose it."""
        return self.work_dir / f"candidate_{number:04d}.keras"

    def save_candidate(self, model: Any, number: int) -> None:
        """Keep trial ``number``'s model, exported as `save_best` exports it, in the work dir."""
        from app.nas.preprocessing import export_model  # imports keras: lazily, for the API

        if self.preprocessing is None:
            raise RuntimeError("write_preprocessing must come before save_candidate")
        tmp = self.work_dir / f"candidate_{number:04d}.tmp.keras"
        export_model(model, self.preprocessing).save(tmp)
        os.replace(tmp, self.candidate_path(number))

    def drop_candidates(self, keep: set[int]) -> None:
        """Delete the kept models of every trial not in ``keep``."""
        for path in self.work_dir.glob("candidate_*.keras"):
            digits = path.name.removeprefix("candidate_").removesuffix(".keras")
            if not digits.isdigit() or int(digits) not in keep:
                path.unlink(missing_ok=True)

    def promote_candidate(self, record: TrialRecord) -> bool:
        """Make ``record``'s kept model the best model; False if it was not kept here."""
        source = self.candidate_path(record.number)
        if not source.exists():
            return False
        tmp = self.root / "best_model.tmp.keras"
        shutil.copyfile(source, tmp)
        os.replace(tmp, self.best_model_path)
        _write_json(self.root / ARCHITECTURE, architecture_doc(record))
        return True

    def write_preprocessing(self, preprocessing: Preprocessing) -> None:
        """Record the run's preprocessing; `save_best` wraps every best model in it."""
        self.preprocessing = preprocessing
        _write_json(self.root / PREPROCESSING, preprocessing.to_dict())

    def write_result(self, data: dict[str, Any]) -> None:
        _write_json(self.root / RESULT, data)

    def write_history(self, trials: Iterable[TrialRecord]) -> None:
        """Rewrite history.csv from all records (small: trials x epochs rows)."""
        tmp = self.root / (HISTORY + ".tmp")
        tmp.write_text(history_csv(trials))
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
    """Load the best model of a run, a model of raw feature rows (imports keras).

    A model saved before models carried their preprocessing is wrapped in it here, from
    ``preprocessing.json``, so every run's model is used the same way.
    """
    from app.nas.backend import keras

    path = Path(artifacts_dir) / BEST_MODEL
    if not path.exists():
        raise FileNotFoundError(f"no best model in {artifacts_dir}")
    model = keras.saving.load_model(path)
    preprocessing = load_preprocessing(artifacts_dir)
    if preprocessing.in_model:
        return model
    from app.nas.preprocessing import export_model

    return export_model(model, preprocessing)


def load_preprocessing(artifacts_dir: Path | str) -> Preprocessing:
    """The task and standardisation saved with a run's best model."""
    return Preprocessing.from_dict(json.loads((Path(artifacts_dir) / PREPROCESSING).read_text()))


def model_outputs(model: Any, rows: npt.ArrayLike) -> np.ndarray:
    """What a run's best model answers for raw feature rows, exactly as saved.

    Class probabilities (one column per class, in the dataset's sorted label order; a single
    sigmoid column, the probability of class 1, for a binary head) or regression values in
    the target's units.
    """
    raw = np.asarray(rows, dtype=np.float32)
    return np.asarray(model.predict(raw.reshape(len(raw), -1), verbose=0))


def predict_with_model(model: Any, task: str, rows: npt.ArrayLike) -> list[Any]:
    """Predict raw feature rows with a model from `load_best_model`.

    Returns class indices (classification; in the dataset's sorted label order) or values
    in the original target units (regression).
    """
    return decode_outputs(model_outputs(model, rows), task)


def predict(artifacts_dir: Path | str, rows: Sequence[Sequence[float]]) -> list[Any]:
    """Predict raw feature rows with a run's best model (loads it on every call)."""
    return predict_with_model(
        load_best_model(artifacts_dir), load_preprocessing(artifacts_dir).task, rows
    )
