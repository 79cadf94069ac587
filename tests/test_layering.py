"""The package layering of architecture.md, enforced on the source (imports parsed with ast).

app → (capture, inference, render) → resources; inference → render and
inference, render → capture are fine; never the other way. PySide6 only in app/,
no torch in capture/ or render/, no Qt in inference/.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

FORBIDDEN = {
    "capture": {"torch", "PySide6", "pyqtgraph", "inference", "render", "app"},
    "render": {"torch", "PySide6", "pyqtgraph", "inference", "app"},
    "inference": {"PySide6", "pyqtgraph", "app"},
    "resources": {"torch", "PySide6", "pyqtgraph", "inference", "render", "app", "capture"},
}


def imported_top_levels(path: Path) -> set[str]:
    """Top-level module names imported anywhere in a file (also inside functions)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_respects_layering(package: str) -> None:
    files = sorted((REPO / package).rglob("*.py"))
    assert files or package == "resources", f"{package}/ has no Python files"
    offenders = {
        str(f.relative_to(REPO)): sorted(imported_top_levels(f) & FORBIDDEN[package]) for f in files
    }
    offenders = {k: v for k, v in offenders.items() if v}
    assert offenders == {}, f"forbidden imports in {package}/: {offenders}"


def test_layering_check_detects_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    import torch.nn\n    from PySide6 import QtCore\n")
    assert imported_top_levels(bad) >= {"torch", "PySide6"}
