"""Configuration comes from `Settings`: no module under app/ but app/config.py reads it from
the environment, and the variables that used to be read elsewhere are Settings fields."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.config import Settings

APP = Path(__file__).resolve().parents[2] / "app"


READ_CALLS = ("os.getenv(", "getenv(", "os.environ.get(", "os.environ.setdefault(")


def _is_read(node: ast.AST) -> bool:
    """``os.getenv``, ``os.environ.get/setdefault``, ``os.environ[...]``, ``in os.environ``.

    Copying the whole environment for a child process and setting a variable (for a library
    that reads it, like keras) are not configuration reads.
    """
    if isinstance(node, ast.Call):
        return ast.unparse(node).startswith(READ_CALLS)
    if isinstance(node, ast.Subscript):
        return ast.unparse(node.value) == "os.environ" and isinstance(node.ctx, ast.Load)
    if isinstance(node, ast.Compare):
        return any(isinstance(op, ast.In | ast.NotIn) for op in node.ops) and any(
            ast.unparse(c) == "os.environ" for c in node.comparators
        )
    if isinstance(node, ast.ImportFrom):
        return node.module == "os" and any(a.name == "getenv" for a in node.names)
    return False


def _environment_reads(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    return [
        f"{path.relative_to(APP.parent)}: {ast.unparse(node)}"
        for node in ast.walk(tree)
        if _is_read(node)
    ]


#: Modules that run outside the service: the predictor bundle's (`app.nas.predictor`) runs
#: on a user's machine without `Settings`, and reads only KERAS_BACKEND, as keras does.
STANDALONE = (APP / "config.py", APP / "nas" / "predictor.py")


def test_only_settings_reads_the_environment() -> None:
    reads = [
        read
        for path in sorted(APP.rglob("*.py"))
        if path not in STANDALONE
        for read in _environment_reads(path)
    ]
    assert reads == []


def test_settings_read_the_keras_and_torch_variables(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("KERAS_HOME", "KERAS_BACKEND", "CEREBROS_TORCH_THREADS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no .env here
    defaults = Settings()
    assert (defaults.keras_backend, defaults.torch_threads) == ("torch", 1)
    assert defaults.resolved_dataset_cache_dir == Path("~/.keras").expanduser()

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    monkeypatch.setenv("CEREBROS_TORCH_THREADS", "3")
    settings = Settings()
    assert (settings.keras_backend, settings.torch_threads) == ("jax", 3)
    assert settings.resolved_dataset_cache_dir == tmp_path / "keras"

    monkeypatch.setenv("CEREBROS_DATASET_CACHE_DIR", str(tmp_path / "datasets"))
    assert Settings().resolved_dataset_cache_dir == tmp_path / "datasets"


@pytest.mark.slow
def test_backend_takes_its_settings(tmp_path: Path) -> None:
    """A fresh process (keras reads its backend once per process) with two threads asked."""
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    env["CEREBROS_TORCH_THREADS"] = "2"
    code = (
        "import os, torch; from app.nas import backend; "
        "print(backend.BACKEND, os.environ['KERAS_BACKEND'], torch.get_num_threads())"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=APP.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["torch", "torch", "2"]
