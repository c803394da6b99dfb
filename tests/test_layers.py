"""The layers of ARCHITECTURE.md: data flows one way, science -> teaching -> screen. Checked by reading every
module's imports (ast), so a violation fails here before it shows up as a slow or untestable page."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {  # layer: top-level packages its modules must not import
    "toy_models": {"streamlit", "lessons", "course", "views", "app"},
    "lessons": {"streamlit", "course", "views", "app"},
    "course": {"views", "app"},
}


def imported_packages(path: Path) -> set[str]:
    """Top-level names of every `import x.y` / `from x.y import z` in a file (relative imports excluded)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_only_what_it_may(layer):
    files = sorted((ROOT / layer).rglob("*.py"))
    assert files, f"no modules under {layer}/"
    bad = {str(f.relative_to(ROOT)): sorted(imported_packages(f) & FORBIDDEN[layer]) for f in files}
    assert {k: v for k, v in bad.items() if v} == {}


def test_the_checker_sees_imports(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("import streamlit as st\nfrom lessons.settings import X\nfrom . import y\nimport os.path\n")
    assert imported_packages(f) == {"streamlit", "lessons", "os"}
