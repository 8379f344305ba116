"""The import graph of app/: no cycles, and the engine packages stay independent.

Every import counts (function-local ones too; only `if TYPE_CHECKING:` blocks are skipped),
so a cycle cannot hide behind a lazy import.
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[2] / "app"


def _modules() -> dict[str, Path]:
    mods = {}
    for path in APP.rglob("*.py"):
        parts = path.relative_to(APP.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        mods[name] = path
    return mods


MODULES = _modules()


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            node.body = []  # type-only imports are not runtime edges
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return {m for m in found if m in MODULES}


GRAPH = {
    name: {m for m in imports_of(path) if m != name and not name.startswith(m + ".")}
    for name, path in MODULES.items()
}


def test_no_import_cycles() -> None:
    try:
        graphlib.TopologicalSorter(GRAPH).prepare()
    except graphlib.CycleError as exc:
        pytest.fail(f"import cycle: {' -> '.join(exc.args[1])}")


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        # The saga engine knows nothing of NAS, HTTP or the queue.
        ("app.saga", ("app.nas", "app.api", "app.pipeline", "app.queue", "app.runs")),
        # The Keras engine knows nothing of HTTP, SQL or the queue.
        ("app.nas", ("app.api", "app.db", "app.queue", "app.pipeline", "app.runs", "app.saga")),
        ("app.db", ("app.api", "app.pipeline", "app.queue", "app.runs")),
    ],
)
def test_engines_stay_independent(package: str, forbidden: tuple[str, ...]) -> None:
    offending = sorted(
        f"{name} -> {dep}"
        for name, deps in GRAPH.items()
        if name == package or name.startswith(package + ".")
        for dep in deps
        if dep.startswith(forbidden)
    )
    assert offending == []
