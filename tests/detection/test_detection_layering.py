"""Detection is production code: it never imports the evaluation that measures it (issue #15)."""

from __future__ import annotations

import ast
from pathlib import Path

import tasks.detection

DETECTION = Path(tasks.detection.__file__).parent


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_detection_never_imports_evaluation():
    offenders = {
        path.name: sorted(m for m in imported_modules(path) if m.startswith("tasks.evaluation"))
        for path in DETECTION.glob("*.py")
    }
    assert {name: found for name, found in offenders.items() if found} == {}
    assert "learned.py" in offenders and "features.py" in offenders  # the model code lives here
