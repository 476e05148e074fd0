"""Imports point down: bot -> remediation -> incidents_db / sim -> playbooks. An upward import fails here."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ALLOWED: dict[str, set[str]] = {
    "bot": {"bot", "remediation", "incidents_db", "sim", "playbooks"},
    "remediation": {"remediation", "incidents_db", "sim", "playbooks"},
    "incidents_db": {"incidents_db", "playbooks"},
    "sim": {"sim", "playbooks"},
    "playbooks": {"playbooks"},
}


def imported_packages(path: Path) -> set[tuple[str, int]]:
    """Return (top-level package, line) for every import of one of our packages in a file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[tuple[str, int]] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.add((alias.name.split(".")[0], node.lineno))
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add((node.module.split(".")[0], node.lineno))
    return {(pkg, line) for pkg, line in found if pkg in ALLOWED}


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_point_down(package: str) -> None:
    violations = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for imported, line in imported_packages(path):
            if imported not in ALLOWED[package]:
                violations.append(f"{path.relative_to(ROOT)}:{line} imports {imported}")
    assert not violations, "upward imports:\n" + "\n".join(violations)


def test_the_scanner_catches_an_upward_import(tmp_path: Path) -> None:
    bad = tmp_path / "x.py"
    bad.write_text("import bot.cli\nfrom remediation import errors\nfrom . import sibling\n")
    assert {pkg for pkg, _ in imported_packages(bad)} == {"bot", "remediation"}
