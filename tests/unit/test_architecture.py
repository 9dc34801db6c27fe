"""The import direction of DESIGN.md is kept: data flows one way through the pipeline."""

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "src" / "edgetrain"

# package -> packages it must never import
FORBIDDEN = {
    "ir": {"engine", "train", "memory", "export", "cli", "report", "data", "zoo"},
    "ops": {"engine", "train", "memory", "export", "cli", "report"},
    "numerics": {"engine", "train", "memory", "export", "cli", "report"},
    "memory": {"engine", "train", "export", "cli", "report"},
    "export": {"train", "cli", "report"},
    "engine": {"train", "export", "cli", "report"},
    "train": {"export", "cli", "report"},
    "data": {"engine", "train", "memory", "export", "cli"},
}


def imported_subpackages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return {n.split(".")[1] for n in names if n.startswith("edgetrain.") and n.count(".") >= 1}


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_import_direction(package):
    for path in (PKG / package).rglob("*.py"):
        bad = imported_subpackages(path) & FORBIDDEN[package]
        assert not bad, f"{path.relative_to(PKG)} imports {sorted(bad)}"


def test_nothing_imports_cli():
    for path in PKG.rglob("*.py"):
        if "cli" in path.relative_to(PKG).parts:
            continue
        assert "cli" not in imported_subpackages(path), path
