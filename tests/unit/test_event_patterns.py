"""Glob patterns over event names."""

from __future__ import annotations

import pytest

from app.events.patterns import compile_pattern, matches


@pytest.mark.parametrize(
    ("pattern", "name", "expected"),
    [
        ("cerebros.nas.**", "cerebros.nas.run.started", True),
        ("cerebros.nas.**", "cerebros.nas.trial.epoch", True),
        ("cerebros.nas.**", "cerebros.nas", True),
        ("cerebros.nas.**", "cerebros.other.run", False),
        ("cerebros.nas.run.*", "cerebros.nas.run.completed", True),
        ("cerebros.nas.run.*", "cerebros.nas.run", False),
        ("cerebros.nas.run.*", "cerebros.nas.run.a.b", False),
        ("cerebros.nas.*.started", "cerebros.nas.trial.started", True),
        ("cerebros.nas.*.started", "cerebros.nas.trial.epoch", False),
        ("**", "anything.at.all", True),
        ("cerebros.nas.run.started", "cerebros.nas.run.started", True),
        ("cerebros.nas.run.started", "cerebros.nas.run.startedX", False),
        ("cerebros.nas.run.start*", "cerebros.nas.run.started", True),
        ("cerebros.nas.run.st?rted", "cerebros.nas.run.started", False),
    ],
)
def test_matches(pattern: str, name: str, expected: bool) -> None:
    assert matches(pattern, name) is expected


@pytest.mark.parametrize("pattern", ["", "a..b", ".a", "a."])
def test_invalid_patterns_are_rejected(pattern: str) -> None:
    with pytest.raises(ValueError):
        compile_pattern(pattern)
