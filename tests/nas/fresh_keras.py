"""Load a saved model in a fresh Python process that has Keras and nothing of ours."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

#: What a user does with the downloaded file: load it, predict raw rows. It also checks that
#: nothing of this package was imported (no custom objects were needed).
LOAD_AND_PREDICT = """
import sys
import numpy as np
import keras
model = keras.saving.load_model(sys.argv[1])
np.save(sys.argv[3], model.predict(np.load(sys.argv[2]), verbose=0))
ours = [name for name in sys.modules if name == "app" or name.startswith("app.")]
assert not ours, ours
"""


def predict_in_fresh_process(
    model_path: Path, rows: np.ndarray, work_dir: Path, backend: str = "torch"
) -> np.ndarray:
    """``keras.saving.load_model(model_path).predict(rows)`` in a new interpreter."""
    rows_path, out_path = work_dir / "rows.npy", work_dir / "outputs.npy"
    np.save(rows_path, np.asarray(rows, dtype=np.float32))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CEREBROS_")}
    env["KERAS_BACKEND"] = backend
    proc = subprocess.run(
        # -I: no PYTHONPATH, no current directory on sys.path; only installed packages.
        [sys.executable, "-I", "-c", LOAD_AND_PREDICT, str(model_path), rows_path, out_path],
        env=env,
        cwd=work_dir,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    outputs: np.ndarray = np.load(out_path)
    return outputs
