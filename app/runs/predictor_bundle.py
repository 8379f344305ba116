"""A run's best model as a runnable predictor bundle (`GET /runs/{id}/predictor`).

The bundle is a Python zip application (the standard library's `zipapp`): a
``cerebros_predictor`` package made of `app.nas.predictor` and `app.nas.columns` (their own
source, so the bundle encodes rows exactly as ``/predict`` does), the model file and its
``preprocessing.json``, plus a ``__main__.py`` that runs `app.nas.predictor.main`. It needs
numpy, keras and a backend, nothing of this service: ``python best.pyz rows.csv``.
"""

from __future__ import annotations

import io
import tempfile
import zipapp
from pathlib import Path

from app.nas import columns, predictor
from app.nas.predictor import MODEL_FILE, PACKAGE, PREPROCESSING_FILE

__all__ = ["BUNDLE_MEDIA_TYPE", "build_bundle"]

BUNDLE_MEDIA_TYPE = "application/zip"

_MAIN = f"import sys\n\nfrom {PACKAGE} import main\n\nsys.exit(main())\n"


def build_bundle(model: bytes, preprocessing: bytes) -> bytes:
    """The ``.pyz`` bytes for a model file and its ``preprocessing.json``."""
    with tempfile.TemporaryDirectory(prefix="cerebros-bundle-") as tmp:
        root = Path(tmp) / "app"
        package = root / PACKAGE
        package.mkdir(parents=True)
        (root / "__main__.py").write_text(_MAIN, encoding="utf-8")
        (package / "__init__.py").write_text(_source(predictor.__file__), encoding="utf-8")
        (package / "columns.py").write_text(_source(columns.__file__), encoding="utf-8")
        (package / MODEL_FILE).write_bytes(model)
        (package / PREPROCESSING_FILE).write_bytes(preprocessing)
        out = io.BytesIO()
        zipapp.create_archive(root, out, interpreter="/usr/bin/env python3", compressed=True)
        return out.getvalue()


def _source(path: str | None) -> str:
    if path is None:  # a frozen build without source files cannot make bundles
        raise RuntimeError("the predictor's source files are not available")
    return Path(path).read_text(encoding="utf-8")
